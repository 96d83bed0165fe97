"""Elementwise ops against numpy: every op in every dtype it applies to, broadcasting, scalars, NaN/inf."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tg import Tensor, dtypes
from tg.testing import (
    DTYPE_NAMES,
    FLOAT_DTYPES,
    assert_close,
    case_id,
    random_array,
    reference,
    require,
    tensor,
    tolerance,
)

NUMERIC = tuple(d for d in DTYPE_NAMES if d != "bool")
SIGNED = ("int8", "int32", "int64")

Fn = Callable[..., Any]

# name: (tg function, float64 numpy function, low, high, extra atol).  Inputs are uniform in [low, high);
# ops whose range holds 0 (and that are defined there) also see an exact 0.
UNARY: dict[str, tuple[Fn, Fn, float, float, float]] = {
    "neg": (lambda t: -t, np.negative, -3, 3, 0),
    "exp": (lambda t: t.exp(), np.exp, -4, 4, 0),
    "log": (lambda t: t.log(), np.log, 0.05, 6, 0),
    "exp2": (lambda t: t.exp2(), np.exp2, -5, 5, 0),
    "log2": (lambda t: t.log2(), np.log2, 0.05, 6, 0),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, 0, 6, 0),
    "rsqrt": (lambda t: t.rsqrt(), lambda x: 1 / np.sqrt(x), 0.1, 6, 0),
    "sin": (lambda t: t.sin(), np.sin, -7, 7, 0),
    "cos": (lambda t: t.cos(), np.cos, -7, 7, 0),
    "tanh": (lambda t: t.tanh(), np.tanh, -4, 4, 0),
    "sigmoid": (lambda t: t.sigmoid(), reference.sigmoid, -6, 6, 0),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0), -2, 2, 0),
    "leaky_relu": (lambda t: t.leaky_relu(), reference.leaky_relu, -2, 2, 0),
    "leaky_relu(0.2)": (lambda t: t.leaky_relu(neg_slope=0.2), lambda x: reference.leaky_relu(x, 0.2), -2, 2, 0),
    # the tanh approximation is the reference; an exact (erf) GELU differs by < 5e-4 and passes too
    "gelu": (lambda t: t.gelu(), reference.gelu, -4, 4, 1e-3),
    "silu": (lambda t: t.silu(), reference.silu, -5, 5, 0),
    "abs": (lambda t: t.abs(), np.abs, -3, 3, 0),
    "sign": (lambda t: t.sign(), np.sign, -3, 3, 0),
    "reciprocal": (lambda t: t.reciprocal(), np.reciprocal, 0.2, 4, 0),
    "reciprocal(-x)": (lambda t: (-t).reciprocal(), lambda x: np.reciprocal(-x), 0.2, 4, 0),
    "square": (lambda t: t.square(), np.square, -3, 3, 0),
    "trunc": (lambda t: t.trunc(), np.trunc, -4, 4, 0),
    "floor": (lambda t: t.floor(), np.floor, -4, 4, 0),
    "ceil": (lambda t: t.ceil(), np.ceil, -4, 4, 0),
    "clip": (lambda t: t.clip(-0.5, 0.75), lambda x: np.clip(x, -0.5, 0.75), -2, 2, 0),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("op", UNARY)
def test_unary_float(op: str, dtype: str, rng: np.random.Generator) -> None:
    require(dtype)
    tg_fn, np_fn, low, high, extra = UNARY[op]
    x = random_array((4, 7), dtype, rng, low, high)
    if low <= 0 <= high and op not in ("log", "log2", "rsqrt", "reciprocal"):
        x[0, 0] = 0
    if op in ("trunc", "floor", "ceil"):
        x[1, :4] = np.array([-2.0, -1.5, 1.5, 2.0], dtype)
    out = tg_fn(tensor(x, dtype))
    assert out.dtype == getattr(dtypes, dtype), f"{op} on {dtype} gave {out.dtype}"
    rtol, atol = tolerance(dtype)
    assert_close(out, np_fn(x.astype(np.float64)), dtype, rtol=rtol, atol=max(atol, extra))


def test_sin_cos_wide_range(rng: np.random.Generator) -> None:
    """Range reduction: |x| up to 100 (float32)."""
    x = random_array((64,), "float32", rng, -100, 100)
    assert_close(tensor(x, "float32").sin(), np.sin(x.astype(np.float64)), atol=2e-5)
    assert_close(tensor(x, "float32").cos(), np.cos(x.astype(np.float64)), atol=2e-5)


def test_exp2_log2_accuracy(rng: np.random.Generator) -> None:
    """exp2/log2 are used to lower exp, log and pow: they must be accurate across a wide range (float32)."""
    x = random_array((256,), "float32", rng, -60, 60)
    assert_close(tensor(x, "float32").exp2(), np.exp2(x.astype(np.float64)), rtol=2e-6, atol=0)
    y = np.exp2(random_array((256,), "float32", rng, -60, 60)).astype(np.float32)
    assert_close(tensor(y, "float32").log2(), np.log2(y.astype(np.float64)), rtol=1e-6, atol=2e-6)


@pytest.mark.parametrize("dtype", SIGNED)
@pytest.mark.parametrize("op", ["neg", "abs", "sign", "square"])
def test_unary_int(op: str, dtype: str, rng: np.random.Generator) -> None:
    require(dtype)
    tg_fn, np_fn, _, _, _ = UNARY[op]
    x = random_array((3, 5), dtype, rng)
    x[0, 0] = 0
    out = tg_fn(tensor(x, dtype))
    assert out.dtype == getattr(dtypes, dtype)
    assert_close(out, np_fn(x), dtype)


BINARY: dict[str, tuple[Fn, Fn]] = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "maximum": (lambda a, b: a.maximum(b), np.maximum),
    "minimum": (lambda a, b: a.minimum(b), np.minimum),
    "lt": (lambda a, b: a < b, np.less),
    "le": (lambda a, b: a <= b, np.less_equal),
    "gt": (lambda a, b: a > b, np.greater),
    "ge": (lambda a, b: a >= b, np.greater_equal),
    "eq": (lambda a, b: a == b, np.equal),
    "ne": (lambda a, b: a != b, np.not_equal),
}
COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")


def _binary_inputs(op: str, dtype: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Broadcasting operands (3, 1, 4) and (5, 4); floats on a 0.25 grid so ties and equalities occur."""
    if dtype == "uint8" and op == "sub":
        return random_array((3, 1, 4), dtype, rng, 10, 20), random_array((5, 4), dtype, rng, 0, 10)
    a, b = random_array((3, 1, 4), dtype, rng), random_array((5, 4), dtype, rng)
    if dtype in FLOAT_DTYPES:
        a, b = (np.round(v * 4) / 4 for v in (a, b))
    return a, b


