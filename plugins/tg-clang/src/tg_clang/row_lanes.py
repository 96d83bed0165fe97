"""Row passes SIMD along the row: a kernel of row-fused reductions (a softmax) with G lanes walking each loop.

Core lowers a kernel whose reductions were fused over the same rows (see :mod:`tg.schedule.scheduler`) to one
thread per row that runs several loops over the row one after the other: each fused reduction's (max, then the
sum of exp(x - max)), then the kernel's own (the values it stores, or its own reduction).  Here, as in
:mod:`tg_clang.reduction_lanes`, lane ``l`` of trip ``k`` runs iteration ``k*G + l`` of each loop, so loads and
stores along the row are contiguous vectors; an accumulator keeps one partial per lane, combined in a fixed tree
after its loop (then with the iterations past the last whole gang, run one at a time), and the later loops read
that combined, uniform value.  A store in a loop writes its lanes' elements at once.

So the row is read from memory once and from the cache by the later passes; the float sums are in another
order than one thread's loop (G interleaved partial sums), as in :mod:`tg_clang.reduction_lanes`.

A later pass that recomputes what an earlier one did over the same iterations (a softmax's ``exp(x - max)``, summed
in the second pass, divided in the third) reads it back from a stack array the earlier pass filled (``rc<i>``,
one element per iteration), where it took a transcendental or a division to compute: the same micro-ops over the
same lanes give the same bits, so this only saves the work.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tg.codegen.lower import reduce_identity
from tg.codegen.program import SymbolicSize
from tg.codegen.rewrites import eliminate_dead
from tg.codegen.tiles import SHARED_LEAVES, UNIT_OPS, shared_leaf, thread_cost
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import DType, dtypes, exact_key

from tg_clang.cfile import CKernel, dynamic_entry, file_start, kernel_params
from tg_clang.cprelude import storage_type
from tg_clang.reduction_lanes import COMBINABLE, WIDE_GANG_BYTES, ReductionLoop, ReductionReplay


@dataclass(frozen=True)
class RowPasses:
    """The loops of a row-pass kernel, in order, each with its trip count and the accumulators it updates."""

    loops: tuple[UOp, ...]
    trips: tuple[int | None, ...]  # None: the loop's end is computed at run time (a kernel for every size)
    accs: tuple[dict[int, Ops], ...]  # per loop: id(DEFINE_ACC) -> ADD or MAX

    @property
    def lengths(self) -> tuple[int, ...]:
        """The trip counts, where every loop has constant bounds (a kernel of one size)."""
        assert all(trips is not None for trips in self.trips), self.trips
        return tuple(trips for trips in self.trips if trips is not None)


def find_row_passes(uops: list[UOp], computed_ends: bool = False) -> RowPasses | None:
    """The kernel's passes, when it has the shape this module rebuilds: at least two loops, none inside another,
    with constant bounds (``computed_ends``: constant starts, ends computed before the first loop); accumulators
    defined before the first loop at their op's identity, each updated in one loop only, once, as
    ``acc = op(acc, x)`` with ``op`` ADD or MAX (or ``acc = a*b + acc``), and read only after that loop."""
    ranges = [u for u in uops if u.op is Ops.RANGE]
    if len(ranges) < 2 or any(r.src[0].op is not Ops.CONST or r.src[1].op is not Ops.CONST for r in ranges
                              if not computed_ends):
        return None
    first_range = uops.index(ranges[0])
    after = {id(u) for u in uops[first_range:]}
    if any(r.src[0].op is not Ops.CONST or (r.src[1].op is not Ops.CONST and id(r.src[1]) in after) for r in ranges):
        return None
    defined: dict[int, UOp] = {}
    owner: dict[int, int] = {}  # id(acc) -> index of the loop that updates it
    closed: set[int] = set()  # accumulators whose loop has ended
    loop_accs: list[dict[int, Ops]] = [{} for _ in ranges]
    uses = Counter(id(s) for u in uops for s in u.src)
    pending: set[int] = set()  # an update's value, read of its accumulator in its loop, until its ASSIGN
    current = -1
    for pos, u in enumerate(uops):
        if u.op is Ops.RANGE:
            if current >= 0:
                return None  # a loop inside a loop
            current = ranges.index(u)
        elif u.op is Ops.ENDRANGE:
            if current < 0 or u.src[0] is not ranges[current]:
                return None
            closed.update(loop_accs[current])
            current = -1
        elif u.op is Ops.DEFINE_ACC:
            if pos > first_range or not isinstance(u.dtype, DType):
                return None
            defined[id(u)] = u
        elif u.op is Ops.ASSIGN:
            acc, value = u.src
            op = _update_op(value, acc)
            if current < 0 or id(acc) in owner or op is None or uses[id(u)] or uses[id(value)] != 1 or \
                    id(value) not in pending:
                return None
            pending.discard(id(value))
            owner[id(acc)] = current
            loop_accs[current][id(acc)] = op
        elif open_reads := [s for s in u.src if id(s) in defined and id(s) not in closed]:
            acc = open_reads[0]
            if current < 0 or uses[id(u)] != 1 or len(open_reads) != 1 or _update_op(u, acc) is None or \
                    id(acc) in owner:
                return None  # an accumulator read before its loop has ended, other than by its update's value
            pending.add(id(u))
    if current >= 0 or pending or set(owner) != set(defined):
        return None
    for acc_id, loop in owner.items():
        acc = defined[acc_id]
        assert isinstance(acc.dtype, DType)
        if acc.arg != reduce_identity(loop_accs[loop][acc_id], acc.dtype):
            return None  # a start elsewhere than at the identity would count G times
    trips = tuple(r.src[1].arg - r.src[0].arg if r.src[1].op is Ops.CONST else None for r in ranges)
    return RowPasses(tuple(ranges), trips, tuple(loop_accs))


def _update_op(value: UOp, acc: UOp) -> Ops | None:
    """How ``value`` updates accumulator ``acc``: ADD for ``acc + x`` and ``a*b + acc`` (MULACC), MAX for
    ``max(acc, x)``, where ``x``, ``a``, ``b`` are not ``acc`` itself; None for anything else."""
    if value.op in COMBINABLE and value.src[0] is acc and value.src[1] is not acc:
        return value.op
    if value.op is Ops.MULACC and value.src[2] is acc and all(x is not acc for x in value.src[:2]):
        return Ops.ADD
    return None


class RowPassReplay(ReductionReplay):
    """Rebuilds a row-pass kernel's micro-ops for one row (thread ``row0``) with ``lanes`` lanes along each loop."""

    def __init__(self, passes: RowPasses, grid: tuple[int, ...], lanes: int, stash: Stash | None = None):
        dummy = ReductionLoop(passes.loops[0], 0, {})
        super().__init__(dummy, grid, lanes, 1)
        self.passes = passes
        self.stash = stash or Stash({}, {}, [])
        self.stash_bufs = [self.b.define_global(2000 + i, dtype, True, f"rc{i}")
                           for i, (dtype, _) in enumerate(self.stash.arrays)]
        self.iteration: UOp | None = None  # the current loop's iteration (from 0), lanes or leftover

    def _replay_stashed(self, u: UOp, shared: dict[int, UOp], mine: dict[int, UOp]) -> UOp:
        """``u`` replayed, or read back from its stash; an earlier pass's value that a later one reads, stored."""
        b, at = self.b, self.iteration
        if id(u) in self.stash.reads and at is not None:
            assert isinstance(u.dtype, DType)
            return b.load(self.stash_bufs[self.stash.reads[id(u)]], at, u.dtype)
        value = self._replay(u, shared, mine, 0)
        if id(u) in self.stash.sources and at is not None:
            b.store(self.stash_bufs[self.stash.sources[id(u)]], at, value)
        return value

    def build(self, uops: list[UOp]) -> list[UOp]:
        b, i32, lanes = self.b, dtypes.int32, self.lanes
        shared: dict[int, UOp] = {}
        mine: dict[int, UOp] = {}
        tails: dict[int, UOp] = {}
        body: list[UOp] = []
        current = -1
        trip: UOp | None = None
        whole = end = b.const(0, i32)
        for u in uops:
            if current >= 0 and u.op not in (Ops.ENDRANGE, Ops.CONST):
                body.append(u)
            if u.op in SHARED_LEAVES:
                shared[id(u)] = shared_leaf(b, u)
            elif u.op is Ops.DEFINE_ACC:
                assert isinstance(u.dtype, DType)
                mine[id(u)] = b.define_acc(u.arg, u.dtype)
                tails[id(u)] = b.define_acc(u.arg, u.dtype)
            elif u.op is Ops.RANGE:
                current = self.passes.loops.index(u)
                # the iterations the whole gangs run: constants folded by the builder, or computed at run time from
                # the replayed end (a kernel for every size)
                start, end = b.const(u.src[0].arg, i32), shared.get(id(u.src[1])) or mine[id(u.src[1])]
                count = b.alu(Ops.SUB, end, start)
                whole = b.alu(Ops.SUB, count, b.alu(Ops.MOD, count, b.const(lanes, i32)))
                trip = b.range(0, b.alu(Ops.IDIV, whole, b.const(lanes, i32)))
                first = b.alu(Ops.ADD, b.alu(Ops.MUL, trip, b.const(lanes, i32)), self.lane)
                shared[id(u)] = b.alu(Ops.ADD, first, start)
                self.iteration = first
                body = []
            elif u.op is Ops.ENDRANGE:
                assert trip is not None
                b.end_range(trip)
                start = b.const(u.src[0].src[0].arg, i32)
                lo = b.alu(Ops.ADD, whole, start)
                cond = b.alu(Ops.CMPLT, lo, end)
                leftover: bool | UOp = bool(cond.arg) if cond.op is Ops.CONST else cond
                if leftover is not False:
                    own_tails = {a: tails[a] for a in self.passes.accs[current]}
                    self._leftover_pass(body, shared, mine, own_tails, lo, end, u.src[0])
                self._combine_pass(mine, tails, self.passes.accs[current], leftover)
                current, self.iteration = -1, None
            else:
                mine[id(u)] = self._replay_stashed(u, shared, mine)
        return eliminate_dead(b.uops)

    def _leftover_pass(self, body: list[UOp], shared: dict[int, UOp], mine: dict[int, UOp], tails: dict[int, UOp],
                       lo: UOp, hi: UOp, loop: UOp) -> None:
        """The iterations past the last whole gang, one at a time (uniform), into the leftover accumulators of this
        loop's accumulators (``tails``; an earlier loop's accumulator is read as its combined value)."""
        b = self.b
        counter = b.range(lo, hi)
        self.iteration = b.alu(Ops.SUB, counter, b.const(loop.src[0].arg, dtypes.int32))
        inner_shared = {**shared, id(loop): counter}
        mapping = {**mine, **tails}
        for u in body:
            mapping[id(u)] = self._replay_stashed(u, inner_shared, mapping)
        b.end_range(counter)

    def _combine_pass(self, mine: dict[int, UOp], tails: dict[int, UOp], accs: dict[int, Ops],
                      leftover: bool | UOp) -> None:
        """After a loop: each of its accumulators becomes its lanes' partials combined in a tree, then with the
        leftover accumulator (where the loop left iterations to it: ``leftover`` may be a condition computed at run
        time; without any, the tree alone, as ``0.0 + -0.0`` is not ``-0.0``); the micro-ops after the loop read
        that."""
        b = self.b
        for acc_id, op in accs.items():
            acc = mine[acc_id]
            assert isinstance(acc.dtype, DType)
            parts = [b._add(Ops.GEP, acc.dtype, (acc,), lane) for lane in range(self.lanes)]
            while len(parts) > 1:
                half = len(parts) // 2
                parts = [b.alu(op, parts[i], parts[i + half]) for i in range(half)] + parts[2 * half:]
            total = parts[0]
            if isinstance(leftover, UOp):
                total = b.alu(Ops.WHERE, leftover, b.alu(op, total, tails[acc_id]), total)
            elif leftover:
                total = b.alu(op, total, tails[acc_id])
            mine[acc_id] = total


