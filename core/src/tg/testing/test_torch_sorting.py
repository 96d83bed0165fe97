"""sort, argsort, topk, multinomial and einsum, as PyTorch has them, against numpy (and exact expectations)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import tg
from tg import Tensor
from tg.testing import assert_close, check_grad, random_array, require, tensor


def _np_sort(x: np.ndarray, axis: int, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """A stable sort with PyTorch's NaN rule (NaN after every number; first when descending)."""
    moved = np.moveaxis(x, axis, -1)
    idx = np.empty(moved.shape, np.int64)
    for pos in np.ndindex(*moved.shape[:-1]):
        row = moved[pos].tolist()

        def key(i: int, row: list[Any] = row) -> tuple[int, Any]:
            v = row[i]
            if isinstance(v, float) and math.isnan(v):
                return (0, 0) if descending else (1, 0)
            return (1, -v) if descending else (0, v)

        idx[pos] = sorted(range(len(row)), key=key)
    values = np.take_along_axis(moved, idx, -1)
    return np.moveaxis(values, -1, axis), np.moveaxis(idx, -1, axis)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dim", [-1, 0])
def test_sort_floats_with_ties_nan_and_inf(descending: bool, dim: int, rng: np.random.Generator) -> None:
    x = random_array((5, 9), rng=rng)
    x[0, 3], x[1, 2], x[2, 5], x[4, 0] = math.nan, math.inf, -math.inf, math.nan
    x[3, :4] = 0.25  # ties keep their order
    x[:, 1] = x[:, 4]
    values, indices = tensor(x).sort(dim, descending)
    want_v, want_i = _np_sort(x, dim, descending)
    assert_close(values, want_v)
    assert indices.dtype.name == "int32"
    assert_close(indices, want_i, "int32")
    assert_close(tensor(x).argsort(dim, descending), want_i, "int32")
    assert_close(tg.argsort(tensor(x), dim, descending), want_i, "int32")
    assert_close(tg.sort(tensor(x), dim, descending).values, want_v)


@pytest.mark.parametrize("dtype", ["int32", "int64", "int8", "uint8", "bool", "float16", "float64"])
def test_sort_dtypes(dtype: str, rng: np.random.Generator) -> None:
    require(dtype)
    x = random_array((3, 7), dtype, rng) if dtype != "int64" else rng.integers(-2**62, 2**62, (3, 7))
    for descending in (False, True):
        values, indices = tensor(x, dtype).sort(-1, descending)
        want_v, want_i = _np_sort(x, -1, descending)
        assert values.dtype.name == dtype
        assert_close(values, want_v, dtype)
        assert_close(indices, want_i, "int32")


def test_sort_of_a_vector_and_a_scalar() -> None:
    assert tensor([3, 1, 2]).sort().values.tolist() == [1, 2, 3]
    assert tensor([3, 1, 2]).sort().indices.tolist() == [1, 2, 0]
    assert tensor(5.0).sort().values.item() == 5.0
    assert tensor(5.0).argsort().item() == 0


@pytest.mark.parametrize(("k", "largest"), [(1, True), (3, True), (3, False), (7, True), (0, True)])
def test_topk(k: int, largest: bool, rng: np.random.Generator) -> None:
    x = random_array((4, 7), rng=rng)
    x[1, 2] = math.nan  # the largest, as in PyTorch
    x[2, 1] = x[2, 5]
    values, indices = tensor(x).topk(k, largest=largest)
    want_v, want_i = _np_sort(x, -1, largest)
    assert_close(values, want_v[:, :k])
    assert_close(indices, want_i[:, :k], "int32")
    if k <= 4:
        v0, i0 = tg.topk(tensor(x), k, dim=0, largest=largest)
        want_v0, want_i0 = _np_sort(x, 0, largest)
        assert_close(v0, want_v0[:k])
        assert_close(i0, want_i0[:k], "int32")


def test_topk_errors() -> None:
    with pytest.raises(ValueError, match="k=4 must be an int from 0"):
        tensor([1.0, 2.0, 3.0]).topk(4)


