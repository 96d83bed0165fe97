"""The lazy graph: LazyBuffers record computations; nothing runs until something is realized.

A LazyBuffer is either a *base* (an operation with sources, or a realized device buffer) or a *view* of
a base: movement ops (reshape, permute, expand, pad, shrink, flip) only make new views, never copies.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tg.graph.shapetracker import Shape, ShapeTracker, broadcast_scalar, permuted_axes
from tg.support.dtype import DType, as_value, dtypes
from tg.support.ops import Ops

SPLIT_REDUCE_MIN = 4096  # reductions at least this long...
SPLIT_REDUCE_MAX_OUTPUTS = 256  # ...into at most this many outputs are split in two stages


class LazyOp(enum.Enum):
    # members are singletons compared by identity: hash them so too, in C (Enum's own __hash__ is a Python call,
    # and graph keys, schedule memos and rewrite tables hash thousands of them per step)
    __hash__ = object.__hash__

    FROM_HOST = enum.auto()   # arg: numpy array to copy in
    EMPTY = enum.auto()       # uninitialized memory
    CONST = enum.auto()       # arg: Python scalar; shape () then expanded by views
    ALU = enum.auto()         # arg: uops.Ops
    CAST = enum.auto()        # arg: bitcast flag
    REDUCE = enum.auto()      # arg: (Ops.ADD | Ops.MAX, axes)
    CONTIGUOUS = enum.auto()  # forces a copy into a fresh buffer
    COPY = enum.auto()        # from another device, through the host


class LazyBuffer:
    #: FROM_HOST only: draws new data of the same kind (set for random numbers, so a jit replay redraws them).
    redraw: Callable[[], np.ndarray] | None = None
    #: CONST only: a Python float of the user's arithmetic, which a kernel may take as a launch parameter instead of
    #: compiling its value in (so a learning rate that changes every step reuses the kernel).
    param: bool = False

    def __init__(self, device: str, st: ShapeTracker, dtype: DType, op: LazyOp | None = None,
                 srcs: tuple[LazyBuffer, ...] = (), arg: Any = None, base: LazyBuffer | None = None):
        self.device, self.st, self.dtype = device, st, dtype
        self.shape: Shape = st.views[-1].shape  # (st.shape without a call: read on every op, kept as an attribute)
        self._base = base
        self.op, self.srcs, self.arg = op, srcs, arg
        self.realized: Any = None  # a device.Buffer once computed (bases only)

    # -- structure ------------------------------------------------------------------------------------

    @property
    def base(self) -> LazyBuffer:
        return self._base if self._base is not None else self

    @property
    def is_view(self) -> bool:
        return self._base is not None

    def __repr__(self) -> str:
        what = "realized" if self.base.realized is not None else (self.base.op.name if self.base.op else "?")
        return f"<LB {self.device} {self.shape} {self.dtype.name} {what}{' view' if self.is_view else ''}>"

    # -- constructors ---------------------------------------------------------------------------------

    @staticmethod
    def from_numpy(array: np.ndarray, device: str, redraw: Callable[[], np.ndarray] | None = None) -> LazyBuffer:
        dtype = dtypes.from_any(array.dtype)
        lb = LazyBuffer(device, ShapeTracker.contiguous(array.shape), dtype, LazyOp.FROM_HOST,
                        arg=np.ascontiguousarray(array))
        if redraw is not None:
            lb.redraw = redraw
        return lb

    @staticmethod
    def from_buffer(buffer: Any, device: str, st: ShapeTracker, base_shape: Shape) -> LazyBuffer:
        """A view ``st`` of a device buffer that already holds data of shape ``base_shape``."""
        base = LazyBuffer(device, ShapeTracker.contiguous(base_shape), buffer.dtype)
        base.realized = buffer
        return base._view(st)

    @staticmethod
    def const(value: Any, dtype: DType, device: str, shape: Shape = (), param: bool = False) -> LazyBuffer:
        value = as_value(value, dtype)
        base = LazyBuffer(device, ShapeTracker.contiguous(()), dtype, LazyOp.CONST, arg=value)
        if param:
            base.param = True
        return LazyBuffer(device, broadcast_scalar(tuple(shape)), dtype, base=base) if shape else base

    @staticmethod
    def empty(shape: Shape, dtype: DType, device: str) -> LazyBuffer:
        return LazyBuffer(device, ShapeTracker.contiguous(shape), dtype, LazyOp.EMPTY)

    # -- compute ops (make a new base) ------------------------------------------------------------------

    def alu(self, op: Ops, *others: LazyBuffer, dtype: DType | None = None) -> LazyBuffer:
        srcs = (self, *others)
        for s in srcs:
            assert s.shape == self.shape, f"{op}: {[s.shape for s in srcs]}"
        out = dtype or (dtypes.bool if op in (Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ) else srcs[-1].dtype)
        return LazyBuffer(self.device, ShapeTracker.contiguous(self.shape), out, LazyOp.ALU, srcs, op)

    def cast(self, dtype: DType, bitcast: bool = False) -> LazyBuffer:
        if dtype == self.dtype:
            return self
        if self.base.op is LazyOp.CONST and not bitcast and not self.st.has_mask:  # a cast constant is a constant
            return LazyBuffer.const(self.base.arg, dtype, self.device, self.shape)  # as_value converts like CAST
        return LazyBuffer(self.device, ShapeTracker.contiguous(self.shape), dtype, LazyOp.CAST, (self,), bitcast)

    def reduce(self, op: Ops, axes: tuple[int, ...]) -> LazyBuffer:
        """Reduce over ``axes`` with ADD or MAX; the result keeps those axes with size 1."""
        axes = tuple(sorted(a for a in axes if self.shape[a] != 1))
        if not axes:
            return self
        shape = tuple(1 if i in axes else s for i, s in enumerate(self.shape))
        if self.base.op is LazyOp.CONST and not self.st.has_mask:  # a reduction of a constant is a constant
            return LazyBuffer.const(self._reduced_const(op, math.prod(self.shape[a] for a in axes)), self.dtype,
                                    self.device, shape)
        split = self._split_reduce(op, axes, shape)
        if split is not None:
            return split
        return LazyBuffer(self.device, ShapeTracker.contiguous(shape), self.dtype, LazyOp.REDUCE, (self,), (op, axes))

    def _reduced_const(self, op: Ops, count: int) -> Any:
        """MAX of ``count`` copies of the constant is itself; ADD is ``count`` times it, rounded once to the dtype
        (integers wrap as repeated addition would; bools OR), starting from +0 like the device's sum."""
        value = self.base.arg
        if self.dtype == dtypes.bool:
            return bool(value) and count > 0
        if op is Ops.MAX:  # never over an empty axis (the front end refuses that)
            return value
        total = value * count if count else 0  # an empty sum is 0, even of NaN or inf
        return as_value(total, self.dtype) if total != 0 or math.isnan(total) else 0

    def _split_reduce(self, op: Ops, axes: tuple[int, ...], out_shape: Shape) -> LazyBuffer | None:
        """A long reduction into few outputs runs as two: many partial results, then their reduction.

        Otherwise each output's single thread would walk the whole input alone.
        """
        size = math.prod(self.shape[a] for a in axes)
        if size < SPLIT_REDUCE_MIN or math.prod(out_shape) > SPLIT_REDUCE_MAX_OUTPUTS:
            return None
        for parts in (256, 128, 64, 32, 16, 8):
            for a in axes:  # split one reduced axis into `parts` partial results, each reducing >= 16 values
                if self.shape[a] % parts == 0 and size // parts >= 16:
                    split_shape = self.shape[:a] + (parts, self.shape[a] // parts) + self.shape[a + 1:]
                    inner_axes = tuple(x + (x > a) for x in axes if x != a) + (a + 1,)
                    partial = self.reshape(split_shape).reduce(op, inner_axes)
                    return partial.reduce(op, (a,)).reshape(out_shape)
        return None

    def contiguous(self) -> LazyBuffer:
        if not self.is_view and self.op is not LazyOp.CONST:
            return self
        return LazyBuffer(self.device, ShapeTracker.contiguous(self.shape), self.dtype, LazyOp.CONTIGUOUS, (self,))

    def copy_to(self, device: str) -> LazyBuffer:
        """This value on ``device``: a copy of its elements in row-major order (a view or a broadcast constant is
        made contiguous here first: the copy moves whole buffers)."""
        if device == self.device:
            return self
        source = self.contiguous()
        return LazyBuffer(device, ShapeTracker.contiguous(self.shape), self.dtype, LazyOp.COPY, (source,))

    # -- movement ops (make a view) ---------------------------------------------------------------------

    def _view(self, st: ShapeTracker) -> LazyBuffer:
        if st is self.st or (st.views[-1].shape == self.shape and st == self.st):  # (cheap tests first)
            return self
        return LazyBuffer(self.device, st, self.dtype, base=self.base)

    def reshape(self, shape: Shape) -> LazyBuffer:
        return self._view(self.st.reshape(tuple(shape)))

    def permute(self, order: tuple[int, ...]) -> LazyBuffer:
        return self._view(self.st.permute(tuple(order)))

    def permute_reduction(self, order: tuple[int, ...]) -> LazyBuffer:
        """``permute(order)``; but where this is an unrealized reduction, seen whole (reshaped only by axes of size 1),
        the reduction itself is rebuilt to write its result in the permuted order (its source seen permuted), so that
        a consumer reads it contiguously instead of strided.  The reduced axes and the order they are summed in are
        unchanged.  For a result with no other use (autograd's gradients): another use of the original reduction
        keeps its own kernel.  Equal views of one reduction share the rebuilt one (a gradient an addition passes to
        both of its inputs is rebuilt once).
        """
        out = self.permute(order)
        base = self.base
        if base.op is not LazyOp.REDUCE or base.realized is not None or out is self or len(out.st.views) != 1:
            return out
        picked = permuted_axes(out.st.views[0], base.shape)
        if picked is None or picked == sorted(picked):
            return out  # (not a permutation of the whole reduction, or the order it has already)
        rebuilt: dict[Any, LazyBuffer] = base.__dict__.setdefault("_permuted", {})
        found = rebuilt.get(out.st.key)
        if found is None:
            op, axes = base.arg
            source = base.srcs[0]
            rest = [a for a in range(len(source.shape)) if a not in axes and a not in picked]  # (axes of size 1)
            # the reduced axes stay in front of the kept ones (where a matmul's weight gradient has them)
            reduced = source.permute((*axes, *picked, *rest)).reduce(op, tuple(range(len(axes))))
            found = rebuilt[out.st.key] = reduced.reshape(out.shape)
        return found

    def expand(self, shape: Shape) -> LazyBuffer:
        return self._view(self.st.expand(tuple(shape)))

    def pad(self, arg: tuple[tuple[int, int], ...]) -> LazyBuffer:
        return self._view(self.st.pad(tuple(arg)))

    def shrink(self, arg: tuple[tuple[int, int], ...]) -> LazyBuffer:
        return self._view(self.st.shrink(tuple(arg)))

    def flip(self, axes: tuple[int, ...]) -> LazyBuffer:
        return self._view(self.st.flip(tuple(axes)))
