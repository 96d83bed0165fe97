"""The instruction sequences that make RDNA3's approximate hardware math exact or accurate over the whole range.

- division (and RECIP as 1/x): ``v_div_scale_f32`` scales numerator and denominator out of the danger zones,
  ``v_rcp_f32`` (1 ulp) starts two Newton-Raphson steps in fused multiply-adds, ``v_div_fmas_f32`` applies the
  last correction with the scaling, ``v_div_fixup_f32`` handles zeros, infinities and NaN: IEEE division,
  correctly rounded (denormals are on, so no mode switch is needed);
- square root: ``v_sqrt_f32`` then the neighbouring floats checked by their residuals (fma), which makes the
  result correctly rounded; inputs below 2**-96 are scaled by 2**32 first (and the root by 2**-16 after), and
  +-0 and +inf returned as they are;
- exp2: ``v_exp_f32`` flushes results below 2**-126 to zero, so inputs below -126 get +64 first and the result
  is multiplied by 2**-64 (a denormal, rounded once);
- log2: ``v_log_f32`` treats denormal inputs as zero, so inputs below 2**-126 are multiplied by 2**32 first and
  32 is subtracted after;
- sine: ``v_sin_f32`` takes revolutions (core already divided by 2*pi, ``sin_is_sin2pi``); the argument is
  reduced exactly to [-0.5, 0.5] (x - rint(x)) so the hardware's domain is never left and tiny inputs keep their
  relative accuracy;
- integer division: the unsigned quotient from ``v_rcp_iflag_f32`` of the divisor, one Newton step in integers,
  and two corrections (exact for every divisor but 0); the signed one on magnitudes with the sign put back; a
  zero divisor gives 0 (hook spec), INT_MIN // -1 wraps to INT_MIN.
"""

from __future__ import annotations

from typing import Any

TWO_POW_M126 = "0x800000"  # smallest normal f32
TWO_POW_M96 = "0xf800000"
TWO_POW_32 = "0x4f800000"
TWO_POW_M16 = "0x37800000"
TWO_POW_M64 = "0x1f800000"
MINUS_126 = "0xc2fc0000"
SIXTY_FOUR = "0x42800000"
THIRTY_TWO = "0x42000000"
CLASS_ZERO_OR_PLUS_INF = "0x260"  # v_cmp_class mask: -0, +0, +inf


def divide(k: Any, dst: str, num: str, den: str) -> None:
    """``dst = num / den`` in f32, correctly rounded."""
    a = k.a
    num = _vgpr(k, num)
    den = _vgpr(k, den)
    den_s, num_s, r, t, q = k.tmp(), k.tmp(), k.tmp(), k.tmp(), k.tmp()
    a.ins("v_div_scale_f32", den_s, "vcc_lo", den, den, num, dst=2, note="scaled denominator")
    a.ins("v_div_scale_f32", num_s, "vcc_lo", num, den, num, dst=2, note="scaled numerator (vcc: scale applies)")
    a.ins("v_rcp_f32", r, den_s)
    a.ins("v_fma_f32", t, f"-{den_s}", r, "1.0")
    a.ins("v_fma_f32", r, t, r, r, note="reciprocal, one Newton step")
    a.ins("v_mul_f32", q, num_s, r)
    a.ins("v_fma_f32", t, f"-{den_s}", q, num_s)
    a.ins("v_fma_f32", q, t, r, q, note="quotient, refined")
    a.ins("v_fma_f32", t, f"-{den_s}", q, num_s, note="its remainder")
    a.ins("v_div_fmas_f32", q, t, r, q)
    a.ins("v_div_fixup_f32", dst, q, den, num, note="the quotient, special cases fixed")


def sqrt(k: Any, dst: str, x: str) -> None:
    """``dst = sqrt(x)`` in f32, correctly rounded."""
    a = k.a
    x = _vgpr(k, x)
    xs, back, s, down, up, rd, ru = k.tmp(), k.tmp(), k.tmp(), k.tmp(), k.tmp(), k.tmp(), k.tmp()
    a.ins("v_cmp_gt_f32", "vcc_lo", TWO_POW_M96, x, dst=0, note="x < 2**-96: scale")
    a.ins("v_cndmask_b32", xs, "1.0", TWO_POW_32, "vcc_lo")
    a.ins("v_cndmask_b32", back, "1.0", TWO_POW_M16, "vcc_lo")
    a.ins("v_mul_f32", xs, x, xs)
    a.ins("v_sqrt_f32", s, xs)
    a.ins("v_add_nc_u32", down, "-1", s, note="the float below")
    a.ins("v_add_nc_u32", up, "1", s, note="the float above")
    a.ins("v_fma_f32", rd, f"-{down}", s, xs)
    a.ins("v_fma_f32", ru, f"-{up}", s, xs)
    a.ins("v_cmp_ge_f32", "vcc_lo", "0", rd, dst=0)
    a.ins("v_cndmask_b32", s, s, down, "vcc_lo")
    a.ins("v_cmp_lt_f32", "vcc_lo", "0", ru, dst=0)
    a.ins("v_cndmask_b32", s, s, up, "vcc_lo", note="correctly rounded")
    a.ins("v_mul_f32", s, s, back)
    a.ins("v_cmp_class_f32", "vcc_lo", xs, CLASS_ZERO_OR_PLUS_INF, dst=0, note="+-0 and +inf are their own root")
    a.ins("v_cndmask_b32", dst, s, xs, "vcc_lo")


