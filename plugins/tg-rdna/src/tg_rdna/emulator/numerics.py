"""Floating-point semantics of RDNA3's VALU that numpy does not give directly.

- denormal flushing (per the kernel's FLOAT_DENORM_MODE, and always for transcendentals);
- :func:`fma32`: a single-rounding f32 fused multiply-add.  The product of two f32 is exact in f64;
  the f64 sum is made *round-to-odd* with a TwoSum error term, then rounded to f32 — exact (no double
  rounding), since 53 >= 2*24 + 2;
- the transcendentals of AMD's RDNA3 ISA reference: ``v_exp_f32`` (2^x), ``v_log_f32`` (log2),
  ``v_rcp_f32``, ``v_rsq_f32``, ``v_sqrt_f32``, ``v_sin_f32``/``v_cos_f32`` (input in revolutions:
  sin(2*pi*x)).  They flush denormal inputs and outputs to zero.  The hardware's rcp/rsq/sqrt/exp/log
  are approximations (about 1 ULP); the emulator returns the correctly rounded value, so code that is
  right on the emulator only by relying on an exact ``v_rcp_f32`` is caught by the kit's tolerances,
  not here;
- ``v_div_scale/fmas/fixup_f32`` per the reference's pseudocode.
"""

from __future__ import annotations

import numpy as np

F32, F64, U32, I32 = np.float32, np.float64, np.uint32, np.int32
TINY32 = np.float32(2.0 ** -126)


def f32(bits: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bits, dtype=U32).view(F32)


def bits32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=F32).view(U32)


_TINY = {np.dtype(t): np.finfo(t).tiny for t in (np.float16, np.float32, np.float64)}


def flush(x: np.ndarray) -> np.ndarray:
    """Denormals to a zero of the same sign (any float dtype)."""
    tiny = _TINY[x.dtype]
    return np.where(np.abs(x) < tiny, np.copysign(np.zeros((), x.dtype), x), x).astype(x.dtype)


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return fma_odd(a, b, c).astype(F32)


