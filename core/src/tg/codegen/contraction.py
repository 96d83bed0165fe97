"""Contractions on tensor cores: a reduction ``sum_k x * y`` lowered onto a target's :class:`TensorCore`.

:func:`plan` recognises a reduction that is a contraction of two operands of the core's ``dtype_in`` into its
``dtype_acc``, where ``x`` varies along some output dimensions (they become M) and ``y`` along others (N), and
whose sizes the core's tile divides; :func:`lower_contraction` then gives each work group ``tm x tn`` tiles,
walks ``K`` in steps of the core's ``K``, loads each lane's fragment elements, runs ``WMMA`` per tile and
stores the accumulators.  Output dimensions both operands vary along are batch dimensions of the launch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tg.codegen.indexing import view_index
from tg.codegen.tensor_cores import LaneTerms, TensorCore
from tg.codegen.uops import Ops, UOp, VecDType
from tg.support.dtype import dtypes

if TYPE_CHECKING:
    from tg.codegen.lower import _Lowering
    from tg.schedule.scheduler import KNode


@dataclass(frozen=True)
class Plan:
    """How a contraction maps onto a tensor core: ``a`` varies along ``m_dims``, ``b`` along ``n_dims``."""

    tc: TensorCore
    a: KNode
    b: KNode
    m_dims: tuple[int, ...]
    n_dims: tuple[int, ...]
    batch_dims: tuple[int, ...]
    tm: int  # tensor-core tiles per work group along M, and along N
    tn: int


def _depends(node: KNode, dim: int) -> bool:
    """Whether any load or constant under ``node`` reads differently along ``dim`` (stride or mask)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n.op in ("LOAD", "CONST"):
            v = n.arg[1].views[-1]
            if v.strides[dim] != 0 or (v.mask is not None and v.mask[dim] != (0, v.shape[dim])):
                return True
        stack.extend(n.src)
    return False


def plan(low: _Lowering) -> Plan | None:
    """A tensor-core plan for the kernel being lowered, or None (not a contraction the target's cores fit)."""
    body = low.body
    if low.reduce_op is not Ops.ADD or body.op != "CAST" or body.arg or body.src[0].op != "ALU" or \
            body.src[0].arg is not Ops.MUL:
        return None
    x, y = body.src[0].src
    out = low.kernel.output.dtype
    for tc in low.caps.tensor_cores:
        if x.dtype.name != tc.dtype_in or y.dtype.name != tc.dtype_in or out.name != tc.dtype_acc or \
                body.dtype != out:
            continue
        m, n, k = tc.dims
        if math.prod(low.shape[j] for j in low.reduce_dims) % k:
            continue
        dims = [j for j in low.global_dims if low.shape[j] > 1]
        only_x = tuple(j for j in dims if _depends(x, j) and not _depends(y, j))
        only_y = tuple(j for j in dims if _depends(y, j) and not _depends(x, j))
        batch = tuple(j for j in dims if j not in only_x and j not in only_y)
        for a, b, m_dims, n_dims in ((x, y, only_x, only_y), (y, x, only_y, only_x)):
            size_m, size_n = math.prod(low.shape[j] for j in m_dims), math.prod(low.shape[j] for j in n_dims)
            if size_m % m == 0 and size_n % n == 0:
                tm = next(t for t in (2, 1) if size_m % (m * t) == 0)
                tn = next(t for t in (4, 2, 1) if size_n % (n * t) == 0)
                return Plan(tc, a, b, m_dims, n_dims, batch, tm, tn)
    return None


def _lane_coord(low: _Lowering, lane: UOp, terms: LaneTerms) -> UOp:
    b, i32 = low.b, dtypes.int32
    out = b.const(0, i32)
    for d, m, s in terms:
        part = b.alu(Ops.MOD, b.alu(Ops.IDIV, lane, b.const(d, i32)), b.const(m, i32))
        out = b.alu(Ops.ADD, out, b.alu(Ops.MUL, part, b.const(s, i32)))
    return out