def exp2(k: Any, dst: str, x: str) -> None:
    """``dst = 2**x`` in f32; results below 2**-126 are denormals, not zero."""
    a = k.a
    x = _vgpr(k, x)
    t, scale = k.tmp(), k.tmp()
    a.ins("v_cmp_gt_f32", "vcc_lo", MINUS_126, x, dst=0, note="x < -126: the result is denormal")
    a.ins("v_cndmask_b32", t, "0", SIXTY_FOUR, "vcc_lo")
    a.ins("v_cndmask_b32", scale, "1.0", TWO_POW_M64, "vcc_lo")
    a.ins("v_add_f32", t, x, t)
    a.ins("v_exp_f32", t, t)
    a.ins("v_mul_f32", dst, t, scale, note="2**x")


def log2(k: Any, dst: str, x: str) -> None:
    """``dst = log2(x)`` in f32, denormal inputs included."""
    a = k.a
    x = _vgpr(k, x)
    t, shift = k.tmp(), k.tmp()
    a.ins("v_cmp_gt_f32", "vcc_lo", TWO_POW_M126, x, dst=0, note="x < 2**-126: scale denormals up")
    a.ins("v_cndmask_b32", t, "1.0", TWO_POW_32, "vcc_lo")
    a.ins("v_cndmask_b32", shift, "0", THIRTY_TWO, "vcc_lo")
    a.ins("v_mul_f32", t, x, t)
    a.ins("v_log_f32", t, t)
    a.ins("v_sub_f32", dst, t, shift, note="log2(x)")


def sin_revolutions(k: Any, dst: str, x: str) -> None:
    """``dst = sin(2*pi*x)``."""
    a = k.a
    x = _vgpr(k, x)
    t = k.tmp()
    a.ins("v_rndne_f32", t, x)
    a.ins("v_sub_f32", t, x, t, note="x - rint(x), exact, in [-0.5, 0.5]")
    a.ins("v_sin_f32", dst, t, note="sin(2*pi*x)")


def int_divide(k: Any, dst: str, x: str, y: str, signed: bool) -> None:
    """``dst = x / y`` truncated toward zero (C), 0 where ``y`` is 0; ``signed`` int32, else unsigned."""
    a = k.a
    if signed:
        sx, sy, ux, uy = k.tmp(), k.tmp(), k.tmp(), k.tmp()
        a.ins("v_ashrrev_i32", sx, "31", x)
        a.ins("v_ashrrev_i32", sy, "31", y)
        a.ins("v_add_nc_u32", ux, x, sx)
        a.ins("v_xor_b32", ux, ux, sx, note="|x|")
        a.ins("v_add_nc_u32", uy, y, sy)
        a.ins("v_xor_b32", uy, uy, sy, note="|y|")
        a.ins("v_xor_b32", sx, sx, sy, note="the quotient's sign")
        _udiv(k, dst, ux, uy)
        a.ins("v_xor_b32", dst, dst, sx)
        a.ins("v_sub_nc_u32", dst, dst, sx, note="signed quotient")
    else:
        _udiv(k, dst, x, y)
    a.ins("v_cmp_eq_u32", "vcc_lo", "0", y, dst=0)
    a.ins("v_cndmask_b32", dst, dst, "0", "vcc_lo", note="x // 0 = 0")


def _udiv(k: Any, q: str, x: str, y: str) -> None:
    a = k.a
    z, t, r = k.tmp(), k.tmp(), k.tmp()
    a.ins("v_cvt_f32_u32", t, y)
    a.ins("v_rcp_iflag_f32", t, t)
    a.ins("v_mul_f32", t, "0x4f7ffffe", t, note="~2**32 / y")
    a.ins("v_cvt_u32_f32", z, t)
    a.ins("v_sub_nc_u32", t, "0", y)
    a.ins("v_mul_lo_u32", t, t, z)
    a.ins("v_mul_hi_u32", t, z, t)
    a.ins("v_add_nc_u32", z, z, t, note="2**32 / y, one Newton step")
    a.ins("v_mul_hi_u32", q, x, z, note="quotient estimate")
    a.ins("v_mul_lo_u32", t, q, y)
    a.ins("v_sub_nc_u32", r, x, t, note="remainder")
    for _ in range(2):
        a.ins("v_cmp_ge_u32", "vcc_lo", r, y, dst=0)
        a.ins("v_add_nc_u32", t, "1", q)
        a.ins("v_cndmask_b32", q, q, t, "vcc_lo")
        a.ins("v_sub_nc_u32", t, r, y)
        a.ins("v_cndmask_b32", r, r, t, "vcc_lo", note="corrected")


def _vgpr(k: Any, text: str) -> str:
    """An operand in a VGPR (sequences use their inputs several times, beside other literals)."""
    return str(k.in_vgpr(text))
