"""PyTorch's in-place forms (``add_ sub_ mul_ div_ zero_ fill_ copy_ clamp_ masked_fill_ scatter_ scatter_add_``,
``x -= y``), ``.data`` and ``requires_grad_()``, under PyTorch's rules: the tensor itself changes; a leaf that requires
grad refuses outside ``no_grad()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tg
from tg import Tensor
from tg.testing import assert_close, random_array, tensor

Update = Callable[[Tensor], Any]
UPDATES: dict[str, tuple[Update, Callable[[np.ndarray], np.ndarray]]] = {
    "add_": (lambda t: t.add_(tensor([1.0, -2.0, 0.5])), lambda a: a + [1.0, -2.0, 0.5]),
    "add_alpha": (lambda t: t.add_(tensor([1.0, -2.0, 0.5]), alpha=2), lambda a: a + 2 * np.array([1.0, -2.0, 0.5])),
    "sub_": (lambda t: t.sub_(0.25), lambda a: a - 0.25),
    "sub_alpha": (lambda t: t.sub_(tensor([1.0, 1.0, 1.0]), alpha=0.5), lambda a: a - 0.5),
    "mul_": (lambda t: t.mul_(tensor([[2.0], [3.0]])), lambda a: a * [[2.0], [3.0]]),
    "div_": (lambda t: t.div_(4), lambda a: a / 4),
    "zero_": (lambda t: t.zero_(), np.zeros_like),
    "fill_": (lambda t: t.fill_(1.5), lambda a: np.full_like(a, 1.5)),
    "fill_tensor": (lambda t: t.fill_(tensor([2.5])), lambda a: np.full_like(a, 2.5)),
    "copy_": (lambda t: t.copy_(tensor([7, 8, 9])), lambda a: np.broadcast_to([7.0, 8.0, 9.0], a.shape)),
    "clamp_": (lambda t: t.clamp_(-0.2, 0.3), lambda a: np.clip(a, -0.2, 0.3)),
    "clamp_min": (lambda t: t.clamp_(min=0.0), lambda a: np.maximum(a, 0.0)),
    "masked_fill_": (lambda t: t.masked_fill_(tensor([True, False, True]), -1.0),
                     lambda a: np.where([True, False, True], -1.0, a)),
    "scatter_add_": (lambda t: t.scatter_add_(1, tensor([[0, 0], [2, 1]]), tensor([[1.0, 2.0], [3.0, 4.0]])),
                     lambda a: a + [[3.0, 0.0, 0.0], [0.0, 4.0, 3.0]]),
    "scatter_": (lambda t: t.scatter_(1, tensor([[2], [0]]), 5.0), lambda a: np.where([[0, 0, 1], [1, 0, 0]], 5.0, a)),
}


@pytest.mark.parametrize("name", sorted(UPDATES))
def test_in_place_methods_update_the_tensor(name: str, rng: np.random.Generator) -> None:
    update, ref = UPDATES[name]
    a = random_array((2, 3), rng=rng)
    t = tensor(a)
    held = t
    out = update(t)
    assert out is t and held is t  # the same object, returned for chaining
    assert t.dtype.name == "float32" and t.shape == (2, 3)
    assert_close(t, ref(a.astype(np.float64)), msg=name)


@pytest.mark.parametrize("name", sorted(UPDATES))
def test_in_place_on_a_leaf_that_requires_grad(name: str, rng: np.random.Generator) -> None:
    """PyTorch's rule: refused while gradients are recorded, allowed under no_grad (an optimizer's step)."""
    update, ref = UPDATES[name]
    a = random_array((2, 3), rng=rng)
    p = tensor(a, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad, while gradients are recorded"):
        update(p)
    assert_close(p, a)  # unchanged
    with tg.no_grad():
        update(p)
    assert p.requires_grad
    assert_close(p, ref(a.astype(np.float64)))


def test_in_place_keeps_dtype_and_shape(rng: np.random.Generator) -> None:
    i = tensor(np.array([1, 2, 3], np.int32))
    i.add_(2).mul_(3)
    assert i.dtype.name == "int32"
    assert_close(i, [9, 12, 15], "int32")
    with pytest.raises(TypeError, match=r"x.add_\(\) would make x \(int32\) float32"):
        i.add_(0.5)
    i.fill_(2.9)  # fill_ and copy_ convert, as PyTorch's: toward zero
    assert_close(i, [2, 2, 2], "int32")
    i.copy_(tensor([1.7, -2.7, 3.2]))
    assert_close(i, [1, -2, 3], "int32")
    i -= tensor([1, 1, 1])
    assert_close(i, [0, -3, 2], "int32")
    b = tensor([True, False])
    b.zero_()
    assert_close(b, [False, False], "bool")
    x = tensor(random_array((3,), rng=rng))
    with pytest.raises(ValueError, match="cannot change x's shape"):
        x.add_(tensor(random_array((2, 3), rng=rng)))
    with pytest.raises(ValueError, match="one-element tensor"):
        x.fill_(tensor([1.0, 2.0]))


def test_data_is_the_value_outside_autograd(rng: np.random.Generator) -> None:
    a = random_array((3,), rng=rng)
    p = tensor(a, requires_grad=True)
    d = p.data
    assert not d.requires_grad and d.shape == p.shape
    p.data.mul_(0.5)  # PyTorch's idiom for a raw update: it changes p
    assert_close(p, a.astype(np.float64) * 0.5)
    assert p.requires_grad
    p.data.zero_()
    assert_close(p, np.zeros(3))
    p.data = tensor(np.array([1.0, 2.0, 3.0], np.float32))
    assert_close(p, [1.0, 2.0, 3.0])
    (p * p).sum().backward()  # still a leaf with gradients
    assert p.grad is not None
    assert_close(p.grad, [2.0, 4.0, 6.0])
    with pytest.raises(TypeError, match="needs a tensor"):
        p.data = [1.0, 2.0, 3.0]  # type: ignore[assignment]


def test_requires_grad_() -> None:
    x = tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    (x * x).sum().backward()
    assert x.grad is not None
    assert_close(x.grad, [2.0, 4.0])
    x.requires_grad_(False)
    assert not x.requires_grad
    with pytest.raises(RuntimeError, match="only float tensors"):
        tensor([1, 2]).requires_grad_()
    y = tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        y.requires_grad_(False)


def test_grad_zero_() -> None:
    """``p.grad.zero_()``, the older way to clear a gradient."""
    p = tensor([1.0, 2.0], requires_grad=True)
    (p * 3).sum().backward()
    assert p.grad is not None
    p.grad.zero_()
    (p * p).sum().backward()
    assert_close(p.grad, [2.0, 4.0])
