"""Short training runs: a few optimizer steps reduce the loss; the digits example runs end to end (small)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tg import Tensor, nn, optim

ROOT = Path(__file__).resolve().parents[2]


def blobs(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    centers = np.array([[2.0, 0.0, 0.0, 1.0], [0.0, 2.0, -1.0, 0.0], [-2.0, -1.0, 1.0, 0.0]])
    return (centers[y] + 0.5 * rng.standard_normal((n, 4))).astype(np.float32), y


def losses(model: nn.Module, opt: optim.Optimizer, x: np.ndarray, y: np.ndarray, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        loss = model(Tensor(x)).cross_entropy(Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.2, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.05),
                                  lambda ps: optim.AdamW(ps, lr=0.05)])
def test_a_few_steps_reduce_the_loss_of_an_mlp(make: Callable[[list[Tensor]], optim.Optimizer]) -> None:
    Tensor.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    x, y = blobs()
    history = losses(model, make(model.parameters()), x, y, 8)
    assert history[-1] < 0.6 * history[0]
    model.eval()
    accuracy = (model(Tensor(x)).numpy().argmax(-1) == y).mean()
    assert accuracy > 0.9


def test_a_few_steps_reduce_the_loss_of_a_cnn() -> None:
    Tensor.manual_seed(0)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 32).astype(np.int32)
    x = rng.standard_normal((32, 1, 6, 6)).astype(np.float32) * 0.3
    x[y == 1, :, :, 2:4] += 1.5  # class 1 has a vertical bar
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(36, 2))
    history = losses(model, optim.Adam(model.parameters(), lr=0.02), x, y, 6)
    assert history[-1] < 0.5 * history[0]


def test_the_digits_example_runs_quickly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn", reason="the example needs scikit-learn (pip install './core[examples]')")
    pytest.importorskip("tqdm", reason="the example needs tqdm (pip install './core[examples]')")
    spec = importlib.util.spec_from_file_location("train_digits", ROOT / "examples" / "train_digits.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_digits"] = module
    try:
        spec.loader.exec_module(module)
        status = module.main(["--quick", "--checkpoint-dir", str(tmp_path)])
    finally:
        del sys.modules["train_digits"]
    out = capsys.readouterr().out
    assert status == 0, out
    assert "mlp: test accuracy" in out and "cnn: test accuracy" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_cnn.safetensors", "digits_mlp.safetensors"]
