"""int64 as pairs of 32-bit VGPRs (``v[n:n+1]``: low word, high word).

Addition and subtraction carry through VCC (``v_add_co_u32``/``v_add_co_ci_u32``), multiplication is the low
product's 64 bits (``v_mad_u64_u32``) plus the two cross products in the high word, comparisons are the 64-bit
VOPC compares, bitwise ops and selects work word by word.  Division is a restoring shift-subtract loop of 64 steps
on the magnitudes (a uniform scalar loop), with the sign put back and a zero divisor giving 0.  Conversions:
to float through a normalised top word with a sticky bit (rounded once), from float through trunc/floor/fma
splits of the magnitude (exact), saturated at the int64 range, NaN -> 0.
"""

from __future__ import annotations

from typing import Any

from tg.codegen.uops import Ops, UOp

COMPARE64 = {Ops.CMPLT: "v_cmp_lt_i64", Ops.CMPNE: "v_cmp_ne_u64", Ops.CMPEQ: "v_cmp_eq_u64"}
_BITWISE = {Ops.AND: "v_and_b32", Ops.OR: "v_or_b32", Ops.XOR: "v_xor_b32"}
TWO_POW_M32 = "0x2f800000"
MINUS_TWO_POW_32 = "0xcf800000"
TWO_POW_63 = "0x5f000000"


def lo(reg: str) -> str:
    return f"v{reg[2:-1].split(':', maxsplit=1)[0]}"


def hi(reg: str) -> str:
    return f"v{reg[2:-1].split(':')[1]}"


