"""The C vocabulary shared by the renderers: type names, exact literals, and the helper functions every kernel
file starts with (float16 conversion, saturating float -> int, C-safe integer division, numpy's maximum, vector
helpers).

The file's C starts with :data:`PRELUDE`, which declares the few libm functions the renderers call instead of
including ``<math.h>`` (a tenth of a small kernel's compile, to parse); a renderer that calls
another must declare it there: the compiler refuses an undeclared call.  ``exp2``, ``log2`` and ``sin`` of float32 and
float64 are called as ``tg_exp2f`` & co, which the SIMD lanes' ``tg_vexp2f`` (:mod:`tg_clang.spmd`) share: libmvec's
vector function when the compiler has it, else libm, so a value gets the same bits in any lane and in scalar code.

float16 is stored as ``uint16_t`` and computed in ``float``: every float16 result is rounded back to half
precision (``tg_rh``), which gives the same bits as numpy's per-op float16 rounding for + - * / sqrt (float
has more than twice half's precision).  Conversions use the F16C instructions when the compiler targets a
CPU with them (``__F16C__``, which ``-march=native`` sets on any x86 CPU since 2012) and exact software
conversion otherwise (the instructions are reached through clang builtins: ``<immintrin.h>`` alone takes a
quarter of a second to parse); clang 14 has no ``_Float16`` on x86, and ``__fp16`` would need a compiler runtime
library for the CPUs without F16C, so neither is used.
"""

from __future__ import annotations

import math
import struct

import numpy as np
from tg.support.dtype import DType

#: C type holding a value of each dtype in registers.
VALUE_TYPE = {"bool": "_Bool", "uint8": "uint8_t", "int8": "int8_t", "int32": "int32_t", "int64": "int64_t",
              "float16": "float", "float32": "float", "float64": "double"}
#: C element type of a buffer of each dtype.
STORAGE_TYPE = {**VALUE_TYPE, "float16": "uint16_t"}
#: The C type that vector lanes of each dtype use (ext_vector_type has no _Bool lanes).
LANE_TYPE = {**VALUE_TYPE, "bool": "uint8_t"}
#: Suffix of libm functions for each float dtype (float16 computes in float).
MATH_SUFFIX = {"float16": "f", "float32": "f", "float64": ""}


def value_type(dtype: DType) -> str:
    return VALUE_TYPE[dtype.name]


def storage_type(dtype: DType) -> str:
    return STORAGE_TYPE[dtype.name]


def literal(value: object, dtype: DType) -> str:
    """An exact C literal of ``value`` as ``dtype`` (floats in hex, so no decimal rounding is involved)."""
    name = dtype.name
    if name == "bool":
        return "1" if value else "0"
    if dtype.is_int:
        v = int(value)  # type: ignore[call-overload]
        if name == "int64":
            return "((int64_t)(-9223372036854775807LL-1))" if v == -(1 << 63) else f"((int64_t){v}LL)"
        if name == "int32" and v == -(1 << 31):
            return "((int32_t)(-2147483647-1))"
        return f"({v})" if v < 0 else str(v)
    f = float(value)  # type: ignore[arg-type]
    if name == "float16":
        f = float(np.float16(f))
    elif name == "float32":
        f = float(np.float32(f))
    suffix = "" if name == "float64" else "f"
    if math.isnan(f):
        return f"__builtin_nan{suffix}(\"\")"
    if math.isinf(f):
        return f"(-__builtin_inf{suffix}())" if f < 0 else f"__builtin_inf{suffix}()"
    if f == 0.0 and math.copysign(1.0, f) < 0:
        return f"(-0.0{suffix})"
    text = f.hex()
    return f"({text}{suffix})" if f < 0 else f"{text}{suffix}"


#: For float -> int casts done in double: (lowest value, highest double that converts in range, 2**bits or
#: 2**(bits-1): the first value beyond the range).  Only int64's maximum is not a double.
INT_RANGE = {"int8": ("-0x1p7", "0x1.fcp6", "0x1p7"), "uint8": ("0.0", "0x1.fep7", "0x1p8"),
             "int32": ("-0x1p31", "0x1.fffffffcp30", "0x1p31"), "int64": ("-0x1p63", "0x1.fffffffffffffp62", "0x1p63")}


def half_bits(value: float) -> int:
    """The IEEE binary16 bits of ``value`` (rounded to nearest even), for tests and literals."""
    return int(struct.unpack("<H", np.float16(value).tobytes())[0])


