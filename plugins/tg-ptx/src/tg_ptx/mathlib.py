"""Accurate exp2, log2 and sin written out as PTX instructions (PTX has no float64 transcendentals, and
its float32 ones are approximations with a limited range).

- float32 exp2/log2 use the hardware ``ex2.approx.ftz`` / ``lg2.approx.ftz`` (about 2 ulp), around which
  the subnormal range is handled by scaling: exp2 of x < -126 is computed as 2^(x+24) * 2^-24, log2 of a
  subnormal x as log2(x * 2^24) - 24.  Infinities and NaN follow the instructions' documented special
  cases (ex2: -inf -> +0, +inf -> +inf; lg2: 0 -> -inf, x < 0 -> NaN, +inf -> +inf).
- float64 exp2: 2^x = 2^n * 2^f with n = rint(x), |f| <= 1/2, 2^f from the Taylor series of e^(f ln 2)
  to degree 13 (truncation error below 1e-17), and 2^n applied as two exact power-of-two factors so
  that subnormal results round once.
- float64 log2: x = 2^e * m with m in [sqrt(1/2), sqrt(2)) (subnormals scaled by 2^64 first),
  log2(m) = 2 atanh(s) / ln 2 with s = (m - 1) / (m + 1), |s| < 0.172, atanh by its series to s^23.
- sin (every float dtype, computed in float64): k = rint(x * 2/pi), r = x - k pi/2 with pi/2 split in
  three parts (Cody-Waite; exact reduction for |x| up to about 1e6, still within 1e-9 far beyond), then
  the Taylor polynomial of sin or cos of r (|r| <= pi/4, to degree 17/18) chosen and signed by k mod 4.

- integer division and remainder (:func:`int_divmod`) never depend on what ``div``/``rem`` leave unspecified:
  ``x / 0 == x % 0 == 0`` and ``MIN / -1 == MIN`` (``MIN % -1 == 0``), selected after the instruction unless the
  divisor is a constant for which the instruction alone is exact.

The constants are computed here from their definitions with 60-digit decimal arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

from tg_ptx.writer import F32, F64, PRED, S32, S64, PtxType, Writer, f32_imm, f64_imm

_PI_DIGITS = "3.14159265358979323846264338327950288419716939937510582097494459230781640628620899863"


def _truncate(x: Fraction, bits: int) -> float:
    """``x`` rounded toward zero to ``bits`` significant bits (so k * result is exact for small k)."""
    mantissa, exponent = math.frexp(float(x))
    return math.ldexp(math.floor(mantissa * 2**bits) / 2**bits, exponent)


@dataclass(frozen=True)
class _Constants:
    exp2: list[float]  # (ln 2)^k / k!
    atanh: list[float]  # 1 / (2k + 1)
    sin: list[float]  # (-1)^k / (2k + 1)!
    cos: list[float]  # (-1)^k / (2k)!
    two_over_ln2: float
    two_over_pi: float
    half_pi: tuple[float, float, float]  # pi/2 = p1 + p2 + p3, p1 and p2 with 33 significant bits


def _constants() -> _Constants:
    with localcontext() as ctx:
        ctx.prec = 60
        ln2 = Fraction(Decimal(2).ln())
    half_pi = Fraction(Decimal(_PI_DIGITS)) / 2
    p1 = _truncate(half_pi, 33)
    p2 = _truncate(half_pi - Fraction(p1), 33)
    p3 = float(half_pi - Fraction(p1) - Fraction(p2))
    return _Constants(
        exp2=[float(ln2**k / math.factorial(k)) for k in range(14)],
        atanh=[float(Fraction(1, 2 * k + 1)) for k in range(12)],
        sin=[float(Fraction((-1) ** k, math.factorial(2 * k + 1))) for k in range(9)],
        cos=[float(Fraction((-1) ** k, math.factorial(2 * k))) for k in range(10)],
        two_over_ln2=float(2 / ln2),
        two_over_pi=float(1 / half_pi),
        half_pi=(p1, p2, p3),
    )


C = _constants()


def _poly(w: Writer, x: str, coefficients: list[float]) -> str:
    """c0 + x*(c1 + x*(c2 + ...)) by Horner's rule with fma, in float64."""
    acc = w.reg(F64)
    w.op(f"mov.f64 {acc}, {f64_imm(coefficients[-1])}")
    for c in reversed(coefficients[:-1]):
        w.op(f"fma.rn.f64 {acc}, {acc}, {x}, {f64_imm(c)}")
    return acc


