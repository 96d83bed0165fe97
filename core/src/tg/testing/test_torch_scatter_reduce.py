"""PyTorch's ``scatter_reduce`` (sum, prod, mean, amax, amin; with and without ``include_self``), its in-place and
module-level forms and its gradients, against a numpy oracle that reduces each target's values one by one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import tg
from tg.testing import assert_close, check_grad, random_array, require, tensor

REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _groups(x: np.ndarray, dim: int, index: np.ndarray) -> dict[tuple[int, ...], list[tuple[int, ...]]]:
    """Target position -> the positions of the sources landing there."""
    groups: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = int(index[pos])
        groups.setdefault(tuple(target), []).append(pos)
    return groups


def _reduce(values: list[Any], how: str, is_float: bool) -> Any:
    if how == "sum":
        return sum(values)
    if how == "prod":
        return math.prod(values)
    if how == "mean":
        return sum(values) / len(values) if is_float else sum(values) // len(values)
    if is_float and any(math.isnan(v) for v in values):
        return math.nan
    return max(values) if how == "amax" else min(values)


def _np_scatter_reduce(x: np.ndarray, dim: int, index: np.ndarray, src: np.ndarray, how: str,
                       include_self: bool = True) -> np.ndarray:
    is_float = x.dtype.kind == "f"
    out = x.astype(np.float64) if is_float else x.astype(object)
    for target, sources in _groups(x, dim, index).items():
        values = [src[p].item() for p in sources] + ([x[target].item()] if include_self else [])
        out[target] = _reduce(values, how, is_float)
    return out if is_float else np.array([int(v) for v in out.reshape(-1)]).reshape(x.shape)


def _np_gradients(w: np.ndarray, x: np.ndarray, src: np.ndarray, dim: int, index: np.ndarray, how: str,
                  include_self: bool) -> list[np.ndarray]:
    """d(sum(out * w)) / d(x) and / d(src), the derivative of each target's reduction (ties share evenly)."""
    gx, gs = w.copy(), np.zeros_like(src)
    for target, sources in _groups(x, dim, index).items():
        values = [src[p] for p in sources] + ([x[target]] if include_self else [])
        result = _reduce(values, how, True)
        if how == "sum":
            d = [1.0] * len(values)
        elif how == "mean":
            d = [1.0 / len(values)] * len(values)
        elif how == "prod":
            d = [math.prod(values[:i] + values[i + 1:]) for i in range(len(values))]
        else:
            ties = sum(v == result for v in values)
            d = [float(v == result) / ties for v in values]
        for p, di in zip(sources, d):
            gs[p] = w[target] * di
        gx[target] = w[target] * d[-1] if include_self else 0.0
    return [gx, gs]


