"""PyTorch's operations that tg composes from its primitives, against numpy: log1p, expm1, erf, the NaN/inf tests,
masked_fill, tril/triu, outer, bmm, roll, norm, clone, prod, cumsum, cumprod, gather, scatter and scatter_add,
with their gradients.  (Sorting, sampling and einsum: :mod:`tg.testing.test_torch_sorting`; in-place forms:
:mod:`tg.testing.test_torch_inplace`.)"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tg
from tg import Tensor
from tg.testing import assert_close, check_grad, random_array, require, tensor

_np_erf = np.vectorize(math.erf, otypes=[np.float64])
UNARY: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "log1p": (np.log1p, lambda x: 1 / (1 + x)),
    "expm1": (np.expm1, np.exp),
    "erf": (_np_erf, lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x)),
}


def _grid(op: str) -> np.ndarray:
    wide = np.linspace(-0.95 if op == "log1p" else -6, 6, 241)
    tiny = np.array([1e-30, -1e-20, 1e-8, -3e-6, 2e-4, -0.4999, 0.4999, 0.5, -0.5, 1.999, 2.0, 2.999, 3.0])
    return np.concatenate([wide, tiny])


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log1p_expm1_erf_are_accurate(op: str, dtype: str) -> None:
    """Relative error of a few ulp everywhere, tiny arguments included (where log(1 + x) would give 0)."""
    require(dtype)
    x = _grid(op).astype(dtype)
    got = getattr(tensor(x, dtype), op)()
    assert got.dtype.name == dtype
    want = UNARY[op][0](x.astype(np.float64))
    rtol = 2e-6 if dtype == "float32" else 5e-15
    np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=rtol, atol=0, err_msg=f"{op} {dtype}")
    assert getattr(tg, op)(tensor(x, dtype)).numpy().tolist() == got.numpy().tolist()


def test_log1p_expm1_erf_edge_values() -> None:
    inf, nan = math.inf, math.nan
    assert_close(tensor([-1.0, inf, nan, -2.0]).log1p(), [-inf, inf, nan, nan])
    assert_close(tensor([-inf, inf, nan, -100.0, 100.0]).expm1(), [-1.0, inf, nan, -1.0, inf])
    assert_close(tensor([-inf, inf, nan, 0.0, -30.0]).erf(), [-1.0, 1.0, nan, 0.0, -1.0])
    assert tensor([1, 2]).log1p().dtype.name == "float32"  # integers compute in float, as PyTorch


def test_log1p_expm1_erf_in_float16() -> None:
    require("float16")
    h = tensor(np.array([-0.3, 1e-3, 2.5], np.float16), "float16")
    for op, (ref, _) in UNARY.items():
        out = getattr(h, op)()
        assert out.dtype.name == "float16"
        assert_close(out, ref(h.numpy().astype(np.float64)), "float16", msg=op)


@pytest.mark.parametrize("op", sorted(UNARY))
def test_log1p_expm1_erf_gradients(op: str, rng: np.random.Generator) -> None:
    ref, deriv = UNARY[op]
    x = random_array((3, 4), "float32", rng, -0.9, 2)
    x[0, 0] = 1e-7  # the series' region
    check_grad(lambda t: getattr(t, op)(), ref, [x], rng, analytic=lambda w, a: [w * deriv(a)])


def test_isnan_isinf_isfinite() -> None:
    x = np.array([0.0, -1.5, math.inf, -math.inf, math.nan, 3e38], np.float32)
    t = tensor(x)
    for op in ("isnan", "isinf", "isfinite"):
        out = getattr(t, op)()
        assert out.dtype.name == "bool"
        assert_close(out, getattr(np, op)(x), "bool", msg=op)
        assert_close(getattr(tg, op)(t), getattr(np, op)(x), "bool", msg=f"tg.{op}")
    i = tensor(np.array([-3, 0, 7], np.int32))
    assert_close(i.isnan(), [False] * 3, "bool")
    assert_close(i.isinf(), [False] * 3, "bool")
    assert_close(i.isfinite(), [True] * 3, "bool")


def test_masked_fill(rng: np.random.Generator) -> None:
    x = random_array((3, 4), rng=rng)
    mask = random_array((1, 4), "bool", rng)
    assert_close(tensor(x).masked_fill(tensor(mask), -math.inf), np.where(mask, -np.inf, x))
    assert_close(tg.masked_fill(tensor(x), tensor(mask), Tensor(2.5)), np.where(mask, 2.5, x))
    xi = random_array((3, 4), "int32", rng)
    out = tensor(xi).masked_fill(tensor(mask), 7.9)  # PyTorch converts the value to the tensor's dtype
    assert out.dtype.name == "int32"
    assert_close(out, np.where(mask, 7, xi), "int32")
    with pytest.raises(TypeError, match="must be a bool tensor"):
        tensor(x).masked_fill(tensor(mask.astype(np.int32)), 0.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        tensor(x[:1]).masked_fill(tensor(random_array((3, 1), "bool", rng)), 0.0)
    check_grad(lambda t: t.masked_fill(tensor(mask), 1.0), lambda a: np.where(mask, 1.0, a), [x], rng)


@pytest.mark.parametrize("diagonal", [-2, -1, 0, 1, 3])
def test_tril_triu(diagonal: int, rng: np.random.Generator) -> None:
    x = random_array((2, 3, 5), rng=rng)
    assert_close(tensor(x).tril(diagonal), np.tril(x, diagonal))
    assert_close(tg.triu(tensor(x), diagonal), np.triu(x, diagonal))
    xi = random_array((4, 3), "int32", rng)
    assert_close(tensor(xi).triu(diagonal), np.triu(xi, diagonal), "int32")
    b = random_array((3, 3), "bool", rng)
    assert_close(tensor(b).tril(diagonal), np.tril(b, diagonal), "bool")
    check_grad(lambda t: t.tril(diagonal), lambda a: np.tril(a, diagonal), [x[0]], rng)


def test_tril_needs_a_matrix() -> None:
    with pytest.raises(ValueError, match="at least 2 dims"):
        tensor([1.0, 2.0]).tril()


def test_outer_and_bmm(rng: np.random.Generator) -> None:
    u, v = random_array((3,), rng=rng), random_array((4,), rng=rng)
    assert_close(tensor(u).outer(tensor(v)), np.outer(u, v))
    assert_close(tg.outer(tensor(u), tensor(v)), np.outer(u, v))
    check_grad(lambda a, b: a.outer(b), np.outer, [u, v], rng)
    a, b = random_array((2, 3, 4), rng=rng), random_array((2, 4, 5), rng=rng)
    assert_close(tensor(a).bmm(tensor(b)), a.astype(np.float64) @ b)
    assert_close(tg.bmm(tensor(a), tensor(b)), a.astype(np.float64) @ b)
    check_grad(lambda x, y: x.bmm(y), lambda x, y: x @ y, [a, b], rng)
    with pytest.raises(ValueError, match="two 1-D"):
        tensor(a).outer(tensor(v))
    with pytest.raises(ValueError, match="two 3-D"):
        tensor(a[0]).bmm(tensor(b))
    with pytest.raises(ValueError, match="do not match"):
        tensor(a).bmm(tensor(a))


@pytest.mark.parametrize(("shifts", "dims"), [(1, 0), (-2, 1), (7, 1), ((1, -1), (0, 1)), (3, None), (0, 0)])
def test_roll(shifts: Any, dims: Any, rng: np.random.Generator) -> None:
    x = random_array((3, 5), rng=rng)
    assert_close(tensor(x).roll(shifts, dims), np.roll(x, shifts, dims))
    assert_close(tg.roll(tensor(x), shifts, dims), np.roll(x, shifts, dims))
    xi = random_array((3, 5), "int32", rng)
    assert_close(tensor(xi).roll(shifts, dims), np.roll(xi, shifts, dims), "int32")
    check_grad(lambda t: t.roll(shifts, dims), lambda a: np.roll(a, shifts, dims), [x], rng)


NORMS: list[Any] = [2, "fro", 1, math.inf, -math.inf, 0, 3, 0.5]


def _np_norm(x: np.ndarray, p: Any, dim: Any, keepdim: bool) -> np.ndarray:
    a = np.abs(x)
    if p == "fro" or p == 2:
        return np.sqrt((a * a).sum(axis=dim, keepdims=keepdim))
    if p == math.inf:
        return a.max(axis=dim, keepdims=keepdim)
    if p == -math.inf:
        return a.min(axis=dim, keepdims=keepdim)
    if p == 0:
        return (x != 0).sum(axis=dim, keepdims=keepdim).astype(np.float64)
    return (a ** p).sum(axis=dim, keepdims=keepdim) ** (1 / p)


@pytest.mark.parametrize("p", NORMS, ids=str)
def test_norm(p: Any, rng: np.random.Generator) -> None:
    x = random_array((3, 4), rng=rng, low=-2, high=2)
    x[0, 1] = 0.0
    x64 = x.astype(np.float64)
    for dim, keepdim in ((None, False), (1, False), (0, True), ((0, 1), False), (-1, True)):
        assert_close(tensor(x).norm(p, dim, keepdim), _np_norm(x64, p, dim, keepdim), msg=f"dim={dim}")
    assert_close(tg.norm(tensor(x), p, dim=1), _np_norm(x64, p, 1, False))
    if p not in (0, math.inf, -math.inf):
        check_grad(lambda t: t.norm(p, dim=1), lambda a: _np_norm(a, p, 1, False), [x[:, 2:]], rng)


def test_norm_gradient_at_zero_is_zero() -> None:
    x = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    x.norm(dim=1).sum().backward()
    assert x.grad is not None
    assert_close(x.grad, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not supported"):
        x.norm("nuc")


def test_clone_copies_value_and_passes_gradients(rng: np.random.Generator) -> None:
    a = random_array((2, 3), rng=rng)
    x = tensor(a, requires_grad=True)
    c = x.clone()
    assert c is not x and c.requires_grad
    (c * 3).sum().backward()
    assert x.grad is not None
    assert_close(x.grad, np.full((2, 3), 3.0))
    y = tensor(a)
    z = tg.clone(y)
    z += 1
    assert_close(y, a)
    assert_close(z, a.astype(np.float64) + 1)


# -- prod, cumsum, cumprod ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "dim"), [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), -2), ((33, 2), 0),
                                            ((1, 70), 1), ((2, 0), 1), ((4,), None), ((2, 3), None)])
def test_prod(shape: tuple[int, ...], dim: Any, rng: np.random.Generator) -> None:
    x = random_array(shape, rng=rng, low=0.5, high=1.5)
    for keepdim in (False, True):
        assert_close(tensor(x).prod(dim, keepdim), np.prod(x.astype(np.float64), axis=dim, keepdims=keepdim),
                     msg=f"keepdim={keepdim}")
    xi = random_array(shape, "int32", rng, -3, 4)
    out = tensor(xi).prod(dim)
    assert out.dtype.name == "int32"
    assert_close(out, np.prod(xi, axis=dim, dtype=np.int32), "int32")  # overflow wraps around, as numpy's
    assert_close(tg.prod(tensor(x), dim), np.prod(x.astype(np.float64), axis=dim))


def test_prod_gradient_with_zeros(rng: np.random.Generator) -> None:
    x = random_array((3, 5), rng=rng, low=0.5, high=1.5)
    x[0, 2] = 0.0  # one zero in a row: the gradient there is the product of the others
    x[1, 1] = x[1, 3] = 0.0  # two zeros: every gradient of the row is 0
    check_grad(lambda t: t.prod(1), lambda a: np.prod(a, axis=1), [x], rng)
    check_grad(lambda t: t.prod(), np.prod, [x[2:]], rng)
    long = random_array((2, 70), rng=rng, low=0.9, high=1.1)  # more than one kernel of the product tree
    check_grad(lambda t: t.prod(1), lambda a: np.prod(a, axis=1), [long], rng)


def test_prod_and_cumsum_of_int64_are_exact() -> None:
    require("int64")
    big = np.array([[3_000_000_019, 3, 1_000_003], [2**40 + 1, -(2**20), 5]], np.int64)
    assert_close(tensor(big, "int64").prod(1), np.prod(big, axis=1), "int64")  # past 2**53: no float round trip
    assert_close(tensor(big, "int64").cumsum(1), np.cumsum(big, axis=1), "int64")
    assert_close(tensor(big, "int64").cumprod(1), np.cumprod(big, axis=1), "int64")
    assert tensor(big, "int64").cumsum(0).dtype.name == "int64"


@pytest.mark.parametrize(("shape", "dim"), [((6,), 0), ((3, 32), 1), ((33, 2), 0), ((2, 100), -1), ((2, 3, 4), 1),
                                            ((1, 1100), 1), ((0, 3), 0), ((3,), -1)])
def test_cumsum_and_cumprod(shape: tuple[int, ...], dim: int, rng: np.random.Generator) -> None:
    x = random_array(shape, rng=rng, low=-1, high=1)
    x64 = x.astype(np.float64)
    assert_close(tensor(x).cumsum(dim), np.cumsum(x64, axis=dim), scale=10)
    assert_close(tg.cumsum(tensor(x), dim=dim), np.cumsum(x64, axis=dim), scale=10)
    near_one = random_array(shape, rng=rng, low=0.95, high=1.05)
    assert_close(tensor(near_one).cumprod(dim), np.cumprod(near_one.astype(np.float64), axis=dim), rtol=1e-3)
    xi = random_array(shape, "int32", rng, -3, 4)
    assert_close(tensor(xi).cumsum(dim), np.cumsum(xi, axis=dim), "int32")
    assert_close(tg.cumprod(tensor(xi), dim), np.cumprod(xi, axis=dim).astype(np.int32), "int32")
    b = random_array(shape, "bool", rng)
    assert_close(tensor(b).cumsum(dim), np.cumsum(b, axis=dim), "int32")


def test_cumsum_keeps_nan_and_inf_in_place() -> None:
    x = np.array([1.0, math.nan, 2.0, math.inf, -1.0], np.float32)
    assert_close(tensor(x).cumsum(0), [1.0, math.nan, math.nan, math.nan, math.nan])
    y = np.array([1.0, 2.0, math.inf, 0.5, 0.0, 3.0], np.float32)
    assert_close(tensor(y).cumprod(0), [1.0, 2.0, math.inf, math.inf, math.nan, math.nan])  # inf * 0 is nan
    with pytest.raises(TypeError, match="needs a dim"):
        tensor(x).cumsum()


@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
def test_scan_gradients(op: str, rng: np.random.Generator) -> None:
    x = random_array((3, 40), rng=rng, low=0.5, high=1.5)
    x[1, 5] = 0.0  # cumprod's gradient through a zero (a division would give nan)
    ref = np.cumsum if op == "cumsum" else np.cumprod
    check_grad(lambda t: getattr(t, op)(1), lambda a: ref(a, axis=1), [x], rng, rtol=5e-3)
    check_grad(lambda t: getattr(t, op)(0), lambda a: ref(a, axis=0), [x[:, :4]], rng)


# -- gather, scatter, scatter_add -----------------------------------------------------------------------------------


def _np_scatter_add(x: np.ndarray, dim: int, index: np.ndarray, src: np.ndarray) -> np.ndarray:
    out = x.copy()
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = index[pos]
        out[tuple(target)] += src[pos]
    return out


def _np_scatter(x: np.ndarray, dim: int, index: np.ndarray, src: np.ndarray) -> np.ndarray:
    out = x.copy()
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = index[pos]
        out[tuple(target)] = src[pos]
    return out


def _np_gather(x: np.ndarray, dim: int, index: np.ndarray) -> np.ndarray:
    """PyTorch's gather: index may be smaller than x outside ``dim`` (it reads x's leading part there)."""
    crop = tuple(slice(None) if i == dim else slice(0, n) for i, n in enumerate(index.shape))
    return np.take_along_axis(x[crop], index, dim)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("dtype", ["float32", "int32", "int64", "bool"])
def test_gather(dim: int, dtype: str, rng: np.random.Generator) -> None:
    require(dtype)
    x = random_array((4, 5), dtype, rng) if dtype != "int64" else rng.integers(-2**60, 2**60, (4, 5))
    d = dim % 2
    index = rng.integers(0, x.shape[d], (3, 4) if d == 0 else (4, 7))
    out = tensor(x, dtype).gather(dim, tensor(index.astype(np.int32)))
    assert out.dtype.name == dtype
    assert_close(out, _np_gather(x, d, index), dtype)
    assert_close(tg.gather(tensor(x, dtype), dim, tensor(index.astype(np.int32))), _np_gather(x, d, index), dtype)


def test_gather_gradient_accumulates_repeated_indices(rng: np.random.Generator) -> None:
    x = random_array((3, 4), rng=rng)
    index = np.array([[0, 0, 2], [3, 3, 3], [1, 0, 1]])
    check_grad(lambda t: t.gather(1, tensor(index.astype(np.int32))), lambda a: _np_gather(a, 1, index), [x], rng)


def test_gather_keeps_nan() -> None:
    x = np.array([[math.nan, 1.0], [-math.inf, 2.0]], np.float32)
    assert_close(tensor(x).gather(1, tensor([[0, 0], [1, 0]])), [[math.nan, math.nan], [2.0, -math.inf]])


@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_add_sums_duplicates(dim: int, rng: np.random.Generator) -> None:
    x = random_array((4, 5), rng=rng)
    index = rng.integers(0, x.shape[dim], (6, 3) if dim == 0 else (3, 8))  # more sources than targets: duplicates
    src = random_array((6, 5) if dim == 0 else (4, 8), rng=rng)
    want = _np_scatter_add(x.astype(np.float64), dim, index, src.astype(np.float64))
    idx = tensor(index.astype(np.int32))
    assert_close(tensor(x).scatter_add(dim, idx, tensor(src)), want)
    assert_close(tg.scatter_add(tensor(x), dim, idx, tensor(src)), want)
    assert_close(tensor(x).scatter(dim, idx, tensor(src), reduce="add"), want)
    check_grad(lambda a, s: a.scatter_add(dim, idx, s),
               lambda a, s: _np_scatter_add(a, dim, index, s), [x, src], rng)


def test_scatter_add_integers_are_exact(rng: np.random.Generator) -> None:
    x = random_array((5,), "int32", rng)
    index = np.array([0, 0, 0, 4, 2, 0], np.int32)
    src = random_array((6,), "int32", rng)
    assert_close(tensor(x).scatter_add(0, tensor(index), tensor(src)), _np_scatter_add(x, 0, index, src), "int32")


def test_scatter_writes_sources(rng: np.random.Generator) -> None:
    x = random_array((4, 5), rng=rng)
    index = np.array([[3, 0, 1, 2, 0], [1, 2, 3, 0, 1]])  # no target twice in a column
    src = random_array((3, 5), rng=rng)
    want = _np_scatter(x.astype(np.float64), 0, index, src.astype(np.float64))
    idx = tensor(index.astype(np.int32))
    assert_close(tensor(x).scatter(0, idx, tensor(src)), want)
    assert_close(tg.scatter(tensor(x), 0, idx, tensor(src)), want)
    assert_close(tensor(x).scatter(0, idx, 9.5), _np_scatter(x, 0, index, np.full(index.shape, 9.5)))
    xi = random_array((4, 5), "int32", rng)
    si = random_array((2, 5), "int32", rng)
    assert_close(tensor(xi).scatter(0, idx, tensor(si)), _np_scatter(xi, 0, index, si), "int32")
    check_grad(lambda a, s: a.scatter(0, idx, s), lambda a, s: _np_scatter(a, 0, index, s), [x, src], rng)


def test_scatter_with_repeated_index_writes_one_of_the_sources() -> None:
    out = tensor([0.0, 0.0]).scatter(0, tensor([1, 1, 1]), tensor([2.0, 7.0, 5.0])).numpy()
    assert out[0] == 0.0 and out[1] in (2.0, 7.0, 5.0)


def test_gather_scatter_errors(rng: np.random.Generator) -> None:
    x = tensor(random_array((3, 4), rng=rng))
    with pytest.raises(IndexError, match="out of range for dim 1 of size 4"):
        x.gather(1, tensor([[0, 4]])).numpy()
    with pytest.raises(IndexError, match="out of range"):
        x.gather(0, tensor([[-1]])).numpy()
    with pytest.raises(IndexError, match="out of range for dim 0 of size 3"):
        x.scatter_add(0, tensor([[5]]), tensor([[1.0]])).numpy()
    with pytest.raises(TypeError, match="integer tensor"):
        x.gather(0, tensor([[0.0]]))
    with pytest.raises(ValueError, match="same number"):
        x.gather(0, tensor([0, 1]))
    with pytest.raises(ValueError, match="larger than self"):
        x.gather(0, tensor(np.zeros((1, 5), np.int32)))
    with pytest.raises(ValueError, match="larger than src"):
        x.scatter_add(0, tensor(np.zeros((2, 2), np.int32)), tensor([[1.0]]))
    with pytest.raises(NotImplementedError, match="reduce='multiply'"):
        x.scatter(0, tensor([[0]]), 1.0, reduce="multiply")