def _pow2_f64(w: Writer, n: str) -> str:
    """2^n as a float64 for an int32 n in the normal exponent range, built from its bits."""
    e64, bits, out = w.reg(S64), w.reg(S64), w.reg(F64)
    w.op(f"cvt.s64.s32 {e64}, {n}")
    w.op(f"add.s64 {e64}, {e64}, 1023")
    w.op(f"shl.b64 {bits}, {e64}, 52")
    w.op(f"mov.b64 {out}, {bits}")
    return out


def exp2_f64(w: Writer, x: str) -> str:
    w.comment("exp2.f64: 2^x = 2^n * 2^f, n = rint(x), 2^f by its Taylor series")
    n, f, nc = w.reg(F64), w.reg(F64), w.reg(F64)
    w.op(f"cvt.rni.f64.f64 {n}, {x}")
    w.op(f"sub.rn.f64 {f}, {x}, {n}")
    w.op(f"max.f64 {nc}, {n}, {f64_imm(-1100.0)}")
    w.op(f"min.f64 {nc}, {nc}, {f64_imm(1100.0)}")
    p = _poly(w, f, C.exp2)
    ni, n1, n2 = w.reg(S32), w.reg(S32), w.reg(S32)
    w.op(f"cvt.rni.s32.f64 {ni}, {nc}")
    w.op(f"shr.s32 {n1}, {ni}, 1")
    w.op(f"sub.s32 {n2}, {ni}, {n1}")
    s1, s2 = _pow2_f64(w, n1), _pow2_f64(w, n2)
    w.op(f"mul.rn.f64 {p}, {p}, {s1}")
    w.op(f"mul.rn.f64 {p}, {p}, {s2}")
    big, small = w.reg(PRED), w.reg(PRED)
    w.op(f"setp.gt.f64 {big}, {x}, {f64_imm(1024.0)}")
    w.op(f"selp.f64 {p}, {f64_imm(math.inf)}, {p}, {big}")
    w.op(f"setp.lt.f64 {small}, {x}, {f64_imm(-1100.0)}")
    w.op(f"selp.f64 {p}, {f64_imm(0.0)}, {p}, {small}")
    return p


