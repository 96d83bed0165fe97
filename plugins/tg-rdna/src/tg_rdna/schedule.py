"""A frugal order for kernels whose listed order needs more VGPRs than a wave has (tg-rdna does not spill).

Core lists a kernel's micro-ops in a valid order, not a frugal one: e.g. it may compute every bit test of an
exponent before the first multiplication, keeping them all live.  When the emitter runs out of VGPRs in core's
order it renders again in :func:`sink`'s: each pure value (ALU ops, casts, GEP, VECTORIZE, loads of global
buffers, which a kernel never writes: buffers do not alias) moves down to just before its first reader, when every
reader is in the same loop as the value (nothing is recomputed per trip) and it reads no accumulator (an ``ASSIGN``
in between would change what it reads).  Operands are placed heaviest first, so one subtree's registers are free
again before the next is computed.  Stores, LDS loads, loops, accumulators, barriers and thread indices keep their
order.  Loads then sit right before their use (less latency hidden), so this is the fallback, not the default.
The walk is iterative.
"""

from __future__ import annotations

from tg.codegen.uops import ALU, Ops, PtrDType, UOp

_PURE = ALU | {Ops.CAST, Ops.BITCAST, Ops.GEP, Ops.VECTORIZE}


def _movable_kind(u: UOp) -> bool:
    if u.op in _PURE:
        return True
    buf = u.src[0] if u.op is Ops.LOAD else None
    return buf is not None and isinstance(buf.dtype, PtrDType) and not buf.dtype.local


def sink(uops: list[UOp]) -> list[UOp]:
    """``uops`` with pure values moved to just before their first use (same loop, no accumulator read)."""
    region: dict[int, int] = {}  # value -> the RANGE it is inside (-1: none)
    stack: list[int] = [-1]
    for u in uops:
        if u.op is Ops.ENDRANGE:
            stack.pop()
        region[id(u)] = stack[-1]
        if u.op is Ops.RANGE:
            stack.append(id(u))
    users: dict[int, list[UOp]] = {}
    for u in uops:
        for s in u.src:
            users.setdefault(id(s), []).append(u)
    stateful = {Ops.DEFINE_ACC, Ops.ASSIGN}
    movable = {id(u) for u in uops
               if _movable_kind(u) and users.get(id(u))
               and all(region[id(r)] == region[id(u)] for r in users[id(u)])
               and not any(s.op in stateful for s in u.src)}
    weight: dict[int, int] = {}  # how many movable values a value's tree holds (which operand to compute first)
    for u in uops:
        weight[id(u)] = 1 + sum(min(weight.get(id(s), 0), 1 << 20) for s in u.src if id(s) in movable)
    out: list[UOp] = []
    placed: set[int] = set()
    for u in uops:
        if id(u) not in movable:
            _place(u, movable, placed, out, weight)
    for u in uops:  # values nobody reads (core removed them; kept for safety, in order)
        if id(u) not in placed:
            _place(u, movable, placed, out, weight)
    return out


def _place(u: UOp, movable: set[int], placed: set[int], out: list[UOp], weight: dict[int, int]) -> None:
    """Append ``u`` after the movable values it needs that are not placed yet: depth first, the heaviest operand
    first (its registers are free again before the lighter ones are computed), iteratively."""
    work: list[tuple[UOp, bool]] = [(u, False)]
    while work:
        v, expanded = work.pop()
        if id(v) in placed:
            continue
        if expanded:
            placed.add(id(v))
            out.append(v)
            continue
        work.append((v, True))
        for s in sorted(v.src, key=lambda s: weight.get(id(s), 0)):  # the heaviest is popped first
            if id(s) in movable and id(s) not in placed:
                work.append((s, False))
