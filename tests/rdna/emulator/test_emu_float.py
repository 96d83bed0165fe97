"""f32/f16 semantics from AMD's RDNA3 ISA reference: transcendentals, denormals, FMA, division."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from rdna_emu_asm import requires_llvm, run_elementwise
from tg_rdna.emulator import numerics as nm

pytestmark = requires_llvm
F = np.float32
DENORM = F(2.0 ** -130)
WAIT = "  s_waitcnt_depctr 0xfff"


def _bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, F).view(np.uint32)


def unary(op: str, x: np.ndarray, **kw: Any) -> np.ndarray:
    return run_elementwise(f"  {op} v2, v2\n{WAIT}", np.asarray(x, F), **kw)


def test_exp_edge_cases_and_denormal_flush() -> None:
    x = np.array([0, 1, -1, 10.5, -126, -127, -149, 128, -np.inf, np.inf, np.nan, DENORM, -DENORM], F)
    got = unary("v_exp_f32", x)
    want = np.array([1, 2, 0.5, 2 ** 10.5, 2.0 ** -126, 0, 0, np.inf, 0, np.inf, np.nan, 1, 1], F)
    np.testing.assert_array_equal(got, want)  # 2^-127 and 2^-149 are denormal results: flushed to 0


def test_log_edge_cases_and_denormal_flush() -> None:
    x = np.array([1, 8, 0.5, 2.0 ** -126, 0, -0.0, DENORM, -DENORM, -1, np.inf, -np.inf, np.nan, 10], F)
    got = unary("v_log_f32", x)
    want = np.array([0, 3, -1, -126, -np.inf, -np.inf, -np.inf, -np.inf, np.nan, np.inf, np.nan, np.nan,
                     np.log2(10.0)], F)
    np.testing.assert_array_equal(got, want)  # a denormal input is read as 0: log2 = -inf


def test_sin_and_cos_take_revolutions() -> None:
    x = np.array([0, 0.25, -0.25, 0.5, 0.125, 1.25, 100.25, 1 / 12], F)
    np.testing.assert_allclose(unary("v_sin_f32", x), np.sin(2 * np.pi * x.astype(np.float64)), atol=2e-7)
    np.testing.assert_allclose(unary("v_cos_f32", x), np.cos(2 * np.pi * x.astype(np.float64)), atol=2e-7)
    assert unary("v_sin_f32", np.array([0.25], F))[0] == 1.0
    assert np.isnan(unary("v_sin_f32", np.array([np.inf], F))[0])


def test_rcp_rsq_sqrt_special_values() -> None:
    x = np.array([4, 0, -0.0, DENORM, 2.0 ** 127, np.inf, -2, 3], F)
    rcp = unary("v_rcp_f32", x)
    np.testing.assert_array_equal(rcp, np.array([0.25, np.inf, -np.inf, np.inf, 0, 0, -0.5, F(1) / F(3)], F))
    assert np.signbit(unary("v_rcp_f32", np.array([-np.inf], F))[0])
    y = np.array([4, 0, DENORM, -1, np.inf, 2], F)
    np.testing.assert_array_equal(unary("v_rsq_f32", y), np.array([0.5, np.inf, np.inf, np.nan, 0,
                                                                   F(1 / np.sqrt(2.0))], F))
    np.testing.assert_array_equal(unary("v_sqrt_f32", y), np.array([2, 0, 0, np.nan, np.inf, np.sqrt(F(2))], F))


def test_denormal_mode_flushes_arithmetic() -> None:
    a = np.array([DENORM, 2.0 ** -125, 1.0], F)
    b = np.array([F(0), F(-1.5 * 2.0 ** -126), DENORM], F)
    ieee = run_elementwise("  v_add_f32 v2, v2, v3", a, b, denorm32=3)
    np.testing.assert_array_equal(ieee, a + b)
    flushed = run_elementwise("  v_add_f32 v2, v2, v3", a, b, denorm32=0)
    # flush mode: a denormal input reads as 0, the denormal result 2^-125 - 1.5*2^-126 = 2^-127 is flushed
    assert ieee[1] == F(2.0 ** -127)
    np.testing.assert_array_equal(flushed, np.array([0, 0, 1], F))
    half = run_elementwise("  v_mul_f32 v2, 0.5, v2", np.array([2.0 ** -126], F), denorm32=0)
    assert half[0] == 0 and not np.signbit(half[0])


def _exact_fma(a: float, b: float, c: float) -> np.float32:
    """Round a*b+c (exact rational) to the nearest f32, ties to even."""
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    lo = F(float(exact))  # nearest double, then nearest f32 (may double-round): fix below
    cands = [np.nextafter(lo, F(-np.inf)), lo, np.nextafter(lo, F(np.inf))]
    best = min(cands, key=lambda v: (abs(Fraction(float(v)) - exact), int(_bits(v)) & 1))
    return F(best)


def test_fma_rounds_once() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(4000).astype(F)
    b = rng.standard_normal(4000).astype(F)
    c = (-(a.astype(np.float64) * b) + rng.standard_normal(4000) * 1e-8).astype(F)  # heavy cancellation
    # a double-rounding case: a*b+c lands exactly halfway between two f32 in f64 only after rounding
    a = np.concatenate([a, np.array([1 + 2.0 ** -23, 1 + 2.0 ** -12], F)])
    b = np.concatenate([b, np.array([1 - 2.0 ** -23, 1 + 2.0 ** -12], F)])
    c = np.concatenate([c, np.array([2.0 ** -60, 2.0 ** -70], F)])
    want = np.array([_exact_fma(float(x), float(y), float(z)) for x, y, z in zip(a, b, c)], F)
    np.testing.assert_array_equal(_bits(nm.fma32(a, b, c)), _bits(want))
    naive = (a.astype(np.float64) * b + c).astype(F)
    assert (naive != want).any(), "the inputs should include cases where computing in f64 double-rounds"
    got = run_elementwise("  v_fma_f32 v2, v2, v3, v4", a, b, c)
    np.testing.assert_array_equal(_bits(got), _bits(want))


# LLVM's exact f32 division (fdiv with denormals): v2 = v2 / v3
DIV = """
  v_div_scale_f32 v5, null, v3, v3, v2
  v_div_scale_f32 v6, vcc_lo, v2, v3, v2
  v_rcp_f32 v7, v5
  s_waitcnt_depctr 0xfff
  v_fma_f32 v8, -v5, v7, 1.0
  v_fmac_f32 v7, v8, v7
  v_mul_f32 v8, v6, v7
  v_fma_f32 v9, -v5, v8, v6
  v_fmac_f32 v8, v9, v7
  v_fma_f32 v5, -v5, v8, v6
  v_div_fmas_f32 v5, v5, v7, v8
  v_div_fixup_f32 v2, v5, v3, v2