def log2_f64(w: Writer, x: str) -> str:
    w.comment("log2.f64: x = 2^e * m, log2(m) = 2 atanh((m-1)/(m+1)) / ln 2")
    sub, xs, bias = w.reg(PRED), w.reg(F64), w.reg(F64)
    w.op(f"setp.lt.f64 {sub}, {x}, {f64_imm(2.0**-1022)}")
    w.op(f"mul.rn.f64 {xs}, {x}, {f64_imm(2.0**64)}")
    w.op(f"selp.f64 {xs}, {xs}, {x}, {sub}")
    w.op(f"selp.f64 {bias}, {f64_imm(-1087.0)}, {f64_imm(-1023.0)}, {sub}")
    bits, ebits, mbits = w.reg(S64), w.reg(S64), w.reg(S64)
    w.op(f"mov.b64 {bits}, {xs}")
    w.op(f"shr.u64 {ebits}, {bits}, 52")
    w.op(f"and.b64 {ebits}, {ebits}, 2047")
    w.op(f"and.b64 {mbits}, {bits}, 4503599627370495")  # the 52 mantissa bits
    w.op(f"or.b64 {mbits}, {mbits}, 4607182418800017408")  # with the exponent of 1.0
    e, m, half, big = w.reg(F64), w.reg(F64), w.reg(F64), w.reg(PRED)
    w.op(f"cvt.rn.f64.s64 {e}, {ebits}")
    w.op(f"add.rn.f64 {e}, {e}, {bias}")
    w.op(f"mov.b64 {m}, {mbits}")
    w.op(f"setp.gt.f64 {big}, {m}, {f64_imm(math.sqrt(2.0))}")
    w.op(f"mul.rn.f64 {half}, {m}, {f64_imm(0.5)}")
    w.op(f"selp.f64 {m}, {half}, {m}, {big}")
    w.op(f"add.rn.f64 {half}, {e}, {f64_imm(1.0)}")
    w.op(f"selp.f64 {e}, {half}, {e}, {big}")
    num, den, s, s2 = w.reg(F64), w.reg(F64), w.reg(F64), w.reg(F64)
    w.op(f"sub.rn.f64 {num}, {m}, {f64_imm(1.0)}")
    w.op(f"add.rn.f64 {den}, {m}, {f64_imm(1.0)}")
    w.op(f"div.rn.f64 {s}, {num}, {den}")
    w.op(f"mul.rn.f64 {s2}, {s}, {s}")
    q = _poly(w, s2, C.atanh)
    w.op(f"mul.rn.f64 {q}, {q}, {s}")
    out = w.reg(F64)
    w.op(f"fma.rn.f64 {out}, {q}, {f64_imm(C.two_over_ln2)}, {e}")
    special = w.reg(PRED)
    w.op(f"setp.eq.f64 {special}, {x}, {f64_imm(0.0)}")
    w.op(f"selp.f64 {out}, {f64_imm(-math.inf)}, {out}, {special}")
    w.op(f"setp.lt.f64 {special}, {x}, {f64_imm(0.0)}")
    w.op(f"selp.f64 {out}, {f64_imm(math.nan)}, {out}, {special}")
    w.op(f"setp.eq.f64 {special}, {x}, {f64_imm(math.inf)}")
    w.op(f"selp.f64 {out}, {x}, {out}, {special}")
    w.op(f"setp.nan.f64 {special}, {x}, {x}")
    w.op(f"selp.f64 {out}, {x}, {out}, {special}")
    return out


def sin_f64(w: Writer, x: str) -> str:
    w.comment("sin.f64: x = k*pi/2 + r (three-part pi/2), sin or cos of r by k mod 4")
    k, r = w.reg(F64), w.reg(F64)
    w.op(f"mul.rn.f64 {k}, {x}, {f64_imm(C.two_over_pi)}")
    w.op(f"cvt.rni.f64.f64 {k}, {k}")
    p1, p2, p3 = C.half_pi
    w.op(f"fma.rn.f64 {r}, {k}, {f64_imm(-p1)}, {x}")
    w.op(f"fma.rn.f64 {r}, {k}, {f64_imm(-p2)}, {r}")
    w.op(f"fma.rn.f64 {r}, {k}, {f64_imm(-p3)}, {r}")
    r2 = w.reg(F64)
    w.op(f"mul.rn.f64 {r2}, {r}, {r}")
    sin_r = _poly(w, r2, C.sin)
    w.op(f"mul.rn.f64 {sin_r}, {sin_r}, {r}")
    cos_r = _poly(w, r2, C.cos)
    kl, q = w.reg(S64), w.reg(S32)
    w.op(f"cvt.rzi.s64.f64 {kl}, {k}")
    w.op(f"cvt.u32.u64 {q}, {kl}")
    bit, use_cos, negate = w.reg(S32), w.reg(PRED), w.reg(PRED)
    w.op(f"and.b32 {bit}, {q}, 1")
    w.op(f"setp.ne.s32 {use_cos}, {bit}, 0")
    w.op(f"and.b32 {bit}, {q}, 2")
    w.op(f"setp.ne.s32 {negate}, {bit}, 0")
    out, neg, zero = w.reg(F64), w.reg(F64), w.reg(PRED)
    w.op(f"selp.f64 {out}, {cos_r}, {sin_r}, {use_cos}")
    w.op(f"neg.f64 {neg}, {out}")
    w.op(f"selp.f64 {out}, {neg}, {out}, {negate}")
    w.op(f"setp.eq.f64 {zero}, {x}, {f64_imm(0.0)}")
    w.op(f"selp.f64 {out}, {x}, {out}, {zero}")  # sin(-0) = -0
    return out


