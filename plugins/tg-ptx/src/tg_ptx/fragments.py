"""Tensor-core fragments loaded with ``ldmatrix``: which micro-op loads qualify, proved from their addresses.

Core's contraction lowering stages A and B tiles in local (shared) memory, then every lane loads its ``mma``
fragment elements there one by one (a VECTORIZE of float16 LOADs feeding WMMA).  ``ldmatrix.m8n8.x{2,4}`` loads
the same registers for a whole warp, one 16-byte row per supplying lane.  :func:`plan` takes a fragment over only
where that is provably the same thing: it evaluates each element's index for every thread of the work group
(indices that depend on anything but ``lidx0`` and constants are not taken), and requires

- register ``j`` (elements ``2j``, ``2j+1``) of lane ``l`` to be, exactly, row ``l / 4`` at columns ``2 (l % 4)``,
  ``+1`` of some 8x8 matrix of consecutive 16-byte-aligned rows (or, with ``.trans``, rows ``2 (l % 4)``, ``+1`` of
  column ``l / 4``), as the PTX ISA's ldmatrix tables place them;
- the row address lane ``8j + r`` must supply (lanes above ``8 * count`` repeat the first ones) to be a sum of
  constants times bit fields of ``lidx0``, checked for every thread, so it renders in a few integer instructions;
- the loads to have no gate, no other user, and nothing between the first of them and the WMMA that could change
  the tile or the control flow (no STORE, BARRIER, RANGE or ENDRANGE).

Anything else keeps the scalar ``ld.shared`` loads; the result is bit-identical either way, since ldmatrix moves the
same 16-bit values into the same halves of the same registers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from tg.codegen.tensor_cores import MMA_16x8x16_F16_F32
from tg.codegen.uops import Ops, PtrDType, UOp, VecDType
from tg.support.dtype import dtypes

from tg_ptx.writer import B32, S32, SHARED_ADDR, Writer, offset_text

if TYPE_CHECKING:
    from tg_ptx.emitter import _Kernel


@dataclass
class Fragment:
    """One fragment (a VECTORIZE) to load with one ldmatrix: ``.x{count}``, transposed or not, from ``tile``.

    The row address of thread ``t`` is ``tile + offset + sum(((t >> shift) & mask) * scale)`` (bytes)."""

    tile: UOp
    tid: UOp
    count: int
    trans: bool
    offset: int
    terms: list[tuple[int, int, int]]  # (shift, mask, scale)
    loads: list[UOp]
    regs: list[str] = field(default_factory=list)


@dataclass
class Plans:
    by_vector: dict[int, Fragment] = field(default_factory=dict)
    by_load: dict[int, Fragment] = field(default_factory=dict)


def _evaluate(u: UOp, tid: np.ndarray, memo: dict[int, np.ndarray | None]) -> np.ndarray | None:
    """``u`` (an int32 index) for every thread id in ``tid``; None if it depends on more than lidx0 and constants, or
    leaves the values where int32 and the plain arithmetic here agree."""
    if id(u) in memo:
        return memo[id(u)]
    out: np.ndarray | None = None
    if u.op is Ops.CONST and isinstance(u.arg, int) and not isinstance(u.arg, bool):
        out = np.full(tid.size, u.arg, np.int64)
    elif u.op is Ops.SPECIAL and u.arg[0] == "lidx0":
        out = tid
    elif u.op in (Ops.ADD, Ops.SUB, Ops.MUL, Ops.IDIV, Ops.MOD) and u.dtype == dtypes.int32 and len(u.src) == 2:
        a, b = _evaluate(u.src[0], tid, memo), _evaluate(u.src[1], tid, memo)
        if a is not None and b is not None and (a >= 0).all() and (b >= 0).all():
            if u.op in (Ops.IDIV, Ops.MOD):
                if (b > 0).all():  # non-negative operands: C's truncation is floor division
                    out = a // b if u.op is Ops.IDIV else a % b
            else:
                out = a + b if u.op is Ops.ADD else a - b if u.op is Ops.SUB else a * b
    if out is not None and ((out < 0).any() or (out >= 2**31).any()):
        out = None
    memo[id(u)] = out
    return out


def _rows(e: np.ndarray, count: int, trans: bool) -> np.ndarray | None:
    """Row starts R[warp, matrix, row] (elements) if the element indices ``e`` (elements, threads) are exactly the
    ldmatrix fragment of those rows, else None."""
    warps = e.shape[1] // 32
    e = e.reshape(count, 2, warps, 32)  # [matrix, half, warp, lane]
    lane = np.arange(32)
    rows = np.empty((warps, count, 8), np.int64)
    for r in range(8):  # the lane (and half) that receives element 0 of row r
        rows[:, :, r] = (e[:, r & 1, :, r >> 1] if trans else e[:, 0, :, 4 * r]).T
    for h in range(2):
        if trans:
            want = rows[:, :, 2 * (lane & 3) + h] + (lane >> 2)
        else:
            want = rows[:, :, lane >> 2] + 2 * (lane & 3) + h
        if not np.array_equal(e[:, h].transpose(1, 0, 2), want):
            return None
    return rows


def _bit_terms(d: np.ndarray) -> tuple[int, list[tuple[int, int, int]]] | None:
    """``d[t] == c + sum(((t >> shift) & mask) * scale)`` for every ``t``: (c, terms), or None."""
    n = d.size
    bits = max(1, (n - 1).bit_length())
    coef = [int(d[1 << b] - d[0]) if (1 << b) < n else 0 for b in range(bits)]
    t = np.arange(n)
    fit = np.full(n, int(d[0]), np.int64)
    for b, c in enumerate(coef):
        fit += ((t >> b) & 1) * c
    if not np.array_equal(fit, d):
        return None
    terms: list[tuple[int, int, int]] = []
    b = 0
    while b < bits:
        if coef[b] == 0:
            b += 1
            continue
        k = 1
        while b + k < bits and coef[b + k] == coef[b] << k:
            k += 1
        terms.append((b, (1 << k) - 1, coef[b]))
        b += k
    return int(d[0]), terms


def _fragment(vec: UOp, block: int, users: dict[int, list[UOp]]) -> Fragment | None:
    loads = list(vec.src)
    if not isinstance(vec.dtype, VecDType) or vec.dtype.count not in (4, 8) or any(
            s.op is not Ops.LOAD or len(s.src) != 2 or s.dtype != dtypes.float16 or len(users.get(id(s), [])) != 1
            for s in loads):
        return None
    tile = loads[0].src[0]
    if tile.op is not Ops.DEFINE_LOCAL or not isinstance(tile.dtype, PtrDType) or any(s.src[0] is not tile
                                                                                       for s in loads):
        return None
    tid = np.arange(block, dtype=np.int64)
    memo: dict[int, np.ndarray | None] = {}
    found = [_evaluate(s.src[1], tid, memo) for s in loads]
    specials = [u for u in _walk([s.src[1] for s in loads]) if u.op is Ops.SPECIAL]
    if any(e is None for e in found) or len({id(u) for u in specials}) != 1:
        return None
    e = np.stack([f for f in found if f is not None])
    count = len(loads) // 2
    for trans in (False, True):
        rows = _rows(e, count, trans)
        if rows is None or (rows % 8).any() or rows.min() < 0 or rows.max() + 8 > tile.arg[1]:
            continue
        lane = np.arange(32)
        supply = rows[:, (lane >> 3) % count, lane & 7].reshape(-1) * 2  # bytes, per thread
        fit = _bit_terms(supply)
        if fit is not None:
            return Fragment(tile, specials[0], count, trans, fit[0], fit[1], loads)
    return None


def _walk(roots: list[UOp]) -> list[UOp]:
    seen: dict[int, UOp] = {}
    stack = list(roots)
    while stack:
        u = stack.pop()
        if id(u) not in seen:
            seen[id(u)] = u
            stack.extend(u.src)
    return list(seen.values())


def plan(uops: list[UOp], block: int) -> Plans:
    """The fragments of ``uops`` (a kernel of ``block`` threads per work group) to load with ldmatrix."""
    plans = Plans()
    if block % 32 or not any(u.op is Ops.WMMA for u in uops):
        return plans
    users: dict[int, list[UOp]] = {}
    for u in uops:
        for s in u.src:
            users.setdefault(id(s), []).append(u)
    position = {id(u): i for i, u in enumerate(uops)}
    for u in uops:
        if u.op is not Ops.VECTORIZE or not users.get(id(u)):
            continue
        consumers = users[id(u)]
        slots = {next(k for k, s in enumerate(w.src) if s is u) if w.op is Ops.WMMA else -1 for w in consumers}
        if slots - {0, 1} or len(slots) != 1 or any(w.op is not Ops.WMMA or list(w.src).count(u) != 1
                                                     for w in consumers):
            continue
        frag = _fragment(u, block, users)
        if frag is None:
            continue
        first = min(position[id(s)] for s in frag.loads)
        last = max(position[id(w)] for w in consumers)
        if any(v.op in (Ops.STORE, Ops.BARRIER, Ops.RANGE, Ops.ENDRANGE) for v in uops[first:last + 1]):
            continue
        plans.by_vector[id(u)] = frag
        for s in frag.loads:
            plans.by_load[id(s)] = frag
    return plans


def render(w: Writer, frag: Fragment, tile: str, tid: str) -> list[str]:
    """The ldmatrix of ``frag`` (``tile``: the tile's shared address register, ``tid``: lidx0's): its registers."""
    addr = w.reg(SHARED_ADDR)
    w.op(f"mov.u32 {addr}, {tile}")
    for shift, mask, scale in frag.terms:
        part = w.reg(S32)
        if shift:
            w.op(f"shr.u32 {part}, {tid}, {shift}")
        w.op(f"and.b32 {part}, {part if shift else tid}, {mask}")
        w.op(f"mad.lo.u32 {addr}, {part}, {scale}, {addr}")
    regs = [w.reg(B32) for _ in range(frag.count)]
    w.op(f"ldmatrix.sync.aligned.m8n8.x{frag.count}{'.trans' if frag.trans else ''}.shared.b16 "
         f"{{{', '.join(regs)}}}, [{addr}{offset_text(frag.offset)}]")
    return regs


def render_mma(k: _Kernel, u: UOp) -> None:
    """A warp's ``mma.sync`` on the tensor cores: float16 fragments packed in pairs (or the registers ldmatrix
    filled), float32 accumulators."""
    if u.arg != MMA_16x8x16_F16_F32:
        k.fail(u, f"no tensor core {u.arg.name} on this target")
    a, b, c = (k.lanes(s) for s in u.src)

    def packed(halves: list[Any]) -> list[str]:
        regs = []
        for low, high in zip(halves[0::2], halves[1::2]):
            reg = k.w.reg(B32)
            k.w.op(f"mov.b32 {reg}, {{{k.in_register(low)}, {k.in_register(high)}}}")
            regs.append(reg)
        return regs

    fa, fb = (k.fragments.by_vector.get(id(s)) for s in u.src[:2])
    frag_a, frag_b = fa.regs if fa else packed(a), fb.regs if fb else packed(b)
    frag_c = [k.in_register(v) for v in c]
    d = [k.new(dtypes.float32) for _ in c]
    k.w.op(f"mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {{{', '.join(d)}}}, {{{', '.join(frag_a)}}}, "
              f"{{{', '.join(frag_b)}}}, {{{', '.join(frag_c)}}}")
    k.values[id(u)] = d