def _case(dim: int, rng: np.random.Generator, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (4, 5) target, more sources than targets (so indices repeat) and some targets no source reaches."""
    x = random_array((4, 5), dtype, rng)
    index = rng.integers(0, x.shape[dim] - 1, (6, 3) if dim == 0 else (3, 8))  # the last slot stays untouched
    src = random_array((7, 5) if dim == 0 else (4, 9), dtype, rng)  # larger than the index: only its corner is read
    return x, index, src


@pytest.mark.parametrize("how", REDUCTIONS)
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_reduce_floats(how: str, include_self: bool, dim: int, rng: np.random.Generator) -> None:
    x, index, src = _case(dim % 2, rng)
    want = _np_scatter_reduce(x, dim % 2, index, src, how, include_self)
    idx = tensor(index.astype(np.int32))
    got = tensor(x).scatter_reduce(dim, idx, tensor(src), how, include_self=include_self)
    assert got.dtype.name == "float32"
    assert_close(got, want)
    assert_close(tg.scatter_reduce(tensor(x), dim, idx, tensor(src), how, include_self=include_self), want)


@pytest.mark.parametrize("how", REDUCTIONS)
@pytest.mark.parametrize("dtype", ["int32", "int8", "int64"])
def test_scatter_reduce_integers_are_exact(how: str, dtype: str, rng: np.random.Generator) -> None:
    """Integer "mean" is floor division (PyTorch's rule): -7 / 2 gives -4."""
    require(dtype)
    for include_self in (True, False):
        x, index, src = _case(0, rng, dtype)
        x[0, 0], src[0, 0], src[1, 0], index[:2, 0] = -4, -3, 0, 0  # a negative mean that floors: -7 // 3
        if how == "prod":
            x, src = np.clip(x, -3, 3), np.clip(src, -3, 3)  # no wraparound (the oracle computes in Python ints)
        want = _np_scatter_reduce(x, 0, index, src, how, include_self)
        got = tensor(x, dtype).scatter_reduce(0, tensor(index.astype(np.int32)), tensor(src, dtype), how,
                                              include_self=include_self)
        assert got.dtype.name == dtype
        assert_close(got, want, dtype)


def test_scatter_reduce_bools() -> None:
    x, idx, src = tensor([True, True, False, True]), tensor([0, 1, 1]), tensor([False, True, False])
    for how, want in (("sum", [True, True, False, True]), ("prod", [False, False, False, True]),
                      ("amax", [True, True, False, True]), ("amin", [False, False, False, True])):
        assert x.scatter_reduce(0, idx, src, how).numpy().tolist() == want, how
    assert x.scatter_reduce(0, idx, src, "amax", include_self=False).numpy().tolist() == [False, True, False, True]


def test_scatter_reduce_amax_amin_with_nan_and_infinities() -> None:
    x = tensor([0.0, 1.0, math.nan, 5.0])
    idx = tensor([0, 0, 1, 2, 3])
    src = tensor([math.nan, -math.inf, 2.0, 7.0, math.inf])
    assert_close(x.scatter_reduce(0, idx, src, "amax"), [math.nan, 2.0, math.nan, math.inf])
    assert_close(x.scatter_reduce(0, idx, src, "amin"), [math.nan, 1.0, math.nan, 5.0])
    assert_close(x.scatter_reduce(0, idx, src, "amin", include_self=False), [math.nan, 2.0, 7.0, math.inf])


def test_scatter_reduce_in_place_and_empty_index(rng: np.random.Generator) -> None:
    x, index, src = _case(1, rng)
    t = tensor(x)
    assert t.scatter_reduce_(1, tensor(index.astype(np.int32)), tensor(src), "amax", include_self=False) is t
    assert_close(t, _np_scatter_reduce(x, 1, index, src, "amax", include_self=False))
    empty = tensor(np.zeros((0, 5), np.int32))
    assert_close(tensor(x).scatter_reduce(0, empty, tensor(src), "prod"), x)


def test_scatter_reduce_in_place_on_an_inner_tensor_carries_the_gradients() -> None:
    x = tensor([1.0, 2.0, 3.0], requires_grad=True)
    src = tensor([4.0, 5.0], requires_grad=True)
    y = x * 2
    y.scatter_reduce_(0, tensor([0, 0]), src, "mean", include_self=False)  # y[0] = (4 + 5) / 2
    (y * tensor([1.0, 10.0, 100.0])).sum().backward()
    assert_close(y, [4.5, 4.0, 6.0])
    assert_close(x.grad, [0.0, 20.0, 200.0])
    assert_close(src.grad, [0.5, 0.5])


@pytest.mark.parametrize("how", REDUCTIONS)
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_gradients(how: str, include_self: bool, rng: np.random.Generator) -> None:
    x, index, src = _case(1, rng)
    idx = tensor(index.astype(np.int32))
    check_grad(lambda a, s: a.scatter_reduce(1, idx, s, how, include_self=include_self),
               lambda a, s: _np_scatter_reduce(a, 1, index, s, how, include_self),
               [x, src], rng, analytic=lambda w, a, s: _np_gradients(w, a, s, 1, index, how, include_self))


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("how", ["amax", "amin"])
def test_scatter_reduce_ties_share_the_gradient_evenly(how: str, include_self: bool,
                                                       rng: np.random.Generator) -> None:
    x = np.array([[3.0, 1.0, 2.0, 0.0]])
    index = np.array([[0, 0, 1, 1, 2, 2]])
    src = np.array([[3.0, 3.0, 1.0, 5.0, 2.0, 2.0]]) * (1 if how == "amax" else -1)
    x = x * (1 if how == "amax" else -1)  # slot 0: a three-way tie with self; slot 2: two sources (and self) tie
    idx = tensor(index.astype(np.int32))
    check_grad(lambda a, s: a.scatter_reduce(1, idx, s, how, include_self=include_self),
               lambda a, s: _np_scatter_reduce(a, 1, index, s, how, include_self),
               [x, src], rng, analytic=lambda w, a, s: _np_gradients(w, a, s, 1, index, how, include_self))


@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_prod_gradient_through_zeros(include_self: bool, rng: np.random.Generator) -> None:
    """One zero among a target's values: the others' gradients are 0 and the zero's is their product; two zeros:
    every gradient is 0 (no division by zero anywhere)."""
    x = np.array([[2.0, 0.0, 3.0, 0.5, 4.0]])
    index = np.array([[0, 0, 1, 1, 2, 2, 2, 3]])
    src = np.array([[0.0, 1.5, 2.0, -1.0, 0.0, 0.0, 3.0, 0.25]])
    idx = tensor(index.astype(np.int32))
    check_grad(lambda a, s: a.scatter_reduce(1, idx, s, "prod", include_self=include_self),
               lambda a, s: _np_scatter_reduce(a, 1, index, s, "prod", include_self),
               [x, src], rng, analytic=lambda w, a, s: _np_gradients(w, a, s, 1, index, "prod", include_self))


def test_scatter_reduce_errors(rng: np.random.Generator) -> None:
    x = tensor(random_array((3, 4), rng=rng))
    src = tensor(random_array((3, 4), rng=rng))
    with pytest.raises(ValueError, match="reduce must be one of sum, prod, mean, amax, amin"):
        x.scatter_reduce(0, tensor([[0]]), src, "max")
    with pytest.raises(TypeError, match="same dtype"):
        x.scatter_reduce(0, tensor([[0]]), src.double(), "sum")
    with pytest.raises(TypeError, match="src must be a tensor"):
        x.scatter_reduce(0, tensor([[0]]), 1.0, "sum")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mean"):
        tensor([True]).scatter_reduce(0, tensor([0]), tensor([False]), "mean")
    with pytest.raises(IndexError, match="out of range for dim 0 of size 3"):
        x.scatter_reduce(0, tensor([[3]]), src, "amax").numpy()
    with pytest.raises(ValueError, match="larger than src"):
        x.scatter_reduce(0, tensor(np.zeros((4, 1), np.int32)), src, "sum")
    with pytest.raises(TypeError, match="integer tensor"):
        x.scatter_reduce(0, tensor([[0.0]]), src, "sum")
