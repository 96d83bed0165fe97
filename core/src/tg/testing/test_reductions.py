"""Reductions against numpy: every axis of 1-4 D tensors, tuples of axes, keepdim, dtypes, stability, NaN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tg import Tensor, dtypes
from tg.testing import (
    DTYPE_NAMES,
    FLOAT_DTYPES,
    INT_DTYPES,
    assert_close,
    case_id,
    random_array,
    reference,
    require,
    tensor,
)

NUMERIC = tuple(d for d in DTYPE_NAMES if d != "bool")
Axis = int | tuple[int, ...] | None

# (shape, axis): every axis of 1-4 D tensors, negative axes, tuples of axes, and all axes
CASES: list[tuple[tuple[int, ...], Axis]] = [
    ((7,), None), ((7,), 0), ((7,), -1),
    ((3, 5), None), ((3, 5), 0), ((3, 5), 1), ((3, 5), -1), ((3, 5), (0, 1)),
    ((2, 3, 4), None), ((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), -2), ((2, 3, 4), (0, 2)),
    ((2, 3, 4), (1, 2)), ((2, 3, 4), (0, 1, 2)),
    ((2, 3, 2, 3), None), ((2, 3, 2, 3), 0), ((2, 3, 2, 3), 1), ((2, 3, 2, 3), 2), ((2, 3, 2, 3), 3),
    ((2, 3, 2, 3), -1), ((2, 3, 2, 3), (0, 2)), ((2, 3, 2, 3), (1, 3)), ((2, 3, 2, 3), (0, 1, 3)),
    ((1, 4, 1), 0), ((1, 4, 1), (0, 2)),
]
CASE_IDS = [f"{s}-axis{a}".replace(" ", "") for s, a in CASES]

REDUCE: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "sum": (lambda t, **kw: t.sum(**kw), np.sum),
    "mean": (lambda t, **kw: t.mean(**kw), np.mean),
    "max": (lambda t, **kw: t.max(**kw), np.max),
    "min": (lambda t, **kw: t.min(**kw), np.min),
}


@pytest.mark.parametrize(("shape", "axis"), CASES, ids=CASE_IDS)
def test_reduce(shape: tuple[int, ...], axis: Axis, rng: np.random.Generator) -> None:
    """sum, mean, max and min over the case's axes, with and without keepdim."""
    x = random_array(shape, "float32", rng)
    t = tensor(x, "float32")
    for op, (tg_fn, np_fn) in REDUCE.items():
        for keepdim in (False, True):
            out = tg_fn(t, axis=axis, keepdim=keepdim)
            assert out.dtype == dtypes.float32, f"{op} gave {out.dtype}"
            assert_close(out, np_fn(x.astype(np.float64), axis=axis, keepdims=keepdim), msg=f"{op} keepdim={keepdim}")
        if axis is None:
            assert_close(tg_fn(t), np_fn(x.astype(np.float64)), msg=f"{op} default axis")


@pytest.mark.parametrize("dtype", NUMERIC)
def test_reduce_dtypes(dtype: str, rng: np.random.Generator) -> None:
    """Max/min keep the dtype; sum of floats keeps it, of integers gives an integer; mean is for floats."""
    require(dtype)
    x = random_array((4, 6), dtype, rng)
    for op in ("sum", "max", "min", "mean"):
        if op == "mean" and dtype not in FLOAT_DTYPES:
            continue
        tg_fn, np_fn = REDUCE[op]
        for axis in (None, 0, 1):
            out = tg_fn(tensor(x, dtype), axis=axis)
            name = out.dtype.name
            if op == "sum" and dtype in INT_DTYPES:
                assert name in INT_DTYPES, f"sum of {dtype} gave {name}"
            else:
                assert name == dtype, f"{op} of {dtype} gave {name}"
            assert_close(out, np_fn(x.astype(np.float64), axis=axis), name, msg=f"{op} axis={axis}")


def test_sum_of_bool_counts(rng: np.random.Generator) -> None:
    x = random_array((5, 7), "bool", rng)
    total = tensor(x, "bool").sum()
    assert total.dtype.name in INT_DTYPES, f"sum of bool gave {total.dtype}, expected an integer dtype"
    assert_close(total, np.sum(x), "int32")
    assert_close(tensor(x, "bool").sum(axis=1), np.sum(x, axis=1), "int32")
    assert_close(tensor(x, "bool").float().mean(), x.mean())