@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("op", [op for op in BINARY if op not in COMPARISONS])
def test_binary(op: str, dtype: str, rng: np.random.Generator) -> None:
    require(dtype)
    tg_fn, np_fn = BINARY[op]
    a, b = _binary_inputs(op, dtype, rng)
    out = tg_fn(tensor(a, dtype), tensor(b, dtype))
    assert out.shape == (3, 5, 4)
    assert out.dtype == getattr(dtypes, dtype), f"{op} on {dtype} gave {out.dtype}"
    assert_close(out, np_fn(a.astype(np.float64), b.astype(np.float64)), dtype)


@pytest.mark.parametrize("dtype", NUMERIC)
def test_comparisons(dtype: str, rng: np.random.Generator) -> None:
    """All six comparisons, with ties and equal elements, give bool tensors."""
    require(dtype)
    a, b = _binary_inputs("lt", dtype, rng)
    for op in COMPARISONS:
        tg_fn, np_fn = BINARY[op]
        out = tg_fn(tensor(a, dtype), tensor(b, dtype))
        assert out.dtype == dtypes.bool, f"{op} on {dtype} gave {out.dtype}"
        assert_close(out, np_fn(a, b), "bool", msg=op)


@pytest.mark.parametrize("op", ["eq", "ne"])
def test_bool_equality(op: str, rng: np.random.Generator) -> None:
    tg_fn, np_fn = BINARY[op]
    a, b = random_array((3, 1, 4), "bool", rng), random_array((5, 4), "bool", rng)
    out = tg_fn(tensor(a, "bool"), tensor(b, "bool"))
    assert out.dtype == dtypes.bool
    assert_close(out, np_fn(a, b), "bool")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_div(dtype: str, rng: np.random.Generator) -> None:
    require(dtype)
    a = random_array((3, 1, 4), dtype, rng, -3, 3)
    b = (random_array((5, 4), dtype, rng, 0.25, 3) * rng.choice([-1, 1], size=(5, 4))).astype(dtype)
    out = tensor(a, dtype) / tensor(b, dtype)
    assert out.dtype == getattr(dtypes, dtype)
    assert_close(out, a.astype(np.float64) / b.astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_pow(dtype: str, rng: np.random.Generator) -> None:
    require(dtype)
    a = random_array((3, 1, 4), dtype, rng, 0.25, 3)
    b = random_array((5, 4), dtype, rng, -2, 2)
    out = tensor(a, dtype) ** tensor(b, dtype)
    assert out.dtype == getattr(dtypes, dtype)
    assert_close(out, a.astype(np.float64) ** b.astype(np.float64), dtype)


def test_int_div_is_true_division(rng: np.random.Generator) -> None:
    """``/`` on integers is true division and gives a float tensor (as in PyTorch)."""
    a = random_array((4, 5), "int32", rng, -20, 20)
    b = random_array((4, 5), "int32", rng, 1, 6) * rng.choice([-1, 1], size=(4, 5)).astype(np.int32)
    out = tensor(a, "int32") / tensor(b, "int32")
    assert out.dtype.name in FLOAT_DTYPES
    assert_close(out, a / b, out.dtype.name)


@pytest.mark.parametrize("dtype", SIGNED)
def test_floordiv_int(dtype: str, rng: np.random.Generator) -> None:
    """``//`` on integers floors like Python, numpy and PyTorch: ``-7 // 2 == -4``, ``7 // -2 == -4``."""
    require(dtype)
    a = random_array((6, 7), dtype, rng, -20, 21)
    b = (random_array((6, 7), dtype, rng, 1, 6) * rng.choice([-1, 1], size=(6, 7))).astype(dtype)
    a[0, :4], b[0, :4] = [-7, 7, -7, 7], [2, -2, -2, 2]
    out = tensor(a, dtype) // tensor(b, dtype)
    assert out.dtype == getattr(dtypes, dtype)
    assert_close(out, np.floor_divide(a, b), dtype)
    assert_close(tensor(a, dtype) // 3, np.floor_divide(a, 3), dtype)
    assert_close(tensor(a, dtype) // -4, np.floor_divide(a, -4), dtype)


# label: (tg function of x, numpy function of x); x is float32 on a 0.25 grid, never 0
SCALAR_OPS: dict[str, tuple[Fn, Fn]] = {
    "x+2": (lambda x: x + 2, lambda x: x + 2),
    "2+x": (lambda x: 2 + x, lambda x: 2 + x),
    "x-1.5": (lambda x: x - 1.5, lambda x: x - 1.5),
    "1.5-x": (lambda x: 1.5 - x, lambda x: 1.5 - x),
    "x*3": (lambda x: x * 3, lambda x: x * 3),
    "0.5*x": (lambda x: 0.5 * x, lambda x: 0.5 * x),
    "x/4": (lambda x: x / 4, lambda x: x / 4),
    "4/x": (lambda x: 4 / x, lambda x: 4 / x),
    "x**2": (lambda x: x ** 2, lambda x: x ** 2),
    "x**3": (lambda x: x ** 3, lambda x: x ** 3),
    "x**-1": (lambda x: x ** -1, lambda x: x ** -1.0),
    "|x|**0.5": (lambda x: x.abs() ** 0.5, lambda x: np.abs(x) ** 0.5),
    "2**x": (lambda x: 2 ** x, lambda x: 2.0 ** x),
    "x<0.5": (lambda x: x < 0.5, lambda x: x < 0.5),
    "0.5<x": (lambda x: 0.5 < x, lambda x: 0.5 < x),
    "x>=-1": (lambda x: x >= -1, lambda x: x >= -1),
    "x==0.5": (lambda x: x == 0.5, lambda x: x == 0.5),
    "x!=0.5": (lambda x: x != 0.5, lambda x: x != 0.5),
    "max(x,0.25)": (lambda x: x.maximum(0.25), lambda x: np.maximum(x, 0.25)),
    "min(x,0.25)": (lambda x: x.minimum(0.25), lambda x: np.minimum(x, 0.25)),
}


@pytest.mark.parametrize("label", SCALAR_OPS)
def test_python_scalar_operands(label: str, rng: np.random.Generator) -> None:
    tg_fn, np_fn = SCALAR_OPS[label]
    x = np.round(random_array((5, 6), "float32", rng, -3, 3) * 4) / 4
    x[x == 0] = 0.5
    out = tg_fn(tensor(x, "float32"))
    want = np_fn(x.astype(np.float64))
    name = "bool" if want.dtype == np.bool_ else "float32"
    assert out.dtype == getattr(dtypes, name), f"{label} gave {out.dtype}"
    assert_close(out, want, name)


INT_SCALAR_OPS: dict[str, tuple[Fn, Fn]] = {
    "x+3": (lambda x: x + 3, lambda x: x + 3),
    "3-x": (lambda x: 3 - x, lambda x: 3 - x),
    "x*-2": (lambda x: x * -2, lambda x: x * -2),
    "-x": (lambda x: -x, lambda x: -x),
    "x<2": (lambda x: x < 2, lambda x: x < 2),
    "x==1": (lambda x: x == 1, lambda x: x == 1),
    "max(x,0)": (lambda x: x.maximum(0), lambda x: np.maximum(x, 0)),
    "x**2": (lambda x: x ** 2, lambda x: x ** 2),
}


@pytest.mark.parametrize("label", INT_SCALAR_OPS)
def test_int32_scalar_operands(label: str, rng: np.random.Generator) -> None:
    tg_fn, np_fn = INT_SCALAR_OPS[label]
    x = random_array((4, 5), "int32", rng, -10, 11)
    out = tg_fn(tensor(x, "int32"))
    want = np_fn(x)
    name = "bool" if want.dtype == np.bool_ else "int32"
    assert out.dtype == getattr(dtypes, name), f"{label} gave {out.dtype}"
    assert_close(out, want, name)


def test_bool_logic(rng: np.random.Generator) -> None:
    a, b = random_array((4, 1), "bool", rng), random_array((4, 6), "bool", rng)
    ta, tb = tensor(a, "bool"), tensor(b, "bool")
    for out, want in ((ta & tb, a & b), (ta | tb, a | b), (~tb, ~b), (~(ta & tb) | ta, ~(a & b) | a)):
        assert out.dtype == dtypes.bool
        assert_close(out, want, "bool")
    x = random_array((4, 6), "float32", rng)
    tx = tensor(x, "float32")
    assert_close((tx > 0) & (tx < 0.5), (x > 0) & (x < 0.5), "bool")
    assert_close(~(tx > 0) | (tx > 0.75), ~(x > 0) | (x > 0.75), "bool")


def test_where(rng: np.random.Generator) -> None:
    c = random_array((3, 1), "bool", rng)
    x, y = random_array((1, 4), "float32", rng), random_array((3, 4), "float32", rng)
    tc, tx, ty = tensor(c, "bool"), tensor(x, "float32"), tensor(y, "float32")
    want = np.where(c, x, y)
    assert_close(Tensor.where(tc, tx, ty), want)
    assert_close(tc.where(tx, ty), want)
    assert_close(tc.where(tx, 0.0), np.where(c, x, 0.0))
    assert_close(tc.where(-1.5, ty), np.where(c, -1.5, y))
    both = tc.where(1.0, -1.0)
    assert both.dtype == dtypes.float32
    assert_close(both, np.where(c, 1.0, -1.0))
    assert_close((tx > 0).where(tx, ty * 2), np.where(x > 0, x, y * 2))


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
def test_where_dtypes(dtype: str, rng: np.random.Generator) -> None:
    require(dtype)
    c = random_array((2, 5), "bool", rng)
    x, y = random_array((2, 5), dtype, rng), random_array((1, 5), dtype, rng)
    out = tensor(c, "bool").where(tensor(x, dtype), tensor(y, dtype))
    assert out.dtype == getattr(dtypes, dtype)
    assert_close(out, np.where(c, x, y), dtype)


BROADCAST_SHAPES = [
    ((3,), (2, 3)), ((2, 1), (1, 3)), ((4, 1, 3), (2, 1)), ((), (2, 3)), ((1,), (3, 1)), ((2, 3, 1, 5), (3, 4, 1)),
    ((1, 1), (1,)), ((5, 1, 1), (1, 1, 6)), ((0, 3), (1, 3)), ((0, 3), (3,)), ((2, 0, 1), (1, 4)),
]


@pytest.mark.parametrize(("sa", "sb"), BROADCAST_SHAPES, ids=case_id)
def test_broadcasting(sa: tuple[int, ...], sb: tuple[int, ...], rng: np.random.Generator) -> None:
    a, b = random_array(sa, "float32", rng), random_array(sb, "float32", rng)
    ta, tb = tensor(a, "float32"), tensor(b, "float32")
    assert_close(ta + tb, a.astype(np.float64) + b)
    assert_close(tb * ta, b.astype(np.float64) * a)
    assert_close(ta - tb, a.astype(np.float64) - b)
    assert_close(ta < tb, a < b, "bool")
    assert_close((ta > 0).where(ta, tb), np.where(a > 0, a, b))


def test_same_tensor_on_both_sides(rng: np.random.Generator) -> None:
    x = random_array((3, 4), "float32", rng)
    t = tensor(x, "float32")
    assert_close(t + t, 2.0 * x)
    assert_close(t * t - t, x.astype(np.float64) ** 2 - x)
    assert_close(t.permute(1, 0) * t.permute(1, 0), x.T.astype(np.float64) ** 2)
    assert_close(t + t.flip(0), x.astype(np.float64) + x[::-1])


def test_fused_chain(rng: np.random.Generator) -> None:
    a, b, c = (random_array((8, 9), "float32", rng) for _ in range(3))
    assert_close((tensor(a) * tensor(b) + tensor(c)).relu(), np.maximum(a.astype(np.float64) * b + c, 0))
    t, x = tensor(a), a.astype(np.float64)
    for i in range(40):
        t = (t * 1.01 + 0.01) if i % 2 else (t.tanh() - 0.1)
        x = (x * 1.01 + 0.01) if i % 2 else (np.tanh(x) - 0.1)
    assert_close(t, x, atol=1e-4)


def test_zero_dim_elementwise(rng: np.random.Generator) -> None:
    s = tensor(np.array(1.5, np.float32), "float32")
    v = random_array((4,), "float32", rng)
    assert (s * 2).shape == ()
    assert_close(s.exp(), np.exp(1.5))
    assert_close(s + tensor(v, "float32"), 1.5 + v.astype(np.float64))
    assert_close(s < tensor(v, "float32"), 1.5 < v, "bool")
    assert (s.sqrt() * s).item() == pytest.approx(1.5 ** 1.5, rel=1e-5)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 2, 1)], ids=case_id)
