"""Edge semantics of the kernel contract: the one answer every backend gives where hardware and libraries differ.

The numpy backend is the reference, and :func:`tg.codegen.builder.fold` (constant folding) gives the same
answers.  A row of the table names the micro-op an emitter renders; "so ..." is what a Tensor user then sees.

The table is section 5 of :mod:`tg.hooks` (the hook spec, where plugin authors read it); each test here checks
one of its lines.

Tensor ``a <= b`` and ``a >= b`` on floats are ``(a < b) | (a == b)``, so they are False when an operand is NaN,
like numpy (:func:`test_nan_comparisons_le_ge`).

Each test runs through the Tensor API, with the edge values loaded from memory and (where the micro-op has
one) as a constant operand, and where it matters in two sizes: a few elements, and a few hundred (clang takes
its SIMD lane path there; the leftover threads take its scalar path).  Results compare exactly (NaN positions
must match, zeros must carry the expected sign); ``assert_close`` is used only where rounding is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from tg import Tensor, dtypes
from tg.testing import FLOAT_DTYPES, INT_DTYPES, assert_close, require, tensor, tolerance

SIZES = {"small": 0, "simd": 203}  # 0: the edge values once; else that many elements (the values repeated)
NAN, INF = math.nan, math.inf


def _sized(values: Sequence[Any], dtype: str, size: str) -> np.ndarray:
    arr = np.array(values).astype(dtype)
    return arr if not SIZES[size] else np.resize(arr, SIZES[size])


def _wrap(value: int, dtype: str) -> int:
    """``value`` wrapped into an integer dtype (two's complement)."""
    info = np.iinfo(dtype)
    bits = info.bits
    value &= (1 << bits) - 1
    return value - (1 << bits) if info.min < 0 and value > info.max else value


def _saturated(x: float, dtype: str) -> int:
    """A float converted to an integer dtype: truncated, saturated, NaN -> 0."""
    info = np.iinfo(dtype)
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return int(info.max if x > 0 else info.min)
    return int(min(max(math.trunc(x), int(info.min)), int(info.max)))


def assert_exact(got: Any, want: Any, what: str = "") -> None:
    """Equal values and dtype; NaN where NaN is expected; zeros with the expected sign."""
    out = got.numpy() if isinstance(got, Tensor) else np.asarray(got)
    want = np.asarray(want)
    assert out.dtype == want.dtype, f"{what}: dtype {out.dtype} != {want.dtype}"
    assert out.shape == want.shape, f"{what}: shape {out.shape} != {want.shape}"
    np.testing.assert_array_equal(out, want, err_msg=what)
    if want.dtype.kind == "f":
        number = ~np.isnan(want)
        bad = np.flatnonzero(np.signbit(out[number]) != np.signbit(want[number]))
        assert not bad.size, f"{what}: wrong sign of zero at {bad[:8]}: got {out[number][bad[:8]]}"


def _np(fn: Callable[..., Any], *args: Any) -> Any:
    with np.errstate(all="ignore"):
        return fn(*args)


# ---------------------------------------------------------------------------------------- integer division


def _floordiv(a: int, b: int, dtype: str) -> int:
    return 0 if b == 0 else _wrap(a // b, dtype)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_int_floordiv_edges(dtype: str, size: str) -> None:
    """``x // 0 == 0`` and ``MIN // -1 == MIN``, among ordinary quotients, with loaded and constant divisors."""
    require(dtype)
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    signed = lo < 0
    nums = [lo, lo + 1, -7, -1, 0, 1, 7, hi] if signed else [0, 1, 7, 254, 255]
    dens = [0, -1, 1, 2, -3, lo, hi] if signed else [0, 1, 2, 3, 255]
    pairs = [(a, b) for a in nums for b in dens]
    a = _sized([p[0] for p in pairs], dtype, size)
    b = _sized([p[1] for p in pairs], dtype, size)
    want = np.array([_floordiv(int(x), int(y), dtype) for x, y in zip(a, b)], dtype)
    assert_exact(tensor(a, dtype) // tensor(b, dtype), want, f"{dtype} a // b")
    x = _sized(nums, dtype, size)
    for d in (0, -1) if signed else (0,):
        want = np.array([_floordiv(int(v), d, dtype) for v in x], dtype)
        assert_exact(tensor(x, dtype) // d, want, f"{dtype} x // {d} (a constant divisor)")
        n = lo if signed else hi
        assert_exact(Tensor.full((3,), n, dtype=dtype) // Tensor.full((3,), d, dtype=dtype),
                     np.full(3, _floordiv(n, d, dtype), dtype), f"{dtype} {n} // {d} (folded)")


def _int_pow(a: int, b: int, dtype: str) -> int:
    if b < 0:
        return 1 if a == 1 else (-1 if b % 2 else 1) if a == -1 else 0
    return _wrap(pow(a, b, 1 << np.iinfo(dtype).bits), dtype)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_int_pow_edges(dtype: str, size: str) -> None:
    """Integer ``POW`` wraps like repeated ``MUL`` over every bit of the exponent (the top bit of an unsigned one
    too); a negative exponent gives 1, +-1 or 0; loaded and constant exponents."""
    require(dtype)
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    signed = lo < 0
    bases = [lo, -3, -2, -1, 0, 1, 2, 3, hi] if signed else [0, 1, 2, 3, 255]
    exps = [0, 1, 2, 3, 7, hi, -1, -2, -3, lo] if signed else [0, 1, 2, 3, 7, 128, 129, 254, 255]
    pairs = [(x, y) for x in bases for y in exps]
    a = _sized([p[0] for p in pairs], dtype, size)
    b = _sized([p[1] for p in pairs], dtype, size)
    want = np.array([_int_pow(int(x), int(y), dtype) for x, y in zip(a, b)], dtype)
    assert_exact(tensor(a, dtype) ** tensor(b, dtype), want, f"{dtype} a ** b")
    x = _sized(bases, dtype, size)
    for e in (exps[5], exps[-1]):  # a constant exponent tensor
        want = np.array([_int_pow(int(v), e, dtype) for v in x], dtype)
        assert_exact(tensor(x, dtype) ** Tensor.full(x.shape, e, dtype=dtype), want, f"{dtype} x ** {e} (constant)")


# ---------------------------------------------------------------------------------------- max and NaN


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_maximum_nan(dtype: str, size: str) -> None:
    """NaN in either operand of MAX gives NaN: maximum, relu, clip, minimum."""
    require(dtype)
    a = _sized([NAN, 1.0, NAN, -INF, INF, NAN, 2.0, -3.0, NAN, 0.5], dtype, size)
    b = _sized([1.0, NAN, NAN, NAN, NAN, -INF, -1.0, 4.0, 0.0, 0.25], dtype, size)
    ta, tb = tensor(a, dtype), tensor(b, dtype)
    assert_exact(ta.maximum(tb), _np(np.maximum, a, b), "maximum(a, b)")
    assert_exact(tb.maximum(ta), _np(np.maximum, b, a), "maximum(b, a)")
    assert_exact(ta.minimum(tb), _np(np.minimum, a, b), "minimum(a, b)")
    assert_exact(ta.relu(), _np(np.maximum, a, np.array(0, dtype)), "relu")
    assert_exact(ta.clip(-1.0, 1.0), _np(np.clip, a, np.array(-1, dtype), np.array(1, dtype)), "clip")
    assert_exact(tb.maximum(NAN), np.full(b.shape, NAN, dtype), "maximum(b, nan constant)")
    assert_exact(tb.maximum(-INF), b, "maximum(b, -inf constant)")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_max_reduction_nan(dtype: str) -> None:
    """A NaN anywhere in a reduced row makes its max (and min) NaN; long rows take grouped reductions."""
    require(dtype)
    for cols in (7, 1000):
        x = np.linspace(-2, 2, 4 * cols).reshape(4, cols).astype(dtype)
        x[0, 0], x[1, cols // 2], x[2, -1] = NAN, NAN, NAN
        t = tensor(x, dtype)
        assert_exact(t.amax(1), np.max(x, 1), f"max over {cols}")
        assert_exact(t.amin(1), np.min(x, 1), f"min over {cols}")
        assert_exact(t.max(), np.array(NAN, dtype), f"max of everything ({cols} columns)")


# ---------------------------------------------------------------------------------------- casts


def _float_cast_inputs(src: str) -> list[float]:
    big = [1e10, -1e10, 2.0**31, -(2.0**31), 2.0**31 + 2048, -(2.0**31) - 2048, 2.0**63, -(2.0**63), 1e30, -1e30]
    vals = [0.0, -0.0, 0.7, -0.7, 2.5, -2.5, 127.5, 128.0, -128.5, -129.0, 255.5, 256.0, -1.0, 300.7, -300.7,
            65504.0, -65504.0, INF, -INF, NAN, 3e9, -3e9]
    return vals + ([] if src == "float16" else big)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dst", INT_DTYPES)
@pytest.mark.parametrize("src", FLOAT_DTYPES)
def test_float_to_int_cast(src: str, dst: str, size: str) -> None:
    """Truncate toward zero, saturate out of range (int8/uint8 too), NaN -> 0."""
    require(src, dst)
    x = _sized(_np(np.asarray, _float_cast_inputs(src), src), src, size)
    want = np.array([_saturated(float(v), dst) for v in x], dst)
    assert_exact(tensor(x, src).cast(dst), want, f"{src} -> {dst}")
    if size == "small":  # the same through arithmetic (a computed value) and as a folded constant
        assert_exact((tensor(x, src) * 1.0).cast(dst), want, f"{src} * 1 -> {dst}")
        for v in (NAN, INF, -INF, 300.7, -1e4):
            want = np.full(2, _saturated(float(_np(np.asarray, v, src)), dst), dst)
            assert_exact(Tensor.full((2,), v, dtype=src).cast(dst), want, f"constant {v} as {src} -> {dst}")


@pytest.mark.parametrize("src", FLOAT_DTYPES)
def test_float_to_bool_cast(src: str) -> None:
    require(src)
    x = np.array([NAN, -0.0, 0.0, INF, -INF, 1e-3, -2.0], src)
    want = np.array([True, False, False, True, True, True, True])
    assert_exact(tensor(x, src).cast("bool"), want, f"{src} -> bool")
    assert_exact(tensor(x, src).where(1, 0), want.astype(np.int32), f"{src} as a where() condition")


@pytest.mark.parametrize("size", SIZES)
def test_int_narrowing_wraps(size: str) -> None:
    require("int64", "int8", "uint8")
    x = _sized([300, -1, 255, 256, -129, 128, 2**40 + 5, -(2**63), 2**63 - 1], "int64", size)
    for dst in ("int32", "int8", "uint8"):
        want = np.array([_wrap(int(v), dst) for v in x], dst)
        assert_exact(tensor(x, "int64").cast(dst), want, f"int64 -> {dst}")


@pytest.mark.parametrize("src", ["float32", "float64", "int32", "int64"])
def test_float16_overflow_on_cast(src: str) -> None:
    """Casts to float16 round once to nearest even; beyond the largest half they give +-inf."""
    require(src, "float16")
    if src.startswith("int"):
        vals: list[Any] = [70000, -70000, 65519, 65520, 65504, 2049, 2051, 0, -3, 2**31 - 1]
    else:
        vals = [1e5, -1e5, 65519.99, 65520.0, 65504.0, 1e-8, -1e-8, 3e-8, 2.0**-24, 2.0**-14 * 1.5, NAN, INF, -0.0,
                1e300 if src == "float64" else 3e38]
        if src == "float64":
            vals.append(1.0 + 2.0**-11 + 2.0**-40)  # rounds up; through float32 it would tie and round down
    x = np.array(vals, src)
    assert_exact(tensor(x, src).cast("float16"), _np(x.astype, np.float16), f"{src} -> float16")
    assert_exact((tensor(x, src) * tensor(np.ones_like(x), src)).half(), _np(x.astype, np.float16),
                 f"{src} (computed) -> float16")


# ---------------------------------------------------------------------------------------- bools


@pytest.mark.parametrize("size", SIZES)
def test_bool_arithmetic(size: str) -> None:
    """Bools are one bit: add is or, mul is and, max is or, neg is not; False < True."""
    a = _sized([False, False, True, True], "bool", size)
    b = _sized([False, True, False, True], "bool", size)
    ta, tb = tensor(a, "bool"), tensor(b, "bool")
    for what, got, want in [
        ("a + b", ta + tb, a | b), ("a * b", ta * tb, a & b), ("maximum", ta.maximum(tb), a | b),
        ("minimum", ta.minimum(tb), a & b), ("-a", -ta, ~a), ("a < b", ta < tb, ~a & b), ("a > b", ta > tb, a & ~b),
        ("a == b", ta == tb, a == b), ("a != b", ta != tb, a != b), ("a + True", ta + True, np.ones_like(a)),
        ("a * False", ta * False, np.zeros_like(a)), ("a + a", ta + ta, a), ("a * a", ta * ta, a),
        ("(a + b) + a", (ta + tb) + ta, a | b),
    ]:
        assert got.dtype == dtypes.bool, f"{what} gave {got.dtype}"
        assert_exact(got, want, what)
    rows = np.zeros((3, 70), bool)
    rows[1, 69], rows[2] = True, True
    assert_exact(tensor(rows, "bool").amax(1), np.array([False, True, True]), "max of bool rows (any)")
    assert_exact(tensor(rows, "bool").amin(1), np.array([False, False, True]), "min of bool rows (all)")


# ---------------------------------------------------------------------------------------- comparisons, where


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nan_comparisons(dtype: str, size: str) -> None:
    """IEEE: every ordered comparison with NaN is False, ``!=`` is True."""
    require(dtype)
    a = _sized([NAN, 1.0, NAN, INF, -INF, 1.0, -0.0], dtype, size)
    b = _sized([1.0, NAN, NAN, NAN, NAN, 1.0, 0.0], dtype, size)
    ta, tb = tensor(a, dtype), tensor(b, dtype)
    false, true = np.zeros(a.shape, bool), np.ones(a.shape, bool)
    for what, got, want in [("a < b", ta < tb, a < b), ("a > b", ta > tb, a > b), ("a == b", ta == tb, a == b),
                            ("a != b", ta != tb, a != b), ("a == a", ta == tensor(a, dtype), np.equal(a, a.copy())),
                            ("a != a", ta != tensor(a, dtype), np.not_equal(a, a.copy())),
                            ("a < nan", ta < NAN, false), ("nan < a", ta > NAN, false), ("a == nan", ta == NAN, false),
                            ("a != nan", ta != NAN, true)]:
        assert_exact(got, want, what)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nan_comparisons_le_ge(dtype: str) -> None:
    """``<=`` and ``>=`` are False when an operand is NaN (not ``not (a > b)``)."""
    require(dtype)
    a = np.array([NAN, 1.0, NAN, 2.0], dtype)
    b = np.array([1.0, NAN, NAN, 2.0], dtype)
    assert_exact(tensor(a, dtype) <= tensor(b, dtype), a <= b, "a <= b")
    assert_exact(tensor(a, dtype) >= tensor(b, dtype), a >= b, "a >= b")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_where_nan(dtype: str, size: str) -> None:
    """where() passes NaN, inf and -0.0 through bit for bit; a NaN condition counts as true (it is != 0)."""
    require(dtype)
    cond = _sized([True, False, True, False, True, False], "bool", size)
    x = _sized([NAN, 1.0, -0.0, 2.0, INF, 3.0], dtype, size)
    y = _sized([5.0, NAN, 6.0, -0.0, 7.0, -INF], dtype, size)
    tc, tx, ty = tensor(cond, "bool"), tensor(x, dtype), tensor(y, dtype)
    assert_exact(tc.where(tx, ty), np.where(cond, x, y), "where(c, x, y)")
    assert_exact(tc.where(tx, NAN), np.where(cond, x, np.array(NAN, dtype)), "where(c, x, nan)")
    assert_exact(tc.where(-0.0, ty), np.where(cond, np.array(-0.0, dtype), y), "where(c, -0.0, y)")
    fc = _sized([NAN, 0.0, -0.0, INF, 1e-3, NAN], dtype, size)
    assert_exact(tensor(fc, dtype).where(tx, ty), np.where(fc != 0, x, y), "where(float condition with NaN)")


# ---------------------------------------------------------------------------------------- sqrt, log2, exp2


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sqrt_log2_special_values(dtype: str, size: str) -> None:
    require(dtype)
    x = _sized([-1.0, -0.0, 0.0, -INF, INF, NAN, 1.0, -1e-3, 4.0], dtype, size)
    assert_exact(tensor(x, dtype).sqrt(), _np(np.sqrt, x), "sqrt")
    assert_exact(tensor(x, dtype).log2(), _np(np.log2, x), "log2")


_EXP2_INPUTS = {
    "float16": [16.0, 15.0, -14.0, -20.0, -24.0, -25.0, -30.0, 1.5, -15.5],
    "float32": [128.0, 200.0, 127.0, -126.0, -130.0, -140.0, -149.0, -150.0, -151.0, -200.0, -126.5, -140.5, 1.5],
    "float64": [1024.0, 1100.0, 1023.0, -1022.0, -1030.0, -1060.0, -1074.0, -1075.0, -1076.0, -1200.0, -1022.5,
                -1050.5, 1.5],
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_exp2_overflow_underflow(dtype: str, size: str) -> None:
    """exp2 overflows to inf, gives subnormals below the normal range (no flush to zero), then +0.0."""
    require(dtype)
    x = _sized([*_EXP2_INPUTS[dtype], INF, -INF, NAN, 0.0, -0.0], dtype, size)
    want = _np(lambda v: np.exp2(v).astype(dtype), x.astype(np.float64))  # rounded once to the dtype
    got = tensor(x, dtype).exp2()
    tiny = float(np.finfo(dtype).smallest_subnormal)  # subnormals round on a grid of this step
    assert_close(got, want, dtype, rtol=tolerance(dtype)[0], atol=2 * tiny)
    out = got.numpy()
    zero, inf = want == 0, np.isinf(want)
    assert np.all(out[zero] == 0) and not np.any(np.signbit(out[zero])), f"exp2 should be +0.0: {x[zero]}"
    assert np.array_equal(out[inf], want[inf]), f"exp2 overflow should be inf: {x[inf]} -> {out[inf]}"
    exact = np.isfinite(x) & (x == np.trunc(x)) & (x <= 0)  # 2**-k: subnormal or normal, exactly representable
    np.testing.assert_array_equal(out[exact], want[exact], err_msg=f"exp2 of integers {x[exact]}")


# ---------------------------------------------------------------------------------------- constants


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_constants(dtype: str) -> None:
    """NaN, +-inf and -0.0 constants are exact, stored and as operands (a Python float operand of a float32 or
    float16 tensor is a kernel parameter where the backend takes them; a ``full`` one is always a constant)."""
    require(dtype)
    for v in (NAN, INF, -INF, -0.0, 0.0):
        assert_exact(Tensor.full((5,), v, dtype=dtype), np.full(5, v, dtype), f"full({v})")
        x = np.array([1.5, -2.0, 0.0], dtype)
        assert_exact(tensor(x, dtype) * Tensor.full((), v, dtype=dtype), _np(np.multiply, x, np.array(v, dtype)),
                     f"x * full({v})")
    x = np.array([-0.0, 0.0, 1.0, -2.0, INF, -INF], dtype)
    t = tensor(x, dtype)
    assert_exact(t + (-0.0), x + np.array(-0.0, dtype), "x + (-0.0)")  # -0.0 + -0.0 stays -0.0; a +0.0 would not
    assert_exact(t * -0.0, _np(np.multiply, x, np.array(-0.0, dtype)), "x * (-0.0)")
    assert_exact(t * INF, _np(np.multiply, x, np.array(INF, dtype)), "x * inf")
    assert_exact(t + NAN, np.full(x.shape, NAN, dtype), "x + nan")
    assert_exact(t - INF, _np(np.subtract, x, np.array(INF, dtype)), "x - inf")


def test_float16_constants() -> None:
    """float16 constants are rounded to float16 once, from the Python float: overflow, subnormals, ties."""
    require("float16")
    vals = [65504.0, 65519.0, 65520.0, -1e5, 2.0**-24, 2.0**-25, 3 * 2.0**-26, -1e-9, 1.0 + 2.0**-11 + 2.0**-30, 0.1]
    for v in vals:
        assert_exact(Tensor.full((3,), v, dtype="float16"), _np(np.full, 3, v, np.float16), f"full({v!r}) as float16")
    ones = tensor(np.ones(3, np.float16), "float16")
    for v in (65519.0, 65520.0, 3 * 2.0**-26, -1e-9, 1.0 + 2.0**-11 + 2.0**-30):  # 1 * c is exact: only c's rounding
        assert_exact(ones * v, _np(np.full, 3, v, np.float16), f"1 * {v!r} (a float16 constant operand)")


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_int_constants(dtype: str) -> None:
    """Integer constants: the dtype's extremes are exact and arithmetic with them wraps; a Python int the dtype
    cannot hold is refused (numpy's and PyTorch's rule), never wrapped into a different number."""
    require(dtype)
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    for v in (lo, hi):
        assert_exact(Tensor.full((4,), v, dtype=dtype), np.full(4, v, dtype), f"full({v})")
    x = np.array([0, 1, lo, hi], dtype)
    t = tensor(x, dtype)
    for c in (lo, hi):
        want = np.array([_wrap(int(v) + c, dtype) for v in x], dtype)
        assert_exact(t + c, want, f"x + {c}")
    assert_exact(t * hi, np.array([_wrap(int(v) * hi, dtype) for v in x], dtype), f"x * {hi}")
    for v in (v for v in (lo - 1, hi + 1, 2**40 + 200, -(2**70)) if not lo <= v <= hi):
        with pytest.raises(OverflowError, match=f"Python integer {v} is out of range for a tensor of {dtype}"):
            t + v
        with pytest.raises(OverflowError, match=f"out of range for a tensor of {dtype}"):
            Tensor.full((2,), v, dtype=dtype)
        with pytest.raises(OverflowError, match="out of range"):
            (t > 0).where(t, v)


def test_bool_tensor_arithmetic_is_one_thing_on_every_backend() -> None:
    """``-b`` is logical_not (the hook spec's NEG), abs and sign of a bool are the bool itself; ``a - b`` and
    ``a // b`` of bools are refused with the fix (numpy and PyTorch refuse them; backends used to disagree)."""
    a, b = Tensor([True, False, True, False]), Tensor([True, True, False, False])
    assert_exact(-a, np.array([False, True, False, True]))
    assert_exact(a.abs(), np.array([True, False, True, False]))
    assert_exact(a.sign(), np.array([True, False, True, False]))
    with pytest.raises(TypeError, match="subtracting bool tensors"):
        a - b
    with pytest.raises(TypeError, match="cast to an integer dtype first"):
        a // b
    assert_exact(a ^ b, np.array([False, True, True, False]))

