"""Embedding: a lookup table from integer ids to rows of ``weight``, initialised N(0, 1) like PyTorch."""

from __future__ import annotations

from tg.frontend.tensor import Tensor
from tg.nn.module import Module


class Embedding(Module):
    """``weight`` is (num_embeddings, embedding_dim); an id tensor of shape S gives S + (embedding_dim,)."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Tensor.randn(num_embeddings, embedding_dim, requires_grad=True)

    def forward(self, ids: Tensor) -> Tensor:
        if ids.dtype.is_float or ids.dtype.name == "bool":
            raise TypeError(f"Embedding needs integer ids, got {ids.dtype.name}")
        return self.weight[ids]

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"
