"""Packed float16 math: two scalar float16 micro-ops on lanes 2k and 2k+1 of one vector as one ``v_pk_*``.

Core vectorises memory accesses only: a float16 vector LOAD fills a block of VGPRs two lanes per register (lane 2k
in the low half of register k), ``GEP`` s take the lanes out, and every ALU micro-op computes one lane.  Before
rendering, :func:`plan` looks at the micro-op graph for two float16 micro-ops of one kind (``ADD``, ``MUL``,
``MULACC``, ``NEG``) that compute lanes 2k and 2k+1 (the *lo* and *hi* member of a :class:`Pair`).  Each operand
index must match one of these forms exactly, else the two stay scalar:

- ``vec``: GEPs of lanes 2k and 2k+1 of one float16 vector (a LOAD or VECTORIZE): its block register k as it is;
- ``pair``: the lo and hi members of one earlier pair: that pair's packed register (chains stay packed);
- ``splat``: one and the same (non-constant) value in both: its register with ``op_sel_hi`` 0 (both halves read
  the low half);
- ``const``: two constants: their float16 bits packed into one literal, moved into a VGPR.

A pair is rendered as one instruction where its later member stood, the earlier member moved down next to it; a
pair whose move would cross a loop boundary or an ``ASSIGN``, or would put a value after a reader, is dropped (and
the pairs that read it packed with it), until the order is valid.  The packed register belongs to the lo member
(its low half is the lo value: float16 readers read only the low half, as of every float16 register here); the hi
member gets a register of its own (``v_lshrrev_b32`` 16) only where something reads it unpacked.  A ``VECTORIZE`` of
a pair's two results moves the packed register into its block; a GEP read by pairs only is not rendered.

Every paired result is bit-identical to the scalar path's: float16 ``+`` and ``*`` there are computed in f32 and
rounded once (a correctly rounded result: 24 >= 2*11 + 2 bits), ``v_pk_add_f16``/``v_pk_mul_f16`` round the exact
result once; ``MULACC`` is ``v_fma_f16`` there and ``v_pk_fma_f16`` here (one rounding); ``NEG`` is a sign flip in
both (``v_xor_b32`` with 0x80008000 here).  float16 denormals are kept (``float_denorm_mode_16_64`` 3), so nothing
is flushed.  Not paired: ``MAX`` (``v_pk_max_f16`` returns the other operand of a NaN; tg's MAX propagates NaN),
``SUB`` (there is no ``v_pk_sub_f16``; ``v_pk_add_f16`` with a negated operand flips the sign of a NaN in the
subtrahend, where the scalar path keeps it), comparisons, division and the transcendentals.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tg.codegen.uops import ALU, Ops, UOp, VecDType
from tg.support.dtype import DType

from tg_rdna.alu import f16_bits
from tg_rdna.vectors import block_registers

#: The pairable ops and their packed instruction (NEG: a sign flip of both halves).
PACKED: dict[Ops, str] = {Ops.ADD: "v_pk_add_f16", Ops.MUL: "v_pk_mul_f16", Ops.MULACC: "v_pk_fma_f16",
                          Ops.NEG: "v_xor_b32"}
#: Micro-ops that may move (within the stretch between two others): values computed from their operands alone.
_PURE = frozenset(ALU | {Ops.CONST, Ops.GEP, Ops.VECTORIZE, Ops.CAST, Ops.BITCAST})
_VECTORS = {Ops.LOAD, Ops.VECTORIZE}  # whose block registers a pair reads directly


def _is_f16(dtype: Any) -> bool:
    return isinstance(dtype, DType) and dtype.name == "float16"


def _f16_vector(u: UOp) -> bool:
    return isinstance(u.dtype, VecDType) and _is_f16(u.dtype.base) and u.op in _VECTORS


def _lane(gep: UOp) -> int | None:
    """The lane a scalar float16 GEP of a float16 vector takes (None: not such a GEP)."""
    if gep.op is not Ops.GEP or not _is_f16(gep.dtype) or not gep.src or not _f16_vector(gep.src[0]):
        return None
    arg = gep.arg if isinstance(gep.arg, int) else gep.arg[0] if isinstance(gep.arg, tuple) and len(gep.arg) == 1 \
        else None
    return arg if isinstance(arg, int) else None


@dataclass(eq=False)
class Pair:
    """Two float16 micro-ops computing lanes 2k (``lo``) and 2k+1 (``hi``) as one packed instruction."""

    lo: UOp
    hi: UOp
    operands: list[tuple[Any, ...]] = field(default_factory=list)  # per source index, see the module docstring


@dataclass
class Plan:
    """The pairs of one kernel and the order to render it in."""

    order: list[UOp]
    pair_of: dict[int, Pair] = field(default_factory=dict)  # member id -> its pair
    skip: set[int] = field(default_factory=set)  # GEPs read by pairs only (not rendered)
    extract_hi: set[int] = field(default_factory=set)  # hi members read unpacked somewhere (own register)
    vector_slots: dict[int, dict[int, Pair]] = field(default_factory=dict)  # VECTORIZE -> {register: pair}
    keep_alive: list[tuple[UOp, UOp]] = field(default_factory=list)  # (vector, GEP): the vector lives as long

    @property
    def pairs(self) -> list[Pair]:
        seen: dict[int, Pair] = {}
        for p in self.pair_of.values():
            seen[id(p)] = p
        return list(seen.values())

    def extend_lifetimes(self, last: dict[int, int]) -> None:
        """A vector read by pairs directly stays live as long as its GEPs would (their readers are the pairs)."""
        for vec, gep in self.keep_alive:
            last[id(vec)] = max(last.get(id(vec), 0), last.get(id(gep), 0))


def _candidate(u: UOp) -> bool:
    return u.op in PACKED and _is_f16(u.dtype) and all(_is_f16(s.dtype) for s in u.src)


def _signatures(uops: list[UOp]) -> dict[int, tuple[int, int]]:
    """Candidate id -> (signature, lane parity): two candidates of one signature and parities 0/1 compute the same
    expression on lanes 2k/2k+1 (a guess at partners; :func:`_operands` checks each pair exactly)."""
    interned: dict[Any, int] = {}
    lane_of: dict[int, tuple[Any, int]] = {}  # value -> (group, parity)
    out: dict[int, tuple[int, int]] = {}
    for u in uops:
        lane = _lane(u)
        if lane is not None:
            lane_of[id(u)] = (("vec", id(u.src[0]), lane // 2), lane % 2)
            continue
        if not _candidate(u):
            continue
        parts: list[Any] = []
        parities: set[int] = set()
        for s in u.src:
            if id(s) in lane_of:
                group, parity = lane_of[id(s)]
                parts.append(group)
                parities.add(parity)
            elif s.op is Ops.CONST:
                parts.append(("const",))
            else:
                parts.append(("scalar", id(s)))
        if len(parities) != 1:
            continue
        sig = interned.setdefault((u.op, u.arg, tuple(parts)), len(interned))
        parity = parities.pop()
        lane_of[id(u)] = (("op", sig), parity)
        out[id(u)] = (sig, parity)
    return out


def _operands(p: Pair, pair_of: dict[int, Pair]) -> list[tuple[Any, ...]] | None:
    """The packed form of each operand of ``p``, or None where one does not match a form exactly."""
    lo, hi = p.lo, p.hi
    if lo.op is not hi.op or lo.arg != hi.arg or len(lo.src) != len(hi.src) or lo is hi:
        return None
    if any(s is lo for s in hi.src) or any(s is hi for s in lo.src):
        return None
    out: list[tuple[Any, ...]] = []
    for a, b in zip(lo.src, hi.src, strict=True):
        la, lb = _lane(a), _lane(b)
        q = pair_of.get(id(a))
        if la is not None and lb is not None and a.src[0] is b.src[0] and la % 2 == 0 and lb == la + 1:
            out.append(("vec", a.src[0], la // 2, a, b))
        elif q is not None and q.lo is a and q.hi is b:
            out.append(("pair", q))
        elif a is b and a.op is not Ops.CONST and lo.op is not Ops.NEG:
            out.append(("splat", a))
        elif a.op is Ops.CONST and b.op is Ops.CONST:
            out.append(("const", a, b))
        else:
            return None
    return out


def _intervals(uops: list[UOp]) -> list[int]:
    """For each micro-op: how many non-pure micro-ops (loads, stores, loops, accumulators...) precede it (pure
    ones included).  A pure micro-op never leaves its interval, a non-pure one never moves."""
    out, count = [], 0
    for u in uops:
        if u.op not in _PURE:
            count += 1
        out.append(count)
    return out


def _schedule(uops: list[UOp], pairs: list[Pair]) -> tuple[list[UOp], set[int]]:
    """``uops`` reordered so that each pair's members stand next to each other (lo first): within each interval
    the pure micro-ops in dependency order, a pair as one node, the earliest listed first.  Also the pairs (by id)
    that could not be placed (a cycle through two pairs); the order is then not valid."""
    pair_of = {id(m): p for p in pairs for m in (p.lo, p.hi)}
    interval = _intervals(uops)
    out: list[UOp] = []
    stuck: set[int] = set()
    start = 0
    while start < len(uops):
        stop = start
        while stop < len(uops) and interval[stop] == interval[start]:
            stop += 1
        if uops[start].op not in _PURE:  # the non-pure micro-op that opens this interval stays first
            out.append(uops[start])
            start += 1
        stuck |= _schedule_interval(uops[start:stop], start, pair_of, out)
        start = stop
    return out, stuck


def _schedule_interval(part: list[UOp], offset: int, pair_of: dict[int, Pair], out: list[UOp]) -> set[int]:
    """Kahn's algorithm on one interval's pure micro-ops (pairs merged), the smallest listed position first."""
    node_of: dict[int, int] = {}  # micro-op id -> node (its position; a pair: its earlier member's position)
    members: dict[int, list[UOp]] = {}
    for i, u in enumerate(part):
        p = pair_of.get(id(u))
        node = node_of.get(id(p.hi if p.lo is u else p.lo), offset + i) if p is not None else offset + i
        node_of[id(u)] = node
        members.setdefault(node, []).append(u)
    deps: dict[int, set[int]] = {n: set() for n in members}
    users: dict[int, list[int]] = {n: [] for n in members}
    for n, us in members.items():
        for u in us:
            for s in u.src:
                d = node_of.get(id(s))
                if d is not None and d != n and d not in deps[n]:
                    deps[n].add(d)
                    users[d].append(n)
    ready = [n for n in members if not deps[n]]
    heapq.heapify(ready)
    done = 0
    while ready:
        n = heapq.heappop(ready)
        done += 1
        us = members[n]
        p = pair_of.get(id(us[0]))
        out.extend([p.lo, p.hi] if p is not None else us)
        for m in users[n]:
            deps[m].discard(n)
            if not deps[m]:
                heapq.heappush(ready, m)
    if done == len(members):
        return set()
    return {id(pair_of[id(u)]) for n in members if deps[n] for u in members[n] if id(u) in pair_of}


def _valid(uops: list[UOp], order: list[UOp]) -> bool:
    """The reordered list is the same micro-ops in an order that computes the same: dependencies first, the
    non-pure micro-ops in their order, every pure one in its interval."""
    if sorted(map(id, uops)) != sorted(map(id, order)) or len(set(map(id, order))) != len(order):
        return False
    where = {id(u): i for i, u in enumerate(order)}
    if any(where.get(id(s), -1) >= i for i, u in enumerate(order) for s in u.src):
        return False
    before = dict(zip(map(id, uops), _intervals(uops)))
    return [u for u in uops if u.op not in _PURE] == [u for u in order if u.op not in _PURE] \
        and all(before[id(u)] == n for u, n in zip(order, _intervals(order)))


def plan(uops: list[UOp]) -> Plan:
    """Pair the float16 micro-ops of ``uops`` (see the module docstring); no pairs: ``uops`` as they are."""
    sigs = _signatures(uops)
    if not sigs:
        return Plan(list(uops))
    groups: dict[int, tuple[list[UOp], list[UOp]]] = {}
    for u in uops:
        if id(u) in sigs:
            sig, parity = sigs[id(u)]
            groups.setdefault(sig, ([], []))[parity].append(u)
    interval = dict(zip(map(id, uops), _intervals(uops)))
    pairs = [Pair(lo, hi) for los, his in groups.values() for lo, hi in zip(los, his)
             if interval[id(lo)] == interval[id(hi)]]
    while True:
        pair_of = {id(m): p for p in pairs for m in (p.lo, p.hi)}
        valid = []
        for p in pairs:
            ops = _operands(p, pair_of)
            if ops is not None:
                p.operands = ops
                valid.append(p)
        if len(valid) != len(pairs):
            pairs = valid
            continue
        order, stuck = _schedule(uops, pairs)
        if not stuck:
            break
        pairs = [p for p in pairs if id(p) not in stuck]
    if not pairs:
        return Plan(list(uops))
    if not _valid(uops, order):  # never expected: render the kernel unpaired rather than wrongly
        return Plan(list(uops))
    return _finish(order, pairs)


def _finish(order: list[UOp], pairs: list[Pair]) -> Plan:
    result = Plan(order, {id(m): p for p in pairs for m in (p.lo, p.hi)})
    readers: dict[int, list[UOp]] = {}
    for u in order:
        for s in u.src:
            readers.setdefault(id(s), []).append(u)
    for u in order:  # VECTORIZE of a pair's two results: the packed register as the block's register
        if u.op is Ops.VECTORIZE and isinstance(u.dtype, VecDType) and _is_f16(u.dtype.base):
            slots = {}
            for k in range(len(u.src) // 2):
                p = result.pair_of.get(id(u.src[2 * k]))
                if p is not None and p.lo is u.src[2 * k] and p.hi is u.src[2 * k + 1]:
                    slots[k] = p
            if slots:
                result.vector_slots[id(u)] = slots

    def packed_use(value: UOp, reader: UOp) -> bool:
        """Whether every operand of ``reader`` that is ``value`` reads it in a packed form."""
        p = result.pair_of.get(id(reader))
        if p is not None:
            return all(op[0] in ("vec", "pair") for s, op in zip(reader.src, p.operands) if s is value)
        slots = result.vector_slots.get(id(reader), {})
        return all(i // 2 in slots for i, s in enumerate(reader.src) if s is value)

    for p in pairs:
        for op in p.operands:
            if op[0] == "vec":
                result.keep_alive += [(op[1], op[3]), (op[1], op[4])]
        if not all(packed_use(p.hi, r) for r in readers.get(id(p.hi), [])):
            result.extract_hi.add(id(p.hi))
    for u in order:
        rs = readers.get(id(u), [])
        if _lane(u) is not None and rs and all(id(r) in result.pair_of and packed_use(u, r) for r in rs):
            result.skip.add(id(u))
    return result


class PackedMixin:
    """Rendering of a :class:`Plan`'s pairs for :class:`tg_rdna.emitter._Kernel` (first in its MRO)."""

    a: Any
    names: dict[int, str]
    plan: Plan
    rendered_pairs: set[int]

    if TYPE_CHECKING:  # supplied by the kernel and its other mixins
        def out(self, u: UOp, note: str = "") -> str: ...
        def tmp(self) -> str: ...
        def reg(self, u: UOp) -> str: ...
        def note(self, u: UOp) -> str: ...
        def block(self, u: UOp) -> list[str]: ...
        def fill(self, regs: list[str], lanes: list[UOp], base: DType) -> None: ...

    def render_pair(self, u: UOp) -> None:
        """Where a pair's first member stands: its one packed instruction (the second member: nothing)."""
        p = self.plan.pair_of[id(u)]
        if id(p) in self.rendered_pairs:
            return
        self.rendered_pairs.add(id(p))
        texts, splat = [], []
        for op in p.operands:
            if op[0] == "vec":
                texts.append(block_registers(self.names[id(op[1])])[op[2]])
            elif op[0] == "pair":
                texts.append(self.names[id(op[1].lo)])
            elif op[0] == "splat":
                texts.append(self.reg(op[1]))
            else:
                t = self.tmp()
                bits = f16_bits(float(op[1].arg)) | f16_bits(float(op[2].arg)) << 16
                self.a.ins("v_mov_b32", t, hex(bits), note=f"{op[1].arg!r}, {op[2].arg!r} packed")
                texts.append(t)
            splat.append(op[0] == "splat")
        dst = self.out(p.lo)
        note = f"{self.note(p.lo)} x2 (lanes packed)"
        if p.lo.op is Ops.NEG:
            self.a.ins("v_xor_b32", dst, "0x80008000", texts[0], note=note)
        else:
            if any(splat):
                texts[-1] += " op_sel_hi:[" + ",".join("0" if s else "1" for s in splat) + "]"
            self.a.ins(PACKED[p.lo.op], dst, *texts, note=note)
        if id(p.hi) in self.plan.extract_hi:
            self.a.ins("v_lshrrev_b32", self.out(p.hi), "16", dst, note="the high lane on its own")

    def render_vectorize(self, u: UOp) -> None:
        slots = self.plan.vector_slots.get(id(u))
        if not slots:
            return super().render_vectorize(u)  # type: ignore[misc]  # VectorMixin's: lane by lane
        assert isinstance(u.dtype, VecDType)
        for k, reg in enumerate(self.block(u)):
            if k in slots:
                self.a.ins("v_mov_b32", reg, self.names[id(slots[k].lo)], note="a packed pair's register")
            else:
                self.fill([reg], list(u.src[2 * k:2 * k + 2]), u.dtype.base)
        return None
