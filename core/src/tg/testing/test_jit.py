"""tg.jit on the backend under test: replayed kernels reuse and reallocate buffers and must match eager runs."""

from __future__ import annotations

import numpy as np

import tg
from tg import Tensor, nn, optim
from tg.testing import assert_close


def test_replayed_training_step_matches_eager(rng: np.random.Generator) -> None:
    x = rng.standard_normal((12, 7)).astype(np.float32)
    y = rng.integers(0, 4, 12).astype(np.int32)

    def build() -> tuple[nn.Module, optim.Optimizer]:
        Tensor.manual_seed(0)
        model = nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 4))
        return model, optim.Adam(model.parameters(), lr=0.02)

    def step(model: nn.Module, opt: optim.Optimizer, x: Tensor, y: Tensor) -> Tensor:
        loss = model(x).cross_entropy(y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    (eager_model, eager_opt), (jit_model, jit_opt) = build(), build()
    jitted = tg.jit(lambda x, y: step(jit_model, jit_opt, x, y))
    for _ in range(6):
        want = step(eager_model, eager_opt, Tensor(x), Tensor(y)).numpy()
        assert_close(jitted(Tensor(x), Tensor(y)), want, scale=4.0)
    assert jitted.replays == 3
    for a, b in zip(jit_model.parameters(), eager_model.parameters()):
        assert_close(a, b.numpy().astype(np.float64), scale=4.0)


def test_replays_see_new_arguments(rng: np.random.Generator) -> None:
    w = Tensor(rng.standard_normal((5, 3)).astype(np.float32))
    f = tg.jit(lambda x: (x @ w).exp().sum(axis=0))
    for _ in range(5):
        x = rng.standard_normal((4, 5)).astype(np.float32)
        assert_close(f(Tensor(x)), np.exp(x.astype(np.float64) @ w.numpy()).sum(axis=0), scale=8.0)


def test_a_replay_checks_its_indices_as_an_eager_call_does() -> None:
    """A replayed function runs none of its Python code, so its device-side index checks are replayed with it: an
    index past the end in the tenth call raises at the next read, as it would without tg.jit."""
    import pytest

    table = Tensor(np.arange(12, dtype=np.float32).reshape(6, 2)).realize()
    lookup = tg.jit(lambda ids: table[ids].sum(axis=1))
    for i in range(6):
        ids = np.array([i % 6, (i + 1) % 6], np.int32)
        np.testing.assert_allclose(lookup(Tensor(ids)).numpy(), table.numpy()[ids].sum(axis=1))
    assert lookup.replays >= 2
    out = lookup(Tensor(np.array([1, 6], np.int32)))  # a replay
    with pytest.raises(IndexError, match="size 6"):
        out.numpy()
    np.testing.assert_allclose(lookup(Tensor(np.array([5, 0], np.int32))).numpy(), [21, 1])  # and on it goes
