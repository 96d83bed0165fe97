"""``gather``, ``scatter`` and ``scatter_add`` along one dim, as in PyTorch, from comparisons and reductions.

Each index is compared with ``arange(n)`` (n: the length of the indexed dim), which makes a one-hot axis of
length n; ``gather`` keeps the selected element of every one-hot row (a where and a sum), ``scatter_add`` sums the
sources landing on every target.  That is O(index.numel() * n) work without a new kernel type, fine for the dims
of embeddings, classes and sequences (thousands), not for scattering into millions of slots.  Values are picked
by ``where`` and sums of a single term, so integers stay exact and NaN stays NaN.  An index outside ``[0, n)``
raises IndexError at the next read (:mod:`tg.frontend.deferred_checks`), as PyTorch raises on its device.
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tg.frontend import deferred_checks
from tg.frontend.shapes import normalize_axis
from tg.support.dtype import DType, dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor


def _lowest(dtype: DType) -> Any:
    if dtype.is_float:
        return float("-inf")
    if dtype == dtypes.bool:
        return False
    return -(1 << (8 * dtype.itemsize - 1)) if dtype.kind == "i" else 0


def _checked_index(x: Tensor, op: str, dim: int, index: Any, *others: tuple[str, Tensor]) -> tuple[int, Tensor]:
    """The normalized dim and the index (checked: integer, same rank, sizes within ``x`` and ``others``)."""
    index = index if isinstance(index, type(x)) else type(x)(index, device=x.device)
    if index.dtype.is_float or index.dtype == dtypes.bool:
        raise TypeError(f"{op}: the index must be an integer tensor, got {index.dtype.name}")
    d = normalize_axis(dim, x.ndim, op)
    if index.ndim != x.ndim:
        raise ValueError(f"{op}: index has {index.ndim} dims and the tensor {x.ndim}: they need the same number "
                         f"(shapes {index.shape} and {x.shape})")
    for name, t in (("self", x), *others):
        if t.ndim != index.ndim:
            raise ValueError(f"{op}: {name} has {t.ndim} dims and index {index.ndim}: they need the same number")
        limit = [s if i != d or name != "self" else index.shape[i] for i, s in enumerate(t.shape)]
        if any(a > b for a, b in zip(index.shape, limit)):
            raise ValueError(f"{op}: index of shape {index.shape} is larger than {name} of shape {t.shape} "
                             f"{'outside dim ' + str(d) if name == 'self' else 'in some dim'}: index.size(i) must "
                             f"not exceed {name}.size(i)")
    n = x.shape[d]
    if index.numel():
        deferred_checks.defer((index < 0) | (index >= n), f"{op}: an index is out of range for dim {d} of size {n} "
                              f"(valid: 0 to {n - 1})")
    return d, index


def _one_hot(x: Tensor, index: Tensor, d: int) -> Tensor:
    """``index[..., None] == arange(n)``: shape index.shape + (n,), n the length of dim d of x."""
    return index.unsqueeze(-1) == type(x).arange(x.shape[d], device=x.device)


def _crop(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    return t.shrink([(0, s) for s in shape])


def _to_target(x: Tensor, per_slot: Tensor, d: int, fill: Any) -> Tensor:
    """(index dims without d) + (n,) -> x's shape: the slot axis moved to d, the other dims padded with ``fill``."""
    order = list(range(per_slot.ndim - 1))
    order.insert(d, per_slot.ndim - 1)
    moved = per_slot.permute(order)
    pads = [(0, s - m) if i != d else (0, 0) for i, (s, m) in enumerate(zip(x.shape, moved.shape))]
    return moved.pad(pads, value=fill) if any(p != (0, 0) for p in pads) else moved


class ScatterMixin:
    """Tensor's gather and scatter ops (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def gather(self: Tensor, dim: int, index: Tensor) -> Tensor:
        """``out[i][j][k] = self[index[i][j][k]][j][k]`` for dim 0 (likewise for other dims): the result has the
        index's shape; index.size(i) <= self.size(i) for every other dim i."""
        d, index = _checked_index(self, "gather", dim, index)
        region = [(0, s) if i != d else (0, self.shape[d]) for i, s in enumerate(index.shape)]
        x = self.shrink(region)
        order = [i for i in range(x.ndim) if i != d] + [d]
        rows = x.permute(order).unsqueeze(d)  # index.shape with 1 at d, then (n,)
        picked = _one_hot(self, index, d).where(rows, False if self.dtype == dtypes.bool else 0)
        return picked.sum(-1).cast(self.dtype)

    def scatter_add(self: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
        """A copy of self with ``out[index[i][j]][j] += src[i][j]`` (dim 0), every duplicate index adding its
        source (PyTorch's ``scatter_add``)."""
        d, index = _checked_index(self, "scatter_add", dim, index, ("src", src))
        s = _crop(src, index.shape).cast(self.dtype)
        sums = _one_hot(self, index, d).where(s.unsqueeze(-1), 0).sum(d)
        return self + _to_target(self, sums.cast(self.dtype), d, 0)

    def scatter(self: Tensor, dim: int, index: Tensor, src: Any = None, value: Any = None, *,
                reduce: str | None = None) -> Tensor:
        """A copy of self with ``out[index[i][j]][j] = src[i][j]`` (dim 0); ``src`` may be a number (or give
        ``value=``).  Where indices repeat, PyTorch leaves unspecified which source wins; tg writes the largest.
        ``reduce="add"`` is scatter_add."""
        if (src is None) == (value is None):
            raise TypeError("scatter() needs one of src (a tensor or a number) and value")
        src = value if src is None else src
        if reduce is not None:
            if reduce != "add":
                raise NotImplementedError(f"scatter(reduce={reduce!r}) is not supported in tg; reduce='add' is "
                                          "(scatter_add)")
            return self.scatter_add(dim, index, src if isinstance(src, type(self)) else
                                    type(self).full(index.shape, src, self.dtype, self.device))
        if not isinstance(src, type(self)):
            d, index = _checked_index(self, "scatter", dim, index)
            s = type(self).full(index.shape, src, self.dtype, self.device)
        else:
            d, index = _checked_index(self, "scatter", dim, index, ("src", src))
            s = _crop(src, index.shape).cast(self.dtype)
        hot = _one_hot(self, index, d)
        hit = _to_target(self, hot.any(d), d, False)
        lowest = _lowest(self.dtype)
        written = hot.where(s.unsqueeze(-1), lowest).amax(d)
        return hit.where(_to_target(self, written, d, 0), self)
