"""PyTorch's names on Tensor: ``dim=``/``keepdim=`` on reductions, ``clamp(min=, max=)``, ``size()``, ``dim()``,
``float(t)``/``int(t)``/``bool(t)`` and ``randint(low, high, size)``, checked against numpy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tg import Tensor
from tg.testing import assert_close, random_array, supports, tensor


def _np_logsumexp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


NP_REDUCE: dict[str, Callable[..., Any]] = {
    "sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min, "logsumexp": _np_logsumexp,
    "std": lambda x, axis, keepdims: np.std(x, axis=axis, ddof=1, keepdims=keepdims),
    "var": lambda x, axis, keepdims: np.var(x, axis=axis, ddof=1, keepdims=keepdims),
}


@pytest.mark.parametrize("op", sorted(NP_REDUCE))
def test_reductions_take_dim_and_keepdim(op: str, rng: np.random.Generator) -> None:
    a = random_array((3, 4, 2), rng=rng)
    ref = NP_REDUCE[op]
    t = tensor(a)
    a64 = a.astype(np.float64)
    for dim in (1, -1, (0, 2)):
        for keepdim in (False, True):
            want = ref(a64, axis=dim, keepdims=keepdim)
            assert_close(getattr(t, op)(dim=dim, keepdim=keepdim), want, msg=f"{op}(dim={dim}, keepdim={keepdim})")
            assert_close(getattr(t, op)(axis=dim, keepdim=keepdim), want, msg=f"{op}(axis={dim})")
            assert_close(getattr(t, op)(dim, keepdim), want, msg=f"{op}({dim}, {keepdim})")
    with pytest.raises(TypeError, match="both dim=1 and axis=1"):
        getattr(t, op)(dim=1, axis=1)


def test_var_std_correction_and_unbiased(rng: np.random.Generator) -> None:
    a = random_array((4, 5), rng=rng)
    t = tensor(a)
    assert_close(t.var(dim=1, unbiased=False), np.var(a.astype(np.float64), axis=1))
    assert_close(t.std(dim=0, correction=0), np.std(a.astype(np.float64), axis=0))
    assert_close(t.var(1, correction=2), np.var(a.astype(np.float64), axis=1, ddof=2))
    with pytest.raises(TypeError, match="correction and unbiased"):
        t.var(dim=1, correction=0, unbiased=False)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family_takes_dim(op: str, rng: np.random.Generator) -> None:
    a = random_array((3, 4), rng=rng).astype(np.float64)
    t = tensor(a.astype(np.float32))
    for dim in (0, 1, -1):
        e = np.exp(a - a.max(axis=dim, keepdims=True))
        want = e / e.sum(axis=dim, keepdims=True)
        want = np.log(want) if op == "log_softmax" else want
        assert_close(getattr(t, op)(dim=dim), want, msg=f"{op}(dim={dim})")
        assert_close(getattr(t, op)(axis=dim), want, msg=f"{op}(axis={dim})")
        assert_close(getattr(t, op)(dim), want, msg=f"{op}({dim})")
    assert_close(getattr(t, op)(), getattr(t, op)(dim=-1).numpy())  # the last dim by default


@pytest.mark.parametrize("op", ["argmax", "argmin", "any", "all"])
def test_index_and_logical_reductions_take_dim(op: str, rng: np.random.Generator) -> None:
    a = random_array((3, 4), rng=rng) if op.startswith("arg") else random_array((3, 4), "bool", rng=rng)
    t = tensor(a)
    for dim in (0, -1):
        want = getattr(np, op)(a, axis=dim, keepdims=True)
        assert_close(getattr(t, op)(dim=dim, keepdim=True), want, "int32", msg=f"{op}(dim={dim})")
        assert_close(getattr(t, op)(axis=dim, keepdim=True), want, "int32", msg=f"{op}(axis={dim})")


def test_max_and_min_take_dim_by_keyword(rng: np.random.Generator) -> None:
    a = random_array((3, 4), rng=rng)
    t = tensor(a)
    values, indices = t.max(dim=1, keepdim=True)
    assert_close(values, a.max(axis=1, keepdims=True))
    assert_close(indices, a.argmax(axis=1)[:, None], "int32")
    assert_close(t.min(dim=0).values, a.min(axis=0))


def test_clamp_takes_min_and_max(rng: np.random.Generator) -> None:
    a = random_array((4, 5), rng=rng, low=-2, high=2)
    t = tensor(a)
    assert_close(t.clamp(min=-0.5, max=0.75), np.clip(a, -0.5, 0.75))
    assert_close(t.clamp(min=0.1), np.maximum(a, 0.1))
    assert_close(t.clamp(max=0.1), np.minimum(a, 0.1))
    assert_close(t.clip(-0.5, 0.75), np.clip(a, -0.5, 0.75))
    low = random_array((5,), rng=rng, low=-1, high=0)
    assert_close(t.clamp(min=tensor(low), max=1.0), np.minimum(np.maximum(a, low), 1.0))
    assert_close(t.clamp(min=1.0, max=0.0), np.zeros_like(a))  # min > max: max wins, as in PyTorch
    with pytest.raises(TypeError, match="at least one of min and max"):
        t.clamp()


def test_size_and_dim() -> None:
    t = Tensor.zeros(2, 3, 4)
    assert t.size() == (2, 3, 4)
    assert (t.size(0), t.size(1), t.size(-1)) == (2, 3, 4)
    assert t.dim() == 3
    assert Tensor(1.5).dim() == 0 and Tensor(1.5).size() == ()
    with pytest.raises(IndexError, match="out of range"):
        t.size(3)
    with pytest.raises(IndexError, match="no dimensions"):
        Tensor(1.5).size(0)


def test_python_scalars_from_one_element_tensors() -> None:
    assert float(Tensor([[2.5]])) == 2.5
    assert int(Tensor([7])) == 7
    assert int(Tensor(-2.75)) == -2  # as Python's int(): toward zero
    assert isinstance(float(Tensor(3)), float) and float(Tensor(3)) == 3.0
    assert bool(Tensor([True])) is True and bool(Tensor(0.0)) is False
    assert float(Tensor([1.0, 2.0, 3.0]).sum()) == 6.0
    for convert in (float, int, bool):
        with pytest.raises(ValueError, match="2 elements"):
            convert(Tensor([1.0, 2.0]))


def test_randint_forms() -> None:
    Tensor.manual_seed(3)
    x = Tensor.randint(3, 10, (50, 4)).numpy()
    assert x.shape == (50, 4) and x.min() >= 3 and x.max() < 10 and len(np.unique(x)) > 3
    y = Tensor.randint(5, (200,)).numpy()
    assert y.shape == (200,) and y.min() >= 0 and y.max() < 5 and set(np.unique(y).tolist()) == set(range(5))
    z = Tensor.randint(low=-2, high=2, size=(30,))
    assert z.dtype.is_int and -2 <= z.numpy().min() and z.numpy().max() < 2
    assert Tensor.randint(4, size=(3,)).shape == (3,)
    if supports("int64"):
        assert Tensor.randint(0, 4, (3,), dtype="int64").dtype.name == "int64"
    with pytest.raises(TypeError, match="needs a size"):
        Tensor.randint(0, 5)
    with pytest.raises(ValueError, match="must be larger than low"):
        Tensor.randint(5, 5, (2,))


def test_backward_returns_none_as_in_pytorch() -> None:
    """At the prompt ``loss.backward()`` echoes nothing (it used to echo the loss)."""
    x = Tensor([1.0, 2.0], requires_grad=True)
    returned: Any = (x * x).sum().backward()  # type: ignore[func-returns-value]
    assert returned is None and x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