"""


def test_division_sequence_is_correctly_rounded() -> None:
    rng = np.random.default_rng(1)
    n = rng.standard_normal(3000).astype(F) * F(10) ** rng.integers(-30, 30, 3000).astype(F)
    d = rng.standard_normal(3000).astype(F) * F(10) ** rng.integers(-30, 30, 3000).astype(F)
    special = np.array([1, 0, 0, np.inf, 1, -1, np.nan, 3e38, 1e-38, 1, 7, 2.0 ** -100, 2.0 ** 100,
                        3e38, 1e-30, 1], F)
    sden = np.array([0, 0, 5, np.inf, np.inf, -0.0, 1, 1e-3, 3e38, 3, 7, 2.0 ** 100, 2.0 ** -100,
                     2.0 ** -126, 1e30, DENORM], F)
    n, d = np.concatenate([n, special]), np.concatenate([d, sden])
    with np.errstate(all="ignore"):
        want = n / d
    got = run_elementwise(DIV, n, d)
    assert (np.isnan(got) == np.isnan(want)).all()
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(_bits(got[ok]), _bits(want[ok]))
    assert (np.abs(want) < 2.0 ** -126).sum() > 10, "denormal quotients must be covered"


def test_f16_arithmetic_and_conversions() -> None:
    h = np.array([1.5, -2.25, 65504, 6e-8, 0.1], np.float16)
    g = np.array([0.25, 3, 1, 6e-8, 0.2], np.float16)
    a32 = h.view(np.uint16).astype(np.uint32)
    b32 = g.view(np.uint16).astype(np.uint32)
    got = run_elementwise("  v_add_f16 v2, v2, v3\n  v_and_b32 v2, 0xffff, v2", a32, b32)
    np.testing.assert_array_equal(got.astype(np.uint16).view(np.float16), h + g)  # 65504 + 1 rounds back
    got = run_elementwise("  v_fma_f16 v2, v2, v3, v3\n  v_and_b32 v2, 0xffff, v2", a32, b32)
    want = (h.astype(np.float64) * g + g).astype(np.float16)
    np.testing.assert_array_equal(got.astype(np.uint16).view(np.float16), want)
    x = np.array([1.0, 1e-5, 70000, -3.14159, np.nan], F)
    got = run_elementwise("  v_cvt_f16_f32 v2, v2\n  v_cvt_f32_f16 v2, v2", x)
    np.testing.assert_array_equal(got, np.array([1.0, np.float16(1e-5), np.inf, np.float16(-3.14159), np.nan], F))


def test_packed_f16_with_op_sel() -> None:
    lo = np.array([1, 2, 3], np.float16)
    hi = np.array([10, 20, 30], np.float16)
    packed = lo.view(np.uint16).astype(np.uint32) | (hi.view(np.uint16).astype(np.uint32) << 16)
    got = run_elementwise("  v_pk_add_f16 v2, v2, v2 op_sel:[0,1] op_sel_hi:[1,0]", packed)
    # low result = lo + hi; high result = hi + lo
    r_lo = (got & 0xFFFF).astype(np.uint16).view(np.float16)
    r_hi = (got >> 16).astype(np.uint16).view(np.float16)
    np.testing.assert_array_equal(r_lo, lo + hi)
    np.testing.assert_array_equal(r_hi, hi + lo)
    # an inline constant is <2.0, 0.0>: its high half is 0 (a splat needs op_sel_hi 0 for that operand)
    got = run_elementwise("  v_pk_mul_f16 v2, v2, 2.0", packed)
    np.testing.assert_array_equal((got & 0xFFFF).astype(np.uint16).view(np.float16), lo * 2)
    np.testing.assert_array_equal((got >> 16).astype(np.uint16).view(np.float16), hi * 0)
    got = run_elementwise("  v_pk_mul_f16 v2, v2, 2.0 op_sel_hi:[1,0]", packed)
    np.testing.assert_array_equal((got >> 16).astype(np.uint16).view(np.float16), hi * 2)
    got = run_elementwise("  v_pk_add_f16 v2, v2, 0x40003c00", packed)  # a literal: both halves
    np.testing.assert_array_equal((got & 0xFFFF).astype(np.uint16).view(np.float16), lo + 1)
    np.testing.assert_array_equal((got >> 16).astype(np.uint16).view(np.float16), hi + 2)


def test_min_max_nan_and_signed_zero() -> None:
    a = np.array([1, np.nan, np.nan, -0.0, 0.0, -np.inf], F)
    b = np.array([2, 3, np.nan, 0.0, -0.0, 5], F)
    mx = run_elementwise("  v_max_f32 v2, v2, v3", a, b)
    mn = run_elementwise("  v_min_f32 v2, v2, v3", a, b)
    np.testing.assert_array_equal(mx, np.array([2, 3, np.nan, 0, 0, 5], F))
    np.testing.assert_array_equal(mn, np.array([1, 3, np.nan, -0.0, -0.0, -np.inf], F))
    assert not np.signbit(mx[3]) and not np.signbit(mx[4]) and np.signbit(mn[3]) and np.signbit(mn[4])


def test_float_to_int_conversions_saturate() -> None:
    x = np.array([1.9, -1.9, 3e9, -3e9, np.nan, np.inf, -np.inf, 2147483520], F)
    got = run_elementwise("  v_cvt_i32_f32 v2, v2", x, out_dtype=np.int32)
    np.testing.assert_array_equal(got, [1, -1, 2 ** 31 - 1, -2 ** 31, 0, 2 ** 31 - 1, -2 ** 31, 2147483520])
    got = run_elementwise("  v_cvt_u32_f32 v2, v2", x, out_dtype=np.uint32)
    np.testing.assert_array_equal(got, [1, 0, 3000000000, 0, 0, 2 ** 32 - 1, 0, 2147483520])
    i = np.array([-7, 16777217, 2 ** 31 - 1], np.int32)
    got = run_elementwise("  v_cvt_f32_i32 v2, v2", i, out_dtype=F)
    np.testing.assert_array_equal(got, i.astype(F))


def test_rounding_ops_ldexp_frexp() -> None:
    x = np.array([2.5, -2.5, 3.5, -0.4, 1e20, 0.75], F)
    np.testing.assert_array_equal(unary("v_rndne_f32", x), np.rint(x))
    np.testing.assert_array_equal(unary("v_floor_f32", x), np.floor(x))
    np.testing.assert_array_equal(unary("v_ceil_f32", x), np.ceil(x))
    np.testing.assert_array_equal(unary("v_trunc_f32", x), np.trunc(x))
    e = np.array([1, -1, 3, -200, 10, 0], np.int32)
    got = run_elementwise("  v_ldexp_f32 v2, v2, v3", x, e.view(F))
    np.testing.assert_array_equal(got, np.ldexp(x.astype(np.float64), e).astype(F))
    m, ex = np.frexp(x)
    np.testing.assert_array_equal(unary("v_frexp_mant_f32", x), m)
    got = run_elementwise("  v_frexp_exp_i32_f32 v2, v2", x, out_dtype=np.int32)
    np.testing.assert_array_equal(got, ex)


def test_s_denorm_mode_switches_flushing() -> None:
    # LLVM's division lowering under flushed f32 denormals brackets the sequence with s_denorm_mode
    a = np.array([DENORM, 2.0 ** -125], F)
    b = np.array([F(0), F(-1.5 * 2.0 ** -126)], F)
    body = """
  v_add_f32 v4, v2, v3
  s_denorm_mode 12
  v_add_f32 v5, v2, v3
  s_denorm_mode 15
  v_add_f32 v6, v2, v3
  v_cmp_eq_f32_e32 vcc_lo, v4, v6
  v_cndmask_b32_e64 v2, 0, 1, vcc_lo
  v_cmp_eq_f32_e32 vcc_lo, 0, v5
  v_cndmask_b32_e64 v7, 0, 2, vcc_lo
  v_or_b32 v2, v2, v7
"""
    got = run_elementwise(body, a, b, out_dtype=np.uint32, denorm32=3)
    np.testing.assert_array_equal(got, [3, 3])  # mode 3 before and after; mode 0 (flush) in between


def test_fma64_rounds_once() -> None:
    from tg_rdna.emulator.numerics64 import fma64

    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(5000), rng.standard_normal(5000)
    c = -(a * b) + rng.standard_normal(5000) * 1e-17  # cancellation: the product's low bits matter
    c[::3] = rng.standard_normal(len(c[::3])) * 10.0 ** rng.integers(-30, 30, len(c[::3]))
    want = np.array([float(Fraction(x) * Fraction(y) + Fraction(z)) for x, y, z in zip(a, b, c)])
    np.testing.assert_array_equal(fma64(a, b, c), want)
    assert ((a * b + c) != want).any()
