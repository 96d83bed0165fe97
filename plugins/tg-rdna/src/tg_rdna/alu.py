"""ALU micro-ops, casts and bitcasts as RDNA3 instructions, chosen by the operands' kind.

Values sit in 32-bit VGPRs: ``f32``; ``f16`` in the low half (arithmetic converts to f32, computes, and rounds back
once with ``v_cvt_f16_f32``: for + - * / sqrt that single rounding of an exact-enough f32 result is the correctly
rounded f16 result); ``i32``; ``i8``/``u8`` sign/zero-extended to 32 bits (re-wrapped after wrapping arithmetic);
``bool`` as 0/1.  :data:`TABLE` holds the ops that are one instruction; the rest (comparisons, MAX with NaN,
division, the transcendental sequences) are methods here or in :mod:`tg_rdna.mathseq`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import DType, dtypes

from tg_rdna import mathseq
from tg_rdna.alu64 import Alu64Mixin
from tg_rdna.asm import is_inline

#: One-instruction ops by operand kind: op -> (mnemonic, operand order).
TABLE: dict[str, dict[Ops, str]] = {
    "f32": {Ops.ADD: "v_add_f32", Ops.SUB: "v_sub_f32", Ops.MUL: "v_mul_f32", Ops.MULACC: "v_fma_f32",
            Ops.TRUNC: "v_trunc_f32"},
    "i32": {Ops.ADD: "v_add_nc_u32", Ops.SUB: "v_sub_nc_u32", Ops.MUL: "v_mul_lo_u32", Ops.MAX: "v_max_i32",
            Ops.AND: "v_and_b32", Ops.OR: "v_or_b32", Ops.XOR: "v_xor_b32"},
    "u8": {Ops.ADD: "v_add_nc_u32", Ops.SUB: "v_sub_nc_u32", Ops.MUL: "v_mul_lo_u32", Ops.MAX: "v_max_u32",
           Ops.AND: "v_and_b32", Ops.OR: "v_or_b32", Ops.XOR: "v_xor_b32"},
    "i8": {Ops.ADD: "v_add_nc_u32", Ops.SUB: "v_sub_nc_u32", Ops.MUL: "v_mul_lo_u32", Ops.MAX: "v_max_i32",
           Ops.AND: "v_and_b32", Ops.OR: "v_or_b32", Ops.XOR: "v_xor_b32"},
    "bool": {Ops.ADD: "v_or_b32", Ops.MUL: "v_and_b32", Ops.MAX: "v_or_b32", Ops.AND: "v_and_b32",
             Ops.OR: "v_or_b32", Ops.XOR: "v_xor_b32"},
}
#: Comparisons by operand kind: op -> VOPC mnemonic (floats: lt/eq ordered, neq unordered, as IEEE says).
COMPARE: dict[str, dict[Ops, str]] = {
    "f32": {Ops.CMPLT: "v_cmp_lt_f32", Ops.CMPNE: "v_cmp_neq_f32", Ops.CMPEQ: "v_cmp_eq_f32"},
    "i32": {Ops.CMPLT: "v_cmp_lt_i32", Ops.CMPNE: "v_cmp_ne_u32", Ops.CMPEQ: "v_cmp_eq_u32"},
    "i8": {Ops.CMPLT: "v_cmp_lt_i32", Ops.CMPNE: "v_cmp_ne_u32", Ops.CMPEQ: "v_cmp_eq_u32"},
    "u8": {Ops.CMPLT: "v_cmp_lt_u32", Ops.CMPNE: "v_cmp_ne_u32", Ops.CMPEQ: "v_cmp_eq_u32"},
    "bool": {Ops.CMPLT: "v_cmp_lt_u32", Ops.CMPNE: "v_cmp_ne_u32", Ops.CMPEQ: "v_cmp_eq_u32"},
}
_WRAPS = {Ops.ADD, Ops.SUB, Ops.MUL, Ops.NEG, Ops.MULACC}
_INT_KINDS = ("i32", "i8", "u8")


def kind_of(dtype: DType) -> str:
    """How a dtype's values sit in a VGPR: ``f32``, ``f16``, ``i32``, ``i8``, ``u8`` or ``bool``."""
    kinds = {"float32": "f32", "float16": "f16", "int32": "i32", "int8": "i8", "uint8": "u8", "bool": "bool",
             "int64": "i64"}
    if dtype.name not in kinds:
        raise NotImplementedError(f"tg-rdna does not compute in {dtype.name}")
    return kinds[dtype.name]


