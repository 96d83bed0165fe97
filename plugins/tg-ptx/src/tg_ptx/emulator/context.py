"""The state one launch chunk runs in: registers of every thread, the active mask, special registers, memory.

Register arrays are never changed in place (a masked write builds a new array), so an instruction may
hand the same array to two registers (``mov``) safely.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tg_ptx.emulator.errors import EmulatorError
from tg_ptx.emulator.memory import GlobalMemory, SharedMemory
from tg_ptx.emulator.parser import Entry, Imm, Operand, Reg, Sym
from tg_ptx.emulator.ptxtypes import PType, compatible, from_register, immediate, to_register

Reader = Callable[["Context"], Any]
Writer = Callable[["Context", Any], None]

SPECIAL_REGISTERS = ("%tid", "%ntid", "%ctaid", "%nctaid")


class Registers(dict[str, np.ndarray]):
    """Register name -> per-thread values; reading one that nothing wrote is an error."""

    def __missing__(self, name: str) -> np.ndarray:
        raise EmulatorError(f"register {name} is read before any instruction wrote it")


def _axes(flat: np.ndarray, dims: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The x, y, z coordinates of flat indices ``flat`` in a grid of ``dims`` (x fastest, as CUDA numbers them)."""
    x, y = np.uint32(dims[0]), np.uint32(dims[1])
    return flat % x, (flat // x) % y, flat // (x * y)


class Context:
    """Registers and memory of ``n`` threads: ``blocks`` whole blocks (from flat block ``first_block`` of a grid of
    ``grid`` blocks) of ``block`` threads, each a 3-D shape (x, y, z)."""

    def __init__(self, entry: Entry, first_block: int, blocks: int, block: tuple[int, int, int],
                 grid: tuple[int, int, int], params: dict[str, Any], memory: GlobalMemory):
        block_size = block[0] * block[1] * block[2]
        self.n = blocks * block_size
        self.regs = Registers()
        self.mask: np.ndarray | None = None  # the threads the current instruction runs for (None: all)
        t = np.arange(self.n, dtype=np.uint32)
        self.block = (t // np.uint32(block_size)).astype(np.int64)  # block within this chunk
        warps_per_block = -(-block_size // 32)
        in_block = t % np.uint32(block_size)
        self.warp = self.block * warps_per_block + in_block // 32  # warp within this chunk
        self.special: dict[str, np.ndarray] = {"%laneid": in_block % np.uint32(32)}
        tids = _axes(in_block, block)
        ctaids = _axes((self.block + first_block).astype(np.uint32), grid)
        for k, axis in enumerate("xyz"):
            self.special.update({f"%tid.{axis}": tids[k], f"%ctaid.{axis}": ctaids[k],
                                 f"%ntid.{axis}": np.full(self.n, block[k], np.uint32),
                                 f"%nctaid.{axis}": np.full(self.n, grid[k], np.uint32)})
        self.params = params
        self.memory = memory
        self.shared = SharedMemory(blocks, entry.shared_bytes)

    def get(self, name: str) -> np.ndarray:
        return self.regs[name]

    def set(self, name: str, value: Any, dtype: np.dtype[Any]) -> None:
        v = np.asarray(value)
        if v.shape != (self.n,):
            v = np.full(self.n, v, dtype=dtype)
        if self.mask is None:
            self.regs[name] = v
        else:
            old = self.regs.get(name)
            self.regs[name] = np.where(self.mask, v, old if old is not None else np.zeros(self.n, dtype))


def _check(name: str, reg: PType, t: PType, wider: bool) -> None:
    if not compatible(reg, t, wider):
        raise EmulatorError(f"register {name} is declared .{reg.name}, which does not match the instruction type "
                            f".{t.name}")


def reader(op: Operand, t: PType, entry: Entry, wider: bool = False) -> Reader:
    """A function reading operand ``op`` as type ``t`` for every thread (an array, or a scalar for immediates).

    ``wider`` allows a register wider than ``t`` (``ld``, ``st`` and ``cvt`` do).
    """
    if isinstance(op, Imm):
        value = immediate(op.text, t)
        return lambda c: value
    if isinstance(op, Reg):
        name = op.name
        if name in entry.registers:
            _check(name, entry.registers[name], t, wider)
            if op.negated:
                if t.kind != "p":
                    raise EmulatorError(f"!{name} negates a non-predicate operand")
                return lambda c: ~from_register(c.get(name), t)
            if entry.registers[name].np == t.np:
                return lambda c: c.regs[name]
            return lambda c: from_register(c.get(name), t)
        if name in _special_names():
            return lambda c: from_register(c.special[name], t)
        raise EmulatorError(f"register {name} is not declared")
    if isinstance(op, Sym) and op.name in entry.shared:
        offset = immediate(str(entry.shared[op.name].offset), t)
        return lambda c: offset
    raise EmulatorError(f"operand {op} cannot be read as .{t.name}")


def writer(op: Operand, t: PType, entry: Entry, wider: bool = False) -> Writer:
    """A function writing a value of type ``t`` into register operand ``op`` (for the active threads)."""
    if not isinstance(op, Reg) or op.negated:
        raise EmulatorError(f"destination {op} is not a register")
    name = op.name
    if name not in entry.registers:
        raise EmulatorError(f"register {name} is not declared")
    _check(name, entry.registers[name], t, wider)
    dtype = entry.registers[name].np

    def write(c: Context, value: Any) -> None:
        if c.mask is None and type(value) is np.ndarray and value.dtype == dtype and value.shape == (c.n,):
            c.regs[name] = value  # the common case: every thread, a full array of the register's type
        else:
            c.set(name, to_register(value, t, dtype), dtype)

    return write


def _special_names() -> set[str]:
    names = {f"{s}.{a}" for s in SPECIAL_REGISTERS for a in "xyz"}
    names.add("%laneid")
    return names
