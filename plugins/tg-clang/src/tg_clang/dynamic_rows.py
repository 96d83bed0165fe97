"""Row-pass kernels (a softmax over a sequence's length) built for every size: the exact kernels' lanes, per size.

The exact kernel of a row-pass kernel (:mod:`tg_clang.row_lanes`) runs each row's loops across a gang of G lanes
wherever every loop is at least a gang long, and one thread per row (lanes across rows, each row's loop in order)
where one is shorter: two orders of a float sum, chosen by the loops' lengths.  A kernel for every size whose loops
follow ``n0`` holds both: the row-lanes code with each loop's whole gangs and leftover counted at run time, and the
scalar thread, and each launch runs the one the exact kernel of its size would: the C file computes the loops'
lengths from ``n0`` as the kernel does (:data:`LaneRule`, kept in the Program for :func:`lanes_at`).

Only the narrowest gang is built (the exact kernel widens it on loops at least eight gangs long): core asks
:func:`same_order` of each size's exact kernel, and sizes whose exact kernel took a wider gang, or other lanes, are
built exactly.  Nothing is stashed between passes (the stash's length follows the rows); a later pass computes its
values again, with the same micro-ops over the same lanes, so the same bits.
"""

from __future__ import annotations

import math
from typing import Any

from tg.codegen.program import LoweredKernel, SymbolicSize
from tg.codegen.tiles import UNIT_OPS, thread_cost
from tg.codegen.uops import Ops, UOp

from tg_clang.cfile import CKernel, dynamic_entry, file_start, kernel_params
from tg_clang.row_lanes import RowPasses, RowPassReplay, find_row_passes
from tg_clang.scalar import ScalarRenderer

#: The int32 ops a loop's end may be computed with here, as C infix operators (division and remainder: the prelude's).
_INFIX = {Ops.ADD: "+", Ops.SUB: "-", Ops.MUL: "*"}
#: A loop end's formula in ``n0``: ``("n0",)``, ``("const", value)`` or ``(op name, formula, formula)``.
Formula = tuple[Any, ...]
#: When a kernel for every size runs its row lanes: a gang of ``lanes`` and each loop's start and end; the lanes run
#: where every loop is at least a gang long, as in the exact kernels (:func:`tg_clang.row_lanes.plan_row_passes`).
LaneRule = tuple[int, tuple[tuple[int, Formula], ...]]


def strategy(passes: RowPasses, lanes: int) -> str:
    """The strategy name of a kernel for every size in row lanes (the exact one's, with ``n`` after it)."""
    return f"rows{len(passes.loops)}x{lanes}n"


def render_dynamic_rows(kernel: LoweredKernel, lanes: int) -> CKernel | None:
    """The C file of a row-pass kernel for every size (one launch dim, one thread per row: a constant count, or one
    that follows ``n0``), or None where it is not
    one or a loop's end is computed otherwise than :data:`_INFIX`, division, remainder and max of ``n0`` and
    constants (the scalar renderer takes it then)."""
    if len(kernel.global_size) != 1 or len(kernel.launch_vars) > 1 or math.prod(kernel.local_size) != 1 or \
            any(size.divisor != 1 or size.blocks != 1 for _, size in kernel.launch_vars):
        return None
    from tg_clang.spmd import lane_supported

    passes = find_row_passes(kernel.uops, computed_ends=True)
    if passes is None or not lane_supported(kernel.uops):  # (float16: the exact kernels are scalar)
        return None
    ends = [_formula(loop.src[1]) for loop in passes.loops]
    if any(end is None for end in ends):
        return None
    rule: LaneRule = (lanes, tuple((int(loop.src[0].arg), end) for loop, end in zip(passes.loops, ends) if end))
    return _render(kernel, passes, rule)


def lanes_at(rule: LaneRule, n0: int) -> bool:
    """Whether a kernel for every size with ``rule`` runs its row lanes at ``n0``."""
    lanes, loops = rule
    return min(_value(end, n0) - start for start, end in loops) >= lanes


