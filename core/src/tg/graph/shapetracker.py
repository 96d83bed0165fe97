"""Views: how a logical shape maps onto a flat buffer, so movement ops never copy.

A :class:`View` is shape + strides + offset, plus an optional ``mask`` (per dimension, the half-open
range of indices that are real; outside it the value is 0, which is how ``pad`` works).  A stride may
be negative (``flip``) or 0 (``expand``).  A :class:`ShapeTracker` is a stack of views: when a reshape
cannot be expressed on the last view, a new view is pushed whose flat index is unravelled into the
previous one.  :func:`tg.codegen.indexing.view_index` turns it into an index expression and a validity expression
over micro-ops.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

Shape = tuple[int, ...]
Mask = tuple[tuple[int, int], ...]
T = TypeVar("T")
#: Movement results a tracker remembers at most (see ``ShapeTracker.derived``).
MEMO_MAX = 64
#: Tracker keys numbered at most before the table of ``ShapeTracker.key_id`` starts again.
KEY_IDS_MAX = 1 << 16
_key_ids: dict[tuple[tuple[Any, ...], ...], int] = {}
_key_numbers = itertools.count()
_key_ids_lock = threading.Lock()


class cached_property(Generic[T]):  # noqa: N801 - used like functools.cached_property
    """``functools.cached_property`` without its lock: before Python 3.12 it takes one on every first read, which
    costs more than computing a view's properties, and the scheduler reads them on every view it makes."""

    def __init__(self, fn: Callable[[Any], T]):
        self.fn, self.name = fn, fn.__name__

    @overload
    def __get__(self, obj: None, owner: type) -> cached_property[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object, owner: type) -> T | cached_property[T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)  # frozen dataclasses too: the instance dict is written
        return value


@functools.lru_cache(maxsize=4096)
def strides_for(shape: Shape) -> tuple[int, ...]:
    """Row-major strides, with 0 for dimensions of size 1 (they never move the index)."""
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc if s != 1 else 0)
        acc *= s
    return tuple(reversed(strides))


def prod(xs: tuple[int, ...] | list[int]) -> int:
    return math.prod(xs)


@dataclass(unsafe_hash=True)
class View:
    """Immutable by convention: never assign to a view's fields (its hash and the trackers that hold it rely on that;
    it is not a frozen dataclass because a frozen one's constructor costs ~1 us more, and the front end makes
    hundreds of views per training step)."""

    shape: Shape
    strides: tuple[int, ...]
    offset: int = 0
    mask: Mask | None = None

    @staticmethod
    def create(shape: Shape, strides: tuple[int, ...] | None = None, offset: int = 0, mask: Mask | None = None) -> View:
        shape = tuple(shape)
        if strides is None:
            strides = strides_for(shape)
        else:
            strides = tuple([st if s != 1 else 0 for s, st in zip(shape, strides)])
        if mask is not None:
            if any([lo >= hi for lo, hi in mask]):  # nothing is valid: keep the canonical empty mask
                mask = tuple([(0, 0) for _ in shape])
                strides, offset = tuple([0 for _ in shape]), 0
            elif all([lo == 0 and hi == s for (lo, hi), s in zip(mask, shape)]):
                mask = None
        return View(shape, strides, offset, mask)

    @cached_property
    def contiguous(self) -> bool:
        return self.offset == 0 and self.mask is None and self.strides == strides_for(self.shape)

    def permute(self, order: tuple[int, ...]) -> View:
        return View.create(tuple(self.shape[i] for i in order), tuple(self.strides[i] for i in order), self.offset,
                           tuple(self.mask[i] for i in order) if self.mask else None)

    def expand(self, shape: Shape) -> View:
        mask = None
        if self.mask:
            mask = tuple(m if s == n else ((0, n) if m != (0, 0) else (0, 0))
                         for m, s, n in zip(self.mask, self.shape, shape))
        return View.create(shape, tuple([st if s == n else 0 for st, s, n in zip(self.strides, self.shape, shape)]),
                           self.offset, mask)

    def shrink(self, arg: tuple[tuple[int, int], ...]) -> View:
        offset = self.offset + sum([lo * st for (lo, _), st in zip(arg, self.strides)])
        mask = None
        if self.mask:
            mask = tuple([(max(mlo, lo) - lo, max(min(mhi, hi), max(mlo, lo)) - lo)
                          for (mlo, mhi), (lo, hi) in zip(self.mask, arg)])
        return View.create(tuple([hi - lo for lo, hi in arg]), self.strides, offset, mask)

    def pad(self, arg: tuple[tuple[int, int], ...]) -> View:
        if all([b == 0 and a == 0 for b, a in arg]):
            return self
        shape = tuple([s + b + a for s, (b, a) in zip(self.shape, arg)])
        old_mask = self.mask or tuple([(0, s) for s in self.shape])
        mask = tuple([(lo + b, hi + b) for (lo, hi), (b, _) in zip(old_mask, arg)])
        offset = self.offset - sum([b * st for (b, _), st in zip(arg, self.strides)])
        return View.create(shape, self.strides, offset, mask)

    def flip(self, axes: tuple[int, ...]) -> View:
        strides = list(self.strides)
        offset = self.offset
        mask = list(self.mask) if self.mask else None
        for ax in axes:
            offset += (self.shape[ax] - 1) * strides[ax]
            strides[ax] = -strides[ax]
            if mask:
                lo, hi = mask[ax]
                mask[ax] = (self.shape[ax] - hi, self.shape[ax] - lo)
        return View.create(self.shape, tuple(strides), offset, tuple(mask) if mask else None)

    def reshape(self, shape: Shape) -> View | None:
        """The same data in ``shape`` as one view, or None when that needs a second view."""
        if shape == self.shape:
            return self
        if self.contiguous:
            return View.create(shape)
        if self.mask is not None:
            squeezed_old = [(s, m) for s, m in zip(self.shape, self.mask) if s != 1]
            if [s for s, _ in squeezed_old] != [s for s in shape if s != 1]:
                return None
            strides = iter([st for s, st in zip(self.shape, self.strides) if s != 1])
            masks = iter([m for _, m in squeezed_old])
            new_strides, new_mask = [], []
            for s in shape:
                if s == 1:
                    new_strides.append(0)
                    new_mask.append((0, 1))
                else:
                    new_strides.append(next(strides))
                    new_mask.append(next(masks))
            return View.create(shape, tuple(new_strides), self.offset, tuple(new_mask))
        merged = _reshape_strides(self.shape, self.strides, shape)
        return None if merged is None else View.create(shape, merged, self.offset)


