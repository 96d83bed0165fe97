"""The optimizations core applies to a shaped kernel, chosen from the target's declared capabilities.

A shaped kernel is the lowering's view of a scheduled kernel: its dimensions after merging the ones every buffer
walks as one (``shape``), which of them are reduced, the reduction's op and the output's dtype.  From that and
the :class:`~tg.codegen.capabilities.Capabilities`, :func:`choose_opts` decides:

- ``group_lanes``: a work group per output whose lanes share a long reduction through local memory
  (``group_size``, ``local_memory``);
- ``upcast``: register tiles: each thread computes neighbouring outputs along one or two dims, sharing their
  loads (``upcast``), the innermost becoming vector lanes when it is the target's ``vector_width``;
- ``unroll``: iterations of the innermost reduction loop written out per trip (``unroll``); the accumulation
  order stays the loop's, so results are bit-identical.

Tensor-core contractions are chosen by :mod:`tg.codegen.contraction`; register tiles over the launch grid and
cache blocking, for targets that run many threads per core, by :mod:`tg.codegen.tiles`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tg.codegen.capabilities import Capabilities
from tg.support.dtype import DType
from tg.support.ops import Ops


@dataclass(frozen=True)
class ShapedKernel:
    """What the optimizations are chosen from: the merged ``shape``, the reduced dims, the reduction op (None for
    an elementwise kernel) and the output's dtype."""

    shape: tuple[int, ...]
    reduce_dims: tuple[int, ...]
    reduce_op: Ops | None
    out_dtype: DType
    symbolic: bool = False  # dim 0's size is a launch variable: no register tile or vector lanes along it

    @property
    def global_dims(self) -> list[int]:
        return [j for j in range(len(self.shape)) if j not in self.reduce_dims]

    @property
    def n_outputs(self) -> int:
        return math.prod(self.shape[j] for j in self.global_dims)

    @property
    def reduce_size(self) -> int:
        return math.prod(self.shape[j] for j in self.reduce_dims)


@dataclass(frozen=True)
class KernelOpts:
    """The optimizations chosen for one kernel (see the module docstring)."""

    group_lanes: int = 1
    upcast: tuple[tuple[int, int], ...] = ()
    unroll: int = 1


def choose_opts(k: ShapedKernel, caps: Capabilities) -> KernelOpts:
    lanes = grouped_reduce_lanes(k, caps)
    if lanes > 1:
        return KernelOpts(group_lanes=lanes)
    return KernelOpts(upcast=tuple(upcast_plan(k, caps)), unroll=unroll_amount(k, caps))


def upcast_plan(k: ShapedKernel, caps: Capabilities) -> list[tuple[int, int]]:
    """(dim, amount) pairs: each thread computes ``amount`` neighbours along ``dim`` (all combinations).

    Elementwise kernels take ``vector_width`` lanes of the innermost dim.  Reductions, when the backend
    allows ``upcast`` outputs per thread, take a register tile: vector-width lanes of the innermost
    output dim, then the rest of the budget from the next output dim out, so loads are shared across
    the tile (a matmul thread reuses each A value for a row of B values).
    """
    w, budget = caps.vector_width, caps.upcast
    dims = [j for j in k.global_dims if k.shape[j] > 1 and not (k.symbolic and j == 0)]
    if not dims:
        return []
    if k.reduce_op is None:
        return [(dims[-1], w)] if w > 1 and k.shape[dims[-1]] % w == 0 else []
    plan: list[tuple[int, int]] = []
    for j in reversed(dims):
        amount = next((a for a in (8, 4, 2) if a <= budget and k.shape[j] % a == 0), 1)
        if j == dims[-1] and w > 1 and k.shape[j] % w == 0 and w <= budget:
            amount = w  # the innermost output dim becomes vector lanes
        if amount > 1:
            plan.append((j, amount))
            budget //= amount
        if budget < 2 or len(plan) == 2:
            break
    return plan[::-1]


def grouped_reduce_lanes(k: ShapedKernel, caps: Capabilities) -> int:
    """A work group per output (its lanes share the reduction) for few outputs, or for long reductions of
    up to 2^22 threads in all: one thread walking a long row alone is slow (on a GPU its neighbours read
    other rows, so no load is coalesced).  1: a thread per output (or per register tile)."""
    lanes, size, n_outputs = caps.group_size, k.reduce_size, k.n_outputs
    fits = caps.local_memory >= lanes * k.out_dtype.itemsize
    if k.reduce_op is None or lanes <= 1 or not fits or size < 2 * lanes:
        return 1
    return lanes if n_outputs <= 1024 or (size >= 4 * lanes and n_outputs * lanes <= 1 << 22) else 1


def unroll_amount(k: ShapedKernel, caps: Capabilities) -> int:
    """How many iterations of the innermost reduction loop one trip runs: the largest power of two up to
    ``caps.unroll`` that divides the loop's length (1: the loop stays as it is)."""
    if k.reduce_op is None or not k.reduce_dims or caps.unroll < 2:
        return 1
    length = k.shape[k.reduce_dims[-1]]
    amount = 1 << (caps.unroll.bit_length() - 1)
    while amount > 1 and (length % amount or length < 2 * amount):
        amount //= 2
    return amount


def row_dim(shape: tuple[int, ...], folded: list[int], inner: int,
            loads: list[tuple[tuple[int, ...], tuple[tuple[int, int], ...] | None]]) -> int:
    """Which of the ``folded`` output dims (innermost last) a shaped launch should fold innermost, so that
    neighbouring rows of the launch differ along it: the dim that the most loads which vary along the launch's
    innermost dim ``inner`` do not depend on (a convolution's output channel: its image row is the same for every
    channel, so a register tile of channels loads it once).  ``loads`` gives each load's strides and mask over
    ``shape`` (its outermost view's).  The innermost folded dim unless another is shared by strictly more."""
    def independent(strides: tuple[int, ...], mask: tuple[tuple[int, int], ...] | None, d: int) -> bool:
        return strides[d] == 0 and (mask is None or mask[d] == (0, shape[d]))

    def shared(d: int) -> int:
        return sum(1 for strides, mask in loads if not independent(strides, mask, inner)
                   and independent(strides, mask, d))

    best = folded[-1]
    for d in folded:
        if shape[d] > 1 and shared(d) > shared(best):
            best = d
    return best