def test_sort_and_topk_gradients(rng: np.random.Generator) -> None:
    x = random_array((3, 6), rng=rng)  # distinct values: the gradient is a permutation of the output's
    check_grad(lambda t: t.sort(1).values, lambda a: np.sort(a, 1), [x], rng)
    check_grad(lambda t: t.sort(0, descending=True).values, lambda a: -np.sort(-a, 0), [x], rng)
    check_grad(lambda t: t.topk(2).values, lambda a: -np.sort(-a, 1)[:, :2], [x], rng)


def test_sort_refuses_absurd_lengths() -> None:
    with pytest.raises(ValueError, match=r"O\(n\^2\).*topk\(k\).*np.sort"):
        Tensor.zeros(2, 20000).sort()
    with pytest.raises(ValueError, match="refuses k > 1024"):
        Tensor.zeros(1, 20000).topk(2000)


@pytest.mark.parametrize("largest", [True, False])
def test_topk_of_a_long_dim_selects(largest: bool, rng: np.random.Generator) -> None:
    """More than 1024 elements and a small k: k rounds of selection, same answers (NaN, inf, ties, dtypes)."""
    x = rng.integers(-20, 20, (4, 1500)).astype(np.float32)  # many ties
    x[0, [3, 50, 700]] = math.nan
    x[1, 10], x[1, 11] = math.inf, -math.inf
    x[2, :] = math.nan
    x[3, 5:1400] = math.nan
    values, indices = tensor(x).topk(8, largest=largest)
    want_v, want_i = _np_sort(x, -1, largest)
    assert_close(values, want_v[:, :8])
    assert_close(indices, want_i[:, :8], "int32")
    xi = random_array((2, 1200), "int32", rng, -3, 3)
    values, indices = tg.topk(tensor(xi), 6, largest=largest)
    want_v, want_i = _np_sort(xi, -1, largest)
    assert_close(values, want_v[:, :6], "int32")
    assert_close(indices, want_i[:, :6], "int32")
    xb = rng.random((1, 1100)) < 0.003
    values, indices = tensor(xb).topk(5, dim=1, largest=largest)
    want_v, want_i = _np_sort(xb, -1, largest)
    assert_close(values, want_v[:, :5], "bool")
    assert_close(indices, want_i[:, :5], "int32")


def test_topk_of_a_long_dim_gradient(rng: np.random.Generator) -> None:
    x = random_array((2, 1100), rng=rng)
    check_grad(lambda t: t.topk(3).values, lambda a: -np.sort(-a, 1)[:, :3], [x], rng,
               analytic=lambda w, a: [_top_grad(w, a, 3)])


def _top_grad(w: np.ndarray, a: np.ndarray, k: int) -> np.ndarray:
    g = np.zeros_like(a)
    np.put_along_axis(g, np.argsort(-a, axis=1, kind="stable")[:, :k], w, axis=1)
    return g


# -- multinomial ----------------------------------------------------------------------------------------------------


def test_multinomial_with_replacement_follows_the_weights() -> None:
    weights = np.array([0.1, 0.0, 0.6, 0.3, 0.0], np.float32)
    draws = tensor(weights * 7).multinomial(20000, replacement=True).numpy()  # unnormalized weights
    assert draws.shape == (20000,) and draws.dtype == np.int32
    freq = np.bincount(draws, minlength=5) / draws.size
    assert freq[1] == 0 and freq[4] == 0
    np.testing.assert_allclose(freq, weights, atol=0.015)


def test_multinomial_without_replacement() -> None:
    rows = np.tile(np.array([[1.0, 0.0, 1.0, 2.0]], np.float32), (4000, 1))
    draws = tg.multinomial(tensor(rows), 3).numpy()
    assert draws.shape == (4000, 3)
    assert (np.sort(draws, axis=1) == [0, 2, 3]).all()  # distinct, never the zero weight
    first = np.bincount(draws[:, 0], minlength=4) / 4000
    np.testing.assert_allclose(first, [0.25, 0.0, 0.25, 0.5], atol=0.03)