#: Ops worth keeping a row of results of, rather than computing them again in a later pass.
EXPENSIVE = frozenset({Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.DIV, Ops.RECIP, Ops.POW})
#: The most bytes of stashed values one row may keep on the stack.
STASH_BYTES = 1 << 15


@dataclass(frozen=True)
class Stash:
    """Values a later pass reads back instead of computing: ``sources`` (id of the earlier pass's micro-op ->
    stash index), ``reads`` (id of the later pass's micro-op -> stash index), each stash's dtype and length."""

    sources: dict[int, int]
    reads: dict[int, int]
    arrays: list[tuple[DType, int]]


def find_stash(uops: list[UOp], passes: RowPasses) -> Stash:
    """The values of a later pass that an earlier pass over the same iterations computed already, by structure (the
    loop's counter standing for the iteration, values from outside the loops by identity, loads of read-only
    buffers alike, every other load or update unique), varying with the iteration and costing an :data:`EXPENSIVE`
    op; only the largest ones (those a later value that is not itself recomputed reads)."""
    readonly = {id(u) for u in uops if u.op is Ops.DEFINE_GLOBAL and not u.arg[2]}
    keys: dict[int, tuple[Any, ...]] = {}
    varying: set[int] = set()
    costly: set[int] = set()
    owner: dict[int, int] = {}  # id(uop in a loop body) -> its loop
    current = -1
    for u in uops:
        if u.op is Ops.RANGE:
            current = passes.loops.index(u)
            keys[id(u)] = ("iteration", u.src[0].arg, passes.lengths[current])
            varying.add(id(u))
            continue
        if u.op is Ops.ENDRANGE:
            current = -1
            continue
        if current < 0:
            keys[id(u)] = ("outside", id(u))
            continue
        owner[id(u)] = current
        src_keys = tuple(keys.get(id(x), ("outside", id(x))) for x in u.src)
        pure = u.op not in (Ops.ASSIGN, Ops.STORE, Ops.DEFINE_ACC) and \
            (u.op is not Ops.LOAD or id(u.src[0]) in readonly)
        arg = exact_key(u.arg) if u.op is Ops.CONST else u.arg  # -0.0 is not 0.0
        keys[id(u)] = (u.op, u.dtype, arg, src_keys) if pure else ("unique", id(u))
        if any(id(x) in varying for x in u.src):
            varying.add(id(u))
        if u.op in EXPENSIVE or any(id(x) in costly and owner.get(id(x)) == current for x in u.src):
            costly.add(id(u))
    first: dict[tuple[Any, ...], UOp] = {}
    matched: dict[int, UOp] = {}  # id(later uop) -> the earlier uop with its value
    for u in uops:
        loop = owner.get(id(u))
        if loop is None or keys[id(u)][0] in ("unique", "outside"):
            continue
        earlier = first.setdefault(keys[id(u)], u)
        if earlier is not u and owner[id(earlier)] < loop and id(u) in varying and id(u) in costly and \
                isinstance(u.dtype, DType):
            matched[id(u)] = earlier
    users: dict[int, list[UOp]] = {}
    for u in uops:
        for x in u.src:
            users.setdefault(id(x), []).append(u)
    sources: dict[int, int] = {}
    reads: dict[int, int] = {}
    arrays: list[tuple[DType, int]] = []
    total = 0
    for u in uops:
        if id(u) not in matched or all(id(x) in matched for x in users.get(id(u), [])):
            continue
        earlier = matched[id(u)]
        assert isinstance(u.dtype, DType)
        if id(earlier) not in sources:
            trips = passes.lengths[owner[id(earlier)]]
            if total + trips * u.dtype.itemsize > STASH_BYTES:
                continue
            total += trips * u.dtype.itemsize
            sources[id(earlier)] = len(arrays)
            arrays.append((u.dtype, trips))
        reads[id(u)] = sources[id(earlier)]
    return Stash(sources, reads, arrays)