def test_float16_large_reductions(rng: np.random.Generator) -> None:
    require("float16")
    x = random_array((64, 64), "float16", rng)
    t, x64 = tensor(x, "float16"), x.astype(np.float64)
    assert_close(t.sum(), x64.sum(), "float16", scale=64)
    assert_close(t.sum(axis=0), x64.sum(axis=0), "float16", scale=8)
    assert_close(t.mean(axis=1), x64.mean(axis=1), "float16")
    assert_close(t.max(), x64.max(), "float16")
    assert_close(t.softmax(), reference.softmax(x64), "float16")


def test_long_float32_sum(rng: np.random.Generator) -> None:
    x = random_array((4099,), "float32", rng)
    assert_close(tensor(x, "float32").sum(), x.astype(np.float64).sum(), scale=64)
    assert_close(tensor(x, "float32").mean(), x.astype(np.float64).mean())
    y = random_array((3, 1030), "float32", rng)
    assert_close(tensor(y, "float32").sum(axis=1), y.astype(np.float64).sum(axis=1), scale=32)


def test_max_min_of_negative_values(rng: np.random.Generator) -> None:
    """The reduction's start value must not leak in: all-negative max and all-positive min."""
    x = random_array((3, 4), "float32", rng, -5, -1)
    assert_close(tensor(x, "float32").max(axis=1), x.max(axis=1))
    assert_close(tensor(-x, "float32").min(axis=0), (-x).min(axis=0))
    i = random_array((3, 4), "int32", rng, -50, -10)
    assert_close(tensor(i, "int32").max(), i.max(), "int32")
    inf = np.array([[-np.inf, -np.inf], [np.inf, 1.0]], np.float32)
    assert_close(tensor(inf, "float32").max(axis=1), np.array([-np.inf, np.inf]))
    assert_close(tensor(inf, "float32").min(axis=1), np.array([-np.inf, 1.0]))


def test_nan_propagates_through_max_min_sum() -> None:
    x = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]], np.float32)
    t = tensor(x, "float32")
    assert_close(t.max(axis=1), np.array([np.nan, 3.0]))
    assert_close(t.min(axis=1), np.array([np.nan, 1.0]))
    assert_close(t.sum(axis=1), np.array([np.nan, 6.0]))
    assert np.isnan(t.max().item())


ARG_CASES: list[tuple[tuple[int, ...], int | None]] = [
    ((7,), None), ((7,), 0), ((3, 5), None), ((3, 5), 0), ((3, 5), 1), ((3, 5), -1), ((2, 3, 4), None),
    ((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), 2), ((2, 3, 2, 3), 1), ((2, 3, 2, 3), 3), ((2, 3, 2, 3), None),
]


@pytest.mark.parametrize(("shape", "axis"), ARG_CASES, ids=[f"{s}-axis{a}".replace(" ", "") for s, a in ARG_CASES])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin(op: str, shape: tuple[int, ...], axis: int | None, rng: np.random.Generator) -> None:
    """Indices into the flattened tensor for axis=None, like numpy and PyTorch; an integer dtype."""
    x = random_array(shape, "float32", rng)
    t = tensor(x, "float32")
    out = getattr(t, op)(axis=axis)
    assert out.dtype.name in INT_DTYPES, f"{op} gave {out.dtype}"
    want = getattr(np, op)(x, axis=axis)
    assert_close(out, want, "int64")
    if axis is not None:
        assert_close(getattr(t, op)(axis=axis, keepdim=True), np.expand_dims(want, axis), "int64")
    else:
        assert_close(getattr(t, op)(), want, "int64")


@pytest.mark.parametrize("dtype", NUMERIC)
def test_argmax_dtypes_and_ties(dtype: str) -> None:
    """Ties resolve to the first occurrence (numpy's and PyTorch's rule)."""
    require(dtype)
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [0, 0, 1, 1]]).astype(dtype)
    t = tensor(x, dtype)
    assert_close(t.argmax(axis=1), np.array([1, 0, 2]), "int64")
    assert_close(t.argmin(axis=1), np.array([3, 0, 0]), "int64")
    assert_close(t.argmax(axis=0), np.array([1, 0, 0, 1]), "int64")
    assert_close(t.argmax(), np.argmax(x), "int64")
    assert_close(t.argmin(), np.argmin(x), "int64")


STD_CASES: list[tuple[tuple[int, ...], Axis]] = [
    ((7,), None), ((3, 5), 0), ((3, 5), 1), ((2, 3, 4), (0, 2)), ((2, 3, 4), -1), ((2, 3, 2, 3), None),
    ((2, 3, 2, 3), (1, 3)),
]


