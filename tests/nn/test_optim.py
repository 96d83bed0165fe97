"""Optimizers against numpy implementations of the published update rules (PyTorch's documented algorithms).

Each test runs several steps on a quadratic loss whose gradient numpy computes exactly the same way,
with parameters of several shapes updated together, and compares every step to float64 numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tg import Tensor, optim

SHAPES = [(3, 4), (4,), (2, 1, 3), ()]
STEPS = 6


def problem(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    target = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    scale = [rng.uniform(0.5, 2.0, s).astype(np.float32) for s in SHAPES]
    return start, target, scale


def grad_np(p: np.ndarray, target: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return 2 * scale * (p - target)  # of sum(scale * (p - target)**2)


def run_tg(make: Callable[..., optim.Optimizer], steps: int = STEPS, **kwargs: Any) -> list[list[np.ndarray]]:
    start, target, scale = problem()
    params = [Tensor(s, requires_grad=True) for s in start]
    opt = make(params, **kwargs)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(((p - Tensor(t)) ** 2 * Tensor(c)).sum() for p, t, c in zip(params, target, scale))
        assert isinstance(loss, Tensor)
        loss.backward()
        opt.step()
        history.append([p.numpy() for p in params])
    return history


def sgd_np(steps: int, lr: float, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
           nesterov: bool = False) -> list[list[np.ndarray]]:
    start, target, scale = problem()
    ps = [s.astype(np.float64) for s in start]
    bufs: list[np.ndarray | None] = [None] * len(ps)
    history = []
    for _ in range(steps):
        for i, p in enumerate(ps):
            g = grad_np(p, target[i], scale[i])
            if weight_decay:
                g = g + weight_decay * p
            if momentum:
                prev = bufs[i]
                b = g if prev is None else momentum * prev + (1 - dampening) * g
                bufs[i] = b
                g = g + momentum * b if nesterov else b
            ps[i] = p - lr * g
        history.append([p.copy() for p in ps])
    return history


def adam_np(steps: int, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
            weight_decay: float = 0.0, decoupled: bool = False) -> list[list[np.ndarray]]:
    start, target, scale = problem()
    ps = [s.astype(np.float64) for s in start]
    ms = [np.zeros_like(p) for p in ps]
    vs = [np.zeros_like(p) for p in ps]
    history = []
    for t in range(1, steps + 1):
        for i, old in enumerate(ps):
            g = grad_np(old, target[i], scale[i])
            p = old * (1 - lr * weight_decay) if decoupled else old
            if weight_decay and not decoupled:
                g = g + weight_decay * p
            ms[i] = betas[0] * ms[i] + (1 - betas[0]) * g
            vs[i] = betas[1] * vs[i] + (1 - betas[1]) * g * g
            m_hat = ms[i] / (1 - betas[0] ** t)
            v_hat = vs[i] / (1 - betas[1] ** t)
            ps[i] = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append([p.copy() for p in ps])
    return history


def assert_same(got: list[list[np.ndarray]], want: list[list[np.ndarray]]) -> None:
    assert len(got) == len(want)
    for step, (g, w) in enumerate(zip(got, want)):
        for i, (a, b) in enumerate(zip(g, w)):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=f"step {step + 1}, parameter {i}")


@pytest.mark.parametrize("kwargs", [
    {"lr": 0.05},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.8, "dampening": 0.3},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 0.2, "momentum": 0.9, "nesterov": True},
])
def test_sgd_matches_numpy(kwargs: dict[str, Any]) -> None:
    assert_same(run_tg(optim.SGD, **kwargs), sgd_np(STEPS, **kwargs))


@pytest.mark.parametrize("kwargs", [
    {"lr": 0.1},
    {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 0.1, "weight_decay": 0.1},
])
def test_adam_matches_numpy(kwargs: dict[str, Any]) -> None:
    assert_same(run_tg(optim.Adam, **kwargs), adam_np(STEPS, **kwargs))


@pytest.mark.parametrize("kwargs", [{"lr": 0.1}, {"lr": 0.1, "weight_decay": 0.5, "betas": (0.5, 0.9)}])
def test_adamw_matches_numpy(kwargs: dict[str, Any]) -> None:
    want = adam_np(STEPS, decoupled=True, **{"weight_decay": 1e-2, **kwargs})
    assert_same(run_tg(optim.AdamW, **kwargs), want)


def test_parameters_without_gradient_are_skipped_and_keep_their_own_step_count() -> None:
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * a).sum().backward()
    opt.step()  # b has no gradient: unchanged, and its Adam step count stays 0
    np.testing.assert_array_equal(b.numpy(), [3.0])
    assert [int(s["step"]) for s in opt.state[:1]] == [1] and "step" not in opt.state[1]
    opt.zero_grad()
    (b * b).sum().backward()
    opt.step()  # b's first step: bias correction for t=1 moves it by lr exactly
    np.testing.assert_allclose(b.numpy(), [2.9], rtol=1e-6)
    np.testing.assert_allclose(a.numpy(), [0.9, 1.9], rtol=1e-6)


def test_many_parameters_are_updated_in_chunks() -> None:
    params = [Tensor([float(i)], requires_grad=True) for i in range(optim.MAX_FUSED * 2 + 3)]
    opt = optim.SGD(params, lr=0.5, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        loss = sum((p * p).sum() for p in params)
        assert isinstance(loss, Tensor)
        loss.backward()
        opt.step()
    want = []
    for x in range(len(params)):  # SGD with momentum by hand: gradient 2x, buffer g then 0.9 b + g
        b1 = 2.0 * x
        x1 = x - 0.5 * b1
        b2 = 0.9 * b1 + 2.0 * x1
        want.append(x1 - 0.5 * b2)
    np.testing.assert_allclose([p.item() for p in params], want, rtol=1e-6, atol=1e-6)


def test_step_realizes_parameters_and_state() -> None:
    p = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    opt = optim.AdamW([p], lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        (p * p).sum().backward()
        opt.step()
        assert p.lazydata.base.realized is not None  # no graph carried into the next step
        assert all(opt.state[0][k].lazydata.base.realized is not None for k in ("exp_avg", "exp_avg_sq"))


def test_optimizer_argument_errors() -> None:
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(ValueError, match="requires_grad=False"):
        optim.SGD([Tensor([1.0], requires_grad=False)])
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([Tensor([1.0])], nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([Tensor([1.0])], betas=(1.0, 0.9))
    p = Tensor([1.0])
    optim.SGD([p, p])  # duplicates are updated once
    assert p.requires_grad is True


def test_a_parameter_or_state_replaced_between_steps_is_read_anew() -> None:
    """A step reads the flat vector the previous step wrote only while the tensors still hold its views."""
    a, b = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0], requires_grad=True)
    opt = optim.SGD([a, b], lr=0.5, momentum=0.5)

    def step() -> None:
        opt.zero_grad()
        ((a * a).sum() + (b * b).sum()).backward()  # gradient 2p
        opt.step()

    step()  # a = [0, 0], momentum [2, 4]; b = [0], momentum [6]
    np.testing.assert_allclose(a.numpy(), [0.0, 0.0])
    a.assign(Tensor([10.0, 20.0]))
    opt.state[b]["momentum_buffer"].assign(Tensor([0.0]))
    step()  # a: buf = 0.5*[2, 4] + [20, 40] = [21, 42] -> [-0.5, -1]; b: buf = 0 + 0 -> 0
    np.testing.assert_allclose(a.numpy(), [-0.5, -1.0])
    np.testing.assert_allclose(b.numpy(), [0.0])
    np.testing.assert_allclose(opt.state[b]["momentum_buffer"].numpy(), [0.0])
    step()  # unchanged since: the step's own vectors are read (a: buf = 0.5*[21, 42] + [-1, -2])
    np.testing.assert_allclose(opt.state[a]["momentum_buffer"].numpy(), [9.5, 19.0])
    np.testing.assert_allclose(a.numpy(), [-5.25, -10.5])