def test_empty_elementwise(shape: tuple[int, ...]) -> None:
    t = Tensor(np.zeros(shape, np.float32))
    for out in (t + 1, t.exp(), t * t, (t > 0).where(t, 2.0), -t):
        assert out.shape == shape
        assert out.numpy().shape == shape


def test_nan_inf_propagation() -> None:
    inf, nan = float("inf"), float("nan")
    x = np.array([inf, -inf, nan, 0.0, -1.0, 1.0], np.float32)
    t = tensor(x, "float32")
    with np.errstate(all="ignore"):
        assert_close(t.exp(), np.exp(x.astype(np.float64)))
        assert_close(t.log(), np.log(x.astype(np.float64)))  # log(0) = -inf, log(-1) = nan
        assert_close(t.sqrt(), np.sqrt(x.astype(np.float64)))  # sqrt(-1) = nan
        assert_close(t.log2(), np.log2(x.astype(np.float64)))
        assert_close(t.exp2(), np.exp2(x.astype(np.float64)))
        assert_close(t * 2, x.astype(np.float64) * 2)
        assert_close(t + 1, x.astype(np.float64) + 1)
        assert_close(t.maximum(0.0), np.maximum(x, 0.0))  # NaN propagates through maximum
        assert_close(t.minimum(0.0), np.minimum(x, 0.0))
        assert_close(t > 0, x > 0, "bool")
        assert_close(t != t * 1, x != x * 1, "bool")  # NaN != NaN


