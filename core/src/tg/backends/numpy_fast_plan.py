"""What the numpy backend's fast path knows about a kernel before rendering it: its array axes.

The fast path evaluates a kernel as whole arrays, not as one array over all threads: each output dimension
that core unravelled from the thread index (``gidx0 // c % s``) becomes an array axis of its own, and so does
each reduction loop (``RANGE``).  Every micro-op's value is then an array that broadcasts over the axes it
depends on and has size 1 along the others, so index arithmetic runs over a few hundred elements instead of
threads x iterations, a loop's body runs once for all its iterations, and the loop's accumulation becomes a
reduction along the loop's axes (a matrix product when its body multiplies two values).

:func:`plan` proves a kernel fits that form or raises :class:`NotFast` with the reason; the emitter then renders
the plain interpreter for that kernel.  It reads only the micro-ops and the launch dims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tg.codegen.program import LoweredKernel
from tg.codegen.uops import Ops, PtrDType, UOp, VecDType
from tg.support.dtype import DType, dtypes

#: Bytes the arrays of one chunk of a kernel may take together; bigger kernels run in chunks of threads or
#: of loop iterations.
CHUNK_BYTES = 64 << 20

_REFUSED = {Ops.DEFINE_LOCAL: "local memory", Ops.BARRIER: "a barrier", Ops.WMMA: "a tensor-core WMMA",
            Ops.VECTORIZE: "vectors", Ops.GEP: "vectors"}


class NotFast(Exception):
    """The kernel does not fit the fast path (the message says why); the interpreter runs it."""


@dataclass(frozen=True)
class Span:
    """A value that is a run of the thread index's digits: ``(gidx0 // lo) % (hi // lo)``, where ``lo`` and ``hi``
    are cut points of the thread index (``lo`` divides ``hi``)."""

    lo: int
    hi: int


@dataclass
class Accumulation:
    """``acc = op(acc, value)`` in the innermost of ``ranges``: after the loops, ``acc`` is ``op`` reduced over the
    loops' axes.  ``factors`` (P, Q) when ``value`` is ``P * Q`` summed in float32/float64: a matrix product."""

    acc: UOp
    op: Ops
    value: UOp
    ranges: tuple[UOp, ...]
    factors: tuple[UOp, UOp] | None = None