PRELUDE = r"""
#include <stdint.h>
#include <string.h>
/* the libm functions kernels call (<math.h> itself is a tenth of a small kernel's compile); the compiler is told to
   refuse a call to anything undeclared (-Werror=implicit-function-declaration), never to guess its type */
float exp2f(float); double exp2(double); float log2f(float); double log2(double); float sinf(float);
double sin(double); float sqrtf(float); double sqrt(double); float truncf(float); double trunc(double);
float powf(float, float); double pow(double, double); float fmodf(float, float); double fmod(double, double);
double fabs(double);
#define isinf(x) __builtin_isinf(x)
#define isnan(x) __builtin_isnan(x)

#define TG_INLINE static inline __attribute__((always_inline))

/* exp2, log2, sin: one function per op and dtype wherever a kernel computes them, so a value gets the same bits in
   any SIMD lane and in scalar code.  With libmvec (TG_LIBMVEC), its widest version for the target (AVX-512: 16
   floats or 8 doubles a call, AVX2: 8 or 4); scalar code calls it on a vector whose lane 0 holds x (libmvec computes
   each lane from its own input alone; special inputs go through glibc's scalar code lane by lane).  Else libm. */
#if defined(TG_LIBMVEC) && (defined(__AVX512F__) || defined(__AVX2__))
#if defined(__AVX512F__)
#define TG_MV(fn, avx512_width, avx2_width, suffix) _ZGVeN##avx512_width##v_##fn##suffix
#define TG_MV_BYTES 64
#else
#define TG_MV(fn, avx512_width, avx2_width, suffix) _ZGVdN##avx2_width##v_##fn##suffix
#define TG_MV_BYTES 32
#endif
typedef float tg_mvf __attribute__((vector_size(TG_MV_BYTES)));
typedef double tg_mvd __attribute__((vector_size(TG_MV_BYTES)));
#define TG_MV_FN(fn) \
  tg_mvf TG_MV(fn, 16, 8, f)(tg_mvf); tg_mvd TG_MV(fn, 8, 4, )(tg_mvd); \
  TG_INLINE tg_mvf tg_mv_##fn##f(tg_mvf x) { return TG_MV(fn, 16, 8, f)(x); } \
  TG_INLINE tg_mvd tg_mv_##fn(tg_mvd x) { return TG_MV(fn, 8, 4, )(x); } \
  TG_INLINE float tg_##fn##f(float x) { tg_mvf v = {x}; return tg_mv_##fn##f(v)[0]; } \
  TG_INLINE double tg_##fn(double x) { tg_mvd v = {x}; return tg_mv_##fn(v)[0]; }
TG_MV_FN(exp2)
TG_MV_FN(log2)
TG_MV_FN(sin)
#else
#define tg_exp2f exp2f
#define tg_exp2 exp2
#define tg_log2f log2f
#define tg_log2 log2
#define tg_sinf sinf
#define tg_sin sin
#endif

/* a float launch variable passes through the thread pool's argument array (of pointers) as its bits */
TG_INLINE void *tg_f32_arg(float x) { uint32_t u; memcpy(&u, &x, 4); return (void *)(uintptr_t)u; }
TG_INLINE float tg_f32_of_arg(void *a) { uint32_t u = (uint32_t)(uintptr_t)a; float x; memcpy(&x, &u, 4); return x; }

/* float16: software conversion (exact, round to nearest even) and F16C when the target has it */
TG_INLINE float tg_h2f_sw(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0x1fu) bits = sign | 0x7f800000u | (man << 13);
  else if (exp != 0) bits = sign | ((exp + 112u) << 23) | (man << 13);
  else if (man == 0) bits = sign;
  else {
    int e = -1;
    do { e++; man <<= 1; } while (!(man & 0x400u));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
  }
  float f; memcpy(&f, &bits, 4); return f;
}
TG_INLINE uint16_t tg_f2h_sw(float f) {
  uint32_t x; memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);           /* rounds to inf */
  if (ax < 0x38800000u) {                                              /* subnormal half or zero */
    if (ax < 0x33000000u) return (uint16_t)sign;
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - e, r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ax - 0x38000000u, h = r >> 13, rem = r & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}
TG_INLINE uint16_t tg_d2h(double d) {   /* double -> half without double rounding: round to odd in float */
  float f = (float)d;
  if (f != f || isinf(f) || (double)f == d) return tg_f2h_sw(f);
  uint32_t bits; memcpy(&bits, &f, 4);
  if (fabs((double)f) > fabs(d)) bits -= 1u;  /* truncate toward zero: one ulp less in magnitude */
  bits |= 1u;                                 /* the sticky bit says "inexact" to the final rounding */
  memcpy(&f, &bits, 4);
  return tg_f2h_sw(f);
}
#if defined(__F16C__)  /* the F16C instructions through builtins: <immintrin.h> costs 0.25 s to parse */
typedef short tg_h8 __attribute__((vector_size(16)));
typedef float tg_f4 __attribute__((vector_size(16)));
TG_INLINE float tg_h2f(uint16_t h) { tg_h8 v = {(short)h, 0, 0, 0, 0, 0, 0, 0}; return __builtin_ia32_vcvtph2ps(v)[0]; }
TG_INLINE uint16_t tg_f2h(float f) { tg_f4 v = {f, 0, 0, 0}; return (uint16_t)__builtin_ia32_vcvtps2ph(v, 0)[0]; }
#else
TG_INLINE float tg_h2f(uint16_t h) { return tg_h2f_sw(h); }
TG_INLINE uint16_t tg_f2h(float f) { return tg_f2h_sw(f); }
#endif
TG_INLINE float tg_rh(float f) { return tg_h2f(tg_f2h(f)); }

/* numpy's maximum: the first operand when equal, nan when either is nan */
TG_INLINE float tg_maxf(float a, float b) { return (a >= b || a != a) ? a : b; }
TG_INLINE double tg_maxd(double a, double b) { return (a >= b || a != a) ? a : b; }

/* float -> int as the IR's CAST: truncate toward zero, saturate to the type's range, NaN -> 0 (C leaves the
   out-of-range conversion undefined, x86 gives INT_MIN); the argument is a double, exact for every float */
#define TG_F2I(T, LO, HI, LIMIT) \
  TG_INLINE T tg_f2i_##T(double x) { return x != x ? (T)0 : x >= LIMIT ? (T)HI : x <= LO ? (T)LO : (T)x; }
TG_F2I(int8_t, -0x1p7, INT8_MAX, 0x1p7)
TG_F2I(uint8_t, 0.0, UINT8_MAX, 0x1p8)
TG_F2I(int32_t, -0x1p31, INT32_MAX, 0x1p31)
TG_F2I(int64_t, -0x1p63, INT64_MAX, 0x1p63)

/* integer division and remainder that truncate like C, but never trap: x/0 == 0, MIN/-1 wraps */
#define TG_DIVMOD(T, U) \
  TG_INLINE T tg_idiv_##T(T a, T b) { return b == 0 ? (T)0 : b == -1 ? (T)(0 - (U)a) : (T)(a / b); } \
  TG_INLINE T tg_mod_##T(T a, T b) { return (b == 0 || b == -1) ? (T)0 : (T)(a % b); }
TG_DIVMOD(int8_t, uint8_t)
TG_DIVMOD(int32_t, uint32_t)
TG_DIVMOD(int64_t, uint64_t)
TG_INLINE uint8_t tg_idiv_uint8_t(uint8_t a, uint8_t b) { return b == 0 ? 0 : (uint8_t)(a / b); }
TG_INLINE uint8_t tg_mod_uint8_t(uint8_t a, uint8_t b) { return b == 0 ? 0 : (uint8_t)(a % b); }
TG_INLINE _Bool tg_idiv__Bool(_Bool a, _Bool b) { return b ? a : 0; }
TG_INLINE _Bool tg_mod__Bool(_Bool a, _Bool b) { (void)a; (void)b; return 0; }

/* integer power by squaring; a negative exponent gives 0 except for the bases 1 and -1 */
#define TG_IPOW(T, U) \
  TG_INLINE T tg_pow_##T(T a, T b) { \
    if (b < 0) return a == 1 ? (T)1 : a == -1 ? (T)((b & 1) ? -1 : 1) : (T)0; \
    U r = 1, x = (U)a; uint64_t e = (uint64_t)b; \
    while (e) { if (e & 1u) r *= x; x *= x; e >>= 1; } return (T)r; }
TG_IPOW(int8_t, uint32_t)
TG_IPOW(int32_t, uint32_t)
TG_IPOW(int64_t, uint64_t)
TG_INLINE uint8_t tg_pow_uint8_t(uint8_t a, uint8_t b) {
  uint32_t r = 1, x = a;
  while (b) { if (b & 1u) r *= x; x *= x; b >>= 1; }
  return (uint8_t)r;
}
TG_INLINE _Bool tg_pow__Bool(_Bool a, _Bool b) { return b ? a : 1; }
"""
