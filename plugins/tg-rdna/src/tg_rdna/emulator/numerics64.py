"""Float64 semantics: an exactly rounded f64 FMA without a wider type, and the f64 division helpers.

:func:`fma64` computes a*b exactly as p + e (Dekker's product with Veltkamp's split), then the correctly
rounded sum c + p + e with one round-to-odd addition (Boldo and Melquiond, "Emulation of FMA and
correctly rounded sums: proved algorithms using rounding to odd", 2008).  Outside the range where the
split is exact (|a|, |b| beyond 2^995, products below 2^-969, infinities, NaNs) it falls back to a*b+c,
which is then exact or only differs in the lowest bit of a result that under- or overflows.
``v_div_fmas_f64`` scales after rounding, so an f64 quotient that is *denormal* may be 1 ulp off.
"""

from __future__ import annotations

import numpy as np

from tg_rdna.emulator.numerics import FirstCase

F64 = np.float64
_SPLIT = F64(134217729.0)  # 2^27 + 1
_BIG, _TINY = 2.0 ** 995, 2.0 ** -969


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLIT * x
    hi = c - (c - x)
    return hi, x - hi


def _round_odd_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s, err = _two_sum(a, b)
    raw = s.view(np.int64)
    fix = np.isfinite(s) & (err != 0) & ((raw & 1) == 0)
    up = (err > 0) == (s > 0)
    return np.where(fix, np.where(up, raw + 1, raw - 1), raw).view(F64)


def fma64(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    a, b, c = np.broadcast_arrays(np.asarray(a, F64), np.asarray(b, F64), np.asarray(c, F64))
    with np.errstate(all="ignore"):
        naive = a * b + c
        p = a * b
        ah, al = _split(a)
        bh, bl = _split(b)
        e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
        th, tl = _two_sum(c, p)
        exact = th + _round_odd_sum(tl, e)
        ok = (np.isfinite(a) & np.isfinite(b) & np.isfinite(c) & (np.abs(a) < _BIG) & (np.abs(b) < _BIG)
              & ((np.abs(p) > _TINY) | (p == 0)) & (np.abs(c) < _BIG) & np.isfinite(exact))
        return np.where(ok & (p != 0), exact, naive)


def exponent64(x: np.ndarray) -> np.ndarray:
    return ((np.ascontiguousarray(x, F64).view(np.uint64) >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)


def _denorm(x: np.ndarray) -> np.ndarray:
    return (x != 0) & (np.abs(x) < 2.0 ** -1022)


def div_scale_f64(s0: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """V_DIV_SCALE_F64: as the f32 form with the f64 limits (2^128 scaling, exponent gap 768)."""
    shape = np.broadcast_shapes(s0.shape, s1.shape, s2.shape)
    s0, s1, s2 = (np.broadcast_to(np.asarray(v, F64), shape) for v in (s0, s1, s2))
    case = FirstCase(s0)
    with np.errstate(all="ignore"):
        q = s2 / s1
        r = 1.0 / s1
    up = np.ldexp(s0, 128)

    case((s2 == 0) | (s1 == 0), np.full(shape, np.nan), False)
    case(exponent64(s2) - exponent64(s1) >= 768, np.where(s0 == s1, up, s0), True)
    case(_denorm(s1), up, False)
    case(_denorm(r) & _denorm(q), np.where(s0 == s1, up, s0), True)
    case(_denorm(r), np.ldexp(s0, -128), False)
    case(_denorm(q), np.where(s0 == s2, up, s0), True)
    case(exponent64(s2) <= 53, up, False)
    return case.d, case.vcc


def div_fmas_f64(a: np.ndarray, b: np.ndarray, c: np.ndarray, vcc: np.ndarray) -> np.ndarray:
    r = fma64(a, b, c)
    scale = np.where(exponent64(np.broadcast_to(np.asarray(c, F64), r.shape)) > 1023, 128, -128)
    with np.errstate(over="ignore"):
        return np.where(vcc, np.ldexp(r, scale), r)


def div_fixup_f64(q: np.ndarray, den: np.ndarray, num: np.ndarray) -> np.ndarray:
    shape = np.broadcast_shapes(q.shape, den.shape, num.shape)
    q, den, num = (np.broadcast_to(np.asarray(v, F64), shape) for v in (q, den, num))
    neg = np.signbit(den) ^ np.signbit(num)
    inf = np.where(neg, -np.inf, np.inf)
    zero = np.where(neg, -0.0, 0.0)
    res = np.where(np.isnan(q), inf, np.where(neg, -np.abs(q), np.abs(q)))
    conds = [
        (np.isnan(num), num), (np.isnan(den), den),
        ((den == 0) & (num == 0), np.full(shape, np.nan)),
        (np.isinf(den) & np.isinf(num), np.full(shape, np.nan)),
        ((den == 0) | np.isinf(num), inf),
        (np.isinf(den) | (num == 0), zero),
        (exponent64(num) - exponent64(den) < -1075, zero),
        (exponent64(den) == 2047, inf),
    ]
    for cond, value in reversed(conds):
        res = np.where(cond, value, res)
    return res
