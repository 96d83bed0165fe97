"""The registers of every wave of a launch, and the per-step view of the waves that run together.

Scalar registers: ``s`` of shape (128, n_waves) uint32 (encoding numbers: vcc 106/107, m0 125, exec
126/127), ``scc`` (n_waves,).  Vector registers: ``v`` of shape (n_vgpr, n_waves, 32) uint32.  A
:class:`Ctx` is one step: the waves ``w`` (an index array, or ``slice(None)`` when all run) that sit
at the same program counter, and their EXEC lanes; every read and write goes through it.
"""

from __future__ import annotations

import functools

import numpy as np

from tg_rdna.emulator.errors import EmulatorError
from tg_rdna.emulator.memory import Memory
from tg_rdna.emulator.numerics import flush as _flush
from tg_rdna.emulator.operands import EXEC_LO, NULL, Operand, immediate_bits, type_width
from tg_rdna.emulator.tracking import Tracker

U32, U64 = np.uint32, np.uint64
LANES = np.arange(32, dtype=U32)
POISON = 0x7FBADBAD
ALL_LANES = np.uint32(0xFFFFFFFF)
NP_TYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "u32": np.uint32, "i32": np.int32,
            "b32": np.uint32, "u16": np.uint16, "i16": np.int16, "b16": np.uint16, "u64": np.uint64,
            "i64": np.int64, "b64": np.uint64}


class Waves:
    """Register files, LDS and per-wave control state of all waves of a launch."""

    def __init__(self, n_waves: int, n_vgpr: int, n_groups: int, waves_per_group: int, lds_bytes: int,
                 denorm32: int, denorm16: int) -> None:
        self.n = n_waves
        # registers the launch does not initialise hold garbage on the hardware: a poison value here (a NaN as
        # f32, a huge offset as an address) so that a kernel relying on zeroed registers fails, not passes
        self.s = np.full((128, n_waves), POISON, U32)
        self.s[EXEC_LO + 1] = 0
        self.v = np.full((n_vgpr, n_waves, 32), POISON, U32)
        self.scc = np.zeros(n_waves, U32)
        self.pc = np.zeros(n_waves, np.int64)
        self.done = np.zeros(n_waves, bool)
        self.at_barrier = np.zeros(n_waves, bool)
        self.group = np.arange(n_waves) // waves_per_group
        self.waves_per_group = waves_per_group
        self.lds = np.full((n_groups, max(lds_bytes, 0)), 0xFF, np.uint8)  # garbage before the first store
        # FP_DENORM modes per wave (0 flush in+out, 1 flush out, 2 flush in, 3 none); s_denorm_mode sets them
        self.denorm32 = np.full(n_waves, denorm32, np.int8)
        self.denorm16 = np.full(n_waves, denorm16, np.int8)
        self.track = Tracker(n_waves, n_vgpr)
        self.issued = 0  # instructions issued, counted per wave (a step that runs k waves issues k)
        # facts about all the waves at once, kept until EXEC or a denormal mode changes (most steps run every wave)
        self.all_full_exec: bool | None = None
        self.all_exec_mask: np.ndarray | None = None
        self.all_flushing: dict[tuple[bool, bool], bool | np.ndarray] = {}


