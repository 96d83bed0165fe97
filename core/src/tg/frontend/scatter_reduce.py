"""``scatter_reduce``: PyTorch's scatter with a reduction ("sum", "prod", "mean", "amax" or "amin").

For dim 0, ``out[index[i][j]][j]`` is the reduction of every ``src[i][j]`` whose index lands there, and of
``self[index[i][j]][j]`` too when ``include_self`` (the default); positions no index reaches keep ``self``'s value.
"mean" divides by the number of values reduced (``self`` counted when included), with floor division for integer
dtypes, as PyTorch; NaN wins "amax" and "amin"; a bool tensor takes every reduction but "mean".  ``src`` must have
``self``'s dtype and device, and the index the rules of :meth:`~tg.frontend.scatter.ScatterMixin.scatter_add`.  It
is built like :mod:`tg.frontend.scatter`, from a one-hot axis and reductions, so every backend runs it.

Gradients are PyTorch's: "sum" gives ``self`` the output's gradient where it takes part (everywhere with
``include_self``, else where no index lands) and each source the gradient of its target; "mean" the same divided
by the target's count; "prod" each value the product of the other values reduced into its target (computed without
dividing by a zero); "amax"/"amin" share a target's gradient evenly among the values equal to its result (the
ties).  One difference, in tg's favour: with ``include_self=False`` a ``self`` value that does not take part in a
target gets no share of it even when it equals the result (PyTorch's formula counts it).
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tg.frontend import function as F
from tg.frontend.scatter import _checked_index, _crop, _lowest, _one_hot, _to_target
from tg.support.dtype import DType, dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor
    from tg.graph.lazy import LazyBuffer

REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _highest(dtype: DType) -> Any:
    if dtype.is_float:
        return float("inf")
    if dtype == dtypes.bool:
        return True
    bits = 8 * dtype.itemsize
    return (1 << (bits - 1)) - 1 if dtype.kind == "i" else (1 << bits) - 1


class _Plan:
    """One scatter_reduce: the (detached) target ``x``, the index along ``d``, and which targets the sources reach."""

    def __init__(self, x: Tensor, index: Tensor, d: int, include_self: bool):
        self.x, self.index, self.d, self.include_self = x, index, d, include_self
        self.hot = _one_hot(x, index, d)  # index.shape + (n,): source -> slot
        self.hit = _to_target(x, self.hot.any(d), d, False)  # x's shape: some source lands here

    def per_target(self, values: Tensor, fill: Any, how: str) -> Tensor:
        """``values`` (one per source, the index's shape) reduced into their targets by ``how`` ("sum", "prod",
        "amax", "amin"): x's shape, ``fill`` where no source lands."""
        spread = self.hot.where(values.unsqueeze(-1), fill)
        return _to_target(self.x, getattr(spread, how)(self.d), self.d, fill)

    def count(self) -> Tensor:
        """How many values each target reduces (``self`` included when it is), at least 1."""
        n = _to_target(self.x, self.hot.sum(self.d), self.d, 0)
        return n + 1 if self.include_self else n.maximum(1)

    def reduce(self, src: Tensor, how: str) -> Tensor:
        """The forward value, from the cropped ``src`` (the index's shape)."""
        x, dt = self.x, self.x.dtype
        if how in ("sum", "mean"):
            total = self.per_target(src, 0, "sum")
            total = total + x if self.include_self else total
            if how == "mean":
                total = total / self.count() if dt.is_float else total // self.count()
        elif how == "prod":
            total = self.per_target(src, 1, "prod")
            total = total * x if self.include_self else total
        else:
            total = self.per_target(src, _lowest(dt) if how == "amax" else _highest(dt), how)
            if self.include_self:
                total = total.maximum(x) if how == "amax" else total.minimum(x)
        return self.hit.where(total.cast(dt), x)

    def gradients(self, how: str, grad: Tensor, src: Tensor, result: Tensor) -> tuple[Tensor, Tensor]:
        """The gradients with respect to ``x`` and to the cropped ``src``, given the output's ``grad``."""
        x, d, index, dt = self.x, self.d, self.index, self.x.dtype
        taking_part = self.hit.logical_not() | self.include_self  # where x is one of the values reduced
        if how in ("sum", "mean"):
            share = grad / self.count() if how == "mean" else grad
            return taking_part.where(share, 0), share.gather(d, index)
        if how == "prod":
            others_of_x = self.per_target(src, 1, "prod")  # x's partners: the sources reduced with it
            zero = src == 0
            zeros_there = self.per_target(zero, 0, "sum").gather(d, index)
            without_zeros = self.reduce(zero.where(1, src), "prod").gather(d, index)
            others_of_src = zero.where((zeros_there == 1).where(without_zeros, 0),
                                       result.gather(d, index) / zero.where(1, src))
            return taking_part.where(grad * others_of_x, 0), grad.gather(d, index) * others_of_src
        x_wins = ((x == result) & taking_part).cast(dt)
        src_wins = (src == result.gather(d, index)).cast(dt)
        share = grad / (x_wins + self.per_target(src_wins, 0, "sum").cast(dt))  # NaN results: 0/0, as PyTorch
        return x_wins * share, src_wins * share.gather(d, index)


