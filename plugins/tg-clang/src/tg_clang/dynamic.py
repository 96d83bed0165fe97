"""Kernels built for every value of a size (``LoweredKernel.dynamic``, see :mod:`tg.engine.dynamic`): which ones
tg-clang takes, and why the others are refused.

Such a kernel has ``n0`` anywhere in its int32 arithmetic (strides, masks, loop ends), so the plans of the tiled
renderer (:mod:`tg_clang.tiling`), which read sizes and loop lengths as constants, do not apply: it is rendered one
thread at a time by the scalar renderer, which computes every index and loop end from the micro-ops at run time.

Core launches it at a size in place of that size's exact kernel, so each element must get the exact kernel's bits.
The exact kernel renders each element with the same micro-ops, in the same order, as a scalar thread, except where
its strategy (chosen by the size) changes the arithmetic:

- SIMD lanes call libmvec's ``exp2``, ``log2`` and ``sin`` where the scalar code (and the tail of a tiling) calls
  libm's: other bits, on elements that depend on where the tiling puts them;
- lanes across a reduction loop (:mod:`tg_clang.reduction_lanes`, :mod:`tg_clang.row_lanes`) keep one partial
  result per lane and combine them in a tree: a float sum in another order (and a float max may keep another zero's
  sign), chosen by the loop's length and a cost estimate.  That choice is made per size: core asks
  :func:`same_order` of each size's exact kernel (``ClangEmitter.same_bits``) before it launches a kernel for
  every size there, and builds that size's exact kernel where the answer is yes.

:func:`refusal` names the first of the others a kernel could meet at some size (core then builds exact kernels).
Without the lane renderer (``TG_CLANG_SPMD=0``) every exact kernel is a scalar one, and every kernel is taken whose
launch the scalar renderer follows (one launch dimension follows ``n0``: the outermost, or the only one above 1).
"""

from __future__ import annotations

import math

from tg.codegen.program import LoweredKernel, Program
from tg.codegen.uops import Ops
from tg.support.dtype import DType

#: The transcendental micro-ops whose SIMD version (libmvec) differs from the scalar one (libm).
VECTOR_MATH = (Ops.EXP2, Ops.LOG2, Ops.SIN)


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
    for u in kernel.uops:
        if u.op in VECTOR_MATH and isinstance(u.dtype, DType) and u.dtype.name in ("float32", "float64"):
            return (f"its {u.op.name} runs in libmvec in the exact kernels' SIMD lanes and in libm in scalar code, "
                    "with other bits")
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