def test_division_by_zero() -> None:
    a = tensor(np.array([1.0, -1.0, 0.0, 2.0], np.float32), "float32")
    b = tensor(np.array([0.0, 0.0, 0.0, 4.0], np.float32), "float32")
    with np.errstate(all="ignore"):
        assert_close(a / b, np.array([np.inf, -np.inf, np.nan, 0.5]))
        assert_close(b.reciprocal()[:1], np.array([np.inf]))


def test_overflow_to_inf() -> None:
    assert_close(tensor(np.array([100.0, 88.0, -200.0], np.float32), "float32").exp(),
                 np.array([np.inf, np.exp(88.0), 0.0]), rtol=1e-4)
    assert_close(tensor(np.array([200.0], np.float32), "float32").exp2(), np.array([np.inf]))
    big = tensor(np.array([3e38], np.float32), "float32")
    assert_close(big * 10, np.array([np.inf]))


def test_float16_overflow() -> None:
    require("float16")
    t = tensor(np.array([12.0, 1.0, 300.0], np.float16), "float16")
    assert_close(t.exp(), np.array([np.inf, np.e, np.inf]), "float16")
    assert_close(t * t, np.array([144.0, 1.0, np.inf]), "float16")


@pytest.mark.parametrize("dtype", ["int32", "int64", "int8", "uint8"])
def test_integer_pow_is_exact(dtype: str) -> None:
    """Integer powers stay integers and are exact (wrapping like the dtype's multiplication, as numpy's do); they
    used to go through float32 (3 ** 19 was wrong)."""
    require(dtype)
    base = np.array([3, -2, 0, 1, -1, 5, 7] if np.iinfo(dtype).min < 0 else [3, 2, 0, 1, 255, 5, 7], dtype)
    t = tensor(base, dtype)
    with np.errstate(over="ignore"):
        for n in (0, 1, 2, 7, 19, 39):
            np.testing.assert_array_equal((t ** n).numpy(), base ** np.array(n, dtype), err_msg=f"x ** {n}")
        exponents = np.array([19, 3, 0, 2, 31, 6, 1], dtype)
        np.testing.assert_array_equal((t ** tensor(exponents, dtype)).numpy(), base ** exponents, err_msg="x ** y")
        small = np.array([0, 1, 2, 5], dtype)
        np.testing.assert_array_equal((3 ** tensor(small, dtype)).numpy(), np.array(3, dtype) ** small)
        # every bit of the exponent's dtype counts: uint8's top bit too (2 ** 129 wraps to 0 in uint8, it was 2)
        info = np.iinfo(dtype)
        high = np.array([info.max, info.max // 2 + 2, info.max - 1, info.max // 2 + 1, 3, 2, 1], dtype)
        np.testing.assert_array_equal((t ** tensor(high, dtype)).numpy(), base ** high, err_msg="high bits")


def test_integer_pow_with_negative_exponents() -> None:
    """A Python int exponent below zero is refused (numpy and PyTorch); a tensor of exponents gives what integer
    division of 1 by x ** -y would: 1 for 1, +-1 for -1, 0 for everything else (2 ** -1 used to give 1)."""
    t = tensor(np.array([2, 1, -1, -1, 0, 5], np.int32), "int32")
    with pytest.raises(ValueError, match="negative integer powers"):
        t ** -1
    y = tensor(np.array([-1, -5, -3, -2, -1, -2], np.int32), "int32")
    np.testing.assert_array_equal((t ** y).numpy(), [0, 1, -1, 1, 0, 0])
    mixed = tensor(np.array([3, -7, 2, 0, 4, -8], np.int32), "int32")  # both signs in one kernel
    np.testing.assert_array_equal((t ** mixed).numpy(), [8, 1, 1, 1, 0, 0])

