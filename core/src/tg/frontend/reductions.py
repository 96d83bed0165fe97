"""Reductions of a Tensor: sum, max, min, mean, var, std, logsumexp, softmax, argmax and friends."""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tg.frontend import function as F
from tg.frontend.shapes import normalize_axis
from tg.frontend.softmax import LogSoftmax, Softmax
from tg.support.dtype import DType, dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor



def _correction(correction: int | None, unbiased: bool | None) -> int:
    if correction is not None and unbiased is not None:
        raise TypeError("var()/std() got both correction and unbiased: give one (unbiased=False is correction=0)")
    return correction if correction is not None else 0 if unbiased is False else 1


class MinMax(NamedTuple):
    """What ``t.max(dim)`` and ``t.min(dim)`` return, as in PyTorch: ``values, indices = t.max(1)``."""

    values: Tensor
    indices: Tensor


def _extreme(t: Tensor, op: str, dim: Any, keepdim: bool, axis: Any) -> Any:
    pick_dim(dim, axis, op)  # refuses both at once
    if axis is not None or dim is None:
        return getattr(t, f"a{op}")(axis, keepdim)
    if isinstance(dim, type(t)):
        return t.maximum(dim) if op == "max" else t.minimum(dim)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{op}(dim) takes one dim and returns (values, indices); for the values over several dims "
                        f"use a{op}({tuple(dim)}) or {op}(axis={tuple(dim)})")
    return MinMax(getattr(t, f"a{op}")(dim, keepdim), getattr(t, f"arg{op}")(dim, keepdim))


def pick_dim(dim: Any, axis: Any, op: str, default: Any = None) -> Any:
    """``dim`` (PyTorch's name) or ``axis`` (numpy's), whichever was given; both is a TypeError."""
    if dim is not None and axis is not None:
        raise TypeError(f"{op}() got both dim={dim!r} and axis={axis!r}: they are the same argument "
                        "(PyTorch's and numpy's names), give one")
    return dim if dim is not None else axis if axis is not None else default


def _softmax_input(x: Tensor, dtype: DType | str | None, op: str) -> Tensor:
    """``x`` cast to ``dtype`` (a float dtype; PyTorch refuses the others too), else to float where it is not."""
    if dtype is None:
        return x._float()
    if not dtypes.from_any(dtype).is_float:
        raise TypeError(f"{op}: dtype must be a float dtype, got {dtypes.from_any(dtype).name} (PyTorch refuses it "
                        "too): pass dtype=tg.float32, or leave it out")
    return x.cast(dtype)