def _formula(u: UOp) -> Formula | None:
    if u.op is Ops.CONST:
        return ("const", int(u.arg))
    if u.op is Ops.DEFINE_VAR:
        return ("n0",) if u.arg[0] == "n0" else None
    if u.op not in (*_INFIX, Ops.IDIV, Ops.MOD, Ops.MAX):
        return None
    a, b = _formula(u.src[0]), _formula(u.src[1])
    return (u.op.name, a, b) if a is not None and b is not None else None


def _c(f: Formula) -> str:
    """The C expression of a formula, in int32 as the kernel computes it."""
    if f[0] == "n0":
        return "n0"
    if f[0] == "const":
        return str(f[1])
    a, b = _c(f[1]), _c(f[2])
    op = Ops[f[0]]
    if op in _INFIX:
        return f"({a} {_INFIX[op]} {b})"
    if op is Ops.MAX:
        return f"({a} > {b} ? {a} : {b})"
    return f"tg_{'idiv' if op is Ops.IDIV else 'mod'}_int32_t({a}, {b})"


def _value(f: Formula, n0: int) -> int:
    """A formula's value at ``n0`` as the C expression computes it (core keeps it within int32 in the bounds)."""
    if f[0] == "n0":
        return n0
    if f[0] == "const":
        return int(f[1])
    a, b = _value(f[1], n0), _value(f[2], n0)
    op = Ops[f[0]]
    if op is Ops.ADD:
        return a + b
    if op is Ops.SUB:
        return a - b
    if op is Ops.MUL:
        return a * b
    if op is Ops.MAX:
        return max(a, b)
    if b in (0, -1) and op is Ops.MOD or b == 0:
        return 0
    quotient = abs(a) // abs(b) * (1 if (a >= 0) == (b > 0) else -1)  # C truncates
    return quotient if op is Ops.IDIV else a - b * quotient


def _render(kernel: LoweredKernel, passes: RowPasses, rule: LaneRule) -> CKernel:
    from tg_clang.spmd import LaneRenderer, vector_typedefs

    name, uops = kernel.name, kernel.uops
    lanes, loops = rule
    params = kernel_params(uops)
    sig, args = ", ".join(params), ", ".join(p.rsplit(" ", 1)[1] for p in params)
    tile = RowPassReplay(passes, kernel.global_size, lanes).build(uops)
    body = LaneRenderer(tile, lanes, {"row0": "row0"}).render()
    decls, phases = ScalarRenderer(uops, {"gidx0": "row0"}).render()
    assert not decls and len(phases) == 1
    rows = kernel.launch_vars[0][1] if kernel.launch_vars else None  # the rows follow n0, or are a constant
    threads = f"(({rows.square} * {rows.var} + {rows.scale}) * {rows.var} + {rows.offset})" if rows else \
        str(kernel.global_size[0])
    block = max(1, math.ceil(UNIT_OPS / thread_cost(uops)))
    shortest = " && ".join(f"{_c(end)} - {start} >= {lanes}" for start, end in loops)
    unit_cost = block * thread_cost(uops)
    lines = [*file_start(name, -(-kernel.global_size[0] // block), unit_cost, strategy(passes, lanes),
                         vector_typedefs(lanes)),
             f"static inline __attribute__((always_inline)) void {name}_row({sig}, int32_t row0) {{", *body, "}",
             f"static void {name}_thread({sig}, int32_t row0) {{", *phases[0], "}",
             f"void {name}({sig}, int32_t start, int32_t end) {{",
             f"  int in_lanes = {shortest};",
             "  for (int32_t u = start; u < end; u++) {",
             f"    int32_t row0 = u * {block}, hi = row0 + {block} < {threads} ? row0 + {block} : {threads};",
             f"    if (in_lanes) for (; row0 < hi; row0++) {name}_row({args}, row0);",
             f"    else for (; row0 < hi; row0++) {name}_thread({args}, row0);",
             "  }", "}", dynamic_entry(name, params), ""]
    launch = ((0, SymbolicSize(rows.var, rows.scale, block, 1, rows.square, rows.offset)),) if rows else ()
    return CKernel("\n".join(lines), -(-kernel.global_size[0] // block), unit_cost, strategy(passes, lanes),
                   launch, rule)