class _Scattered(F.Function):
    """The value of a scatter_reduce (computed from detached inputs), with gradients from ``gradients(grad)``."""

    def forward(self, x: LazyBuffer, src: LazyBuffer, value: LazyBuffer,
                gradients: Callable[[LazyBuffer], tuple[LazyBuffer, LazyBuffer]]) -> LazyBuffer:
        self.gradients = gradients
        return value

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, LazyBuffer | None]:
        gx, gsrc = self.gradients(grad)
        return gx if self.needs_input_grad[0] else None, gsrc if self.needs_input_grad[1] else None


class ScatterReduceMixin:
    """Tensor's scatter_reduce (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def scatter_reduce(self: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                       include_self: bool = True) -> Tensor:
        """A copy of self with the sources reduced into their targets, as PyTorch's ``scatter_reduce`` (see the
        module's documentation): ``reduce`` is "sum", "prod", "mean", "amax" or "amin"."""
        if reduce not in REDUCTIONS:
            raise ValueError(f"scatter_reduce: reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
        if not isinstance(src, type(self)):
            raise TypeError(f"scatter_reduce: src must be a tensor, got {type(src).__name__} (for one value "
                            f"everywhere, use tg.full_like(index, value, dtype=x.dtype))")
        if src.dtype != self.dtype:
            raise TypeError(f"scatter_reduce: src is {src.dtype.name} and self {self.dtype.name}: they must have "
                            "the same dtype (cast one)")
        if src.device != self.device:
            raise ValueError(f"scatter_reduce: src is on {src.device} and self on {self.device}: move one with .to()")
        if reduce == "mean" and self.dtype == dtypes.bool:
            raise TypeError("scatter_reduce: reduce='mean' of a bool tensor is not defined; cast it to a number type")
        d, index = _checked_index(self, "scatter_reduce", dim, index, ("src", src))
        if index.numel() == 0:
            return self.clone()
        plan = _Plan(self.detach(), index, d, include_self)
        s = _crop(src, index.shape).detach()
        value = plan.reduce(s, reduce)
        if not (self.requires_grad or src.requires_grad):
            return value

        def gradients(grad: LazyBuffer) -> tuple[LazyBuffer, LazyBuffer]:
            gx, gs = plan.gradients(reduce, type(self)(grad), s, value)
            pads = [(0, full - cropped) for full, cropped in zip(src.shape, index.shape)]
            return gx.cast(grad.dtype).lazydata, gs.pad(pads).cast(grad.dtype).lazydata

        return _Scattered.apply(self, src, value=value.lazydata, gradients=gradients)