def exp2_f32(w: Writer, x: str) -> str:
    w.comment("exp2.f32: ex2.approx.ftz, with results below 2^-126 computed as 2^(x+24) * 2^-24")
    tiny, t, u = w.reg(PRED), w.reg(F32), w.reg(F32)
    w.op(f"setp.lt.f32 {tiny}, {x}, {f32_imm(-126.0)}")
    w.op(f"add.rn.f32 {t}, {x}, {f32_imm(24.0)}")
    w.op(f"selp.f32 {t}, {t}, {x}, {tiny}")
    w.op(f"ex2.approx.ftz.f32 {t}, {t}")
    w.op(f"mul.rn.f32 {u}, {t}, {f32_imm(2.0**-24)}")
    w.op(f"selp.f32 {t}, {u}, {t}, {tiny}")
    return t


def log2_f32(w: Writer, x: str) -> str:
    w.comment("log2.f32: lg2.approx.ftz, with subnormal x computed as log2(x * 2^24) - 24")
    tiny, t, u = w.reg(PRED), w.reg(F32), w.reg(F32)
    w.op(f"setp.lt.f32 {tiny}, {x}, {f32_imm(2.0**-126)}")
    w.op(f"mul.rn.f32 {t}, {x}, {f32_imm(2.0**24)}")
    w.op(f"selp.f32 {t}, {t}, {x}, {tiny}")
    w.op(f"lg2.approx.ftz.f32 {t}, {t}")
    w.op(f"sub.rn.f32 {u}, {t}, {f32_imm(24.0)}")
    w.op(f"selp.f32 {t}, {u}, {t}, {tiny}")
    return t


def sin_f32(w: Writer, x: str) -> str:
    wide = w.reg(F64)
    w.op(f"cvt.f64.f32 {wide}, {x}")
    result = sin_f64(w, wide)
    out = w.reg(F32)
    w.op(f"cvt.rn.f32.f64 {out}, {result}")
    return out


def int_divmod(w: Writer, pt: PtxType, idiv: bool, a: str, b: str, known: int | None) -> str:
    """``a / b`` (truncating) or ``a % b`` of integer type ``pt``; ``known`` is the divisor when it is a constant.

    A divisor of 0 gives 0; for 32/64-bit signed types a divisor of -1 gives -a (MIN wraps to MIN) and remainder 0
    (8-bit values live in 16-bit registers, where MIN / -1 does not overflow; the caller wraps the result).
    """
    t, out = pt.arith, w.reg(pt.reg)
    name = f"{'div' if idiv else 'rem'}.{t}"
    wide_signed = t in ("s32", "s64")
    if known is not None and known != 0 and not (known == -1 and wide_signed):
        w.op(f"{name} {out}, {a}, {b}")
    elif known == 0 or known == -1 and not idiv:
        w.op(f"mov.{pt.bits} {out}, 0")
    elif known == -1:
        w.op(f"neg.{t} {out}, {a}")
    else:
        w.op(f"{name} {out}, {a}, {b}")
        if wide_signed:
            minus_one, negated = w.reg(PRED), w.reg(pt.reg) if idiv else "0"
            w.op(f"setp.eq.{t} {minus_one}, {b}, -1")
            if idiv:
                w.op(f"neg.{t} {negated}, {a}")
            w.op(f"selp.{t} {out}, {negated}, {out}, {minus_one}")
        zero = w.reg(PRED)
        w.op(f"setp.eq.{t} {zero}, {b}, 0")
        w.op(f"selp.{t} {out}, 0, {out}, {zero}")
    return out
