"""Linear: ``y = x @ weight.T + bias``, initialised like PyTorch's."""

from __future__ import annotations

from typing import Any

from tg.frontend.tensor import Tensor
from tg.nn import init
from tg.nn.grad import materialize_grad
from tg.nn.module import Module


class Linear(Module):
    """A fully connected layer: ``weight`` is (out_features, in_features), ``bias`` (out_features,)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: str | None = None,
                 dtype: Any = None):
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.kaiming_uniform(out_features, in_features, fan_in=in_features)
        self.bias = init.uniform(out_features, bound=init.fan_in_bound(in_features)) if bias else None
        self._place(device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): input's last dimension must be "
                             f"{self.in_features}, got shape {x.shape}")
        return materialize_grad(x.linear(self.weight, self.bias))

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"