@pytest.mark.parametrize(("shape", "axis"), STD_CASES, ids=[f"{s}-axis{a}".replace(" ", "") for s, a in STD_CASES])
@pytest.mark.parametrize("op", ["std", "var"])
def test_std_var(op: str, shape: tuple[int, ...], axis: Axis, rng: np.random.Generator) -> None:
    """``correction`` is the ddof; 1 (Bessel's correction) is the default, like PyTorch."""
    x = random_array(shape, "float32", rng, -2, 3)
    t, x64 = tensor(x, "float32"), x.astype(np.float64)
    np_fn = getattr(np, op)
    for correction in (0, 1):
        for keepdim in (False, True):
            out = getattr(t, op)(axis=axis, keepdim=keepdim, correction=correction)
            assert_close(out, np_fn(x64, axis=axis, ddof=correction, keepdims=keepdim),
                         msg=f"correction={correction} keepdim={keepdim}")
    assert_close(getattr(t, op)(axis=axis), np_fn(x64, axis=axis, ddof=1), msg="default correction")


@pytest.mark.parametrize(("shape", "axis"), [((6,), None), ((6,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), -1),
                                             ((2, 3, 4), (0, 2)), ((2, 3, 4), None)], ids=case_id)
def test_logsumexp(shape: tuple[int, ...], axis: Axis, rng: np.random.Generator) -> None:
    x = random_array(shape, "float32", rng, -3, 3)
    for offset in (0.0, 1000.0, -1000.0):  # stable for large magnitudes
        xo = (x + offset).astype(np.float32)
        t = tensor(xo, "float32")
        for keepdim in (False, True):
            want = reference.logsumexp(xo.astype(np.float64), axis=axis, keepdims=keepdim)
            assert_close(t.logsumexp(axis=axis, keepdim=keepdim), want, rtol=1e-5, atol=1e-4,
                         msg=f"offset={offset} keepdim={keepdim}")


@pytest.mark.parametrize(("shape", "axis"), [((6,), -1), ((3, 5), -1), ((3, 5), 0), ((2, 3, 4), 1), ((2, 3, 4), -1),
                                             ((2, 3, 4), 0), ((2, 1, 3, 4), 2)], ids=case_id)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(op: str, shape: tuple[int, ...], axis: int, rng: np.random.Generator) -> None:
    x = random_array(shape, "float32", rng, -4, 4)
    np_fn = getattr(reference, op)
    assert_close(getattr(tensor(x, "float32"), op)(axis=axis), np_fn(x.astype(np.float64), axis=axis))
    big = (x * 100).astype(np.float32)  # needs the max subtracted to stay finite
    assert_close(getattr(tensor(big, "float32"), op)(axis=axis), np_fn(big.astype(np.float64), axis=axis),
                 rtol=1e-4, atol=1e-4)
    if axis == -1:
        assert_close(getattr(tensor(x, "float32"), op)(), np_fn(x.astype(np.float64)), msg="default axis")


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_softmax_dtypes(dtype: str, rng: np.random.Generator) -> None:
    require(dtype)
    x = random_array((4, 9), dtype, rng, -4, 4)
    out = tensor(x, dtype).softmax()
    assert out.dtype == getattr(dtypes, dtype)
    assert_close(out, reference.softmax(x.astype(np.float64)), dtype)
    assert_close(tensor(x, dtype).log_softmax(axis=0), reference.log_softmax(x.astype(np.float64), axis=0), dtype)


def test_reduce_empty() -> None:
    t = Tensor(np.zeros((0, 3), np.float32))
    assert_close(t.sum(), np.float64(0.0))
    assert_close(t.sum(axis=0), np.zeros(3))
    assert t.sum(axis=1).shape == (0,)
    assert_close(t.sum(axis=0, keepdim=True), np.zeros((1, 3)))


def test_reduce_zero_dim() -> None:
    t = tensor(np.array(2.5, np.float32), "float32")
    assert_close(t.sum(), np.float64(2.5))
    assert_close(t.max(), np.float64(2.5))
    assert_close(t.mean(), np.float64(2.5))


def test_reductions_of_views(rng: np.random.Generator) -> None:
    x = random_array((4, 5, 6), "float32", rng)
    t, x64 = tensor(x, "float32"), x.astype(np.float64)
    assert_close(t.permute(2, 0, 1).sum(axis=1), x64.transpose(2, 0, 1).sum(axis=1))
    assert_close(t[::2, 1:, ::-3].max(axis=(0, 2)), x64[::2, 1:, ::-3].max(axis=(0, 2)))
    assert_close(t.flip(0).sum(axis=0), x64[::-1].sum(axis=0))
    assert_close(t[:, :1].expand(4, 7, 6).sum(axis=1), np.broadcast_to(x64[:, :1], (4, 7, 6)).sum(axis=1))
    assert_close(t.pad(((1, 0), (0, 2), (1, 1))).sum(axis=2), np.pad(x64, ((1, 0), (0, 2), (1, 1))).sum(axis=2))
    assert_close(t.reshape(20, 6).min(axis=0), x64.reshape(20, 6).min(axis=0))