def lower_contraction(low: _Lowering, p: Plan) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Emit the kernel of plan ``p`` into ``low``'s builder; the launch's global and local dims."""
    b, i32, tc = low.b, dtypes.int32, p.tc
    m, n, k = tc.dims
    size = {name: math.prod(low.shape[j] for j in dims) for name, dims in (("m", p.m_dims), ("n", p.n_dims))}
    tiles = [low.shape[j] for j in p.batch_dims] + [size["m"] // (m * p.tm), size["n"] // (n * p.tn)]
    gid, lane = b.special("gidx0", math.prod(tiles)), b.special("lidx0", tc.threads)
    low.gate = b.const(True, dtypes.bool)
    where = low._unravel(gid, tiles)
    base: list[UOp] = [b.const(0, i32)] * len(low.shape)
    for j, idx in zip(p.batch_dims, where):
        base[j] = idx
    m0 = b.alu(Ops.MUL, where[-2], b.const(m * p.tm, i32))
    n0 = b.alu(Ops.MUL, where[-1], b.const(n * p.tn, i32))
    coords = {"a": (_lane_coord(low, lane, tc.a.rows), _lane_coord(low, lane, tc.a.cols)),
              "b": (_lane_coord(low, lane, tc.b.rows), _lane_coord(low, lane, tc.b.cols)),
              "c": (_lane_coord(low, lane, tc.c.rows), _lane_coord(low, lane, tc.c.cols))}

    def place(idxs: list[UOp], dims: tuple[int, ...], at: UOp) -> None:
        for j, idx in zip(dims, low._unravel(at, [low.shape[j] for j in dims])):
            idxs[j] = idx

    def plus(u: UOp, *offsets: UOp | int) -> UOp:
        for o in offsets:
            u = b.alu(Ops.ADD, u, o if isinstance(o, UOp) else b.const(o, i32))
        return u

    acc_dtype, in_dtype = dtypes.from_any(tc.dtype_acc), dtypes.from_any(tc.dtype_in)
    accs = {(i, j): [b.define_acc(0, acc_dtype) for _ in range(tc.c.elements)] for i in range(p.tm)
            for j in range(p.tn)}
    step = b.range(0, math.prod(low.shape[j] for j in low.reduce_dims) // k)
    k0 = b.alu(Ops.MUL, step, b.const(k, i32))
    frag_a, frag_b = [], []
    for i in range(p.tm):
        values = []
        for e in range(tc.a.elements):
            idxs = list(base)
            place(idxs, p.m_dims, plus(m0, i * m + tc.a.row_offsets[e], coords["a"][0]))
            place(idxs, tuple(low.reduce_dims), plus(k0, tc.a.col_offsets[e], coords["a"][1]))
            values.append(low._render(p.a, idxs, (0, i, e)))
        frag_a.append(b._add(Ops.VECTORIZE, VecDType(in_dtype, tc.a.elements), tuple(values)))
    for j in range(p.tn):
        values = []
        for e in range(tc.b.elements):
            idxs = list(base)
            place(idxs, tuple(low.reduce_dims), plus(k0, tc.b.row_offsets[e], coords["b"][0]))
            place(idxs, p.n_dims, plus(n0, j * n + tc.b.col_offsets[e], coords["b"][1]))
            values.append(low._render(p.b, idxs, (1, j, e)))
        frag_b.append(b._add(Ops.VECTORIZE, VecDType(in_dtype, tc.b.elements), tuple(values)))
    acc_vec = VecDType(acc_dtype, tc.c.elements)
    for (i, j), cell in accs.items():
        d = b._add(Ops.WMMA, acc_vec, (frag_a[i], frag_b[j], b._add(Ops.VECTORIZE, acc_vec, tuple(cell))), tc)
        for e, acc in enumerate(cell):
            b.assign(acc, b._add(Ops.GEP, acc_dtype, (d,), e))
    b.end_range(step)
    for (i, j), cell in accs.items():
        for e, acc in enumerate(cell):
            idxs = list(base)
            place(idxs, p.m_dims, plus(m0, i * m + tc.c.row_offsets[e], coords["c"][0]))
            place(idxs, p.n_dims, plus(n0, j * n + tc.c.col_offsets[e], coords["c"][1]))
            index, _ = view_index(b, low.out_st, idxs)
            b.store(low.out_buf, index, acc)
    return (math.prod(tiles),), (tc.threads,)
