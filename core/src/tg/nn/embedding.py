"""Embedding: a lookup table from integer ids to rows of ``weight``, initialised N(0, 1) like PyTorch."""

from __future__ import annotations

from typing import Any

import numpy as np

from tg.frontend.tensor import Tensor
from tg.nn import functional as F
from tg.nn.module import Module


class Embedding(Module):
    """``weight`` is (num_embeddings, embedding_dim); an id tensor of shape S gives S + (embedding_dim,).

    ``padding_idx`` (negative counts from the end): that row starts at zeros and gets no gradient, as in PyTorch.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Tensor | None = None, _freeze: bool = False, device: str | None = None,
                 dtype: Any = None):
        if max_norm is not None or scale_grad_by_freq or sparse:
            option = "max_norm" if max_norm is not None else "scale_grad_by_freq" if scale_grad_by_freq else "sparse"
            raise NotImplementedError(f"Embedding: {option} is not implemented in tg; leave it at its default")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be within the {num_embeddings} embeddings, got "
                                 f"{padding_idx}")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        if _weight is not None:
            if _weight.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight must have shape {(num_embeddings, embedding_dim)}, got "
                                 f"{_weight.shape}")
            self.weight = Tensor(_weight.detach().lazydata, requires_grad=not _freeze)
        else:
            weight = Tensor.randn(num_embeddings, embedding_dim)
            if padding_idx is not None:
                keep = np.ones((num_embeddings, 1), dtype=np.bool_)
                keep[padding_idx] = False
                weight = Tensor(keep).where(weight, 0.0)
            self.weight = Tensor(weight.realize().lazydata, requires_grad=True)
        self._place(device, dtype)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None,
                        **kwargs: object) -> Embedding:
        """An Embedding holding ``embeddings`` (2-D); ``freeze=True`` keeps them out of training."""
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {embeddings.shape}")
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx, _weight=embeddings, _freeze=freeze, **kwargs)  # type: ignore[arg-type]

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)

    def __repr__(self) -> str:
        extra = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{extra})"
