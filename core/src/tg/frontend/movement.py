"""Movement of a Tensor: reshape, permute, expand, pad, shrink, flip, cat, stack, split and indexing (views)."""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tg.frontend import function as F
from tg.frontend.grad_mode import grad_enabled
from tg.frontend.indexing import getitem
from tg.frontend.shapes import normalize_axis
from tg.graph.lazy import LazyBuffer
from tg.support.dtype import dtypes, promote

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor



class MovementMixin:
    """Tensor's movement ops (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def reshape(self: Tensor, *shape: Any) -> Tensor:
        given = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if all(type(s) is int and s >= 0 for s in given):  # the common case: plain sizes, no -1 to infer
            target = tuple(given)
            if target == self.shape:
                return self
            if math.prod(target) == math.prod(self.shape):
                return F.Reshape.apply(self, shape=target)
        new = list(given)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in new):
            raise TypeError(f"reshape: sizes must be ints, got {tuple(new)}")
        if new.count(-1) > 1:
            raise ValueError(f"reshape: only one dimension can be -1, got {tuple(new)}")
        if -1 in new:
            known = math.prod(s for s in new if s != -1)
            if known == 0 or self.numel() % known:
                raise ValueError(f"reshape: cannot reshape {self.shape} into {tuple(new)}")
            new[new.index(-1)] = self.numel() // known
        target = tuple(int(s) for s in new)
        if math.prod(target) != self.numel() or any(s < 0 for s in target):
            raise ValueError(f"reshape: cannot reshape {self.shape} ({self.numel()} elements) into {target}")
        return self if target == self.shape else F.Reshape.apply(self, shape=target)

    view = reshape

    def permute(self: Tensor, *order: Any) -> Tensor:
        perm = tuple(order[0]) if len(order) == 1 and isinstance(order[0], (tuple, list)) else tuple(order)
        ndim = len(self.shape)
        if not all(type(a) is int and 0 <= a < ndim for a in perm):  # (the common case needs no normalizing)
            perm = tuple(normalize_axis(a, ndim, "permute") for a in perm)
        if sorted(perm) != list(range(self.ndim)):
            raise ValueError(f"permute: {perm} is not a permutation of the {self.ndim} axes of {self.shape}")
        return self if perm == tuple(range(self.ndim)) else F.Permute.apply(self, order=perm)

    def transpose(self: Tensor, dim0: int = 1, dim1: int = 0) -> Tensor:
        order = list(range(self.ndim))
        a, b = normalize_axis(dim0, self.ndim, "transpose"), normalize_axis(dim1, self.ndim, "transpose")
        order[a], order[b] = order[b], order[a]
        return self.permute(order)

    @property
    def T(self: Tensor) -> Tensor:  # noqa: N802 - the conventional name
        return self.permute(tuple(reversed(range(self.ndim))))

    def expand(self: Tensor, *shape: Any) -> Tensor:
        new = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
        if len(new) < self.ndim:
            raise ValueError(f"expand: {new} has fewer dimensions than {self.shape}")
        new = tuple(s if s != -1 else (self.shape[i - (len(new) - self.ndim)]) for i, s in enumerate(new))
        return self._expand_to(tuple(int(s) for s in new), "expand")

    def _expand_to(self: Tensor, shape: tuple[int, ...], op: str = "broadcast") -> Tensor:
        if self.shape == shape:
            return self
        padded = (1,) * (len(shape) - self.ndim) + self.shape
        if any(a != b and a != 1 for a, b in zip(padded, shape)):
            raise ValueError(f"{op}: cannot expand shape {self.shape} to {shape}")
        if not (self.requires_grad and grad_enabled()):  # no autograd graph: the two views on the LazyBuffer at once
            lb = self.lazydata.reshape(padded)
            out = type(self)(lb.expand(shape) if padded != shape else lb, requires_grad=False)
            out._view = True  # as Reshape's and Expand's outputs are
            return out
        if padded != self.shape and padded != shape:
            return F.Broadcast.apply(self, padded=padded, shape=shape)
        x = self.reshape(padded)
        return x if padded == shape else F.Expand.apply(x, shape=shape)

    def flatten(self: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        s = normalize_axis(start_dim, self.ndim, "flatten")
        e = normalize_axis(end_dim, self.ndim, "flatten")
        return self.reshape(self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:])

    def squeeze(self: Tensor, dim: int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        d = normalize_axis(dim, self.ndim, "squeeze")
        return self if self.shape[d] != 1 else self.reshape(self.shape[:d] + self.shape[d + 1:])

    def unsqueeze(self: Tensor, dim: int) -> Tensor:
        d = normalize_axis(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def pad(self: Tensor, padding: Sequence[tuple[int, int]] | Sequence[int], value: float = 0.0) -> Tensor:
        """Pad each dim by (before, after); negative amounts crop.  ``padding`` has one pair per dim, or is
        PyTorch's flat tuple ``(last_before, last_after, second_last_before, ...)`` for the last dims."""
        if all(isinstance(p, (int, np.integer)) for p in padding):  # PyTorch's F.pad form
            flat = [int(p) for p in padding]  # type: ignore[arg-type]
            if len(flat) % 2 or len(flat) // 2 > self.ndim:
                raise ValueError(f"pad: a flat padding needs an even number of ints, at most 2 per dim (rank "
                                 f"{self.ndim}), got {tuple(flat)}")
            pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)][::-1]
            padding = [(0, 0)] * (self.ndim - len(pairs)) + pairs
        pads = [tuple(p) for p in padding]  # type: ignore[arg-type]
        if len(pads) != self.ndim:
            raise ValueError(f"pad: {len(pads)} (before, after) pairs for a tensor of rank {self.ndim}")
        crop = tuple((max(0, -b), s - max(0, -a)) for s, (b, a) in zip(self.shape, pads))
        x = self.shrink(crop) if any(c != (0, s) for c, s in zip(crop, self.shape)) else self
        grow = tuple((max(0, b), max(0, a)) for b, a in pads)
        if all(g == (0, 0) for g in grow):
            return x
        out = F.Pad.apply(x, arg=grow)
        if value != 0:
            inside = type(self)(LazyBuffer.const(True, dtypes.bool, x.device, x.shape)).pad(grow)
            out = inside.where(out, value)
        return out

    def shrink(self: Tensor, arg: Sequence[tuple[int, int] | None]) -> Tensor:
        shape = self.shape
        region = tuple([(0, s) if a is None else (int(a[0]), int(a[1])) for a, s in zip(arg, shape)])
        for (lo, hi), s in zip(region, shape):
            if not 0 <= lo <= hi <= s:
                raise ValueError(f"shrink: {region} is outside the shape {shape}")
        return self if region == tuple([(0, s) for s in shape]) else F.Shrink.apply(self, arg=region)

    def flip(self: Tensor, axis: int | Sequence[int]) -> Tensor:
        axes = self._axes(axis, "flip")
        return F.Flip.apply(self, axes=axes) if axes else self

    def repeat(self: Tensor, *repeats: Any) -> Tensor:
        reps = tuple(repeats[0]) if len(repeats) == 1 and isinstance(repeats[0], (tuple, list)) else tuple(repeats)
        if len(reps) < self.ndim:
            raise ValueError(f"repeat: {len(reps)} repeats for a tensor of rank {self.ndim}")
        base = (1,) * (len(reps) - self.ndim) + self.shape
        x = self.reshape(base)
        inter = tuple(v for s in base for v in (1, s))
        expanded = tuple(v for r, s in zip(reps, base) for v in (r, s))
        return x.reshape(inter).expand(expanded).reshape(tuple(r * s for r, s in zip(reps, base)))

    @staticmethod
    def cat(*tensors: Tensor, dim: int = 0) -> Tensor:
        ts = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
        if not ts:
            raise ValueError("cat() needs at least one tensor")
        if any(t.ndim == 0 for t in ts):
            raise ValueError("cat: a 0-d tensor cannot be concatenated (it has no dim to join along): reshape it to "
                             "(1,) first, or use Tensor.stack")
        first = ts[0]
        d = normalize_axis(dim, first.ndim, "cat")
        for t in ts[1:]:
            if t.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != d):
                raise ValueError(f"cat: shapes {first.shape} and {t.shape} differ outside dim {d}")
        dt = first.dtype
        for t in ts[1:]:
            dt = promote(dt, t.dtype)
        total = sum(t.shape[d] for t in ts)
        out: Tensor | None = None
        offset = 0
        for t in ts:
            pads = [(0, 0)] * first.ndim
            pads[d] = (offset, total - offset - t.shape[d])
            piece = t.cast(dt).pad(pads)
            out = piece if out is None else out + piece
            offset += t.shape[d]
        assert out is not None
        return out

    @staticmethod
    def stack(*tensors: Tensor, dim: int = 0) -> Tensor:
        ts = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
        d = normalize_axis(dim, ts[0].ndim + 1, "stack")
        for t in ts[1:]:
            if t.shape != ts[0].shape:
                raise ValueError(f"stack: shapes {ts[0].shape} and {t.shape} differ")
        return type(ts[0]).cat(*[t.unsqueeze(d) for t in ts], dim=d)

    def split(self: Tensor, sizes: int | Sequence[int], dim: int = 0) -> list[Tensor]:
        d = normalize_axis(dim, self.ndim, "split")
        n = self.shape[d]
        if isinstance(sizes, int):
            if sizes <= 0:
                raise ValueError(f"split: size must be positive, got {sizes}")
            sizes = [min(sizes, n - i) for i in range(0, n, sizes)]
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {list(sizes)} do not add up to {n} (dim {d} of {self.shape})")
        out, start = [], 0
        for s in sizes:
            region: list[tuple[int, int] | None] = [None] * self.ndim
            region[d] = (start, start + s)
            out.append(self.shrink(region))
            start += s
        return out

    def chunk(self: Tensor, chunks: int, dim: int = 0) -> list[Tensor]:
        if not isinstance(chunks, (int, np.integer)) or isinstance(chunks, bool) or chunks < 1:
            raise ValueError(f"chunk: the number of chunks must be a positive int, got {chunks!r}")
        n = self.shape[normalize_axis(dim, self.ndim, "chunk")]
        return self.split(max(1, -(-n // chunks)), dim)

    def __getitem__(self: Tensor, index: Any) -> Tensor:
        return getitem(self, index)