class ReductionMixin:
    """Tensor's reductions (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def _axes(self: Tensor, axis: int | Sequence[int] | None, op: str) -> tuple[int, ...]:
        if axis is None:
            return tuple(range(self.ndim))
        if type(axis) is int and self.shape:  # (the common case: one plain int)
            return (normalize_axis(axis, len(self.shape), op),)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer, tuple, list)):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {type(axis).__name__} {axis!r}")
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        normalized = {normalize_axis(a, self.ndim, op) for a in axes}
        return () if self.ndim == 0 else tuple(sorted(normalized))  # a 0-d tensor takes axis 0 or -1: no axis

    def _reduce(self: Tensor, fn: type[F.Function], axis: Any, keepdim: bool, op: str) -> Tensor:
        axes = self._axes(axis, op)
        out = fn.apply(self, axes=axes)
        if keepdim:
            return out
        return out.reshape(tuple(s for i, s in enumerate(self.shape) if i not in axes))

    def sum(self: Tensor, dim: Any = None, keepdim: bool = False, dtype: DType | str | None = None, *,
            axis: Any = None) -> Tensor:
        axis = pick_dim(dim, axis, "sum")
        x = self
        if dtype is not None:
            x = x.cast(dtype)
        elif x.dtype == dtypes.bool or (x.dtype.is_int and x.dtype.itemsize < 4):
            x = x.cast(dtypes.int32)
        if x.dtype == dtypes.float16:  # accumulate in float32, like every serious framework
            return x.float()._reduce(F.Sum, axis, keepdim, "sum").half()
        return x._reduce(F.Sum, axis, keepdim, "sum")  # an empty axis sums to 0, with its (empty) gradient

    def amax(self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        """The largest values over ``dim`` (an int, a tuple, or None for all); NaN wins, as in numpy."""
        axis = pick_dim(dim, axis, "amax")
        for a in self._axes(axis, "max"):
            if self.shape[a] == 0:
                raise ValueError(f"max of an empty axis {a} (shape {self.shape}) has no identity")
        return self._reduce(F.Max, axis, keepdim, "max")

    def amin(self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        axis = pick_dim(dim, axis, "amin")
        if self.dtype.is_float:
            return -((-self).amax(axis, keepdim))
        return ~((~self).amax(axis, keepdim))  # ~ reverses the order of ints and bools, without overflow

    def max(self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Any:
        """PyTorch's forms: ``t.max()`` the largest value; ``t.max(dim)`` a ``(values, indices)`` named tuple;
        ``t.max(other)`` the elementwise maximum.  ``axis=`` (numpy's form) gives the values alone, like amax."""
        return _extreme(self, "max", dim, keepdim, axis)

    def min(self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Any:
        """Like :meth:`max`, for the smallest values (indices from argmin)."""
        return _extreme(self, "min", dim, keepdim, axis)

    def mean(self: Tensor, dim: Any = None, keepdim: bool = False, dtype: DType | str | None = None, *,
             axis: Any = None) -> Tensor:
        axis = pick_dim(dim, axis, "mean")
        x = self.cast(dtype) if dtype is not None else self._float()
        count = math.prod(self.shape[a] for a in self._axes(axis, "mean"))
        return x.sum(axis, keepdim) * (1 / count if count else math.nan)

    def var(self: Tensor, dim: Any = None, keepdim: bool = False, correction: int | None = None, *, axis: Any = None,
            unbiased: bool | None = None) -> Tensor:
        """Variance over ``dim``, divided by ``count - correction`` (default 1, Bessel's); PyTorch's older
        ``unbiased=False`` means ``correction=0``."""
        axis = pick_dim(dim, axis, "var")
        correction = _correction(correction, unbiased)
        x = self._float()
        count = math.prod(self.shape[a] for a in self._axes(axis, "var"))
        centered = x - x.mean(axis, keepdim=True)
        return (centered * centered).sum(axis, keepdim) / max(count - correction, 0)

    def std(self: Tensor, dim: Any = None, keepdim: bool = False, correction: int | None = None, *,
            axis: Any = None, unbiased: bool | None = None) -> Tensor:
        return self.var(pick_dim(dim, axis, "std"), keepdim, _correction(correction, unbiased)).sqrt()

    def logsumexp(self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        axis = pick_dim(dim, axis, "logsumexp")
        m = self._float().amax(axis, keepdim=True).detach()  # (the shift's gradient is exactly 0: see softmax)
        safe_m = m.where_finite()
        out = (self - safe_m).exp().sum(axis, keepdim=True).log() + safe_m
        return out if keepdim else out.reshape(tuple(s for i, s in enumerate(self.shape)
                                                     if i not in self._axes(axis, "logsumexp")))

    def where_finite(self: Tensor) -> Tensor:
        """Replace +-inf (and nan) with 0: keeps max-subtraction tricks from producing nan."""
        return ((self - self) == 0).where(self, 0.0)

    def softmax(self: Tensor, dim: int | None = None, dtype: DType | str | None = None, *,
                axis: int | None = None) -> Tensor:
        """exp(x) / sum(exp(x)) over ``dim`` (default: the last); ``dtype`` casts the input first, as in PyTorch."""
        axis = pick_dim(dim, axis, "softmax", -1)
        x = _softmax_input(self, dtype, "softmax")
        if 0 in x.shape:  # nothing to normalise (PyTorch returns the empty tensor)
            return x
        # one autograd node (tg.frontend.softmax); the row max only keeps exp from overflowing and takes no gradient
        return Softmax.apply(x, axes=x._axes(axis, "softmax"))

    def log_softmax(self: Tensor, dim: int | None = None, dtype: DType | str | None = None, *,
                    axis: int | None = None) -> Tensor:
        axis = pick_dim(dim, axis, "log_softmax", -1)
        x = _softmax_input(self, dtype, "log_softmax")
        if 0 in x.shape:
            return x
        return LogSoftmax.apply(x, axes=x._axes(axis, "log_softmax"))  # (see softmax)

    def argmax(self: Tensor, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None) -> Tensor:
        axis = pick_dim(dim, axis, "argmax")
        if axis is None:
            return self.flatten().argmax(0)
        ax = normalize_axis(axis, self.ndim, "argmax")
        n = self.shape[ax]
        is_max = self == self.amax(ax, keepdim=True)
        if self.dtype.is_float:  # a NaN is the maximum (max propagates it) and its first position wins, as in numpy
            is_max = is_max | (self != self)  # noqa: PLR0124 - x != x is the NaN test
        shape = [1] * self.ndim
        shape[ax] = n
        countdown = type(self).arange(n, 0, -1, device=self.device).reshape(tuple(shape))
        first = (is_max.cast(dtypes.int32) * countdown).amax(ax, keepdim=keepdim)
        return (n - first).cast(dtypes.int32)

    def argmin(self: Tensor, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None) -> Tensor:
        return (-self if self.dtype.is_float else ~self).argmax(pick_dim(dim, axis, "argmin"), keepdim)

    def any(self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        return self.bool().amax(pick_dim(dim, axis, "any"), keepdim)

    def all(self: Tensor, dim: Any = None, keepdim: bool = False, *, axis: Any = None) -> Tensor:
        return self.bool().logical_not().any(pick_dim(dim, axis, "all"), keepdim).logical_not()
