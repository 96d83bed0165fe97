"""tg.jit: replays give the same values as running the function, state moves on, misuse is refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tg
from tg import JitError, Tensor, nn, no_grad, optim
from tg.engine.device import live_buffer_count
from tg.schedule import scheduler as schedule_module


def _refuse_scheduling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a replay scheduled work")

    monkeypatch.setattr("tg.engine.realize.create_schedule", refuse)


def sgd_step(w: Tensor, loss: Tensor, lr: float) -> Tensor:
    """One plain SGD update of ``w`` on ``loss``, written with assign (as a jitted step must)."""
    loss.backward()
    with no_grad():
        assert w.grad is not None
        w.assign(w.detach() - w.grad * lr)
    w.grad = None
    return loss


def test_replays_read_new_arguments_and_return_fresh_results(monkeypatch: pytest.MonkeyPatch) -> None:
    w = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3)).realize()

    @tg.jit
    def f(x: Tensor) -> tuple[Tensor, Tensor]:
        return (x @ w).relu(), (x * 2).sum()

    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((4, 2)).astype(np.float32) for _ in range(6)]
    inputs = [Tensor(x).realize() for x in xs]
    results = []
    for i, x in enumerate(inputs):
        if i == 3:  # two warm-up calls and the capture, then replays only
            _refuse_scheduling(monkeypatch)
        results.append(f(x))
    monkeypatch.undo()
    assert f.replays == 3
    for x, (a, b) in zip(xs, results):  # earlier results are not overwritten by later replays
        np.testing.assert_allclose(a.numpy(), np.maximum(x @ w.numpy(), 0), rtol=1e-6)
        np.testing.assert_allclose(b.item(), (x * 2).sum(), rtol=1e-5)


def test_training_step_with_assign_matches_eager() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 5)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    w0 = rng.standard_normal((5, 3)).astype(np.float32)

    def step(w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return sgd_step(w, ((x @ w - y) ** 2).mean(), 0.1)

    w_eager, w_jit = Tensor(w0.copy(), requires_grad=True), Tensor(w0.copy(), requires_grad=True)
    jitted = tg.jit(lambda x, y: step(w_jit, x, y))
    for _ in range(6):
        want = step(w_eager, Tensor(x), Tensor(y)).item()
        got = jitted(Tensor(x), Tensor(y)).item()
        assert got == pytest.approx(want, rel=1e-5)
        np.testing.assert_allclose(w_jit.numpy(), w_eager.numpy(), rtol=1e-5, atol=1e-6)
    assert jitted.replays == 3


@pytest.mark.parametrize("make", [lambda ps: optim.Adam(ps, lr=0.01), lambda ps: optim.AdamW(ps, lr=0.01),
                                  lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)])
def test_optimizers_keep_training_when_replayed(make: Any) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = rng.integers(0, 3, 16)

    def build() -> tuple[nn.Module, optim.Optimizer]:
        Tensor.manual_seed(3)
        model = nn.Sequential(nn.Linear(6, 8), Tensor.relu, nn.Linear(8, 3))
        return model, make(nn.state.get_parameters(model))

    def step(model: nn.Module, opt: optim.Optimizer, x: Tensor, y: Tensor) -> Tensor:
        opt.zero_grad()
        loss = model(x).cross_entropy(y)
        loss.backward()
        opt.step()
        return loss

    (m1, o1), (m2, o2) = build(), build()
    jitted = tg.jit(lambda x, y: step(m2, o2, x, y))
    losses = []
    for _ in range(8):
        want = step(m1, o1, Tensor(x), Tensor(y)).item()
        losses.append(jitted(Tensor(x), Tensor(y)).item())
        assert losses[-1] == pytest.approx(want, rel=1e-4)
    assert losses[-1] < losses[0]
    for a, b in zip(nn.state.get_parameters(m1), nn.state.get_parameters(m2)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


def test_learning_rate_changes_reach_replays() -> None:
    p = Tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.5)

    @tg.jit
    def step() -> None:
        opt.zero_grad()
        (p * p).sum().backward()
        opt.step()

    for _ in range(3):
        step()
    before = p.numpy()
    opt.lr = 0.0
    step()
    np.testing.assert_array_equal(p.numpy(), before)
    opt.lr = 0.25
    step()
    np.testing.assert_allclose(p.numpy(), before * 0.5, rtol=1e-6)


def test_state_assigned_outside_between_calls_is_read() -> None:
    counter = Tensor([0.0])

    @tg.jit
    def tick() -> Tensor:
        counter.assign(counter + 1)
        return counter * 10

    for _ in range(4):
        tick()
    assert counter.item() == 4.0
    counter.assign(Tensor([100.0]))
    assert tick().item() == 1010.0
    assert counter.item() == 101.0


def test_non_contiguous_arguments_are_read_by_value() -> None:
    @tg.jit
    def f(x: Tensor) -> Tensor:
        return x + 1

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    for k in range(4):
        got = f(Tensor(a.T.copy()) if k % 2 else Tensor(a).T)
        np.testing.assert_array_equal(got.numpy(), a.T + 1)


def test_new_shapes_and_values_make_new_captures() -> None:
    @tg.jit
    def f(x: Tensor, scale: float) -> Tensor:
        return x * scale

    for _ in range(4):
        for n, scale in ((2, 2.0), (3, 2.0), (2, 5.0)):
            np.testing.assert_array_equal(f(Tensor.ones(n), scale).numpy(), np.full(n, scale, np.float32))
    assert len(f.variants) == 3 and f.replays == 3


def test_random_numbers_are_drawn_anew_on_every_replay() -> None:
    @tg.jit
    def noisy(x: Tensor) -> Tensor:
        return x + Tensor.rand(*x.shape)

    x = Tensor.zeros(1000)
    draws = [noisy(x).numpy() for _ in range(5)]
    for a, b in zip(draws, draws[1:]):
        assert not np.array_equal(a, b)
    assert all(0.0 <= d.min() and d.max() < 1.0 for d in draws)


def test_reading_a_value_while_capturing_is_refused() -> None:
    @tg.jit
    def f(x: Tensor) -> Tensor:
        print((x * 2).sum().item())
        return x

    f(Tensor([1.0]))  # the first two calls run the function as usual
    f(Tensor([1.0]))
    with pytest.raises(JitError, match=r"reads a tensor's value.*Fix: return the tensor"):
        f(Tensor([1.0]))


def test_host_data_that_changes_between_calls_is_refused() -> None:
    calls = []

    @tg.jit
    def f(x: Tensor) -> Tensor:
        calls.append(1)
        return x + Tensor(np.array([float(len(calls))], dtype=np.float32))

    f(Tensor([0.0]))
    f(Tensor([0.0]))
    with pytest.raises(JitError, match="different host data.*pass changing data as tensor arguments"):
        f(Tensor([0.0]))


def test_bad_arguments_and_results_are_refused() -> None:
    with pytest.raises(JitError, match="argument 0 .* is a list"):
        tg.jit(lambda x: x)([1, 2])
    with pytest.raises(JitError, match="must return tensors"):
        tg.jit(lambda x: object())(Tensor([1.0]))


def test_replays_do_not_leak_buffers() -> None:
    w = Tensor.ones(4, 4, requires_grad=True)

    @tg.jit
    def step(x: Tensor) -> Tensor:
        return sgd_step(w, (x @ w).sum(), 0.01)

    x = Tensor.ones(2, 4)
    for _ in range(5):
        step(x)
    count = live_buffer_count()
    for _ in range(100):
        step(x)
    assert live_buffer_count() <= count + 2


def test_kernels_are_not_rescheduled_but_still_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from tg.engine.device import device_state

    f = tg.jit(lambda x: (x * 3 + 1).sum())
    x = Tensor.ones(8).realize()
    for _ in range(3):
        f(x)
    state = device_state()
    before = state.kernel_count
    _refuse_scheduling(monkeypatch)
    monkeypatch.setattr(schedule_module, "create_schedule", None)
    out = f(x)
    assert state.kernel_count > before
    monkeypatch.undo()
    assert out.item() == 32.0


def test_a_jitted_function_called_by_another_is_part_of_its_trace() -> None:
    inner = tg.jit(lambda x: x * 2)
    outer = tg.jit(lambda x: inner(x) + 1)
    for k in range(5):
        assert outer(Tensor([float(k)])).item() == 2 * k + 1
    assert outer.replays == 2 and inner.replays == 0