def f32_bits(value: float) -> int:
    return int(np.array(value, dtype=np.float32).view(np.uint32))


def f16_bits(value: float) -> int:
    return int(np.array(value, dtype=np.float16).view(np.uint16))


class AluMixin(Alu64Mixin):
    """ALU rendering for :class:`tg_rdna.emitter._Kernel` (which supplies ``a``, ``names``, ``consts``, ``out``,
    ``tmp``, ``fail``, ``note``)."""

    a: Any
    names: dict[int, str]
    consts: dict[int, tuple[Any, DType]]
    position: int

    def out(self, u: UOp, note: str = "") -> str:
        raise NotImplementedError

    def tmp(self) -> str:
        raise NotImplementedError

    def fail(self, u: UOp, why: str) -> Any:
        raise NotImplementedError

    def note(self, u: UOp) -> str:
        raise NotImplementedError

    # -- operands ----------------------------------------------------------------------------------------------

    def literal(self, value: Any, dtype: DType | None) -> str:
        """A constant as an operand of a 32-bit instruction (f16 as its bits in the low half)."""
        if dtype is not None and dtype.name == "float32":
            return hex(f32_bits(float(value)))
        if dtype is not None and dtype.name == "float16":
            return hex(f16_bits(float(value)))
        v = int(value)
        if dtype is not None and dtype.name == "uint8":
            v &= 0xFF
        elif dtype is not None and dtype.name == "int8":
            v = (v + 128) % 256 - 128
        elif dtype is not None and dtype.name == "bool":
            v = int(bool(value))
        return str(v) if -16 <= v <= 64 else hex(v & 0xFFFFFFFF)

    def src(self, u: UOp) -> str:
        if id(u) in self.consts:
            value, dtype = self.consts[id(u)]
            return self.literal(value, dtype)
        return self.names[id(u)]

    def reg(self, u: UOp) -> str:
        """``u`` in a VGPR (a constant is moved into a temporary one)."""
        return self.in_vgpr(self.src(u))

    def in_vgpr(self, text: str) -> str:
        """An operand in a VGPR: a register as it is, anything else moved into a temporary one."""
        if text.startswith("v"):
            return text
        reg = self.tmp()
        self.a.ins("v_mov_b32", reg, text)
        return reg

    def srcs(self, *uops: UOp) -> list[str]:
        """Operands of one instruction: at most one distinct literal, the others moved into VGPRs."""
        texts = [self.src(u) for u in uops]
        return self.one_literal(texts, lambda i, _: self.reg(uops[i]))

    def one_literal(self, texts: list[str], into_register: Callable[[int, str], str]) -> list[str]:
        """``texts`` with every literal after the first distinct one replaced by ``into_register(i, text)``."""
        seen: str | None = None
        for i, t in enumerate(texts):
            if not is_inline(t):
                if seen is None or seen == t:
                    seen = t
                else:
                    texts[i] = into_register(i, t)
        return texts

    def as_f32(self, u: UOp) -> str:
        """A float operand as f32: f32 values as they are, f16 converted (a constant at compile time)."""
        if id(u) in self.consts:
            return self.literal(float(self.consts[id(u)][0]), dtypes.float32)
        text = self.names[id(u)]
        if kind_of(u.dtype) == "f16":  # type: ignore[arg-type]
            reg = self.tmp()
            self.a.ins("v_cvt_f32_f16", reg, text)
            return reg
        return text

    def f32_operands(self, u: UOp) -> list[str]:
        return self.one_literal([self.as_f32(s) for s in u.src], lambda _, t: self.in_vgpr(t))

    # -- ALU ---------------------------------------------------------------------------------------------------

    def from_table(self, u: UOp) -> None:
        dtype = u.src[0].dtype if u.op in COMPARE["f32"] else u.dtype
        kind = kind_of(dtype)  # type: ignore[arg-type]
        if kind == "i64":
            return self.compare64(u) if u.op in COMPARE["f32"] else self.int64_op(u)
        if u.op is Ops.WHERE:
            return self._where(u, self.out(u))
        if u.op in COMPARE["f32"]:
            return self.compare(u, kind)
        if kind in ("f32", "f16"):
            return self.float_op(u, kind)
        return self.int_op(u, kind)

    def compare(self, u: UOp, kind: str) -> None:
        if kind == "f16":
            ops = self.f32_operands(u)
            kind = "f32"
        else:
            ops = self.srcs(*u.src)
        dst = self.out(u)
        self.a.ins(COMPARE[kind][u.op], "vcc_lo", *ops, dst=0)
        self.a.ins("v_cndmask_b32", dst, "0", "1", "vcc_lo", note=self.note(u))

    def float_op(self, u: UOp, kind: str) -> None:
        if kind == "f16" and u.op is Ops.MULACC:  # rounded once: f32 then f16 could round twice
            a, b, c = (self.reg(s) for s in u.src)
            self.a.ins("v_fma_f16", self.out(u), a, b, c, note=self.note(u))
            return
        ops = self.f32_operands(u)
        dst = self.out(u)
        res = dst if kind == "f32" else self.tmp()
        op = u.op
        if op in TABLE["f32"]:
            self.a.ins(TABLE["f32"][op], res, *ops, note=self.note(u))
        elif op is Ops.NEG:
            self.a.ins("v_xor_b32", res, "0x80000000", ops[0], note=self.note(u))
        elif op is Ops.MAX:  # numpy.maximum: a NaN operand gives NaN (v_max_f32 would return the other one)
            t = self.tmp()
            self.a.ins("v_max_f32", res, *ops)
            self.a.ins("v_add_f32", t, *ops)
            self.a.ins("v_cmp_u_f32", "vcc_lo", *ops, dst=0)
            self.a.ins("v_cndmask_b32", res, res, t, "vcc_lo", note=self.note(u))
        elif op is Ops.DIV:
            mathseq.divide(self, res, ops[0], ops[1])
        elif op is Ops.RECIP:
            mathseq.divide(self, res, "1.0", ops[0])
        elif op is Ops.SQRT:
            mathseq.sqrt(self, res, ops[0])
        elif op is Ops.EXP2:
            mathseq.exp2(self, res, ops[0])
        elif op is Ops.LOG2:
            mathseq.log2(self, res, ops[0])
        elif op is Ops.SIN:
            mathseq.sin_revolutions(self, res, ops[0])
        else:
            self.fail(u, f"no {kind} instruction")
        if kind == "f16":
            self.a.ins("v_cvt_f16_f32", dst, res, note=f"{self.note(u)} (rounded once to f16)")

    def _where(self, u: UOp, dst: str) -> None:
        cond = self.src(u.src[0])
        if not cond.startswith("v"):
            cond = self.reg(u.src[0])
        self.a.ins("v_cmp_ne_u32", "vcc_lo", "0", cond, dst=0)
        a, b = self.srcs(u.src[1], u.src[2])
        self.a.ins("v_cndmask_b32", dst, b, a, "vcc_lo", note=self.note(u))  # vcc set: src1 (a)

    def int_op(self, u: UOp, kind: str) -> None:
        op = u.op
        ops = self.srcs(*u.src)
        dst = self.out(u)
        if op in TABLE[kind]:
            self.a.ins(TABLE[kind][op], dst, *ops, note=self.note(u))
        elif op is Ops.NEG and kind == "bool":
            self.a.ins("v_xor_b32", dst, "1", ops[0], note=self.note(u) + " (not)")
        elif op is Ops.NEG:
            self.a.ins("v_sub_nc_u32", dst, "0", ops[0], note=self.note(u))
        elif op is Ops.MULACC and kind == "bool":
            self.a.ins("v_and_b32", dst, ops[0], ops[1])
            self.a.ins("v_or_b32", dst, dst, self.reg(u.src[2]), note=self.note(u))
        elif op is Ops.MULACC:
            self.a.ins("v_mul_lo_u32", dst, ops[0], ops[1])
            self.a.ins("v_add_nc_u32", dst, dst, self.reg(u.src[2]), note=self.note(u))
        elif op is Ops.IDIV and kind in _INT_KINDS:
            mathseq.int_divide(self, dst, self.reg(u.src[0]), self.reg(u.src[1]), signed=kind != "u8")
        else:
            self.fail(u, f"no {kind} instruction")
        if op in _WRAPS or op is Ops.IDIV:
            self.wrap(dst, kind)

    def wrap(self, reg: str, kind: str) -> None:
        """Bring a 32-bit result back into an 8-bit kind's range (two's complement wrap)."""
        if kind == "u8":
            self.a.ins("v_and_b32", reg, "0xff", reg, note="wrap to uint8")
        elif kind == "i8":
            self.a.ins("v_bfe_i32", reg, reg, "0", "8", note="wrap to int8")

    # -- conversions -------------------------------------------------------------------------------------------

    def render_cast(self, u: UOp) -> None:
        src_kind, dst_kind = kind_of(u.src[0].dtype), kind_of(u.dtype)  # type: ignore[arg-type]
        if id(u.src[0]) in self.consts:  # a cast of a constant is folded by core; keep the rare leftover exact
            value = _cast_constant(self.consts[id(u.src[0])], u.dtype)  # type: ignore[arg-type]
            self.consts[id(u)] = (value, u.dtype)  # type: ignore[assignment]
            return
        if "i64" in (src_kind, dst_kind):
            return self.cast64(u, src_kind, dst_kind)
        x = self.names[id(u.src[0])]
        dst = self.out(u)
        note = self.note(u) + f" from {u.src[0].dtype.name}"  # type: ignore[union-attr]
        if src_kind == dst_kind:
            self.a.ins("v_mov_b32", dst, x, note=note)
            return
        if dst_kind == "bool":
            if src_kind in ("f32", "f16"):
                self.a.ins("v_cmp_neq_f32", "vcc_lo", "0", self.as_f32(u.src[0]), dst=0)
            else:
                self.a.ins("v_cmp_ne_u32", "vcc_lo", "0", x, dst=0)
            self.a.ins("v_cndmask_b32", dst, "0", "1", "vcc_lo", note=note)
            return
        if src_kind in ("f32", "f16"):
            f = self.as_f32(u.src[0])
            if dst_kind == "f16":
                self.a.ins("v_cvt_f16_f32", dst, f, note=note)
            elif dst_kind == "f32":
                self.a.ins("v_mov_b32", dst, f, note=note)
            elif dst_kind == "i32":  # truncates, saturates, NaN -> 0
                self.a.ins("v_cvt_i32_f32", dst, f, note=note)
            elif dst_kind == "i8":
                self.a.ins("v_cvt_i32_f32", dst, f)
                self.a.ins("v_max_i32", dst, "0xffffff80", dst)
                self.a.ins("v_min_i32", dst, "0x7f", dst, note=note + " (saturated)")
            else:  # u8
                self.a.ins("v_cvt_u32_f32", dst, f)
                self.a.ins("v_min_u32", dst, "0xff", dst, note=note + " (saturated)")
            return
        if dst_kind in ("f32", "f16"):  # from an integer kind (exact below 2**24; f16 overflows before that)
            res = dst if dst_kind == "f32" else self.tmp()
            self.a.ins("v_cvt_f32_u32" if src_kind in ("u8", "bool") else "v_cvt_f32_i32", res, x, note=note)
            if dst_kind == "f16":
                self.a.ins("v_cvt_f16_f32", dst, res, note=note)
            return
        self.a.ins("v_mov_b32", dst, x, note=note)  # integer -> integer: keep the low bits
        self.wrap(dst, dst_kind)

    def render_bitcast(self, u: UOp) -> None:
        src_kind, dst_kind = kind_of(u.src[0].dtype), kind_of(u.dtype)  # type: ignore[arg-type]
        if u.src[0].dtype.itemsize != u.dtype.itemsize:  # type: ignore[union-attr]
            self.fail(u, "sizes differ")
        if src_kind == "i64" or dst_kind == "i64":
            if src_kind != dst_kind:
                self.fail(u, "tg-rdna has no 64-bit dtype but int64")
            return self.move64(self.out(u), u.src[0], self.note(u))
        dst = self.out(u)
        self.a.ins("v_mov_b32", dst, self.reg(u.src[0]), note=self.note(u))
        if src_kind != dst_kind:
            self.wrap(dst, dst_kind)


def _cast_constant(const: tuple[Any, DType], dtype: DType) -> Any:
    value, _ = const
    if dtype.is_float:
        return float(value)
    if dtype.name == "bool":
        return bool(value)
    f = float(value)
    if math.isnan(f):
        return 0
    info = np.iinfo(dtype.np)
    return int(max(info.min, min(info.max, int(f)))) if isinstance(value, float) else int(value)


__all__ = ["AluMixin", "f16_bits", "f32_bits", "is_inline", "kind_of"]