def test_multinomial_from_a_long_row_without_replacement() -> None:
    weights = np.zeros(3000, np.float32)
    weights[[5, 1234, 2999]] = [1.0, 2.0, 3.0]
    draws = tensor(weights).multinomial(3).numpy()
    assert sorted(draws.tolist()) == [5, 1234, 2999]


def test_multinomial_errors() -> None:
    with pytest.raises(ValueError, match="fewer than 2 non-zero"):
        tensor([1.0, 0.0, 0.0]).multinomial(2).numpy()
    with pytest.raises(ValueError, match="finite and not negative"):
        tensor([1.0, -1.0]).multinomial(1, replacement=True).numpy()
    with pytest.raises(ValueError, match="without replacement from 2"):
        tensor([1.0, 1.0]).multinomial(3)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        Tensor.ones(2, 2, 2).multinomial(1)


# -- einsum ---------------------------------------------------------------------------------------------------------

EINSUM: list[tuple[str, list[tuple[int, ...]]]] = [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("bij,bjk", [(2, 3, 4), (2, 4, 5)]),
    ("ii", [(4, 4)]), ("ii->i", [(4, 4)]), ("iij->j", [(3, 3, 2)]), ("i,j->ij", [(3,), (4,)]), ("i,i", [(5,), (5,)]),
    ("ij->", [(3, 4)]), ("ji", [(3, 4)]), ("ij->ji", [(3, 4)]), ("...ij->...ji", [(2, 3, 4)]),
    ("...j,j->...", [(2, 3, 4), (4,)]), ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]), ("ab,ab->ab", [(2, 3), (2, 3)]), ("Ab,bC->AC", [(2, 3), (3, 2)]),
    ("i,j,k->ijk", [(2,), (3,), (2,)]), ("ij,j->i", [(3, 4), (1,)]),
]


@pytest.mark.parametrize(("equation", "shapes"), EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum(equation: str, shapes: list[tuple[int, ...]], rng: np.random.Generator) -> None:
    arrays = [random_array(s, rng=rng) for s in shapes]
    want = np.einsum(equation, *(a.astype(np.float64) for a in arrays))
    assert_close(tg.einsum(equation, *(tensor(a) for a in arrays)), want, scale=4)
    assert_close(tg.einsum(equation, [tensor(a) for a in arrays]), want, scale=4)


def test_einsum_integers_and_gradients(rng: np.random.Generator) -> None:
    a, b = random_array((3, 4), "int32", rng), random_array((4, 2), "int32", rng)
    assert_close(tg.einsum("ij,jk->ik", tensor(a), tensor(b)), a.astype(np.int64) @ b, "int32")
    x, y = random_array((2, 3, 4), rng=rng), random_array((2, 4, 5), rng=rng)
    check_grad(lambda p, q: tg.einsum("bij,bjk->bik", p, q), lambda p, q: np.einsum("bij,bjk->bik", p, q), [x, y],
               rng)
    m = random_array((4, 4), rng=rng)
    check_grad(lambda p: tg.einsum("ii->i", p), lambda p: np.einsum("ii->i", p), [m], rng)
    check_grad(lambda p: tg.einsum("ij->j", p), lambda p: np.einsum("ij->j", p), [m], rng)


@pytest.mark.parametrize(("equation", "shapes", "message"), [
    ("ij,jk", [(3, 4)], "names 2 operand"), ("i->j", [(3,)], "appear in no operand"),
    ("i2", [(3, 2)], "invalid character"), ("ij", [(3,)], "names 2 dims but the tensor has 1"),
    ("ij,jk->ik", [(3, 4), (3, 2)], "size 4 in one operand and 3"), ("i->ii", [(3,)], "repeats a subscript"),
    ("i->->i", [(3,)], "more than one '->'"), ("ii", [(3, 4)], "needs equal sizes"),
    ("i.j", [(3, 4)], "invalid character"),
])
def test_einsum_errors(equation: str, shapes: list[tuple[int, ...]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tg.einsum(equation, *(Tensor.ones(*s) for s in shapes))