@dataclass(frozen=True)
class RowPlan:
    """``lanes`` lanes along each loop; work units of ``block`` rows."""

    lanes: int
    threads: int
    block: int

    @property
    def units(self) -> int:
        return -(-self.threads // self.block)


def plan_row_passes(uops: list[UOp], grid: tuple[int, ...], lanes: int) -> tuple[RowPasses, RowPlan] | None:
    """The passes and plan of a kernel this module takes (None: not a row-pass kernel, or a loop shorter than a
    gang).  The gang is ``lanes`` wide, or up to four times that where every loop has at least four of the wider
    gangs (several registers of partial results, whose updates overlap)."""
    passes = find_row_passes(uops)
    if passes is None or min(passes.lengths) < lanes:
        return None
    widest = max((u.dtype.itemsize for u in uops if u.op is Ops.DEFINE_ACC and isinstance(u.dtype, DType)),
                 default=4)
    while lanes * 2 * widest <= WIDE_GANG_BYTES and min(passes.lengths) >= 8 * lanes:
        lanes *= 2
    threads = math.prod(grid)
    block = max(1, min(threads, math.ceil(UNIT_OPS / thread_cost(uops))))
    return passes, RowPlan(lanes, threads, block)


def render_row_lanes(name: str, uops: list[UOp], grid: tuple[int, ...], passes: RowPasses, plan: RowPlan,
                     rows: SymbolicSize | None = None) -> CKernel:
    """The C file of a row-pass kernel whose lanes walk each of its loops.  ``rows``: the launch's threads follow the
    launch variable (a kernel for every outermost size, see :mod:`tg.engine.symbolic`): ``grid`` holds them at its
    upper bound, and the rows and work units are counted from the variable at run time.  Each row's code is the
    same at every count (the gang follows the loops' trips), so every size gets the bits of its exact kernel."""
    from tg_clang.spmd import LaneRenderer, vector_typedefs

    params = kernel_params(uops)
    sig, args = ", ".join(params), ", ".join(p.rsplit(" ", 1)[1] for p in params)
    stash = find_stash(uops, passes)
    tile = RowPassReplay(passes, grid, plan.lanes, stash).build(uops)
    body = LaneRenderer(tile, plan.lanes, {"row0": "row0"}).render()
    body = [f"  {storage_type(dtype)} rc{i}[{n}] __attribute__((aligned(64)));"
            for i, (dtype, n) in enumerate(stash.arrays)] + body
    strategy = f"rows{len(passes.loops)}x{plan.lanes}" + ("s" if stash.arrays else "")
    unit_cost = plan.block * thread_cost(uops)
    threads = str(plan.threads)
    launch_vars: tuple[tuple[int, SymbolicSize], ...] = ()
    if rows is not None:
        assert rows.divisor == rows.blocks == 1, rows  # a thread per row, no work groups
        threads = f"({rows.var} * {rows.scale})"
        launch_vars = ((0, SymbolicSize(rows.var, rows.scale, plan.block)),)
    lines = [*file_start(name, plan.units, unit_cost, strategy, vector_typedefs(plan.lanes)),
             f"static inline __attribute__((always_inline)) void {name}_row({sig}, int32_t row0) {{", *body, "}",
             f"void {name}({sig}, int32_t start, int32_t end) {{",
             "  for (int32_t u = start; u < end; u++) {",
             f"    int32_t row0 = u * {plan.block}, hi = row0 + {plan.block} < {threads} ? "
             f"row0 + {plan.block} : {threads};",
             f"    for (; row0 < hi; row0++) {name}_row({args}, row0);", "  }", "}", dynamic_entry(name, params), ""]
    return CKernel("\n".join(lines), plan.units, unit_cost, strategy, launch_vars)
