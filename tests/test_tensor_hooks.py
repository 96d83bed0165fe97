"""Tensor.register_hook, retain_grad and the .grad property, under PyTorch's rules (tg.frontend.tensor_hooks)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import tg
from tg import Tensor


def _leaf(values: list[float]) -> Tensor:
    return Tensor(values, requires_grad=True)


def test_a_hook_sees_the_summed_gradient_once_and_its_result_flows_on() -> None:
    x = _leaf([1.0, 2.0, 3.0])
    y = x * 2
    seen: list[list[float]] = []

    def hook(g: Tensor) -> Tensor:
        seen.append(g.tolist())
        return g * 10

    y.register_hook(hook)
    (y * y + y).sum().backward()  # two uses of y: d/dy = 2y + 1
    assert seen == [[5.0, 9.0, 13.0]]
    np.testing.assert_allclose(x.grad.numpy(), [100.0, 180.0, 260.0])  # 10 * (2y + 1) * dy/dx


def test_a_hook_returning_none_leaves_the_gradient() -> None:
    x = _leaf([1.0, -1.0])
    y = x.exp()
    calls: list[int] = []
    y.register_hook(lambda g: calls.append(1))
    y.sum().backward()
    assert calls == [1]
    np.testing.assert_allclose(x.grad.numpy(), np.exp([1.0, -1.0]), rtol=1e-6)


def test_hooks_run_in_order_each_given_the_previous_result() -> None:
    x = _leaf([1.0, 2.0])
    y = x * 1
    order: list[tuple[str, list[float]]] = []
    y.register_hook(lambda g: order.append(("first", g.tolist())) or g + 1)
    y.register_hook(lambda g: order.append(("second", g.tolist())) or g * 3)
    y.sum().backward()
    assert order == [("first", [1.0, 1.0]), ("second", [2.0, 2.0])]
    assert x.grad.tolist() == [6.0, 6.0]


def test_a_leaf_hook_changes_what_accumulates_into_grad() -> None:
    w = _leaf([1.0, 2.0])
    handle = w.register_hook(lambda g: g.clamp(max=1.0))
    (w * 5).sum().backward()
    assert w.grad.tolist() == [1.0, 1.0]
    (w * 0.5).sum().backward()
    assert w.grad.tolist() == [1.5, 1.5]
    handle.remove()
    (w * 5).sum().backward()
    assert w.grad.tolist() == [6.5, 6.5]
    handle.remove()  # twice is harmless


def test_a_hook_on_the_root_gets_the_initial_gradient() -> None:
    x = _leaf([3.0])
    loss = (x * x).sum()
    seen: list[float] = []
    loss.register_hook(lambda g: seen.append(g.item()) or g * 2)
    loss.backward()
    assert seen == [1.0] and x.grad.tolist() == [12.0]


def test_handle_as_a_context_manager_and_hooks_off_the_path() -> None:
    x = _leaf([1.0, 2.0])
    a, b = x * 2, x * 3
    calls: list[str] = []
    b.register_hook(lambda g: calls.append("b"))
    with a.register_hook(lambda g: calls.append("a") or g * 0):
        a.sum().backward()  # b is not on the path: its hook does not run
    assert calls == ["a"] and x.grad.tolist() == [0.0, 0.0]
    a = x * 2
    a.sum().backward()
    assert calls == ["a"]


def test_hooks_run_without_recording_the_graph() -> None:
    x, scale = _leaf([1.0, 2.0]), _leaf([3.0, 3.0])
    modes: list[bool] = []

    def hook(g: Tensor) -> Tensor:
        modes.append(Tensor.no_grad)
        out = g * scale
        assert not out.requires_grad
        return out

    (x * 1).register_hook(hook)
    y = x * 1
    y.register_hook(hook)
    y.sum().backward()
    assert modes == [True] and x.grad.tolist() == [3.0, 3.0] and scale.grad is None


def test_bad_hooks_and_bad_results_are_refused() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).register_hook(lambda g: g)
    with pytest.raises(TypeError, match="callable"):
        _leaf([1.0]).register_hook(3)  # type: ignore[arg-type]
    for bad, error, match in ((lambda g: g.sum(), ValueError, r"returned \(\)"),
                              (lambda g: g.double(), ValueError, "float64"),
                              (lambda g: g.numpy(), TypeError, "returned ndarray")):
        x = _leaf([1.0, 2.0])
        y = x * 2
        y.register_hook(bad)
        with pytest.raises(error, match=match):
            y.sum().backward()


def test_retain_grad_keeps_an_inner_gradient() -> None:
    x = _leaf([1.0, 2.0, 3.0])
    y = x * x
    z = y * 2
    y.retain_grad()
    assert y.retains_grad and not z.retains_grad and not x.retains_grad and not y.is_leaf
    z.sum().backward(retain_graph=True)
    assert y.grad.tolist() == [2.0, 2.0, 2.0] and x.grad.tolist() == [4.0, 8.0, 12.0]
    z.sum().backward()
    assert y.grad.tolist() == [4.0, 4.0, 4.0]  # accumulates, as a leaf's does
    with pytest.warns(UserWarning, match="retain_grad"):
        assert z.grad is None


def test_retain_grad_sees_what_the_hooks_returned() -> None:
    x = _leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()  # before the hook, yet PyTorch fills .grad after every hook
    y.register_hook(lambda g: g * 5)
    y.sum().backward()
    assert y.grad.tolist() == [5.0, 5.0] and x.grad.tolist() == [15.0, 15.0]


def test_retain_grad_rules() -> None:
    w = _leaf([1.0])
    w.retain_grad()  # a leaf keeps its gradient anyway: nothing to do
    assert not w.retains_grad and w.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).retain_grad()
    with tg.no_grad():
        v = w * 2
    assert v.is_leaf and not v.requires_grad
    assert Tensor([1.0]).is_leaf and (Tensor([1.0]) * 2).is_leaf and w.detach().is_leaf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert v.grad is None and w.grad is None  # leaves: no warning


def test_hooks_and_in_place_updates_follow_pytorch() -> None:
    """Hooks registered before an in-place update see the gradient of the earlier value; after it, of the new one;
    retain_grad keeps the newest."""
    x = _leaf([1.0, 2.0])
    y = x * 2
    seen: dict[str, list[float]] = {}
    y.register_hook(lambda g: seen.update(before=g.tolist()))
    y.mul_(3)
    y.register_hook(lambda g: seen.update(after=g.tolist()))
    y.retain_grad()
    (y * Tensor([1.0, 10.0])).sum().backward()
    assert seen == {"after": [1.0, 10.0], "before": [3.0, 30.0]}
    assert y.grad.tolist() == [1.0, 10.0] and x.grad.tolist() == [6.0, 60.0]


def test_grad_assignment_is_checked() -> None:
    w = _leaf([1.0, 2.0])
    w.grad = Tensor([0.5, 0.5])
    assert w.grad.tolist() == [0.5, 0.5]
    w.grad = None
    assert w.grad is None
    with pytest.raises(ValueError, match="shape"):
        w.grad = Tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="dtype float64"):
        w.grad = Tensor([1.0, 2.0], dtype="float64")
    with pytest.raises(TypeError, match="Tensor or None"):
        w.grad = [1.0, 2.0]  # type: ignore[assignment]


def test_a_tensor_with_hooks_pickles_without_them() -> None:
    w = _leaf([1.0, 2.0])
    w.register_hook(lambda g: g * 0)
    copy = pickle.loads(pickle.dumps(w))
    (copy * 2).sum().backward()
    assert copy.grad.tolist() == [2.0, 2.0]
