"""Vector lanes: one load or store of ``count`` consecutive elements (up to 128 bits per instruction).

A vector value is a block of consecutive VGPRs holding the elements as memory lays them out: 32-bit elements one
per VGPR, int64 two, float16 two per VGPR (element 2k in the low half), 8-bit elements four per VGPR.  A vector
load fills the block with ``global_load_b32/b64/b96/b128`` (``ds_load_*`` for LDS; 16- and 8-bit totals below 32 bits
with ``_u16``/``_u8``); ``VECTORIZE`` packs its lanes into a fresh block (so a store is one instruction, and the
lanes' own registers may be reused); ``GEP`` copies lane i out of a block into a register of its own (shifted and
sign/zero-extended for the packed kinds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tg.codegen.uops import Ops, UOp, VecDType
from tg.support.dtype import DType

_LOAD = {1: "u8", 2: "u16", 4: "b32", 8: "b64", 12: "b96", 16: "b128"}
_STORE = {1: "b8", 2: "b16", 4: "b32", 8: "b64", 12: "b96", 16: "b128"}


def block_size(vec: VecDType) -> int:
    """VGPRs of a vector's block."""
    return max(1, (vec.base.itemsize * vec.count + 3) // 4)


def block_registers(reg: str) -> list[str]:
    """The single VGPRs of a block (``v[4:6]`` -> ``v4``, ``v5``, ``v6``)."""
    if "[" not in reg:
        return [reg]
    lo, hi = reg[2:-1].split(":")
    return [f"v{i}" for i in range(int(lo), int(hi) + 1)]


def _pieces(vec: VecDType) -> list[tuple[int, int]]:
    """(byte offset, bytes) of the instructions moving a vector: 16 bytes at a time, the rest last."""
    total = vec.base.itemsize * vec.count
    return [(done, min(16, total - done)) for done in range(0, total, 16)]


def _span(regs: list[str]) -> str:
    return regs[0] if len(regs) == 1 else f"v[{regs[0][1:]}:{regs[-1][1:]}]"


class VectorMixin:
    """Vector rendering for :class:`tg_rdna.emitter._Kernel`."""

    a: Any
    names: dict[int, str]
    consts: dict[int, tuple[Any, Any]]
    regs: Any
    owned: dict[int, str]

    if TYPE_CHECKING:  # supplied by the kernel and the ALU mixins (this mixin comes first in the MRO)
        def note(self, u: UOp) -> str: ...
        def fail(self, u: UOp, why: str) -> Any: ...
        def tmp(self) -> str: ...
        def halves(self, u: UOp) -> tuple[str, str]: ...
        def src(self, u: UOp) -> str: ...

    def block(self, u: UOp) -> list[str]:
        """A fresh block of VGPRs owned by ``u`` (a vector value)."""
        assert isinstance(u.dtype, VecDType)
        reg = self.regs.vgpr(block_size(u.dtype))
        self.owned[id(u)] = reg
        self.names[id(u)] = reg
        return block_registers(reg)

    def fill(self, regs: list[str], lanes: list[UOp], base: DType) -> None:
        """Pack ``lanes`` (scalar values or constants) into ``regs`` in memory order."""
        size = base.itemsize
        if size == 8:
            for i, lane in enumerate(lanes):
                low, high = self.halves(lane)
                self.a.ins("v_mov_b32", regs[2 * i], low)
                self.a.ins("v_mov_b32", regs[2 * i + 1], high)
            return
        if size == 4:
            for reg, lane in zip(regs, lanes):
                self.a.ins("v_mov_b32", reg, self.src(lane))
            return
        per = 4 // size
        mask = "0xffff" if size == 2 else "0xff"
        for r, reg in enumerate(regs):
            part = lanes[r * per:(r + 1) * per]
            self.a.ins("v_and_b32", reg, mask, self.src(part[0]))
            for j, lane in enumerate(part[1:], start=1):
                t = self.tmp()
                self.a.ins("v_and_b32", t, mask, self.src(lane))
                self.a.ins("v_lshl_or_b32", reg, t, str(8 * size * j), reg)

    def render_vectorize(self, u: UOp) -> None:
        assert isinstance(u.dtype, VecDType)
        self.fill(self.block(u), list(u.src), u.dtype.base)

    def render_gep(self, u: UOp) -> None:
        vec = u.src[0]
        assert isinstance(vec.dtype, VecDType)
        base, lane = vec.dtype.base, u.arg if isinstance(u.arg, int) else u.arg[0]
        regs = block_registers(self.names[id(vec)])
        size = base.itemsize
        if size == 8:
            dst = self.regs.vgpr(2)
            self.owned[id(u)], self.names[id(u)] = dst, dst
            pair = block_registers(dst)
            self.a.ins("v_mov_b32", pair[0], regs[2 * lane])
            self.a.ins("v_mov_b32", pair[1], regs[2 * lane + 1], note=self.note(u))
            return
        dst = self.regs.vgpr()
        self.owned[id(u)], self.names[id(u)] = dst, dst
        if size == 4:
            self.a.ins("v_mov_b32", dst, regs[lane], note=self.note(u))
            return
        per = 4 // size
        reg, offset = regs[lane // per], 8 * size * (lane % per)
        signed = base.name == "int8"
        self.a.ins("v_bfe_i32" if signed else "v_bfe_u32", dst, reg, str(offset), str(8 * size), note=self.note(u))

    def load_vector(self, u: UOp, offset: str, address: list[str], local: int | None) -> None:
        """The block of a vector LOAD (``address``: its operands after the destination)."""
        assert isinstance(u.dtype, VecDType)
        regs = block_registers(self.names[id(u)])
        for done, chunk in _pieces(u.dtype):
            if chunk not in _LOAD:
                self.fail(u, f"no {8 * chunk}-bit load")
            dst = _span(regs[done // 4: (done + chunk + 3) // 4])
            if local is not None:
                self.a.ins(f"ds_load_{_LOAD[chunk]}", dst, f"{offset} offset:{local + done}", memory="lds",
                           note=self.note(u))
            else:
                base = address[0] + (f" offset:{done}" if done else "")
                self.a.ins(f"global_load_{_LOAD[chunk]}", dst, offset, base, memory="vm", note=self.note(u))

    def store_vector(self, value: UOp, offset: str, address: list[str], local: int | None, note: str) -> None:
        assert isinstance(value.dtype, VecDType)
        if id(value) in self.consts or value.op is not Ops.VECTORIZE and id(value) not in self.names:
            self.fail(value, "a vector store needs a vector value")
        regs = block_registers(self.names[id(value)])
        for done, chunk in _pieces(value.dtype):
            if chunk not in _STORE:
                self.fail(value, f"no {8 * chunk}-bit store")
            data = _span(regs[done // 4: (done + chunk + 3) // 4])
            if local is not None:
                self.a.ins(f"ds_store_{_STORE[chunk]}", offset, f"{data} offset:{local + done}", dst=0,
                           memory="ldsstore", note=note)
            else:
                base = address[0] + (f" offset:{done}" if done else "")
                self.a.ins(f"global_store_{_STORE[chunk]}", offset, data, base, dst=0, memory="vstore", note=note)