def _reshape_strides(old: Shape, old_strides: tuple[int, ...], new: Shape) -> tuple[int, ...] | None:
    """Strides for ``new`` over the same elements, when groups of old dims merge/split cleanly."""
    o = [(s, st) for s, st in zip(old, old_strides) if s != 1]
    n_dims = [i for i, s in enumerate(new) if s != 1]
    out = [0] * len(new)
    oi = ni = 0
    while oi < len(o) and ni < len(n_dims):
        o_group = [o[oi]]
        n_group = [n_dims[ni]]
        o_size, n_size = o[oi][0], new[n_dims[ni]]
        while o_size != n_size:
            if o_size < n_size:
                oi += 1
                if oi >= len(o):
                    return None
                o_group.append(o[oi])
                o_size *= o[oi][0]
            else:
                ni += 1
                if ni >= len(n_dims):
                    return None
                n_group.append(n_dims[ni])
                n_size *= new[n_dims[ni]]
        for (_, st1), (s2, st2) in zip(o_group, o_group[1:]):  # the old group must be contiguous within
            if st1 != st2 * s2:
                return None
        stride = o_group[-1][1]
        for d in reversed(n_group):
            out[d] = stride
            stride *= new[d]
        oi += 1
        ni += 1
    if oi != len(o) or ni != len(n_dims):
        return None
    return tuple(out)


