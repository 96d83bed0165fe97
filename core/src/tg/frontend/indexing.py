"""``Tensor.__getitem__``: ints, slices (negative, stepped), None, ``...`` and one integer-tensor index."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tg.frontend import deferred_checks

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor


def _take_every(x: Tensor, dim: int, step: int) -> Tensor:
    """Every ``step``-th element along ``dim``, starting at the first, without a copy."""
    n = x.shape[dim]
    m = math.ceil(n / step)
    pads = [(0, 0)] * x.ndim
    pads[dim] = (0, m * step - n)
    y = x.pad(pads).reshape(x.shape[:dim] + (m, step) + x.shape[dim + 1:])
    region: list[Any] = [None] * y.ndim
    region[dim + 1] = (0, 1)
    return y.shrink(region).reshape(x.shape[:dim] + (m,) + x.shape[dim + 1:])


def _slice(x: Tensor, dim: int, s: slice) -> Tensor:
    n = x.shape[dim]
    chosen = range(n)[s]
    region: list[Any] = [None] * x.ndim
    if len(chosen) == 0:
        region[dim] = (0, 0)
        return x.shrink(region)
    first, last, step = chosen[0], chosen[-1], chosen.step
    region[dim] = (first, last + 1) if step > 0 else (last, first + 1)
    y = x.shrink(region)
    if step < 0:
        y = y.flip(dim)
    return _take_every(y, dim, abs(step)) if abs(step) > 1 else y


def _gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """x indexed along ``dim`` by an integer tensor: the index's shape replaces that dim."""
    if index.dtype.is_float or index.dtype.name == "bool":
        raise TypeError(f"tensors used as indices must be integers, got {index.dtype.name} (boolean masks give "
                        "data-dependent shapes, which tg does not support; use Tensor.where)")
    n = x.shape[dim]
    deferred_checks.defer((index < -n) | (index >= n),
                          f"an index tensor holds a value out of range for dimension {dim} of size {n} (valid: {-n} "
                          f"to {n - 1})")
    idx = (index < 0).where(index + n, index)
    before, after = x.shape[:dim], x.shape[dim + 1:]
    moved = x.permute([i for i in range(x.ndim) if i != dim] + [dim])
    moved = moved.reshape(before + (1,) * index.ndim + after + (n,))
    hot = idx.unsqueeze(-1) == type(x).arange(n, device=x.device)
    hot = hot.reshape((1,) * len(before) + index.shape + (1,) * len(after) + (n,))
    return hot.where(moved, 0).sum(-1).cast(x.dtype)


def getitem(x: Tensor, index: Any) -> Tensor:
    items = list(index) if isinstance(index, tuple) else [index]
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    if consumed > x.ndim:
        raise IndexError(f"too many indices for a tensor of rank {x.ndim}: {index!r}")
    ellipsis = [i for i, item in enumerate(items) if item is Ellipsis]
    if ellipsis:
        pos = ellipsis[0]
        items[pos:pos + 1] = [slice(None)] * (x.ndim - consumed)
    else:
        items += [slice(None)] * (x.ndim - consumed)
    out = x
    dim = 0
    squeeze: list[int] = []
    tensor_dims: list[tuple[int, Tensor]] = []
    for item in items:
        if item is None:
            out = out.unsqueeze(dim)
            dim += 1
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            n = out.shape[dim]
            if not -n <= item < n:
                raise IndexError(f"index {item} is out of range for dim {dim} of size {n} (shape {x.shape})")
            i = int(item) % n
            region: list[Any] = [None] * out.ndim
            region[dim] = (i, i + 1)
            out = out.shrink(region)
            squeeze.append(dim)
            dim += 1
        elif isinstance(item, slice):
            out = _slice(out, dim, item)
            dim += 1
        elif isinstance(item, (type(x), list, np.ndarray)):
            tensor_dims.append((dim, item if isinstance(item, type(x)) else type(x)(item, device=x.device)))
            dim += 1
        else:
            raise TypeError(f"unsupported index {item!r}: use ints, slices, None, ... or an integer tensor")
    if squeeze:
        out = out.reshape(tuple(s for i, s in enumerate(out.shape) if i not in squeeze))
        tensor_dims = [(d - sum(1 for q in squeeze if q < d), t) for d, t in tensor_dims]
    if len(tensor_dims) > 1:
        raise IndexError("only one tensor index per indexing expression is supported; index one dim at a time")
    if tensor_dims:
        out = _gather(out, *tensor_dims[0])
    return out
