"""Reductions SIMD across their own loop: G lanes walk the innermost reduction loop of one output together.

The tiled renderer (:mod:`tg_clang.tiling`) runs G neighbouring *outputs* as lanes.  When each output reduces a
contiguous run of memory (a sum over the last axis, a softmax's row max), neighbouring outputs read addresses a
whole row apart, so every load is a gather.  Here the lanes split the innermost loop instead: lane ``l`` of trip
``k`` runs iteration ``k*G + l``, so those loads are contiguous vectors, and each lane keeps a partial result in
its own accumulator.  After the loops, the lanes' partials are combined in a fixed tree (lane l with lane l+G/2,
...), then with the iterations past the last whole gang (run one at a time, into an accumulator of their own).

The order of a float sum therefore differs from one thread's sequential loop (G interleaved partial sums, like
numpy's pairwise blocks); integer sums wrap alike in any order and MAX picks the same value (a NaN anywhere
still wins), so those results are exact.

A micro-tile runs R outputs at once (independent accumulators, so their adds overlap; loads the outputs share
are made once).  A work unit is a block of consecutive outputs.  :func:`reduction_tile_kernel` rebuilds the
micro-ops for one micro-tile; the lane renderer (:mod:`tg_clang.spmd`) renders it; :func:`render_reduction_lanes`
writes the C file, and the caller compares the cost estimate with the tiled renderer's.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from tg.codegen.builder import KernelBuilder
from tg.codegen.lower import reduce_identity
from tg.codegen.rewrites import eliminate_dead
from tg.codegen.tiles import SHARED_LEAVES, UNIT_OPS, div_mod_sum, shared_leaf, thread_cost
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import DType, dtypes

from tg_clang.cfile import CKernel, dynamic_entry, file_start, kernel_params

#: The reduction ops whose partial results may be combined in any order (exactly, or within float rounding).
COMBINABLE = (Ops.ADD, Ops.MAX)


@dataclass(frozen=True)
class ReductionLoop:
    """What the rebuild needs to know of a kernel: its innermost loop, that loop's trip count, and each
    accumulator with its reduction op."""

    inner: UOp
    trips: int
    accs: dict[int, Ops]  # id(DEFINE_ACC) -> ADD or MAX


def find_reduction_loop(uops: list[UOp]) -> ReductionLoop | None:
    """The kernel's reduction, when it has the one shape this module rebuilds: loops nested in one chain with
    constant bounds, accumulators defined before them and updated only in the innermost loop, each as
    ``acc = op(acc, x)`` with ``op`` ADD or MAX, and read nowhere else inside the loops."""
    ranges = [u for u in uops if u.op is Ops.RANGE]
    if not ranges or any(r.src[0].op is not Ops.CONST or r.src[1].op is not Ops.CONST for r in ranges):
        return None
    depth, deepest, inner_ops = 0, 0, []
    accs: dict[int, Ops] = {}
    first_range = uops.index(ranges[0])
    for pos, u in enumerate(uops):
        if u.op is Ops.RANGE:
            if depth != deepest:  # a loop after an inner one closed: not one chain
                return None
            depth += 1
            deepest = depth
        elif u.op is Ops.ENDRANGE:
            depth -= 1
        elif u.op is Ops.DEFINE_ACC:
            if pos > first_range:
                return None
            accs[id(u)] = Ops.ADD  # the op is read from its update below
        elif depth and u.op is Ops.STORE:
            return None  # a store inside the loops would run in another order
        elif depth == len(ranges):
            inner_ops.append(u)
        elif u.op is Ops.ASSIGN or (depth and any(id(s) in accs for s in u.src)):
            return None  # an update or a read of an accumulator outside the innermost loop
    if not accs or depth != 0:
        return None
    updates = {id(u.src[1]): u for u in inner_ops if u.op is Ops.ASSIGN}
    updated: set[int] = set()
    for u in inner_ops:
        if u.op is Ops.ASSIGN:
            acc, value = u.src
            if id(acc) in updated or value.op not in COMBINABLE or value.src[0] is not acc or value.src[1] is acc:
                return None
            accs[id(acc)] = value.op
            updated.add(id(acc))
        elif any(id(s) in accs for s in u.src) and id(u) not in updates:
            return None  # an accumulator read by something else than its update
    if updated != set(accs) or any(u.arg != reduce_identity(accs[id(u)], u.dtype) for u in uops
                                   if u.op is Ops.DEFINE_ACC and isinstance(u.dtype, DType)):
        return None  # an accumulator starting elsewhere than at its op's identity would count that G times
    uses = Counter(id(s) for u in uops for s in u.src)
    for u in inner_ops:
        if u.op is Ops.ASSIGN and (uses[id(u)] or uses[id(u.src[1])] != 1):
            return None  # an update, or its value, read elsewhere than by the accumulator
    inner = ranges[-1]
    return ReductionLoop(inner, inner.src[1].arg - inner.src[0].arg, accs)


class ReductionReplay:
    """Rebuilds a kernel's micro-ops as one micro-tile: ``rows`` consecutive outputs (threads ``row0 + r`` of the
    launch ``grid``), each with ``lanes`` lanes over the innermost loop of ``loop``."""

    def __init__(self, loop: ReductionLoop, grid: tuple[int, ...], lanes: int, rows: int):
        self.loop, self.grid, self.lanes, self.rows = loop, grid, lanes, rows
        self.b = KernelBuilder()
        self.row0 = self.b.special("row0", max(1, math.prod(grid) - rows + 1))
        self.lane = self.b.special("lane", lanes)

    def build(self, uops: list[UOp]) -> list[UOp]:
        b, loop, i32 = self.b, self.loop, dtypes.int32
        shared: dict[int, UOp] = {}
        per_row: list[dict[int, UOp]] = [{} for _ in range(self.rows)]
        tails: list[dict[int, UOp]] = [{} for _ in range(self.rows)]  # accumulators of the leftover iterations
        whole = loop.trips - loop.trips % self.lanes
        start = loop.inner.src[0].arg
        open_loops = 0
        body: list[UOp] = []
        in_body, trip = False, None
        for u in uops:
            if in_body and u.op not in (Ops.ENDRANGE, Ops.CONST):  # constants are shared already
                body.append(u)
            if u.op in SHARED_LEAVES:
                shared[id(u)] = shared_leaf(b, u)
            elif u.op is Ops.DEFINE_ACC:
                assert isinstance(u.dtype, DType)
                for r in range(self.rows):
                    per_row[r][id(u)] = b.define_acc(u.arg, u.dtype)
                    if whole < loop.trips:
                        tails[r][id(u)] = b.define_acc(u.arg, u.dtype)
            elif u.op is Ops.RANGE and u is loop.inner:
                trip = b.range(0, whole // self.lanes)
                first = b.alu(Ops.ADD, b.alu(Ops.MUL, trip, b.const(self.lanes, i32)), self.lane)
                shared[id(u)] = b.alu(Ops.ADD, first, b.const(start, i32))
                in_body, body = True, []
                open_loops += 1
            elif u.op is Ops.RANGE:
                shared[id(u)] = b.range(u.src[0].arg, u.src[1].arg)
                open_loops += 1
            elif u.op is Ops.ENDRANGE and in_body:
                in_body = False
                assert trip is not None
                b.end_range(trip)
                if whole < loop.trips:
                    self._leftover(body, shared, per_row, tails, start + whole, start + loop.trips)
                open_loops -= 1
                if open_loops == 0:
                    self._combine(per_row, tails)
            elif u.op is Ops.ENDRANGE:
                b.end_range(shared[id(u.src[0])])
                open_loops -= 1
                if open_loops == 0:
                    self._combine(per_row, tails)
            else:
                for r in range(self.rows):
                    per_row[r][id(u)] = self._replay(u, shared, per_row[r], r)
        return eliminate_dead(b.uops)

    def _leftover(self, body: list[UOp], shared: dict[int, UOp], per_row: list[dict[int, UOp]],
                  tails: list[dict[int, UOp]], lo: int, hi: int) -> None:
        """The iterations past the last whole gang, one at a time (uniform), into the rows' leftover
        accumulators."""
        b = self.b
        counter = b.range(lo, hi)
        inner_shared = {**shared, id(self.loop.inner): counter}
        for r in range(self.rows):
            mapping = {**per_row[r], **tails[r]}
            for u in body:
                mapping[id(u)] = self._replay(u, inner_shared, mapping, r)
        b.end_range(counter)

    def _combine(self, per_row: list[dict[int, UOp]], tails: list[dict[int, UOp]]) -> None:
        """After the loops: each accumulator becomes its lanes' partials combined in a tree, then with the leftover
        accumulator; the micro-ops after the loops read that."""
        b = self.b
        for r in range(self.rows):
            for acc_id, op in self.loop.accs.items():
                acc = per_row[r][acc_id]
                assert isinstance(acc.dtype, DType)
                parts = [b._add(Ops.GEP, acc.dtype, (acc,), lane) for lane in range(self.lanes)]
                while len(parts) > 1:
                    half = len(parts) // 2
                    parts = [b.alu(op, parts[i], parts[i + half]) for i in range(half)] + parts[2 * half:]
                total = parts[0]
                if acc_id in tails[r]:
                    total = b.alu(op, total, tails[r][acc_id])
                per_row[r][acc_id] = total

    def _thread_index(self, name: str, r: int) -> UOp:
        b, i32 = self.b, dtypes.int32
        flat = b.alu(Ops.ADD, self.row0, b.const(r, i32))
        if len(self.grid) == 1:
            return flat
        if name == "gidx0":
            return b.alu(Ops.MOD, flat, b.const(self.grid[0], i32))
        return b.alu(Ops.IDIV, flat, b.const(self.grid[0], i32))

    def _replay(self, u: UOp, shared: dict[int, UOp], mine: dict[int, UOp], r: int) -> UOp:
        b = self.b
        if u.op is Ops.SPECIAL:
            return self._thread_index(u.arg[0], r)
        src = tuple(mine[id(x)] if id(x) in mine else shared[id(x)] for x in u.src)
        if u.op is Ops.ASSIGN:
            return b.assign(src[0], src[1])
        if u.op is Ops.LOAD:
            return b.load(src[0], src[1], u.dtype, *src[2:])  # type: ignore[arg-type]
        if u.op is Ops.STORE:
            b.store(src[0], src[1], src[2], src[3] if len(src) > 3 else None)
            return src[2]
        assert isinstance(u.dtype, DType), u
        if u.op is Ops.CAST:
            return b.cast(src[0], u.dtype)
        if u.op is Ops.BITCAST:
            return b.bitcast(src[0], u.dtype)
        if u.op is Ops.ADD and (joined := div_mod_sum(*src)) is not None:
            return joined
        return b.alu(u.op, *src, dtype=u.dtype)


@dataclass(frozen=True)
class ReductionPlan:
    """Micro-tiles of ``rows`` outputs by ``lanes`` lanes over the loop; work units of ``block`` outputs."""

    lanes: int
    rows: int
    threads: int
    block: int

    @property
    def units(self) -> int:
        return -(-self.threads // self.block)


#: Outputs per micro-tile.  One: a tile of several outputs reads several rows at once, and those interleaved
#: streams halve what a core reads from memory (measured: 11 against 20 GB/s for a sum of rows of 1 KiB).
TILE_ROWS = 1
#: The most bytes one lane-wide accumulator may hold: a gang this wide keeps several registers of partial
#: results, whose adds overlap instead of each waiting for the one before (four AVX-512 registers of float32).
WIDE_GANG_BYTES = 256


def plan_reduction(uops: list[UOp], grid: tuple[int, ...], lanes: int) -> tuple[ReductionLoop, ReductionPlan] | None:
    """The loop and plan of a kernel this module takes (None: it has no such loop, or the loop is shorter than
    two gangs, which would leave most of the work to the one-at-a-time leftover).  The gang is ``lanes`` wide,
    or up to four times that where the loop is long enough for two of the wider gangs."""
    loop = find_reduction_loop(uops)
    if loop is None or loop.trips < 2 * lanes:
        return None
    widest = max(_acc_bytes(uops), 1)
    while lanes * 2 * widest <= WIDE_GANG_BYTES and loop.trips >= 4 * lanes:
        lanes *= 2
    threads = math.prod(grid)
    rows = min(TILE_ROWS, threads)
    block = max(rows, rows * math.ceil(UNIT_OPS / (rows * thread_cost(uops))))
    return loop, ReductionPlan(lanes, rows, threads, min(block, rows * -(-threads // rows)))


def _acc_bytes(uops: list[UOp]) -> int:
    return max((u.dtype.itemsize for u in uops if u.op is Ops.DEFINE_ACC and isinstance(u.dtype, DType)), default=4)


def reduction_tile_kernel(uops: list[UOp], grid: tuple[int, ...], loop: ReductionLoop, plan: ReductionPlan,
                          rows: int) -> list[UOp]:
    """The micro-ops of one micro-tile of ``rows`` outputs (``row0`` the first output, ``lane`` the lane)."""
    return ReductionReplay(loop, grid, plan.lanes, rows).build(uops)


def render_reduction_lanes(name: str, uops: list[UOp], grid: tuple[int, ...], loop: ReductionLoop,
                           plan: ReductionPlan) -> tuple[CKernel, float]:
    """The C file of a kernel whose lanes walk its reduction loop, and its estimated cost per output (the
    tiled renderer's measure, :func:`tg_clang.lane_cost.tile_cost`)."""
    from tg_clang.lane_cost import tile_cost
    from tg_clang.spmd import LaneRenderer, vector_typedefs

    params = kernel_params(uops)
    sig, args = ", ".join(params), ", ".join(p.rsplit(" ", 1)[1] for p in params)
    functions, cost = [], 0.0
    for rows in sorted({plan.rows, 1}, reverse=True):
        tile = reduction_tile_kernel(uops, grid, loop, plan, rows)
        renderer = LaneRenderer(tile, plan.lanes, {"row0": "row0"})
        body = renderer.render()
        if rows == plan.rows:
            cost = tile_cost(renderer, tile, rows)
        functions += [f"static inline __attribute__((always_inline)) void {name}_tile{rows}({sig}, int32_t row0) {{",
                      *body, "}"]
    strategy = f"reduce{plan.rows}x{plan.lanes}"
    unit_cost = plan.block * thread_cost(uops)
    lines = [*file_start(name, plan.units, unit_cost, strategy, vector_typedefs(plan.lanes)), *functions,
             f"void {name}({sig}, int32_t start, int32_t end) {{",
             "  for (int32_t u = start; u < end; u++) {",
             f"    int32_t row0 = u * {plan.block}, hi = row0 + {plan.block} < {plan.threads} ? "
             f"row0 + {plan.block} : {plan.threads};"]
    if plan.rows > 1:
        lines.append(f"    for (; row0 + {plan.rows} <= hi; row0 += {plan.rows}) {name}_tile{plan.rows}({args}, row0);")
    lines += [f"    for (; row0 < hi; row0++) {name}_tile1({args}, row0);", "  }", "}", dynamic_entry(name, params), ""]
    return CKernel("\n".join(lines), plan.units, unit_cost, strategy), cost