class Alu64Mixin:
    """int64 rendering for :class:`tg_rdna.emitter._Kernel` (with :class:`tg_rdna.alu.AluMixin`)."""

    a: Any
    names: dict[int, str]
    consts: dict[int, tuple[Any, Any]]

    def out(self, u: UOp, note: str = "") -> str:
        raise NotImplementedError

    def tmp(self) -> str:
        raise NotImplementedError

    def tmp_pair(self) -> str:
        raise NotImplementedError

    def note(self, u: UOp) -> str:
        raise NotImplementedError

    def fail(self, u: UOp, why: str) -> Any:
        raise NotImplementedError

    def halves(self, u: UOp) -> tuple[str, str]:
        """The low and high words of an int64 value: registers, or literals of a constant."""
        if id(u) in self.consts:
            v = int(self.consts[id(u)][0]) & (2**64 - 1)
            return _lit(v & 0xFFFFFFFF), _lit(v >> 32)
        reg = self.names[id(u)]
        return lo(reg), hi(reg)

    def pair(self, u: UOp) -> str:
        """An int64 value in a VGPR pair (a constant is moved into a temporary one)."""
        if id(u) not in self.consts:
            return self.names[id(u)]
        reg = self.tmp_pair()
        low, high = self.halves(u)
        self.a.ins("v_mov_b32", lo(reg), low)
        self.a.ins("v_mov_b32", hi(reg), high)
        return reg

    def move64(self, dst: str, u: UOp, note: str = "") -> None:
        low, high = self.halves(u)
        if low != lo(dst):
            self.a.ins("v_mov_b32", lo(dst), low)
            self.a.ins("v_mov_b32", hi(dst), high, note=note)

    # -- ALU -----------------------------------------------------------------------------------------------

    def compare64(self, u: UOp) -> None:
        x, y = self.pair(u.src[0]), self.pair(u.src[1])
        dst = self.out(u)
        self.a.ins(COMPARE64[u.op], "vcc_lo", x, y, dst=0)
        self.a.ins("v_cndmask_b32", dst, "0", "1", "vcc_lo", note=self.note(u))

    def int64_op(self, u: UOp) -> None:
        op = u.op
        if op is Ops.WHERE:
            cond = self.names.get(id(u.src[0])) or self._materialize32(u.src[0])
            (al, ah), (bl, bh) = self.halves(u.src[1]), self.halves(u.src[2])
            dst = self.out(u)
            self.a.ins("v_cmp_ne_u32", "vcc_lo", "0", cond, dst=0)
            self.a.ins("v_cndmask_b32", lo(dst), bl, al, "vcc_lo")
            self.a.ins("v_cndmask_b32", hi(dst), bh, ah, "vcc_lo", note=self.note(u))
            return
        if op is Ops.NEG:
            (xl, xh), dst = self.halves(u.src[0]), self.out(u)
            self.a.ins("v_sub_co_u32", lo(dst), "vcc_lo", "0", xl, dst=2)
            self.a.ins("v_sub_co_ci_u32", hi(dst), "vcc_lo", "0", xh, "vcc_lo", dst=2, note=self.note(u))
            return
        (xl, xh), (yl, yh) = self.halves(u.src[0]), self.halves(u.src[1])
        if op in _BITWISE:
            dst = self.out(u)
            self.a.ins(_BITWISE[op], lo(dst), xl, yl)
            self.a.ins(_BITWISE[op], hi(dst), xh, yh, note=self.note(u))
        elif op in (Ops.ADD, Ops.SUB):
            dst = self.out(u)
            name = "add" if op is Ops.ADD else "sub"
            self.a.ins(f"v_{name}_co_u32", lo(dst), "vcc_lo", xl, yl, dst=2)
            self.a.ins(f"v_{name}_co_ci_u32", hi(dst), "vcc_lo", self._vgpr(xh), self._vgpr(yh), "vcc_lo", dst=2,
                       note=self.note(u))
        elif op is Ops.MUL:
            dst = self.out(u)
            self._mul(dst, xl, xh, yl, yh)
        elif op is Ops.MULACC:
            product, dst = self.tmp_pair(), self.out(u)
            self._mul(product, xl, xh, yl, yh)
            zl, zh = self.halves(u.src[2])
            self.a.ins("v_add_co_u32", lo(dst), "vcc_lo", lo(product), zl, dst=2)
            self.a.ins("v_add_co_ci_u32", hi(dst), "vcc_lo", hi(product), self._vgpr(zh), "vcc_lo", dst=2,
                       note=self.note(u))
        elif op is Ops.MAX:
            x, y = self.pair(u.src[0]), self.pair(u.src[1])
            dst = self.out(u)
            self.a.ins("v_cmp_gt_i64", "vcc_lo", x, y, dst=0)
            self.a.ins("v_cndmask_b32", lo(dst), lo(y), lo(x), "vcc_lo")
            self.a.ins("v_cndmask_b32", hi(dst), hi(y), hi(x), "vcc_lo", note=self.note(u))
        elif op is Ops.IDIV:
            x, y = self.pair(u.src[0]), self.pair(u.src[1])
            self._divide(self.out(u), x, y)
        else:
            self.fail(u, "no int64 instruction")

    def _vgpr(self, text: str) -> str:
        if text.startswith("v"):
            return text
        reg = self.tmp()
        self.a.ins("v_mov_b32", reg, text)
        return reg

    def _materialize32(self, u: UOp) -> str:
        value = self.consts[id(u)][0]
        reg = self.tmp()
        self.a.ins("v_mov_b32", reg, str(int(bool(value))))
        return reg

    def _mul(self, dst: str, xl: str, xh: str, yl: str, yh: str) -> None:
        """The low 64 bits of x * y."""
        t = self.tmp()
        self.a.ins("v_mad_u64_u32", dst, "null", self._vgpr(xl), self._vgpr(yl), "0", dst=2, note="lo * lo")
        self.a.ins("v_mul_lo_u32", t, xl, yh)
        self.a.ins("v_add_nc_u32", hi(dst), hi(dst), t)
        self.a.ins("v_mul_lo_u32", t, xh, yl)
        self.a.ins("v_add_nc_u32", hi(dst), hi(dst), t, note="+ the cross products")

    def _negate_where(self, reg: str, sign: str) -> None:
        """reg = -reg where the lane's ``sign`` word is all ones (reg ^ sign - sign, word by word with borrow)."""
        self.a.ins("v_xor_b32", lo(reg), lo(reg), sign)
        self.a.ins("v_xor_b32", hi(reg), hi(reg), sign)
        self.a.ins("v_sub_co_u32", lo(reg), "vcc_lo", lo(reg), sign, dst=2)
        self.a.ins("v_sub_co_ci_u32", hi(reg), "vcc_lo", hi(reg), sign, "vcc_lo", dst=2)

    def _divide(self, q: str, x: str, y: str) -> None:
        """q = x / y truncated toward zero; 0 where y is 0."""
        a = self.a
        sx, sy = self.tmp(), self.tmp()
        ux, uy, r, t = self.tmp_pair(), self.tmp_pair(), self.tmp_pair(), self.tmp()
        a.ins("v_ashrrev_i32", sx, "31", hi(x))
        a.ins("v_ashrrev_i32", sy, "31", hi(y))
        for src, dst, sign in ((x, ux, sx), (y, uy, sy)):
            a.ins("v_mov_b32", lo(dst), lo(src))
            a.ins("v_mov_b32", hi(dst), hi(src))
            self._negate_where(dst, sign)
        a.ins("v_xor_b32", sx, sx, sy, note="the quotient's sign")
        a.ins("v_mov_b32", lo(q), lo(ux))
        a.ins("v_mov_b32", hi(q), hi(ux), note="the dividend's bits shift out of q into r")
        a.ins("v_mov_b32", lo(r), "0")
        a.ins("v_mov_b32", hi(r), "0")
        steps, label = self.scalar_loop_begin(64)
        a.ins("v_lshlrev_b64", r, "1", r)
        a.ins("v_lshrrev_b32", t, "31", hi(q))
        a.ins("v_or_b32", lo(r), lo(r), t)
        a.ins("v_lshlrev_b64", q, "1", q)
        a.ins("v_cmp_ge_u64", "vcc_lo", r, uy, dst=0, note="r >= |y|: subtract, set the quotient bit")
        a.ins("v_cndmask_b32", t, "0", "1", "vcc_lo")
        a.ins("v_or_b32", lo(q), lo(q), t)
        a.ins("v_cndmask_b32", t, "0", lo(uy), "vcc_lo")
        a.ins("v_cndmask_b32", sy, "0", hi(uy), "vcc_lo")
        a.ins("v_sub_co_u32", lo(r), "vcc_lo", lo(r), t, dst=2)
        a.ins("v_sub_co_ci_u32", hi(r), "vcc_lo", hi(r), sy, "vcc_lo", dst=2)
        self.scalar_loop_end(steps, label)
        self._negate_where(q, sx)
        a.ins("v_cmp_eq_u64", "vcc_lo", "0", y, dst=0)
        a.ins("v_cndmask_b32", lo(q), lo(q), "0", "vcc_lo")
        a.ins("v_cndmask_b32", hi(q), hi(q), "0", "vcc_lo", note="x // 0 = 0")

    def scalar_loop_begin(self, count: int) -> tuple[str, str]:
        raise NotImplementedError

    def scalar_loop_end(self, counter: str, label: str) -> None:
        raise NotImplementedError

    # -- conversions ---------------------------------------------------------------------------------------

    def cast64(self, u: UOp, src_kind: str, dst_kind: str) -> None:
        x = u.src[0]
        note = self.note(u) + f" from {x.dtype.name}"  # type: ignore[union-attr]
        a = self.a
        if dst_kind == "i64":
            dst = self.out(u)
            if src_kind == "i64":
                self.move64(dst, x, note)
            elif src_kind in ("f32", "f16"):
                self._from_float(dst, x, src_kind, note)
            else:
                a.ins("v_mov_b32", lo(dst), self.names[id(x)])
                if src_kind in ("u8", "bool"):
                    a.ins("v_mov_b32", hi(dst), "0", note=note)
                else:
                    a.ins("v_ashrrev_i32", hi(dst), "31", lo(dst), note=note)
            return
        xl, xh = self.halves(x)
        if dst_kind == "bool":
            dst = self.out(u)
            a.ins("v_cmp_ne_u64", "vcc_lo", "0", self.pair(x), dst=0)
            a.ins("v_cndmask_b32", dst, "0", "1", "vcc_lo", note=note)
        elif dst_kind in ("f32", "f16"):
            dst = self.out(u)
            res = dst if dst_kind == "f32" else self.tmp()
            self._to_float(res, self.pair(x), note)
            if dst_kind == "f16":
                a.ins("v_cvt_f16_f32", dst, res, note=note + " (exact below 65520: f32 holds it)")
        else:  # a narrower integer: the low word, wrapped
            dst = self.out(u)
            a.ins("v_mov_b32", dst, xl, note=note)
            self.wrap(dst, dst_kind)

    def wrap(self, reg: str, kind: str) -> None:
        raise NotImplementedError

    def as_f32(self, u: UOp) -> str:
        raise NotImplementedError

    def _to_float(self, dst: str, x: str, note: str) -> None:
        """dst = float(x), rounded once: |x| normalised so its top bit is set, the top word (with a sticky bit
        for the rest) converted, the exponent put back with v_ldexp."""
        a = self.a
        sign, mag, sh, t = self.tmp(), self.tmp_pair(), self.tmp(), self.tmp()
        a.ins("v_ashrrev_i32", sign, "31", hi(x))
        a.ins("v_mov_b32", lo(mag), lo(x))
        a.ins("v_mov_b32", hi(mag), hi(x))
        self._negate_where(mag, sign)
        a.ins("v_clz_i32_u32", sh, hi(mag))
        a.ins("v_min_u32", sh, "32", sh, note="leading zeros of |x| (at most 32)")
        a.ins("v_lshlrev_b64", mag, sh, mag)
        a.ins("v_cmp_ne_u32", "vcc_lo", "0", lo(mag), dst=0)
        a.ins("v_cndmask_b32", t, "0", "1", "vcc_lo")
        a.ins("v_or_b32", t, hi(mag), t, note="the top word and a sticky bit")
        a.ins("v_cvt_f32_u32", t, t)
        a.ins("v_sub_nc_u32", sh, "32", sh)
        a.ins("v_ldexp_f32", t, t, sh)
        a.ins("v_and_b32", sign, "0x80000000", sign)
        a.ins("v_or_b32", dst, t, sign, note=note)

    def _from_float(self, dst: str, x: UOp, kind: str, note: str) -> None:
        """dst = int64(x): truncated, saturated, NaN -> 0."""
        a = self.a
        f = self.as_f32(x)
        if not f.startswith("v"):
            f = self._vgpr(f)
        t, h, sign, flag = self.tmp(), self.tmp(), self.tmp(), self.tmp()
        a.ins("v_trunc_f32", t, f"|{f}|")
        a.ins("v_mul_f32", h, TWO_POW_M32, t)
        a.ins("v_floor_f32", h, h)
        a.ins("v_fma_f32", t, h, MINUS_TWO_POW_32, t, note="|x| = h * 2**32 + t, both exact")
        a.ins("v_cvt_u32_f32", lo(dst), t)
        a.ins("v_cvt_u32_f32", hi(dst), h)
        a.ins("v_ashrrev_i32", sign, "31", f)
        self._negate_where(dst, sign)
        a.ins("v_cmp_le_f32", "vcc_lo", TWO_POW_63, f"|{f}|", dst=0, note="|x| >= 2**63 (or inf): saturate")
        a.ins("v_cndmask_b32", flag, "0", "1", "vcc_lo")
        a.ins("v_cmp_ne_u32", "vcc_lo", "0", flag, dst=0)
        a.ins("v_xor_b32", t, "0x7fffffff", sign, note="INT64_MAX or INT64_MIN high word")
        a.ins("v_cndmask_b32", hi(dst), hi(dst), t, "vcc_lo")
        a.ins("v_not_b32", t, sign)
        a.ins("v_cndmask_b32", lo(dst), lo(dst), t, "vcc_lo")
        a.ins("v_cmp_u_f32", "vcc_lo", f, f, dst=0)
        a.ins("v_cndmask_b32", lo(dst), lo(dst), "0", "vcc_lo")
        a.ins("v_cndmask_b32", hi(dst), hi(dst), "0", "vcc_lo", note=note + " (NaN -> 0)")


def _lit(v: int) -> str:
    signed = v - 2**32 if v >= 2**31 else v
    return str(signed) if -16 <= signed <= 64 else hex(v)
