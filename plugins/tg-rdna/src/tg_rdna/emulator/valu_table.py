"""The plain VALU operations as a table: name -> result type, source types, numpy function.

Adding an instruction of this kind is one entry.  Functions receive the sources already converted to
their numpy dtypes (abs/neg applied, denormals flushed per the kernel's mode where ``ftz``) and
return the result; the builder in :mod:`.valu` handles operands, EXEC, clamp/omod and op_sel.
Integer arithmetic wraps (uint32/uint64 numpy arithmetic); shifts use the low 5 (6 for 64-bit) bits
of the shift amount, as the hardware does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tg_rdna.emulator import numerics as nm
from tg_rdna.emulator import numerics64 as nm64

U16, U32, U64, I16, I32, I64 = np.uint16, np.uint32, np.uint64, np.int16, np.int32, np.int64
F16, F32, F64 = np.float16, np.float32, np.float64
Fn = Callable[..., Any]


@dataclass(frozen=True)
class VOp:
    dst: str
    srcs: tuple[str, ...]
    fn: Fn
    ftz: bool = True      # flush f32/f16 denormals per the kernel's FLOAT_DENORM_MODE
    trans: bool = False   # a transcendental (TRANS unit): its result is subject to the TRANS hazard
    accumulate: bool = False  # v_fmac: the destination is also the last source


def _f16(fn: Fn) -> Fn:
    """An f16 operation computed exactly in float64 and rounded once to f16."""
    def run(*args: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(*(a.astype(F64) for a in args))).astype(F16)
    return run


def _via32(fn: Fn) -> Fn:
    def run(a: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return fn(a.astype(F32)).astype(F16)
    return run


def _shl32(s: np.ndarray, a: np.ndarray) -> np.ndarray:
    return (a << (s & U32(31))).astype(U32)


def _bfe_u(a: np.ndarray, off: np.ndarray, width: np.ndarray) -> np.ndarray:
    o, w = (off & U32(31)).astype(U64), (width & U32(31)).astype(U64)
    return ((a.astype(U64) >> o) & ((U64(1) << w) - U64(1))).astype(U32)


def _bfe_i(a: np.ndarray, off: np.ndarray, width: np.ndarray) -> np.ndarray:
    o, w = (off & U32(31)).astype(I64), (width & U32(31)).astype(I64)
    field = (a.astype(U32).astype(I64) >> o) & ((I64(1) << w) - 1)
    sign = (field >> np.maximum(w - 1, 0)) & 1
    val = np.where((w > 0) & (sign == 1), field - (I64(1) << w), field)
    return np.where(w == 0, 0, val).astype(I64).astype(U32)


def _i24(a: np.ndarray) -> np.ndarray:
    return ((a.astype(I64) & 0xFFFFFF) ^ 0x800000) - 0x800000


def _mul_hi_u(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(U64) * b.astype(U64)) >> U64(32)).astype(U32)


def _mul_hi_i(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(I64) * b.astype(I64)) >> I64(32)).astype(I32)


def _ffbh(a: np.ndarray) -> np.ndarray:
    x = a.astype(U64)
    n = np.full(x.shape, 32, I64)
    for bit in range(32):
        n = np.where((x >> U64(bit)) & U64(1) == 1, 31 - bit, n)
    return np.where(x == 0, 0xFFFFFFFF, n).astype(I64).astype(U32)


def _ffbl(a: np.ndarray) -> np.ndarray:
    x = a.astype(U64)
    n = np.full(x.shape, 0xFFFFFFFF, I64)
    for bit in range(31, -1, -1):
        n = np.where((x >> U64(bit)) & U64(1) == 1, bit, n)
    return n.astype(I64).astype(U32)


def _bfrev(a: np.ndarray) -> np.ndarray:
    x = a.astype(U32)
    out = np.zeros(x.shape, U32)
    for bit in range(32):
        out |= ((x >> U32(bit)) & U32(1)) << U32(31 - bit)
    return out


def _frexp_mant(a: np.ndarray) -> np.ndarray:
    m, _ = np.frexp(a)
    return np.where(np.isfinite(a), m, a).astype(a.dtype)


def _frexp_exp(a: np.ndarray) -> np.ndarray:
    _, e = np.frexp(a)
    return np.where(np.isfinite(a), e, 0).astype(I32)


def _fract(a: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        r = a - np.floor(a)
        r = np.minimum(r, np.nextafter(np.ones((), a.dtype), np.zeros((), a.dtype)))
    return np.where(np.isinf(a), np.nan, r).astype(a.dtype)


def _ldexp(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.ldexp(a.astype(F64), np.clip(e.astype(I64), -400, 400)).astype(a.dtype)


def _med3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _ubyte(n: int) -> Fn:
    return lambda a: ((a >> U32(8 * n)) & U32(0xFF)).astype(F32)


def _pack_f16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.ascontiguousarray(a).view(U16).astype(U32)) | (np.ascontiguousarray(b).view(U16).astype(U32) << U32(16))


def _cvt_i16_f16(a: np.ndarray) -> np.ndarray:
    t = np.trunc(np.nan_to_num(a.astype(F64), nan=0.0, posinf=1e9, neginf=-1e9))
    return np.clip(t, -32768, 32767).astype(I16)


def _cvt_u16_f16(a: np.ndarray) -> np.ndarray:
    t = np.trunc(np.nan_to_num(a.astype(F64), nan=0.0, posinf=1e9, neginf=0))
    return np.clip(t, 0, 65535).astype(U16)


def _f32_binary(fn: Fn) -> Fn:
    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # (the executor runs steps with floating-point errors off)
        return fn(a, b).astype(F32, copy=False)
    return run


_F2 = ("f32", "f32")
_U2 = ("u32", "u32")
_I2 = ("i32", "i32")
_H2 = ("f16", "f16")

VALU: dict[str, VOp] = {
    # f32 arithmetic
    "v_add_f32": VOp("f32", _F2, _f32_binary(np.add)),
    "v_sub_f32": VOp("f32", _F2, _f32_binary(np.subtract)),
    "v_subrev_f32": VOp("f32", _F2, _f32_binary(lambda a, b: b - a)),
    "v_mul_f32": VOp("f32", _F2, _f32_binary(np.multiply)),
    "v_fma_f32": VOp("f32", ("f32",) * 3, nm.fma32),
    "v_fmac_f32": VOp("f32", ("f32",) * 3, nm.fma32, accumulate=True),
    "v_fmamk_f32": VOp("f32", ("f32",) * 3, lambda a, k, b: nm.fma32(a, k, b)),
    "v_fmaak_f32": VOp("f32", ("f32",) * 3, nm.fma32),
    "v_max_f32": VOp("f32", _F2, nm.fmax_ieee),
    "v_min_f32": VOp("f32", _F2, nm.fmin_ieee),
    "v_max3_f32": VOp("f32", ("f32",) * 3, lambda a, b, c: nm.fmax_ieee(nm.fmax_ieee(a, b), c)),
    "v_min3_f32": VOp("f32", ("f32",) * 3, lambda a, b, c: nm.fmin_ieee(nm.fmin_ieee(a, b), c)),
    "v_ldexp_f32": VOp("f32", ("f32", "i32"), _ldexp),
    "v_floor_f32": VOp("f32", ("f32",), np.floor),
    "v_ceil_f32": VOp("f32", ("f32",), np.ceil),
    "v_trunc_f32": VOp("f32", ("f32",), np.trunc),
    "v_rndne_f32": VOp("f32", ("f32",), np.rint),
    "v_fract_f32": VOp("f32", ("f32",), _fract),
    "v_frexp_mant_f32": VOp("f32", ("f32",), _frexp_mant),
    "v_frexp_exp_i32_f32": VOp("i32", ("f32",), _frexp_exp),
    # transcendentals: always flush denormals (see numerics); not subject to the denormal mode
    "v_exp_f32": VOp("f32", ("f32",), nm.exp2_f32, ftz=False, trans=True),
    "v_log_f32": VOp("f32", ("f32",), nm.log2_f32, ftz=False, trans=True),
    "v_rcp_f32": VOp("f32", ("f32",), nm.rcp_f32, ftz=False, trans=True),
    "v_rcp_iflag_f32": VOp("f32", ("f32",), nm.rcp_f32, ftz=False, trans=True),
    "v_rsq_f32": VOp("f32", ("f32",), nm.rsq_f32, ftz=False, trans=True),
    "v_sqrt_f32": VOp("f32", ("f32",), nm.sqrt_f32, ftz=False, trans=True),
    "v_sin_f32": VOp("f32", ("f32",), nm.sin_f32, ftz=False, trans=True),
    "v_cos_f32": VOp("f32", ("f32",), nm.cos_f32, ftz=False, trans=True),
    "v_div_fixup_f32": VOp("f32", ("f32",) * 3, nm.div_fixup_f32, ftz=False),
    # conversions
    "v_cvt_f32_i32": VOp("f32", ("i32",), lambda a: a.astype(F32), ftz=False),
    "v_cvt_f32_u32": VOp("f32", ("u32",), lambda a: a.astype(F32), ftz=False),
    "v_cvt_i32_f32": VOp("i32", ("f32",), nm.cvt_i32_f32),
    "v_cvt_u32_f32": VOp("u32", ("f32",), nm.cvt_u32_f32),
    "v_cvt_f16_f32": VOp("f16", ("f32",), lambda a: _with_ignore(lambda: a.astype(F16))),
    "v_cvt_f32_f16": VOp("f32", ("f16",), lambda a: a.astype(F32)),
    "v_cvt_f32_ubyte0": VOp("f32", ("u32",), _ubyte(0), ftz=False),
    "v_cvt_f32_ubyte1": VOp("f32", ("u32",), _ubyte(1), ftz=False),
    "v_cvt_f32_ubyte2": VOp("f32", ("u32",), _ubyte(2), ftz=False),
    "v_cvt_f32_ubyte3": VOp("f32", ("u32",), _ubyte(3), ftz=False),
    "v_cvt_f16_i16": VOp("f16", ("i16",), lambda a: a.astype(F16)),
    "v_cvt_f16_u16": VOp("f16", ("u16",), lambda a: a.astype(F16)),
    "v_cvt_i16_f16": VOp("i16", ("f16",), _cvt_i16_f16),
    "v_cvt_u16_f16": VOp("u16", ("f16",), _cvt_u16_f16),
    "v_pack_b32_f16": VOp("u32", _H2, _pack_f16, ftz=False),
    # 32-bit integer and bit operations
    "v_mov_b32": VOp("b32", ("b32",), lambda a: a, ftz=False),
    "v_not_b32": VOp("b32", ("b32",), lambda a: ~a, ftz=False),
    "v_bfrev_b32": VOp("b32", ("b32",), _bfrev, ftz=False),
    "v_clz_i32_u32": VOp("u32", ("u32",), _ffbh, ftz=False),
    "v_ctz_i32_b32": VOp("u32", ("u32",), _ffbl, ftz=False),
    "v_and_b32": VOp("b32", ("b32", "b32"), np.bitwise_and, ftz=False),
    "v_or_b32": VOp("b32", ("b32", "b32"), np.bitwise_or, ftz=False),
    "v_xor_b32": VOp("b32", ("b32", "b32"), np.bitwise_xor, ftz=False),
    "v_xnor_b32": VOp("b32", ("b32", "b32"), lambda a, b: ~(a ^ b), ftz=False),
    "v_or3_b32": VOp("b32", ("b32",) * 3, lambda a, b, c: a | b | c, ftz=False),
    "v_xor3_b32": VOp("b32", ("b32",) * 3, lambda a, b, c: a ^ b ^ c, ftz=False),
    "v_and_or_b32": VOp("b32", ("b32",) * 3, lambda a, b, c: (a & b) | c, ftz=False),
    "v_bfi_b32": VOp("b32", ("b32",) * 3, lambda a, b, c: (a & b) | (~a & c), ftz=False),
    "v_lshlrev_b32": VOp("u32", _U2, _shl32, ftz=False),
    "v_lshrrev_b32": VOp("u32", _U2, lambda s, a: a >> (s & U32(31)), ftz=False),
    "v_ashrrev_i32": VOp("i32", ("u32", "i32"), lambda s, a: a >> (s & U32(31)).astype(I32), ftz=False),
    "v_lshl_add_u32": VOp("u32", ("u32",) * 3, lambda a, s, c: _shl32(s, a) + c, ftz=False),
    "v_add_lshl_u32": VOp("u32", ("u32",) * 3, lambda a, b, s: _shl32(s, a + b), ftz=False),
    "v_lshl_or_b32": VOp("u32", ("u32",) * 3, lambda a, s, c: _shl32(s, a) | c, ftz=False),
    "v_add_nc_u32": VOp("u32", _U2, np.add, ftz=False),
    "v_sub_nc_u32": VOp("u32", _U2, np.subtract, ftz=False),
    "v_subrev_nc_u32": VOp("u32", _U2, lambda a, b: b - a, ftz=False),
    "v_add3_u32": VOp("u32", ("u32",) * 3, lambda a, b, c: a + b + c, ftz=False),
    "v_mul_lo_u32": VOp("u32", _U2, lambda a, b: (a.astype(U64) * b.astype(U64)).astype(U32), ftz=False),
    "v_mul_hi_u32": VOp("u32", _U2, _mul_hi_u, ftz=False),
    "v_mul_hi_i32": VOp("i32", _I2, _mul_hi_i, ftz=False),
    "v_mul_u32_u24": VOp("u32", _U2, lambda a, b: ((a & U32(0xFFFFFF)).astype(U64)
                                                   * (b & U32(0xFFFFFF)).astype(U64)).astype(U32), ftz=False),
    "v_mad_u32_u24": VOp("u32", ("u32",) * 3, lambda a, b, c: ((a & U32(0xFFFFFF)).astype(U64)
                                                            * (b & U32(0xFFFFFF)).astype(U64) + c).astype(U32),
                         ftz=False),
    "v_mul_i32_i24": VOp("i32", _I2, lambda a, b: (_i24(a) * _i24(b)).astype(I32), ftz=False),
    "v_mad_i32_i24": VOp("i32", ("i32",) * 3, lambda a, b, c: (_i24(a) * _i24(b) + c).astype(I32), ftz=False),
    "v_mul_hi_u32_u24": VOp("u32", _U2, lambda a, b: _mul_hi_u(a & U32(0xFFFFFF), b & U32(0xFFFFFF)), ftz=False),
    "v_max_u32": VOp("u32", _U2, np.maximum, ftz=False),
    "v_min_u32": VOp("u32", _U2, np.minimum, ftz=False),
    "v_max_i32": VOp("i32", _I2, np.maximum, ftz=False),
    "v_min_i32": VOp("i32", _I2, np.minimum, ftz=False),
    "v_max3_u32": VOp("u32", ("u32",) * 3, lambda a, b, c: np.maximum(np.maximum(a, b), c), ftz=False),
    "v_min3_u32": VOp("u32", ("u32",) * 3, lambda a, b, c: np.minimum(np.minimum(a, b), c), ftz=False),
    "v_max3_i32": VOp("i32", ("i32",) * 3, lambda a, b, c: np.maximum(np.maximum(a, b), c), ftz=False),
    "v_min3_i32": VOp("i32", ("i32",) * 3, lambda a, b, c: np.minimum(np.minimum(a, b), c), ftz=False),
    "v_med3_i32": VOp("i32", ("i32",) * 3, _med3, ftz=False),
    "v_med3_u32": VOp("u32", ("u32",) * 3, _med3, ftz=False),
    "v_bfe_u32": VOp("u32", ("u32",) * 3, _bfe_u, ftz=False),
    "v_bfe_i32": VOp("u32", ("u32",) * 3, _bfe_i, ftz=False),
    "v_alignbit_b32": VOp("u32", ("u32",) * 3, lambda a, b, s: (((a.astype(U64) << U64(32)) | b.astype(U64))
                                                               >> (s & U32(31)).astype(U64)).astype(U32), ftz=False),
    # 64-bit shifts (shift amount first, "rev")
    "v_lshlrev_b64": VOp("u64", ("u32", "u64"), lambda s, a: a << (s & U32(63)).astype(U64), ftz=False),
    "v_lshrrev_b64": VOp("u64", ("u32", "u64"), lambda s, a: a >> (s & U32(63)).astype(U64), ftz=False),
    "v_ashrrev_i64": VOp("i64", ("u32", "i64"), lambda s, a: a >> (s & U32(63)).astype(I64), ftz=False),
    # f16
    "v_add_f16": VOp("f16", _H2, _f16(np.add)),
    "v_sub_f16": VOp("f16", _H2, _f16(np.subtract)),
    "v_subrev_f16": VOp("f16", _H2, _f16(lambda a, b: b - a)),
    "v_mul_f16": VOp("f16", _H2, _f16(np.multiply)),
    "v_fma_f16": VOp("f16", ("f16",) * 3, _f16(lambda a, b, c: a * b + c)),
    "v_fmac_f16": VOp("f16", ("f16",) * 3, _f16(lambda a, b, c: a * b + c), accumulate=True),
    "v_max_f16": VOp("f16", _H2, nm.fmax_ieee),
    "v_min_f16": VOp("f16", _H2, nm.fmin_ieee),
    "v_ldexp_f16": VOp("f16", ("f16", "i16"), _ldexp),
    "v_floor_f16": VOp("f16", ("f16",), np.floor),
    "v_ceil_f16": VOp("f16", ("f16",), np.ceil),
    "v_trunc_f16": VOp("f16", ("f16",), np.trunc),
    "v_rndne_f16": VOp("f16", ("f16",), np.rint),
    "v_exp_f16": VOp("f16", ("f16",), _via32(nm.exp2_f32), trans=True),
    "v_log_f16": VOp("f16", ("f16",), _via32(nm.log2_f32), trans=True),
    "v_rcp_f16": VOp("f16", ("f16",), _via32(nm.rcp_f32), trans=True),
    "v_rsq_f16": VOp("f16", ("f16",), _via32(nm.rsq_f32), trans=True),
    "v_sqrt_f16": VOp("f16", ("f16",), _via32(nm.sqrt_f32), trans=True),
    "v_sin_f16": VOp("f16", ("f16",), _via32(nm.sin_f32), trans=True),
    "v_cos_f16": VOp("f16", ("f16",), _via32(nm.cos_f32), trans=True),
    # 16-bit integers
    "v_mov_b16": VOp("b16", ("b16",), lambda a: a, ftz=False),
    "v_add_nc_u16": VOp("u16", ("u16", "u16"), np.add, ftz=False),
    "v_sub_nc_u16": VOp("u16", ("u16", "u16"), np.subtract, ftz=False),
    "v_mul_lo_u16": VOp("u16", ("u16", "u16"), np.multiply, ftz=False),
    "v_lshlrev_b16": VOp("u16", ("u16", "u16"), lambda s, a: a << (s & U16(15)), ftz=False),
    "v_lshrrev_b16": VOp("u16", ("u16", "u16"), lambda s, a: a >> (s & U16(15)), ftz=False),
    "v_ashrrev_i16": VOp("i16", ("u16", "i16"), lambda s, a: a >> (s & U16(15)).astype(I16), ftz=False),
    "v_and_b16": VOp("b16", ("b16", "b16"), np.bitwise_and, ftz=False),
    "v_or_b16": VOp("b16", ("b16", "b16"), np.bitwise_or, ftz=False),
    "v_xor_b16": VOp("b16", ("b16", "b16"), np.bitwise_xor, ftz=False),
    "v_not_b16": VOp("b16", ("b16",), lambda a: ~a, ftz=False),
    "v_max_u16": VOp("u16", ("u16", "u16"), np.maximum, ftz=False),
    "v_min_u16": VOp("u16", ("u16", "u16"), np.minimum, ftz=False),
    "v_max_i16": VOp("i16", ("i16", "i16"), np.maximum, ftz=False),
    "v_min_i16": VOp("i16", ("i16", "i16"), np.minimum, ftz=False),
}

_D2 = ("f64", "f64")


def _f64(fn: Fn) -> Fn:
    def run(*args: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(*args)).astype(F64)
    return run


def _cvt_i32_f64(a: np.ndarray) -> np.ndarray:
    t = np.trunc(np.nan_to_num(a, nan=0.0, posinf=2.0 ** 40, neginf=-(2.0 ** 40)))
    return np.clip(t, -(2 ** 31), 2 ** 31 - 1).astype(I64).astype(I32)


def _cvt_u32_f64(a: np.ndarray) -> np.ndarray:
    t = np.trunc(np.nan_to_num(a, nan=0.0, posinf=2.0 ** 40, neginf=0.0))
    return np.clip(t, 0, 2 ** 32 - 1).astype(I64).astype(U32)


def _perm(a: np.ndarray, b: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """V_PERM_B32: each selector byte picks a byte of {a, b} (0-7), 0x0c -> 0x00, >= 0x0d -> 0xff."""
    pool = (a.astype(U64) << U64(32)) | b.astype(U64)
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape, sel.shape), U32)
    for i in range(4):
        s = ((sel >> U32(8 * i)) & U32(0xFF)).astype(U64)
        byte = (pool >> (np.minimum(s, U64(7)) * U64(8))) & U64(0xFF)
        byte = np.where(s == 12, U64(0), np.where(s > 12, U64(0xFF), byte))
        sign_bit = U64(16) * (np.clip(s, U64(8), U64(11)) - U64(8)) + U64(15)  # 8-11: a sign, replicated
        sign = np.where((pool >> sign_bit) & U64(1) == 1, U64(0xFF), U64(0))
        byte = np.where((s >= 8) & (s < 12), sign, byte)
        out |= (byte.astype(U32) << U32(8 * i))
    return out


def _popcount(a: np.ndarray) -> np.ndarray:
    x = a.astype(U32)
    n = np.zeros(x.shape, U32)
    for bit in range(32):
        n += (x >> U32(bit)) & U32(1)
    return n


def _cvt_pk_rtz(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _pack_f16(_f16_rtz(a), _f16_rtz(b))


def _f16_rtz(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        h = x.astype(F16)
        over = np.abs(h.astype(F32)) > np.abs(x)
        toward0 = np.nextafter(h, np.zeros((), F16))
        h = np.where(over & np.isfinite(x), toward0, h)
        big = np.isinf(h) & np.isfinite(x)
        return np.where(big, np.copysign(F16(65504), x), h).astype(F16)


def _med3_f(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """V_MED3_F32: the median; with a NaN operand, the IEEE min of the three (as the reference says)."""
    with np.errstate(invalid="ignore"):
        med = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
        any_nan = np.isnan(a) | np.isnan(b) | np.isnan(c)
        return np.where(any_nan, nm.fmin_ieee(nm.fmin_ieee(a, b), c), med).astype(a.dtype)


VALU.update({
    "v_med3_f32": VOp("f32", ("f32",) * 3, _med3_f),
    "v_bcnt_u32_b32": VOp("u32", _U2, lambda a, b: _popcount(a) + b, ftz=False),
    "v_xad_u32": VOp("u32", ("u32",) * 3, lambda a, b, c: (a ^ b) + c, ftz=False),
    "v_mul_dx9_zero_f32": VOp("f32", _F2, lambda a, b: np.where((a == 0) | (b == 0), F32(0), _with_ignore(
        lambda: a * b)).astype(F32)),
    "v_cvt_floor_i32_f32": VOp("i32", ("f32",), lambda a: nm.cvt_i32_f32(np.floor(a))),
    "v_cvt_nearest_i32_f32": VOp("i32", ("f32",), lambda a: nm.cvt_i32_f32(np.floor(a + F32(0.5)))),
    "v_cvt_i32_i16": VOp("i32", ("i16",), lambda a: a.astype(I32), ftz=False),
    "v_cvt_u32_u16": VOp("u32", ("u16",), lambda a: a.astype(U32), ftz=False),
    "v_cvt_pk_rtz_f16_f32": VOp("u32", _F2, _cvt_pk_rtz),
    "v_perm_b32": VOp("u32", ("u32",) * 3, _perm, ftz=False),
    # float64 (the basic operations; no f64 FMA/division helpers)
    "v_add_f64": VOp("f64", _D2, _f64(np.add), ftz=False),
    "v_mul_f64": VOp("f64", _D2, _f64(np.multiply), ftz=False),
    "v_max_f64": VOp("f64", _D2, nm.fmax_ieee, ftz=False),
    "v_min_f64": VOp("f64", _D2, nm.fmin_ieee, ftz=False),
    "v_ldexp_f64": VOp("f64", ("f64", "i32"), _ldexp, ftz=False),
    "v_trunc_f64": VOp("f64", ("f64",), np.trunc, ftz=False),
    "v_floor_f64": VOp("f64", ("f64",), np.floor, ftz=False),
    "v_ceil_f64": VOp("f64", ("f64",), np.ceil, ftz=False),
    "v_rndne_f64": VOp("f64", ("f64",), np.rint, ftz=False),
    "v_fract_f64": VOp("f64", ("f64",), _fract, ftz=False),
    "v_cvt_f64_f32": VOp("f64", ("f32",), lambda a: a.astype(F64), ftz=False),
    "v_cvt_f64_i32": VOp("f64", ("i32",), lambda a: a.astype(F64), ftz=False),
    "v_cvt_f64_u32": VOp("f64", ("u32",), lambda a: a.astype(F64), ftz=False),
    "v_cvt_i32_f64": VOp("i32", ("f64",), _cvt_i32_f64, ftz=False),
    "v_cvt_u32_f64": VOp("u32", ("f64",), _cvt_u32_f64, ftz=False),
    "v_fma_f64": VOp("f64", ("f64",) * 3, nm64.fma64, ftz=False),
    "v_div_fixup_f64": VOp("f64", ("f64",) * 3, nm64.div_fixup_f64, ftz=False),
    "v_frexp_mant_f64": VOp("f64", ("f64",), _frexp_mant, ftz=False),
    "v_frexp_exp_i32_f64": VOp("i32", ("f64",), _frexp_exp, ftz=False),
    # f64 rcp/rsq/sqrt are TRANS instructions on gfx11 (approximate on the hardware: correctly rounded here)
    "v_rcp_f64": VOp("f64", ("f64",), _f64(lambda a: 1.0 / a), ftz=False, trans=True),
    "v_rsq_f64": VOp("f64", ("f64",), _f64(lambda a: 1.0 / np.sqrt(a)), ftz=False, trans=True),
    "v_sqrt_f64": VOp("f64", ("f64",), _f64(np.sqrt), ftz=False, trans=True),
})
VALU["v_cvt_f32_f64"] = VOp("f32", ("f64",), lambda a: _with_ignore(lambda: a.astype(F32)), ftz=False)

# packed 16-bit ops: the same function on the low and the high halves
PACKED: dict[str, VOp] = {
    "v_pk_add_f16": VOp("f16", _H2, _f16(np.add)),
    "v_pk_mul_f16": VOp("f16", _H2, _f16(np.multiply)),
    "v_pk_fma_f16": VOp("f16", ("f16",) * 3, _f16(lambda a, b, c: a * b + c)),
    "v_pk_max_f16": VOp("f16", _H2, nm.fmax_ieee),
    "v_pk_min_f16": VOp("f16", _H2, nm.fmin_ieee),
    "v_pk_add_u16": VOp("u16", ("u16", "u16"), np.add, ftz=False),
    "v_pk_sub_u16": VOp("u16", ("u16", "u16"), np.subtract, ftz=False),
    "v_pk_mul_lo_u16": VOp("u16", ("u16", "u16"), np.multiply, ftz=False),
    "v_pk_lshlrev_b16": VOp("u16", ("u16", "u16"), lambda s, a: a << (s & U16(15)), ftz=False),
    "v_pk_lshrrev_b16": VOp("u16", ("u16", "u16"), lambda s, a: a >> (s & U16(15)), ftz=False),
}


def _with_ignore(fn: Fn) -> Any:
    with np.errstate(all="ignore"):
        return fn()