@dataclass
class Plan:
    """The array form of one kernel.

    Axes are numbered outermost digit of the thread index first (so C order is thread order), then one per
    ``RANGE`` in program order.  ``cuts`` are the thread index's cut points (1 ... n_threads, each dividing the
    next): digit ``i`` counting from the innermost is ``gidx0 // cuts[i] % (cuts[i+1] // cuts[i])``.
    """

    n_threads: int
    cuts: list[int]
    range_axis: dict[int, int]  # id(RANGE) -> axis
    sizes: list[int]  # every axis' length
    axes: dict[int, frozenset[int]] = field(default_factory=dict)  # id(uop) -> the axes its value varies along
    spans: dict[int, Span] = field(default_factory=dict)  # id(uop) -> the thread digits it is
    accumulations: dict[int, Accumulation] = field(default_factory=dict)  # id(ASSIGN) -> its accumulation
    skipped: set[int] = field(default_factory=set)  # uops folded into another (never rendered)
    outer_ranges: set[int] = field(default_factory=set)  # id(RANGE) of loops that are not inside another loop
    contiguous_stores: dict[int, int] = field(default_factory=dict)  # id(STORE) -> constant offset of index - gidx0
    loop_stores: dict[int, tuple[UOp, ...]] = field(default_factory=dict)  # id(STORE) in loops -> its open loops
    loop_stores_affine: dict[int, tuple[int, dict[int, int]]] = field(default_factory=dict)  # -> its index's form
    thread_chunk: int = 1  # threads along axis 0 per chunk
    range_chunk: dict[int, int] = field(default_factory=dict)  # id(outer RANGE) -> iterations per chunk

    @property
    def n_digits(self) -> int:
        return len(self.cuts) - 1

    @property
    def ndim(self) -> int:
        return len(self.sizes)

    def digit_axis(self, i: int) -> int:
        """The array axis of digit ``i`` (0: the innermost digit, the last digit axis)."""
        return self.n_digits - 1 - i

    def span_terms(self, span: Span) -> list[tuple[int, int]]:
        """``span``'s value as (axis, coefficient) terms over the digit axes it covers (sizes above 1 only)."""
        terms = []
        for i in range(self.n_digits):
            if span.lo <= self.cuts[i] < span.hi and self.cuts[i + 1] > self.cuts[i]:
                terms.append((self.digit_axis(i), self.cuts[i] // span.lo))
        return terms


def plan(kernel: LoweredKernel) -> Plan:
    """The array form of ``kernel``, or :class:`NotFast` with the reason it has none."""
    uops = kernel.uops
    if math.prod(kernel.local_size) != 1:
        raise NotFast("work groups")
    for u in uops:
        if u.op in _REFUSED:
            raise NotFast(_REFUSED[u.op])
        if isinstance(u.dtype, VecDType) or (u.op is Ops.SPECIAL and u.arg[0] != "gidx0"):
            raise NotFast(f"{u.op.name} {u.dtype}")
        if u.op is Ops.SPECIAL and u.arg[1] != math.prod(kernel.global_size):
            raise NotFast("a thread index that does not cover the launch")
    n_threads = math.prod(kernel.global_size)
    if n_threads == 0:
        raise NotFast("no threads")
    users = _users(uops)
    spans, cuts = _thread_digits(uops, n_threads)
    ranges = [u for u in uops if u.op is Ops.RANGE]
    for r in ranges:
        if not (r.src[0].is_const and r.src[1].is_const):
            raise NotFast("a loop with bounds that are not constants")
    n_digits = len(cuts) - 1
    sizes = [cuts[i + 1] // cuts[i] for i in reversed(range(n_digits))]
    sizes += [max(0, int(r.src[1].arg) - int(r.src[0].arg)) for r in ranges]
    p = Plan(n_threads, cuts, {id(r): n_digits + k for k, r in enumerate(ranges)}, sizes, spans=spans)
    _loops(p, uops, users)
    _dependencies(p, uops)
    _stores(p, uops)
    _chunks(p, uops)
    return p


def _users(uops: list[UOp]) -> dict[int, list[UOp]]:
    users: dict[int, list[UOp]] = {id(u): [] for u in uops}
    for u in uops:
        for s in u.src:
            users.setdefault(id(s), []).append(u)
    return users


def _thread_digits(uops: list[UOp], n: int) -> tuple[dict[int, Span], list[int]]:
    """The uops that are runs of the thread index's digits (``gidx0`` divided and reduced by constants whose cut
    points divide one another), and the cut points.  Where cuts do not nest, only ``gidx0`` itself is a span
    (one axis over all threads): slower, still exact."""
    special = next((u for u in uops if u.op is Ops.SPECIAL), None)
    if special is None:  # every thread computes the same: one of them does
        return {}, [1]
    spans = {id(special): Span(1, n)}
    for u in uops:
        if u.op not in (Ops.IDIV, Ops.MOD) or id(u.src[0]) not in spans or not u.src[1].is_const:
            continue
        c, s = int(u.src[1].arg), spans[id(u.src[0])]
        if c <= 0:
            continue
        cut = min(s.lo * c, s.hi)
        if s.hi % cut == 0:  # an inexact cut (c not dividing the span's range) stays arithmetic
            spans[id(u)] = Span(cut, s.hi) if u.op is Ops.IDIV else Span(s.lo, cut)
    cuts = sorted({1, n, *(x for s in spans.values() for x in (s.lo, s.hi))})
    if any(b % a for a, b in zip(cuts, cuts[1:])):
        return {id(special): Span(1, n)}, [1, n]
    return spans, cuts


def _loops(p: Plan, uops: list[UOp], users: dict[int, list[UOp]]) -> None:
    """Check every loop is a pure accumulation and record them: each ``ASSIGN(acc, op(acc, value))`` sits in its
    loops, nothing but the ASSIGN's op reads ``acc`` inside the loops, and
    nothing outside a loop reads a value that varies along it."""
    updates = {id(u.src[1]) for u in uops if u.op is Ops.ASSIGN}  # op(acc, value) of each ASSIGN
    open_ranges: list[UOp] = []
    nest_of_acc: dict[int, UOp] = {}  # id(DEFINE_ACC) -> the outer RANGE of the loops that assign it
    done_nests: set[int] = set()
    in_range: dict[int, frozenset[int]] = {}  # id(uop) -> ids of the RANGEs its value varies with
    for u in uops:
        if u.op is Ops.RANGE:
            if not open_ranges:
                p.outer_ranges.add(id(u))
            open_ranges.append(u)
            in_range[id(u)] = frozenset({id(u)})
            continue
        if u.op is Ops.ENDRANGE:
            if not open_ranges or open_ranges[-1] is not u.src[0]:
                raise NotFast("loops that do not nest")
            open_ranges.pop()
            if not open_ranges:
                done_nests.add(id(u.src[0]))
            continue
        varies = frozenset().union(*(in_range.get(id(s), frozenset()) for s in u.src))
        open_ids = {id(r) for r in open_ranges}
        if u.op is Ops.ASSIGN:
            _accumulation(p, u, open_ranges, users, nest_of_acc)
            in_range[id(u)] = frozenset()
            continue
        if not varies <= open_ids:
            raise NotFast(f"{u.op.name} reads a loop's value outside the loop")
        if u.op is Ops.DEFINE_ACC:
            if open_ranges:
                raise NotFast("an accumulator defined inside a loop")
        elif u.op is Ops.STORE and open_ranges:
            p.loop_stores[id(u)] = tuple(open_ranges)  # _stores checks it writes each element once
        if id(u) not in updates:
            for s in u.src:
                if s.op in (Ops.DEFINE_ACC, Ops.ASSIGN):
                    nest = nest_of_acc.get(id(s if s.op is Ops.DEFINE_ACC else s.src[0]))
                    if nest is None or id(nest) not in done_nests:
                        raise NotFast("an accumulator read before its loops end")

        in_range[id(u)] = varies
    if open_ranges:
        raise NotFast("a loop without its end")


def _accumulation(p: Plan, u: UOp, open_ranges: list[UOp], users: dict[int, list[UOp]],
                  nest_of_acc: dict[int, UOp]) -> None:
    acc, update = u.src
    if acc.op is not Ops.DEFINE_ACC or not open_ranges or id(acc) in nest_of_acc:
        raise NotFast("an ASSIGN that is not a loop's only update of an accumulator")
    if update.op not in (Ops.ADD, Ops.MAX) or len(users[id(update)]) != 1:
        raise NotFast(f"an accumulation by {update.op.name}")
    a, b = update.src
    value = b if a is acc else a if b is acc else None
    if value is None or value is acc or value.dtype != acc.dtype:
        raise NotFast("an update that is not op(acc, value) with value independent of acc")
    factors = None
    if (update.op is Ops.ADD and value.op is Ops.MUL and acc.dtype in (dtypes.float32, dtypes.float64)
            and len(users[id(value)]) == 1):
        factors = (value.src[0], value.src[1])
        p.skipped.add(id(value))
    p.skipped.add(id(update))
    p.accumulations[id(u)] = Accumulation(acc, update.op, value, tuple(open_ranges), factors)
    nest_of_acc[id(acc)] = open_ranges[0]


def _dependencies(p: Plan, uops: list[UOp]) -> None:
    """The axes each value varies along."""
    axes = p.axes
    for u in uops:
        if id(u) in p.spans:
            axes[id(u)] = frozenset(a for a, _ in p.span_terms(p.spans[id(u)]))
        elif u.op is Ops.RANGE:
            axes[id(u)] = frozenset({p.range_axis[id(u)]})
        elif u.op is Ops.ASSIGN:
            acc = p.accumulations[id(u)]
            loop_axes = {p.range_axis[id(r)] for r in acc.ranges}
            inner = acc.factors if acc.factors is not None else (acc.value,)
            axes[id(acc.acc)] = axes[id(u)] = frozenset().union(*(axes[id(x)] for x in inner)) - loop_axes
        elif u.op is not Ops.DEFINE_ACC:
            axes[id(u)] = frozenset().union(*(axes.get(id(s), frozenset()) for s in u.src))
        else:
            axes[id(u)] = frozenset()


def affine(p: Plan, u: UOp, memo: dict[int, tuple[int, dict[int, int]] | None]) -> tuple[int, dict[int, int]] | None:
    """``u`` as ``constant + sum(coefficient * axis value)`` over the axes, or None when it is not affine."""
    stack = [u]
    while stack:
        x = stack[-1]
        if id(x) in memo:
            stack.pop()
            continue
        if id(x) in p.spans:
            memo[id(x)] = (0, dict(p.span_terms(p.spans[id(x)])))
        elif x.op is Ops.RANGE:
            memo[id(x)] = (0, {p.range_axis[id(x)]: 1})
        elif x.is_const and isinstance(x.dtype, DType) and x.dtype.is_int:
            memo[id(x)] = (int(x.arg), {})
        elif x.op in (Ops.ADD, Ops.SUB, Ops.MUL) and isinstance(x.dtype, DType) and x.dtype.is_int:
            pending = [s for s in x.src if id(s) not in memo]
            if pending:
                stack.extend(pending)
                continue
            memo[id(x)] = _combine(x.op, memo[id(x.src[0])], memo[id(x.src[1])])
        else:
            memo[id(x)] = None
        stack.pop()
    return memo[id(u)]


def _combine(op: Ops, a: tuple[int, dict[int, int]] | None,
             b: tuple[int, dict[int, int]] | None) -> tuple[int, dict[int, int]] | None:
    if a is None or b is None:
        return None
    if op is Ops.MUL:
        if a[1] and b[1]:
            return None
        (k, _), (c, terms) = (a, b) if not a[1] else (b, a)
        return c * k, {ax: v * k for ax, v in terms.items()}
    sign = 1 if op is Ops.ADD else -1
    terms = dict(a[1])
    for ax, v in b[1].items():
        terms[ax] = terms.get(ax, 0) + sign * v
    return a[0] + sign * b[0], {ax: v for ax, v in terms.items() if v}


def _stores(p: Plan, uops: list[UOp]) -> None:
    """Stores whose index is ``gidx0 + c``: they write a contiguous run of the buffer per chunk of threads.  A store
    inside loops (a row pass of core's row fusion) is taken where its index is affine in the thread digits and the
    loops' axes and gives every (thread, iteration) an element of its own: then the one array store of all of them
    is what the loops' stores, in any order, write."""
    memo: dict[int, tuple[int, dict[int, int]] | None] = {}
    thread = {p.digit_axis(i): p.cuts[i] for i in range(p.n_digits) if p.cuts[i + 1] > p.cuts[i]}
    for u in uops:
        if id(u) in p.loop_stores:
            form = affine(p, u.src[1], memo)
            axes = set(thread) | {p.range_axis[id(r)] for r in p.loop_stores[id(u)]}
            if form is None or not _injective({a: k for a, k in form[1].items() if p.sizes[a] > 1}, p.sizes,
                                              {a for a in axes if p.sizes[a] > 1}):
                raise NotFast("a store inside a loop whose index may repeat")
            p.loop_stores_affine[id(u)] = form
        elif u.op is Ops.STORE:
            form = affine(p, u.src[1], memo)
            if form is not None and form[1] == thread and p.n_digits > 0:
                p.contiguous_stores[id(u)] = form[0]


def _injective(terms: dict[int, int], sizes: list[int], axes: set[int]) -> bool:
    """Whether ``sum(terms[a] * i_a)`` differs for every point of ``axes`` (each ``0 <= i_a < sizes[a]``): it reads
    exactly those axes, and each coefficient is past the span of the smaller ones (a mixed radix, gaps allowed)."""
    if set(terms) != axes:
        return False
    span = 0
    for a, k in sorted(terms.items(), key=lambda t: abs(t[1])):
        if abs(k) <= span:
            return False
        span += abs(k) * (sizes[a] - 1)
    return True


def _nbytes(u: UOp) -> int:
    dtype = u.dtype
    return dtype.itemsize if isinstance(dtype, DType) else 0


def _chunks(p: Plan, uops: list[UOp]) -> None:
    """Split the work so the arrays of one chunk take at most :data:`CHUNK_BYTES`: threads along axis 0, and each
    outer loop's iterations.  The estimate counts every value alive at once (a kernel's locals live to its end),
    twice over for the temporaries of gathers and products."""
    values = [(p.axes[id(u)], 2 * _nbytes(u)) for u in uops
              if id(u) not in p.skipped and u.op not in (Ops.DEFINE_GLOBAL, Ops.CONST) and _nbytes(u)]
    for acc in p.accumulations.values():
        if acc.factors is not None:  # the product's operands as a matrix product copies them
            values += [(p.axes[id(f)], 2 * _nbytes(f)) for f in acc.factors]
    nest_axis = {p.range_axis[r]: r for r in p.outer_ranges}
    chunk = {ax: p.sizes[ax] for ax in ([0] if p.n_digits else []) + list(nest_axis)}

    def total() -> tuple[float, dict[int, float]]:
        per_axis = dict.fromkeys(chunk, 0.0)
        whole = 0.0
        for axes, nbytes in values:
            n = nbytes * math.prod(chunk.get(a, p.sizes[a]) for a in axes)
            whole += n
            for a in axes & chunk.keys():
                per_axis[a] += n
        return whole, per_axis

    whole, per_axis = total()
    while whole > CHUNK_BYTES:
        shrinkable = [a for a in chunk if chunk[a] > 1 and per_axis[a] > 0]
        if not shrinkable:
            raise NotFast(f"needs {whole / 2**20:.0f} MiB in arrays even in the smallest chunks")
        a = max(shrinkable, key=lambda ax: per_axis[ax])
        chunk[a] = -(-chunk[a] // 2)
        whole, per_axis = total()
    if p.n_digits:
        p.thread_chunk = max(1, chunk[0])
    p.range_chunk = {r: max(1, chunk[ax]) for ax, r in nest_axis.items()}
    if any(isinstance(u.dtype, PtrDType) and u.dtype.local for u in uops):  # pragma: no cover - refused above
        raise NotFast("local memory")