class Ctx:
    """One step: the waves ``w`` at one instruction, with the reads and writes it may do."""

    def __init__(self, st: Waves, w: np.ndarray | slice, kernel: str, address: int, text: str,
                 memory: Memory) -> None:
        self.st, self.w, self.kernel, self.address, self.text = st, w, kernel, address, text
        self.memory = memory
        self.k = st.n if isinstance(w, slice) else len(w)
        self._mask: np.ndarray | None = None
        self._full: bool | None = None
        self._flushing: dict[tuple[bool, bool], bool | np.ndarray] = {}

    def error(self, message: str) -> EmulatorError:
        return EmulatorError(message, self.kernel, self.address, self.text)

    # ---- EXEC ---------------------------------------------------------------------------------
    @property
    def exec_mask(self) -> np.ndarray:
        """(k, 32) bool: the lanes EXEC enables in each wave (read-only)."""
        if self._mask is None:
            every = isinstance(self.w, slice)
            if every and self.st.all_exec_mask is not None:
                self._mask = self.st.all_exec_mask
            elif self.full_exec:
                self._mask = _all_lanes(self.k)
            else:
                self._mask = ((self.st.s[EXEC_LO, self.w][:, None] >> LANES) & 1).astype(bool)
                self._mask.flags.writeable = False
            if every:
                self.st.all_exec_mask = self._mask
        return self._mask

    @property
    def full_exec(self) -> bool:
        """Whether every lane of every wave of the step is enabled (the common case, written without a mask)."""
        if self._full is None:
            every = isinstance(self.w, slice)
            if every and self.st.all_full_exec is not None:
                self._full = self.st.all_full_exec
            else:
                self._full = bool((self.st.s[EXEC_LO, self.w] == ALL_LANES).all())
                if every:
                    self.st.all_full_exec = self._full
        return self._full

    def invalidate(self) -> None:
        self._mask = self._full = None

    def flush(self, value: np.ndarray, typ: str, output: bool) -> np.ndarray:
        """Flush denormals of an f32/f16/f64 value where the wave's FP_DENORM mode says so."""
        if typ not in ("f32", "f16", "f64"):
            return value
        key = (typ == "f32", output)
        cache = self.st.all_flushing if isinstance(self.w, slice) else self._flushing
        on = cache.get(key)
        if on is None:
            modes = (self.st.denorm32 if typ == "f32" else self.st.denorm16)[self.w]
            waves = (modes == 0) | (modes == (1 if output else 2))
            on = cache[key] = True if waves.all() else False if not waves.any() else waves
        if on is False:
            return value
        flushed = _flush(value)
        if on is True:
            return flushed
        return np.where(on[:, None], flushed, value).astype(value.dtype)

    # ---- scalar registers ---------------------------------------------------------------------
    def sreg(self, index: int) -> np.ndarray:
        if index == NULL:
            return np.zeros(self.k, U32)
        if not 0 <= index < 128:
            raise self.error(f"scalar register {index} is not supported")
        return self.st.s[index, self.w]

    def set_sreg(self, index: int, value: np.ndarray) -> None:
        if index == NULL:
            return
        if not 0 <= index < 128:
            raise self.error(f"scalar register {index} is not supported")
        self.st.s[index, self.w] = value
        if index == EXEC_LO:
            self.invalidate()
            self.st.all_full_exec = self.st.all_exec_mask = None

    def sread(self, op: Operand, typ: str) -> np.ndarray:
        """A scalar operand (register, constant or literal) as (k,) of the type's dtype."""
        width = type_width(typ)
        if op.kind == "s":
            lo = self.sreg(op.index).astype(U64)
            if width == 64:
                bits = lo | (self.sreg(op.index + 1).astype(U64) << U64(32))
            else:
                bits = lo
        elif op.kind in ("imm", "fimm"):
            bits = np.full(self.k, immediate_bits(op, typ), U64)
        elif op.kind == "scc":
            bits = self.st.scc[self.w].astype(U64)
        else:
            raise self.error(f"operand {op.text!r} is not a scalar source")
        return _from_bits(bits, typ)

    def swrite(self, op: Operand, typ: str, value: np.ndarray) -> None:
        if op.kind != "s":
            raise self.error(f"operand {op.text!r} is not a scalar destination")
        bits = _to_bits(np.broadcast_to(value, (self.k,)), typ)
        self.set_sreg(op.index, (bits & U64(0xFFFFFFFF)).astype(U32))
        if type_width(typ) == 64:
            self.set_sreg(op.index + 1, (bits >> U64(32)).astype(U32))

    # ---- vector registers ---------------------------------------------------------------------
    def vreg(self, index: int) -> np.ndarray:
        if index >= self.st.v.shape[0]:
            raise self.error(f"v{index} is beyond the {self.st.v.shape[0]} VGPRs the kernel descriptor "
                             "allocates")
        return self.st.v[index, self.w]

    def set_vreg(self, index: int, value: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Write the lanes of ``mask`` (default: EXEC); ``value`` broadcasts to (k, 32) and is cast to uint32."""
        regs = self.st.v
        if index >= regs.shape[0]:
            raise self.error(f"v{index} is beyond the {regs.shape[0]} VGPRs the kernel descriptor allocates")
        if mask is None and self.full_exec:
            regs[index, self.w] = value
        elif isinstance(self.w, slice):
            np.copyto(regs[index], value, casting="unsafe", where=self.exec_mask if mask is None else mask)
        else:
            m = self.exec_mask if mask is None else mask
            regs[index, self.w] = np.where(m, value, regs[index, self.w])

    def vsrc(self, op: Operand, typ: str, hi: bool = False) -> np.ndarray:
        """A VALU source as (k, 32) or broadcastable, in the type's dtype, with abs/neg applied.  A register
        source may be a view of the register file: callers compute new arrays from it, never write to it."""
        width = type_width(typ)
        if width == 32 and op.kind == "v":
            value = self.vreg(op.index).view(NP_TYPES[typ])
        elif width == 32 and op.kind in ("imm", "fimm"):
            value = constant(op, typ)
        elif width == 32 and op.kind == "s":
            value = self.sreg(op.index)[:, None].view(NP_TYPES[typ])
        else:
            value = _from_bits(self._source_bits(op, typ, width, hi), typ)
        if op.absolute or op.neg:
            if typ[0] != "f":
                raise self.error(f"abs/neg modifier on the integer operand {op.text!r}")
            if op.absolute:
                value = np.abs(value)
            if op.neg:
                value = -value
        return value

    def _source_bits(self, op: Operand, typ: str, width: int, hi: bool) -> np.ndarray:
        if op.kind == "v":
            bits = self.vreg(op.index).astype(U64)
            if width == 64:
                bits = bits | (self.vreg(op.index + 1).astype(U64) << U64(32))
            if width == 16 and (hi or op.half == 2):
                bits = bits >> U64(16)
            return bits
        if op.kind in ("imm", "fimm"):
            bits = np.full((1, 1), immediate_bits(op, typ), U64)
        elif op.kind in ("s", "scc"):
            bits = self.sread(Operand(op.kind, op.index, op.count, text=op.text),
                              "b64" if width == 64 else "b32").astype(U64)[:, None]
        else:
            raise self.error(f"operand {op.text!r} is not a vector source")
        return bits >> U64(16) if width == 16 and hi else bits

    def vwrite(self, op: Operand, typ: str, value: np.ndarray, hi: bool = False,
               mask: np.ndarray | None = None) -> None:
        if op.kind != "v":
            raise self.error(f"operand {op.text!r} is not a vector destination")
        width = type_width(typ)
        if width == 32:
            arr = np.asarray(value)
            dt = NP_TYPES[typ]
            if arr.dtype != dt:
                arr = arr.astype(dt)
            self.set_vreg(op.index, arr.view(U32), mask)
            return
        bits = _to_bits(np.broadcast_to(value, (self.k, 32)), typ)
        if width == 64:
            self.set_vreg(op.index, (bits & U64(0xFFFFFFFF)).astype(U32), mask)
            self.set_vreg(op.index + 1, (bits >> U64(32)).astype(U32), mask)
        else:
            old = self.vreg(op.index)
            if hi or op.half == 2:
                new = (old & U32(0xFFFF)) | (bits.astype(U32) << U32(16))
            else:
                new = (old & U32(0xFFFF0000)) | (bits.astype(U32) & U32(0xFFFF))
            self.set_vreg(op.index, new, mask)


@functools.lru_cache(maxsize=64)
def _all_lanes(k: int) -> np.ndarray:
    mask = np.ones((k, 32), bool)
    mask.flags.writeable = False
    return mask


@functools.lru_cache(maxsize=4096)
def constant(op: Operand, typ: str) -> np.ndarray:
    """An inline constant or literal as a read-only (1, 1) array of a 32-bit type."""
    value = np.full((1, 1), immediate_bits(op, typ), U32).view(NP_TYPES[typ])
    value.flags.writeable = False
    return value


def _from_bits(bits: np.ndarray, typ: str) -> np.ndarray:
    width = type_width(typ)
    if width == 64:
        raw = bits.astype(U64)
    elif width == 32:
        raw = (bits & U64(0xFFFFFFFF)).astype(U32)
    else:
        raw = (bits & U64(0xFFFF)).astype(np.uint16)
    return np.ascontiguousarray(raw).view(NP_TYPES[typ])


def _to_bits(value: np.ndarray, typ: str) -> np.ndarray:
    dt = np.dtype(NP_TYPES[typ])
    arr = np.ascontiguousarray(np.asarray(value).astype(dt, copy=False))
    unsigned = {8: U64, 4: U32, 2: np.uint16}[dt.itemsize]
    return arr.view(unsigned).astype(U64)




def pack_mask(m: np.ndarray) -> np.ndarray:
    """(k, 32) bool -> (k,) uint32 lane mask."""
    return np.packbits(m, axis=1, bitorder="little").view("<u4").reshape(-1).astype(U32, copy=False)


def unpack_mask(bits: np.ndarray) -> np.ndarray:
    return ((np.asarray(bits, U32)[:, None] >> LANES) & 1).astype(bool)
