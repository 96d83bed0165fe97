"""Module.to across backends and dtypes, and the PyTorch-style module API outside the kit (needs two backends)."""

from __future__ import annotations

import numpy as np
import pytest
import tg
from tg import Tensor, nn, optim


class Holder(nn.Module):
    def __init__(self) -> None:
        self.fc = nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(2)
        self.extra = [Tensor(np.ones(2, np.float32), requires_grad=True)]
        self.register_buffer("scratch", Tensor(np.zeros(2, np.float32)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.fc(x)) * self.extra[0] + self.scratch


def test_to_moves_parameters_and_buffers_to_another_backend() -> None:
    other = "numpy" if tg.default_backend_name() != "numpy" else "clang"
    try:
        tg.backend_capabilities(other)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"backend {other} unavailable: {exc}")
    model = Holder()
    want = model.state_dict()
    want_np = {k: v.numpy() for k, v in want.items()}
    assert model.to(other) is model
    tensors = [*model.state_dict().values(), model.scratch, model.extra[0]]
    assert all(t.device == tg.Tensor(np.zeros(1), device=other).device for t in tensors)
    assert len(model.parameters()) == 5 and model.fc.weight.requires_grad and not model.scratch.requires_grad
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), want_np[k])
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), device=other)
    loss = model(x).sum()
    loss.backward()
    opt = optim.SGD(model.parameters(), lr=0.1)
    opt.step()
    assert model.fc.weight.device == x.device


def test_to_dtype_casts_floating_tensors_only() -> None:
    model = Holder()
    model.to(dtype="float16") if "float16" in tg.backend_capabilities().dtypes else pytest.skip("no float16")
    assert model.fc.weight.dtype.name == "float16" and model.fc.weight.requires_grad
    assert model.norm.num_batches_tracked is not None and model.norm.num_batches_tracked.dtype.name == "int32"
    model.float()
    assert model.fc.weight.dtype.name == "float32"


def test_layers_take_pytorchs_device_and_dtype_arguments() -> None:
    other = "numpy" if tg.default_backend_name() != "numpy" else "clang"
    try:
        tg.backend_capabilities(other)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"backend {other} unavailable: {exc}")
    layers = [nn.Linear(3, 2, device=other), nn.Conv2d(1, 2, 3, device=other), nn.Embedding(4, 2, device=other),
              nn.LayerNorm(2, device=other), nn.BatchNorm1d(2, device=other), nn.GroupNorm(1, 2, device=other),
              nn.MultiheadAttention(4, 2, device=other)]
    for layer in layers:
        assert all(t.device == other for t in layer.state_dict().values()), layer
        assert all(p.requires_grad for p in layer.parameters()) and layer.parameters()
    half = nn.Linear(3, 2, dtype=tg.dtypes.float32)
    assert half.weight.dtype.name == "float32" and half.weight.requires_grad
