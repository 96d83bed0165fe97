"""Kernels built for every value of a size (``LoweredKernel.dynamic``, see :mod:`tg.engine.dynamic`): which ones
tg-clang takes, and at which sizes their bits are the exact kernels'.

Such a kernel has ``n0`` anywhere in its int32 arithmetic (strides, masks, loop ends), so the plans of the tiled
renderer (:mod:`tg_clang.tiling`), which read sizes and loop lengths as constants, do not apply: it is rendered one
thread at a time by the scalar renderer, which computes every index and loop end from the micro-ops at run time,
or, for a row-pass kernel (a softmax over the size), by :mod:`tg_clang.dynamic_rows`.

Core launches it at a size in place of that size's exact kernel, so each element must get the exact kernel's bits.
The exact kernel renders each element with the same micro-ops, in the same order, as a scalar thread (``exp2``,
``log2`` and ``sin`` included: SIMD lanes and scalar code call the same function, see :mod:`tg_clang.cprelude`),
except where its strategy changes the arithmetic: lanes across a reduction loop (:mod:`tg_clang.reduction_lanes`,
:mod:`tg_clang.row_lanes`) keep one partial result per lane and combine them in a tree, a float sum in another order
(and a float max may keep another zero's sign).  That strategy is chosen per size, by the loop's length and a cost
estimate: core asks :func:`same_order` of each size's exact kernel (``ClangEmitter.same_bits``) before it launches a
kernel for every size there, and builds that size's exact kernel where the orders differ.

:func:`refusal` names what no size could run right.  Without the lane renderer (``TG_CLANG_SPMD=0``) every exact
kernel is a scalar one, and every kernel is taken whose launch the scalar renderer follows (one launch dimension
follows ``n0``: the outermost, or the only one above 1).
"""

from __future__ import annotations

import math

from tg.codegen.program import LoweredKernel, Program
from tg.codegen.uops import Ops
from tg.support.dtype import DType


def refusal(kernel: LoweredKernel) -> str | None:
    """Why the scalar rendering of ``kernel`` (a kernel for every size) could not run right at some size in its
    bounds, or None."""
    grid, follow = kernel.global_size, [axis for axis, _ in kernel.launch_vars]
    if len(follow) > 1 or any(axis != len(grid) - 1 and math.prod(grid) > grid[axis] for axis in follow):
        # (the scalar renderer splits a unit into the launch's indices by the inner dims' sizes, as constants)
        return "a launch dimension other than the outermost follows the size"
    return None


def same_order(dynamic: Program, exact: LoweredKernel, t: int, lanes: int, rows: int) -> bool:
    """Whether tg-clang's rendering of ``exact`` (the kernel of size ``t``) runs its float reductions in the order
    ``dynamic`` (a kernel for every size) does at ``t``: one thread's loop, or a row-pass kernel's gang of ``lanes``
    (:mod:`tg_clang.dynamic_rows`, where its ``lane_rule`` attribute says so)."""
    from tg_clang.dynamic_rows import lanes_at
    from tg_clang.tiling import render_tiled

    if not any(u.op is Ops.DEFINE_ACC and isinstance(u.dtype, DType) and u.dtype.is_float for u in exact.uops):
        return True
    rendered = render_tiled(exact, lanes, rows)
    order = rendered.strategy if rendered is not None else "scalar"
    rule = dynamic.attributes.get("lane_rule")
    if rule is not None and lanes_at(rule, t):
        return order.rstrip("s") == str(dynamic.attributes["strategy"]).removesuffix("n")
    return not order.startswith(ACROSS_LANES)


#: The strategies (:mod:`tg_clang.reduction_lanes`, :mod:`tg_clang.row_lanes`) whose lanes split a reduction's loop.
ACROSS_LANES = ("reduce", "rows")