def test_reductions_of_elementwise(rng: np.random.Generator) -> None:
    a, b, c = (random_array((6, 7), "float32", rng) for _ in range(3))
    ta, tb, tc = (tensor(v, "float32") for v in (a, b, c))
    a64 = a.astype(np.float64)
    assert_close((ta * tb + tc).relu().sum(), np.maximum(a64 * b + c, 0).sum())
    assert_close(ta.exp().sum(axis=1), np.exp(a64).sum(axis=1))
    assert_close(ta - ta.mean(axis=1, keepdim=True), a64 - a64.mean(axis=1, keepdims=True))
    assert_close((ta - ta.max(axis=0, keepdim=True)).exp().sum(axis=0), np.exp(a64 - a64.max(axis=0)).sum(axis=0))
    assert_close(ta.sum(axis=0).max(), a64.sum(axis=0).max())
    assert_close((ta.sum(axis=1, keepdim=True) * tb).mean(axis=0), (a64.sum(axis=1, keepdims=True) * b).mean(axis=0))


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_argmax_argmin_with_nan_give_the_first_nan(dtype: str) -> None:
    """numpy's answer: a NaN is both the maximum and the minimum, and its first position is returned (it used to
    be the axis length: an index out of range)."""
    require(dtype)
    x = np.array([[1.0, np.nan, 3.0, np.nan], [4.0, 2.0, 0.0, 1.0], [np.nan, 5.0, -1.0, 7.0]], dtype)
    t = tensor(x, dtype)
    for op in ("argmax", "argmin"):
        np.testing.assert_array_equal(getattr(t, op)(1).numpy(), getattr(np, op)(x, 1), err_msg=op)
        np.testing.assert_array_equal(getattr(t, op)(0).numpy(), getattr(np, op)(x, 0), err_msg=op)
        assert int(getattr(t, op)().numpy()) == int(getattr(np, op)(x)) == 1


def test_sizes_past_32_bit_indices_are_right_or_refused_before_anything_runs() -> None:
    """Indices are int32: 2**31 + 10 ones summed used to give 0.0.  A reduction of a constant is folded (the
    right answer, no kernel); a real reduction that long, or a buffer that large, is refused before it runs."""
    assert float(Tensor.ones(2**31 + 10).sum().numpy()) == float(np.float32(2**31 + 10))
    assert float(Tensor.zeros(10**12).sum().numpy()) == 0.0  # used to run for minutes on numpy
    np.testing.assert_array_equal(Tensor.full((3, 5), 7, dtype="int32").sum(1).numpy(), [35, 35, 35])
    with pytest.raises(ValueError, match=r"2,147,483,658 elements, and tg indexes with 32-bit integers"):
        (Tensor.ones(2**31 + 10) * Tensor([2.0])).sum().numpy()  # not a constant: a kernel would run
    with pytest.raises(ValueError, match="arange: 2,147,483,658 elements"):
        Tensor.arange(2**31 + 10)  # refused before numpy allocates it
    assert float(Tensor.ones(2**20).sum().numpy()) == 2**20



def test_max_and_min_over_a_dim_give_values_and_indices() -> None:
    """PyTorch's ``values, indices = t.max(1)`` (it used to unpack the rows of the values silently);
    ``axis=`` and ``amax`` give the values alone, ``t.max(other)`` the elementwise maximum."""
    x = np.array([[1.0, 5.0, 3.0], [7.0, -2.0, 7.0]], np.float32)
    t = tensor(x, "float32")
    values, indices = t.max(1)
    np.testing.assert_array_equal(values.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    low = t.min(dim=0, keepdim=True)
    np.testing.assert_array_equal(low.values.numpy(), [[1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(low.indices.numpy(), [[0, 1, 0]])
    np.testing.assert_array_equal(t.max(axis=1).numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(t.amin(0).numpy(), [1.0, -2.0, 3.0])
    assert float(t.max().numpy()) == 7.0
    np.testing.assert_array_equal(t.max(tensor(np.full((2, 3), 4.0, np.float32), "float32")).numpy(),
                                  np.maximum(x, 4.0))
    with pytest.raises(TypeError, match="takes one dim"):
        t.max((0, 1))