def fma_odd(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a*b+c in f64, rounded to odd (so that one more rounding to f32 is correct)."""
    c64 = c.astype(F64)
    with np.errstate(invalid="ignore", over="ignore"):
        p = a.astype(F64) * b.astype(F64)  # exact: two 24-bit significands
        s = p + c64
        bb = s - p
        err = (p - (s - bb)) + (c64 - bb)
    if not err.any():  # every sum exact (an inf or NaN makes err NaN, which counts)
        return s
    raw = s.view(np.int64)
    fix = np.isfinite(s) & (err != 0) & ((raw & 1) == 0)
    toward_up = (err > 0) == (s > 0)
    raw = np.where(fix, np.where(toward_up, raw + 1, raw - 1), raw)
    return raw.view(F64)


def _f64_round(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return x.astype(F32)


def exp2_f32(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return flush(_f64_round(np.exp2(flush(x).astype(F64))))


def log2_f32(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        xf = flush(x).astype(F64)
        r = np.where(xf == 0, -np.inf, np.log2(np.abs(xf)))
        r = np.where(xf < 0, np.nan, r)
    return _f64_round(r)


def rcp_f32(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return flush(np.float32(1.0) / flush(x))


def sqrt_f32(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return flush(np.sqrt(flush(x)))


def rsq_f32(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return flush(_f64_round(1.0 / np.sqrt(flush(x).astype(F64))))


def sin_f32(x: np.ndarray) -> np.ndarray:
    """sin(2*pi*x): x in revolutions (the reference's valid input domain is [-256, 256])."""
    xf = flush(x).astype(F64)
    with np.errstate(invalid="ignore"):
        frac = xf - np.round(xf)
        r = np.where(np.isfinite(xf), np.sin(2 * np.pi * frac), np.nan)
        r = np.where(xf == 0, xf, r)  # keep the sign of zero
    return flush(_f64_round(r))


def cos_f32(x: np.ndarray) -> np.ndarray:
    xf = flush(x).astype(F64)
    with np.errstate(invalid="ignore"):
        frac = xf - np.round(xf)
        r = np.where(np.isfinite(xf), np.cos(2 * np.pi * frac), np.nan)
    return flush(_f64_round(r))


def fmax_ieee(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IEEE maxNum: a NaN operand yields the other; +0 is larger than -0."""
    r = np.fmax(a, b)
    zeros = (a == 0) & (b == 0)
    return np.where(zeros, np.where(np.signbit(a) & np.signbit(b), a, np.abs(a)), r).astype(a.dtype)


def fmin_ieee(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r = np.fmin(a, b)
    zeros = (a == 0) & (b == 0)
    return np.where(zeros, np.where(np.signbit(a) | np.signbit(b), -np.abs(a), a), r).astype(a.dtype)


def cvt_i32_f32(x: np.ndarray) -> np.ndarray:
    """Truncate toward zero, saturate to the i32 range, NaN -> 0."""
    t = np.trunc(np.nan_to_num(x.astype(F64), nan=0.0, posinf=2.0 ** 40, neginf=-(2.0 ** 40)))
    return np.clip(t, -(2 ** 31), 2 ** 31 - 1).astype(np.int64).astype(I32)


def cvt_u32_f32(x: np.ndarray) -> np.ndarray:
    t = np.trunc(np.nan_to_num(x.astype(F64), nan=0.0, posinf=2.0 ** 40, neginf=0.0))
    return np.clip(t, 0, 2 ** 32 - 1).astype(np.int64).astype(U32)


def exponent32(x: np.ndarray) -> np.ndarray:
    """The biased exponent field of an f32."""
    return ((bits32(x) >> 23) & 0xFF).astype(np.int64)


def is_denorm(x: np.ndarray) -> np.ndarray:
    return (x != 0) & (np.abs(x) < TINY32)


def ldexp32(x: np.ndarray, e: np.ndarray | int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _f64_round(np.ldexp(x.astype(F64), np.clip(np.asarray(e, dtype=np.int64), -400, 400)))


class FirstCase:
    """The ISA's if/elif chains, lane by lane: ``case(cond, value, flag)`` decides the lanes where ``cond`` holds and
    no earlier case did: D becomes ``value`` (None: stays the operand it started as) and VCC ``flag``."""

    def __init__(self, operand: np.ndarray) -> None:
        self.d = operand.copy()
        self.vcc = np.zeros(operand.shape, dtype=bool)
        self.done = np.zeros(operand.shape, dtype=bool)

    def __call__(self, cond: np.ndarray, value: np.ndarray | None, flag: bool) -> None:
        sel = cond & ~self.done
        if value is not None:
            self.d = np.where(sel, value, self.d)
        if flag:
            self.vcc[sel] = True
        self.done[sel] = True


def div_scale_f32(s0: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """V_DIV_SCALE_F32: S1 denominator, S2 numerator, S0 the one of them to scale; returns (D, VCC bit)."""
    shape = np.broadcast_shapes(s0.shape, s1.shape, s2.shape)
    s0, s1, s2 = (np.broadcast_to(v, shape) for v in (s0, s1, s2))
    case = FirstCase(s0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        q = s2.astype(F64) / s1.astype(F64)
        q32 = np.abs(q)
        r = 1.0 / s1.astype(F64)
        rcp_denorm = (r != 0) & (np.abs(r) < 2.0 ** -126)
    quot_denorm = (q != 0) & (np.abs(q32) < TINY32)

    up = ldexp32(s0, 64)
    case((s2 == 0) | (s1 == 0), np.full(shape, np.nan, F32), False)
    case(exponent32(s2) - exponent32(s1) >= 96, np.where(s0 == s1, up, s0), True)
    case(is_denorm(s1), up, False)
    case(rcp_denorm & quot_denorm, np.where(s0 == s1, up, s0), True)
    case(rcp_denorm, ldexp32(s0, -64), False)
    case(quot_denorm, np.where(s0 == s2, up, s0), True)
    case(exponent32(s2) <= 23, up, False)
    return case.d.astype(F32), case.vcc


def div_fmas_f32(a: np.ndarray, b: np.ndarray, c: np.ndarray, vcc: np.ndarray) -> np.ndarray:
    """V_DIV_FMAS_F32: fma, scaled by 2^64 (2^-64 if S2's exponent is small) where VCC; one rounding."""
    r = fma_odd(a, b, c)
    scale = np.where(exponent32(np.broadcast_to(c, r.shape)) > 127, 64.0, -64.0)
    with np.errstate(over="ignore"):
        return np.where(vcc, r * np.exp2(scale), r).astype(F32)


def div_fixup_f32(q: np.ndarray, den: np.ndarray, num: np.ndarray) -> np.ndarray:
    """V_DIV_FIXUP_F32: S0 the quotient, S1 the denominator, S2 the numerator: special cases."""
    shape = np.broadcast_shapes(q.shape, den.shape, num.shape)
    q, den, num = (np.broadcast_to(v, shape) for v in (q, den, num))
    neg = np.signbit(den) ^ np.signbit(num)
    inf = np.where(neg, -np.inf, np.inf).astype(F32)
    zero = np.where(neg, np.float32(-0.0), np.float32(0.0)).astype(F32)
    out = np.where(neg, -np.abs(q), np.abs(q)).astype(F32)
    out = np.where(np.isnan(q), inf, out)  # a NaN quotient (scaled away) is an overflow
    conds = [
        (np.isnan(num), num), (np.isnan(den), den),
        ((den == 0) & (num == 0), np.full(shape, np.nan, F32)),
        (np.isinf(den) & np.isinf(num), np.full(shape, np.nan, F32)),
        ((den == 0) | np.isinf(num), inf),
        (np.isinf(den) | (num == 0), zero),
        (exponent32(num) - exponent32(den) < -150, zero),
        (exponent32(den) == 255, inf),
    ]
    res = out
    for cond, value in reversed(conds):
        res = np.where(cond, value, res)
    return res.astype(F32)