@dataclass(frozen=True)
class ShapeTracker:
    views: tuple[View, ...]

    @staticmethod
    def contiguous(shape: Shape) -> ShapeTracker:
        return _contiguous(tuple(shape))

    def __getstate__(self) -> dict[str, Any]:
        return {"views": self.views}  # not the memo of derived trackers, nor cached properties

    @property
    def shape(self) -> Shape:
        return self.views[-1].shape

    @property
    def is_contiguous(self) -> bool:
        return len(self.views) == 1 and self.views[0].contiguous

    @cached_property
    def has_mask(self) -> bool:
        return any(v.mask is not None for v in self.views)

    @cached_property
    def key(self) -> tuple[tuple[Any, ...], ...]:
        """The views as plain tuples: equal exactly when the trackers are equal, and hashed and compared without
        a Python call per view (kernel keys and the scheduler's memo hold it)."""
        return tuple((v.shape, v.strides, v.offset, v.mask) for v in self.views)

    @cached_property
    def key_id(self) -> int:
        """A number for :attr:`key`: trackers with different keys never share one, and equal trackers get the same
        one while :data:`KEY_IDS_MAX` keys have not been numbered since the first of them (then the table starts
        again, and an equal tracker may get a new number: a schedule-cache miss, never a wrong hit).  Hashed like
        an int, where a key is a tuple of tuples hashed afresh by every graph key that holds it."""
        with _key_ids_lock:
            number = _key_ids.get(self.key)
            if number is None:
                if len(_key_ids) >= KEY_IDS_MAX:
                    _key_ids.clear()
                number = _key_ids[self.key] = next(_key_numbers)  # (never reused: the counter only grows)
            return number

    def size(self) -> int:
        return prod(self.shape)

    def _replace_last(self, view: View) -> ShapeTracker:
        return ShapeTracker((*self.views[:-1], view))

    def derived(self, key: tuple[Any, ...], make: Callable[[], ShapeTracker]) -> ShapeTracker:
        """The tracker ``make()`` gives, remembered under ``key`` (the movement op and its argument): trackers are
        immutable, and an eager step applies the same movement ops to the same trackers every step, so the second
        time costs one dict lookup and returns the very same tracker (whose own memo then hits too)."""
        memo = self.__dict__.get("_memo")
        if memo is None:
            memo = self.__dict__["_memo"] = {}  # (a frozen dataclass: the instance dict is written directly)
        st = memo.get(key)
        if st is None:
            st = make()
            if len(memo) < MEMO_MAX:
                memo[key] = st
        return st

    def permute(self, order: tuple[int, ...]) -> ShapeTracker:
        return self.derived(("permute", order), lambda: self._replace_last(self.views[-1].permute(order)))

    def expand(self, shape: Shape) -> ShapeTracker:
        return self.derived(("expand", shape), lambda: self._replace_last(self.views[-1].expand(shape)))

    def shrink(self, arg: tuple[tuple[int, int], ...]) -> ShapeTracker:
        return self.derived(("shrink", arg), lambda: self._replace_last(self.views[-1].shrink(arg)))

    def pad(self, arg: tuple[tuple[int, int], ...]) -> ShapeTracker:
        return self.derived(("pad", arg), lambda: self._replace_last(self.views[-1].pad(arg)))

    def flip(self, axes: tuple[int, ...]) -> ShapeTracker:
        return self.derived(("flip", axes), lambda: self._replace_last(self.views[-1].flip(axes)))

    def reshape(self, shape: Shape) -> ShapeTracker:
        return self.derived(("reshape", shape), lambda: self._reshape(shape))

    def _reshape(self, shape: Shape) -> ShapeTracker:
        view = self.views[-1].reshape(shape)
        if view is not None:
            return self._replace_last(view)
        return ShapeTracker((*self.views, View.create(shape)))

    def __add__(self, other: ShapeTracker) -> ShapeTracker:
        """``self`` then ``other``: other's first view indexes the contiguous result of ``self``."""
        if len(other.views) == 1 and len(self.views) == 1 and self.views[0].contiguous:
            return other  # what _compose gives in that case (an equal tracker), without making it again
        return self._compose(other)

    def _compose(self, other: ShapeTracker) -> ShapeTracker:
        result = self
        for v in other.views:
            if v.contiguous and v.shape == result.shape:
                continue
            if v.mask is None and v.offset == 0 and v.strides == strides_for(v.shape):
                result = result.reshape(v.shape)
                continue
            order = _permutation_of(v, result.shape)
            if order is not None:  # a transpose of the contiguous result: the same axes of the view below, permuted
                result = result.permute(order)
                continue
            last = result.views[-1]
            if last.contiguous:
                result = ShapeTracker((*result.views[:-1], v))
            else:
                result = ShapeTracker((*result.views, v))
        return result


def permuted_axes(view: View, shape: Shape) -> list[int] | None:
    """The axes of size > 1 of a contiguous array of ``shape``, in the order ``view``'s axes of size > 1 read them,
    when it reads each of them whole and once (a permutation, give or take axes of size 1); else None (a mask, an
    offset, a broadcast, a slice, a reshape).  A contiguous array's axes of size > 1 have distinct strides, so a
    stride names the axis it walks."""
    if view.mask is not None or view.offset != 0:
        return None
    by_stride = {st: a for a, (st, n) in enumerate(zip(strides_for(shape), shape)) if n != 1}
    picked = []
    for n, st in zip(view.shape, view.strides):
        if n != 1:
            a = by_stride.get(st)
            if a is None or shape[a] != n:
                return None
            picked.append(a)
    return picked if len(set(picked)) == len(picked) == len(by_stride) else None


def _permutation_of(view: View, shape: Shape) -> tuple[int, ...] | None:
    """The order with which ``view`` reads a contiguous array of ``shape`` as its axes permuted (None when it does
    not); axes of size 1 pair with each other in order."""
    kept = permuted_axes(view, shape) if len(view.shape) == len(shape) else None
    if kept is None:
        return None
    big, ones = iter(kept), iter([a for a, n in enumerate(shape) if n == 1])
    return tuple(next(ones) if n == 1 else next(big) for n in view.shape)


@functools.lru_cache(maxsize=4096)
def broadcast_scalar(shape: Shape) -> ShapeTracker:
    """A scalar seen at ``shape``: the tracker ``contiguous(()).reshape((1,) * len(shape)).expand(shape)`` gives (an
    equal one, with an equal key), made once per shape; every constant of an op's arithmetic has one."""
    return _contiguous(()).reshape((1,) * len(shape)).expand(shape)


@functools.lru_cache(maxsize=4096)
def _contiguous(shape: Shape) -> ShapeTracker:
    """The contiguous tracker of ``shape``, made once per shape (trackers are immutable; every op's output has one)."""
    return ShapeTracker((View.create(shape),))
