"""MultiheadAttention with PyTorch's parameters, initialisation, masks and outputs.

Parameters: ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E,) (or ``q_proj_weight``/``k_proj_weight``/
``v_proj_weight`` when ``kdim``/``vdim`` differ from ``embed_dim``) and ``out_proj`` (a Linear), so a PyTorch
state dict loads as it is.  Masks follow PyTorch's MultiheadAttention (not scaled_dot_product_attention): in a
bool ``attn_mask`` or ``key_padding_mask`` True means *may not attend*; a float mask is added to the scores.
A query that may attend to no key gives NaN, as in PyTorch.  ``is_causal`` is a hint beside an ``attn_mask``, as
in PyTorch; without one (where PyTorch raises) tg builds the causal mask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tg.frontend.tensor import Tensor
from tg.nn import functional as F
from tg.nn import init
from tg.nn.linear import Linear
from tg.nn.module import Module


def _as_additive(mask: Tensor, what: str, dtype_like: Tensor) -> Tensor:
    """A mask as a float tensor to add to scores: True (bool) -> -inf, False -> 0; a float mask as it is."""
    if mask.dtype.name == "bool":
        return mask.where(float("-inf"), 0.0).cast(dtype_like.dtype)
    if not mask.dtype.is_float:
        raise TypeError(f"MultiheadAttention: {what} must be bool or float, got {mask.dtype.name}")
    return mask


class MultiheadAttention(Module):
    """``attn(query, key, value)`` -> ``(output, weights)``; ``batch_first=False`` takes (L, N, E) like PyTorch.

    ``weights`` is the attention averaged over heads, (N, L, S) (or per head, (N, H, L, S), with
    ``average_attn_weights=False``), or None with ``need_weights=False``.  Unbatched (L, E) inputs work too.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device: str | None = None, dtype: Any = None):
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not implemented in tg; "
                                      "leave them False")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight: Tensor | None = init.xavier_uniform_(Tensor.zeros(3 * embed_dim, embed_dim,
                                                                                   requires_grad=True))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            self.q_proj_weight = init.xavier_uniform_(Tensor.zeros(embed_dim, embed_dim, requires_grad=True))
            self.k_proj_weight = init.xavier_uniform_(Tensor.zeros(embed_dim, self.kdim, requires_grad=True))
            self.v_proj_weight = init.xavier_uniform_(Tensor.zeros(embed_dim, self.vdim, requires_grad=True))
        self.in_proj_bias = Tensor.zeros(3 * embed_dim, requires_grad=True) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if self.out_proj.bias is not None:
            init.zeros_(self.out_proj.bias)
        self._place(device, dtype)

    def _project(self, x: Tensor, which: int) -> Tensor:
        e = self.embed_dim
        if self.in_proj_weight is not None:
            weight = self.in_proj_weight[which * e:(which + 1) * e]
        else:
            separate = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[which]
            assert separate is not None
            weight = separate
        bias = self.in_proj_bias[which * e:(which + 1) * e] if self.in_proj_bias is not None else None
        return x.linear(weight, bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        unbatched = query.ndim == 2
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be 3-D (batched) or 2-D (unbatched), "
                             f"got shapes {query.shape}, {key.shape}, {value.shape}")
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        # now (L, N, E) and (S, N, E)
        (length, batch, e), source = query.shape, key.shape[0]
        if e != self.embed_dim:
            raise ValueError(f"MultiheadAttention: query's embedding dim must be {self.embed_dim}, got {e}")
        h, d = self.num_heads, self.head_dim

        def heads(x: Tensor, n: int) -> Tensor:  # (n, N, E) -> (N, H, n, D)
            return x.reshape(n, batch, h, d).permute(1, 2, 0, 3)

        q, k, v = heads(self._project(query, 0), length), heads(self._project(key, 1), source), \
            heads(self._project(value, 2), source)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))  # (N, H, L, S)
        if is_causal and attn_mask is None:
            attn_mask = Tensor(~np.tril(np.ones((length, source), dtype=np.bool_)), device=query.device)
        if attn_mask is not None:
            mask = _as_additive(attn_mask, "attn_mask", scores)
            if mask.shape == (length, source):
                scores = scores + mask
            elif mask.shape == (batch * h, length, source):
                scores = scores + mask.reshape(batch, h, length, source)
            else:
                raise ValueError(f"MultiheadAttention: attn_mask must be (L, S) = {(length, source)} or "
                                 f"(N * num_heads, L, S) = {(batch * h, length, source)}, got {mask.shape}")
        if key_padding_mask is not None:
            if key_padding_mask.shape != (batch, source):
                raise ValueError(f"MultiheadAttention: key_padding_mask must be (N, S) = {(batch, source)}, got "
                                 f"{key_padding_mask.shape}")
            scores = scores + _as_additive(key_padding_mask, "key_padding_mask", scores).reshape(batch, 1, 1, source)
        weights = scores.softmax(-1)
        dropped = F.dropout(weights, self.dropout, self.training) if self.dropout > 0 else weights
        out = (dropped @ v).permute(2, 0, 1, 3).reshape(length, batch, e)  # (L, N, E)
        out = self.out_proj(out)
        if unbatched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        w = dropped.mean(1) if average_attn_weights else dropped  # after dropout, as PyTorch returns them
        return out, (w.squeeze(0) if unbatched else w)

    def __repr__(self) -> str:
        return (f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"batch_first={self.batch_first})")
