"""Dropout: zeroes each value with probability ``p`` in training mode and scales the rest by 1/(1-p)."""

from __future__ import annotations

from tg.frontend.tensor import Tensor
from tg.nn.module import Module


class Dropout(Module):
    """Identity in eval mode.  Follows this module's own ``training`` flag, not ``Tensor.training``."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        if inplace:
            raise NotImplementedError("Dropout: inplace=True is not implemented in tg; leave it at its default")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        return x._dropout(self.p)  # not Tensor.dropout: that reads Tensor.training, which other threads share

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
