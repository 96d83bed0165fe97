"""Kernels built for every value of a size (``LoweredKernel.dynamic``, see :mod:`tg.engine.dynamic`): which ones
tg-clang takes, and why the others are refused.

Such a kernel has ``n0`` anywhere in its int32 arithmetic (strides, masks, loop ends), so the plans of the tiled
renderer (:mod:`tg_clang.tiling`), which read sizes and loop lengths as constants, do not apply: it is rendered one
thread at a time by the scalar renderer, which computes every index and loop end from the micro-ops at run time.

Core launches it at a size in place of that size's exact kernel, so each element must get the exact kernel's bits.
The exact kernel renders each element with the same micro-ops, in the same order, as a scalar thread (``exp2``,
``log2`` and ``sin`` included: SIMD lanes and scalar code call the same function, see :mod:`tg_clang.cprelude`),
except where its strategy (chosen by the size) changes the arithmetic: lanes across a reduction loop
(:mod:`tg_clang.reduction_lanes`, :mod:`tg_clang.row_lanes`) keep one partial result per lane and combine them in a
tree: a float sum in another order (and a float max may keep another zero's sign), chosen where the loop is at least
a gang long.

:func:`refusal` says whether a kernel could meet that at some size (core then builds exact kernels).
Without the lane renderer (``TG_CLANG_SPMD=0``) every exact kernel is a scalar one, and every kernel is taken whose
launch the scalar renderer follows (one launch dimension follows ``n0``: the outermost, or the only one above 1).
"""

from __future__ import annotations

import math

from tg.codegen.program import LoweredKernel
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import DType


def refusal(kernel: LoweredKernel, lanes: int, spmd: bool = True) -> str | None:
    """Why the scalar rendering of ``kernel`` (a kernel for every size) could be wrong or differ in some bit from the
    exact kernel of some size in its bounds, or None when it cannot.  ``lanes``: the lane renderer's gang (the
    shortest loop it runs across lanes is one gang); ``spmd``: whether exact kernels may take the lane renderer."""
    grid, follow = kernel.global_size, [axis for axis, _ in kernel.launch_vars]
    if len(follow) > 1 or any(axis != len(grid) - 1 and math.prod(grid) > grid[axis] for axis in follow):
        # (the scalar renderer splits a unit into the launch's indices by the inner dims' sizes, as constants)
        return "a launch dimension other than the outermost follows the size"
    if not spmd:
        return None
    loops: list[UOp] = []
    for u in kernel.uops:
        if u.op is Ops.RANGE:
            loops.append(u)
        elif u.op is Ops.ENDRANGE:
            loops.pop()
        elif u.op is Ops.ASSIGN and isinstance(u.dtype, DType) and u.dtype.is_float:
            for trips in map(_trips, loops):
                if trips is None or trips >= lanes:
                    length = "follows the size" if trips is None else f"is {trips} long"
                    return (f"a float reduction whose loop {length}: the exact kernels may run it across SIMD lanes, "
                            "in another order")
    return None


def _trips(loop: UOp) -> int | None:
    """A loop's trip count, None where it is not a constant (it follows ``n0``)."""
    start, end = loop.src[0], loop.src[1]
    if start.op is Ops.CONST and end.op is Ops.CONST:
        return int(end.arg) - int(start.arg)
    return None
