"""PyTorch's in-place forms (``add_ sub_ mul_ div_ zero_ fill_ copy_ clamp_ masked_fill_ scatter_ scatter_add_
scatter_reduce_``, ``x -= y``), ``.data`` and ``requires_grad_()``, under PyTorch's rules: the tensor itself
changes; a leaf that requires grad refuses outside ``no_grad()``."""

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
    "scatter_reduce_": (lambda t: t.scatter_reduce_(1, tensor([[0, 0], [2, 2]]), tensor([[1.0, 2.0], [3.0, 4.0]]),
                                                    "amax", include_self=False),
                        lambda a: np.where([[1, 0, 0], [0, 0, 1]], [[2.0, 0.0, 0.0], [0.0, 0.0, 4.0]], a)),
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
    with pytest.raises(RuntimeError, match="requires grad \\(a leaf"):
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


def test_in_place_on_an_inner_tensor_keeps_its_earlier_uses(rng: np.random.Generator) -> None:
    """``out += identity`` inside a model: the updated tensor carries the new graph; what used it before keeps the
    old value and its gradient path (PyTorch's result)."""
    a = random_array((4,), rng=rng, low=0.5, high=1.5)
    w = tensor(a, requires_grad=True)
    h = w * 2
    early = h * h  # d/dw 8w
    h += w  # h = 3w
    h.mul_(tensor(np.full(4, 2.0, np.float32)))  # h = 6w
    assert h.requires_grad
    (early.sum() + (h * 10).sum()).backward()
    assert w.grad is not None
    a64 = a.astype(np.float64)
    assert_close(early, 4 * a64 * a64)
    assert_close(h, 6 * a64)
    assert_close(w.grad, 8 * a64 + 60)


def test_in_place_from_a_tensor_that_requires_grad(rng: np.random.Generator) -> None:
    """A buffer that did not require grad, updated from one that does, passes gradients on (as in PyTorch)."""
    a = random_array((3,), rng=rng)
    v = tensor(a, requires_grad=True)
    buf = Tensor.zeros(3)
    buf += v * v
    assert buf.requires_grad
    c = Tensor.zeros(3)
    c.copy_(v * 5)
    (buf.sum() + (c * c).sum()).backward()
    assert v.grad is not None
    assert_close(v.grad, 2 * a.astype(np.float64) + 50 * a.astype(np.float64))


def test_inplace_activations_on_inner_tensors(rng: np.random.Generator) -> None:
    import tg.nn.functional as F

    a = random_array((5,), rng=rng, low=-1, high=1)
    w = tensor(a, requires_grad=True)
    h = w * 3
    out = F.relu(h, inplace=True)
    assert out is h
    out.sum().backward()
    assert w.grad is not None
    assert_close(w.grad, np.where(a > 0, 3.0, 0.0))
    with pytest.raises(RuntimeError, match="inplace=False"):
        F.relu(tensor(a, requires_grad=True), inplace=True)


def test_in_place_inside_a_jitted_training_step() -> None:
    """An inner tensor updated in place is an intermediate for tg.jit, not state: the replays train correctly."""
    import tg.nn.functional as F

    w = tensor(np.array([0.5, -0.3, 0.8], np.float32), requires_grad=True)
    opt = tg.optim.SGD([w], lr=0.01)

    @tg.jit
    def step(x: Tensor) -> Tensor:
        opt.zero_grad()
        h = x * w
        h += x
        F.relu(h, inplace=True)
        loss = (h * h).sum()
        loss.backward()
        opt.step()
        return loss

    ref = np.array([0.5, -0.3, 0.8])
    for i in range(5):  # traced, captured, then replayed
        x = np.array([1.0, 2.0, -1.0], np.float32) * (1 + i / 10)
        loss = step(tensor(x)).item()
        h = np.maximum(x * ref + x, 0)
        assert loss == pytest.approx((h * h).sum(), rel=1e-4)
        ref = ref - 0.01 * 2 * h * x
        assert_close(w, ref, msg=f"step {i}")


def test_in_place_on_a_view_is_refused_not_silently_local() -> None:
    """PyTorch's x[0:1].add_(1) changes x (shared storage); tg's views are tensors of their own, so the update is
    refused with the fix instead of leaving x silently unchanged."""
    x = Tensor([1.0, 2.0, 3.0])
    for make in (lambda: x[0:2], lambda: x.reshape(3, 1), lambda: x.expand(2, 3), lambda: x.detach(),
                 lambda: Tensor.ones(2, 3).contiguous().T):
        view = make()
        with pytest.raises(RuntimeError, match="view of another tensor"):
            view.add_(1)
        with pytest.raises(RuntimeError, match="x = x \\+ y"):
            view += 1
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])
    c = x.clone()
    c += 1  # a copy's updates are its own
    np.testing.assert_array_equal(c.numpy(), [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0, 3.0])
    y = x.contiguous()  # already contiguous: x itself, as in PyTorch, so the update reaches x
    y.add_(1)
    assert y is x
    np.testing.assert_array_equal(x.numpy(), [2.0, 3.0, 4.0])
    z = Tensor.zeros(3)
    z += 1  # tensors made by creation functions are no views
    np.testing.assert_array_equal(z.numpy(), [1.0, 1.0, 1.0])
