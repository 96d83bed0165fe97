"""Contractions on tensor cores: a reduction ``sum_k x * y`` lowered onto a target's :class:`TensorCore`.

:func:`plan` recognises a reduction that is a contraction of two operands of the core's ``dtype_in`` into its
``dtype_acc``, where ``x`` varies along some output dimensions (they become M) and ``y`` along others (N), and
whose sizes the core's tile divides; :func:`lower_contraction` then gives each work group ``tm x tn`` tiles,
walks ``K`` in steps of the core's ``K``, loads each lane's fragment elements, runs ``WMMA`` per tile and
stores the accumulators.  Output dimensions both operands vary along are batch dimensions of the launch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tg.codegen.indexing import view_index
from tg.codegen.tensor_cores import LaneTerms, TensorCore
from tg.codegen.uops import Ops, UOp, VecDType
from tg.support.dtype import dtypes

if TYPE_CHECKING:
    from tg.codegen.builder import KernelBuilder
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
    tm: int  # tensor-core tiles per warp along M, and along N
    tn: int
    wm: int = 1  # warps per work group along M, and along N; above one warp, A and B are staged in local memory
    wn: int = 1
    ks: int = 1  # steps of the core's K per stage

    @property
    def staged(self) -> bool:
        return self.wm * self.wn > 1


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
                return _staging(low, Plan(tc, a, b, m_dims, n_dims, batch, tm, tn), size_m, size_n)
    return None


def _staging(low: _Lowering, p: Plan, size_m: int, size_n: int) -> Plan:
    """The plan with the most warps per work group (up to 2x2) whose A and B tiles fit local memory, or as is."""
    m, n, k = p.tc.dims
    size_k = math.prod(low.shape[j] for j in low.reduce_dims)
    ks = 2 if size_k % (2 * k) == 0 else 1
    itemsize = dtypes.from_any(p.tc.dtype_in).itemsize
    for wm, wn in ((2, 2), (2, 1), (1, 2)):
        bm, bn, bk = m * p.tm * wm, n * p.tn * wn, k * ks
        threads = p.tc.threads * wm * wn
        fits = (bm + bn) * bk * itemsize <= low.caps.local_memory and threads <= low.caps.group_size
        if fits and size_m % bm == 0 and size_n % bn == 0 and (bm * bk) % threads == 0 and (bn * bk) % threads == 0:
            return dataclasses.replace(p, wm=wm, wn=wn, ks=ks)
    return p


def _copy_width(low: _Lowering, col_dims: tuple[int, ...], cols: int, per_thread: int, col_step: int) -> int:
    """Elements of a tile row one thread copies at once: the target's vector width where every group of that many
    columns stays within one run of the innermost dim the columns unravel into (so the lanes are consecutive
    there, and a vector load can read them where the operand's view allows), else 1.  ``col_step``: the tile's
    first global column is a multiple of it."""
    width = low.caps.vector_width
    if width <= 1 or not col_dims:
        return 1
    inner = low.shape[col_dims[-1]]
    if cols % width or per_thread % width or col_step % width or inner % width:
        return 1
    return width


def _lane_coord(low: _Lowering, lane: UOp, terms: LaneTerms) -> UOp:
    b, i32 = low.b, dtypes.int32
    out = b.const(0, i32)
    for d, m, s in terms:
        part = b.alu(Ops.MOD, b.alu(Ops.IDIV, lane, b.const(d, i32)), b.const(m, i32))
        out = b.alu(Ops.ADD, out, b.alu(Ops.MUL, part, b.const(s, i32)))
    return out


def lower_contraction(low: _Lowering, p: Plan) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Emit the kernel of plan ``p`` into ``low``'s builder; the launch's global and local dims.

    Each work group computes a block of ``wm x wn`` warps, each warp ``tm x tn`` tiles of the core.  With one
    warp the lanes load their fragments from memory; with several, each stage of ``ks`` core steps first copies
    the block's A and B tiles to local memory (every thread a share, consecutive threads on consecutive
    elements), meets at a barrier, and the warps load their fragments from there.
    """
    b, i32, tc = low.b, dtypes.int32, p.tc
    m, n, k = tc.dims
    bm, bn, bk = m * p.tm * p.wm, n * p.tn * p.wn, k * p.ks
    threads = tc.threads * p.wm * p.wn
    size_m, size_n = (math.prod(low.shape[j] for j in dims) for dims in (p.m_dims, p.n_dims))
    grid = [low.shape[j] for j in p.batch_dims] + [size_m // bm, size_n // bn]
    gid, tid = b.special("gidx0", math.prod(grid)), b.special("lidx0", threads)
    low.gate = b.const(True, dtypes.bool)
    where = low._unravel(gid, grid)
    base: list[UOp] = [b.const(0, i32)] * len(low.shape)
    for j, idx in zip(p.batch_dims, where):
        base[j] = idx
    lane = b.alu(Ops.MOD, tid, b.const(tc.threads, i32)) if p.staged else tid
    warp = b.alu(Ops.IDIV, tid, b.const(tc.threads, i32))
    warp_m, warp_n = b.alu(Ops.IDIV, warp, b.const(p.wn, i32)), b.alu(Ops.MOD, warp, b.const(p.wn, i32))
    m_block, n_block = b.alu(Ops.MUL, where[-2], b.const(bm, i32)), b.alu(Ops.MUL, where[-1], b.const(bn, i32))
    warp_rows = b.alu(Ops.MUL, warp_m, b.const(m * p.tm, i32))  # this warp's first row and column in the block
    warp_cols = b.alu(Ops.MUL, warp_n, b.const(n * p.tn, i32))
    lanes = {name: (_lane_coord(low, lane, f.rows), _lane_coord(low, lane, f.cols))
             for name, f in (("a", tc.a), ("b", tc.b), ("c", tc.c))}

    def place(idxs: list[UOp], dims: tuple[int, ...], at: UOp) -> None:
        for j, idx in zip(dims, low._unravel(at, [low.shape[j] for j in dims])):
            idxs[j] = idx

    def operand(node: KNode, key: tuple[int, ...], dims: tuple[tuple[int, ...], tuple[int, ...]], row: UOp,
                col: UOp, vec: int | None = None) -> UOp:
        """``node`` (an operand) at global ``(row, col)``: ``dims`` are the kernel dims the two unravel into; ``vec``:
        the position in ``key`` of a vector lane (``low.vec_dim`` set to the dim the lanes run along)."""
        idxs = list(base)
        place(idxs, dims[0], row)
        place(idxs, dims[1], col)
        return low._render(node, idxs, key, vec)

    acc_dtype, in_dtype = dtypes.from_any(tc.dtype_acc), dtypes.from_any(tc.dtype_in)
    accs = {(i, j): [b.define_acc(0, acc_dtype) for _ in range(tc.c.elements)] for i in range(p.tm)
            for j in range(p.tn)}
    reduce_dims = tuple(low.reduce_dims)
    shapes = {"a": (bm, bk), "b": (bk, bn)}  # this stage's tile of each operand
    tiles = {name: b.define_local(f"tile_{name}", in_dtype, rows * cols) for name, (rows, cols) in shapes.items()
             } if p.staged else {}
    stage = b.range(0, math.prod(low.shape[j] for j in reduce_dims) // bk)
    k_stage = b.alu(Ops.MUL, stage, b.const(bk, i32))
    # per operand: its node, the kernel dims its rows and columns unravel into, its tile's first global row and col
    sides = {"a": (p.a, (p.m_dims, reduce_dims), (m_block, k_stage)),
             "b": (p.b, (reduce_dims, p.n_dims), (k_stage, n_block))}
    if p.staged:  # copy this stage's A and B tiles to local memory, consecutive threads on consecutive elements
        for which, (name, (node, dims, (row0, col0))) in enumerate(sides.items()):
            rows, cols = shapes[name]
            width = _copy_width(low, dims[1], cols, rows * cols // threads, bk if name == "a" else bn)
            for r in range(rows * cols // (threads * width)):
                q = b.alu(Ops.MUL, _plus(b, tid, threads * r), b.const(width, i32)) if width > 1 else \
                    _plus(b, tid, threads * r)
                row, col = b.alu(Ops.IDIV, q, b.const(cols, i32)), b.alu(Ops.MOD, q, b.const(cols, i32))
                at_row, at_col = _plus(b, row0, row), _plus(b, col0, col)
                if width == 1:
                    b.store(tiles[name], q, operand(node, (2 + which, r), dims, at_row, at_col))
                    continue
                # a vector of `width` consecutive columns per thread (vector loads where the operand is contiguous)
                saved, low.vec_dim = low.vec_dim, dims[1][-1]
                row_values = [operand(node, (2 + which, r, e), dims, at_row, _plus(b, at_col, e), vec=2)
                              for e in range(width)]
                low.vec_dim = saved
                b.store(tiles[name], q, b._add(Ops.VECTORIZE, VecDType(in_dtype, width), tuple(row_values)))
        b.barrier()

    def fragment(name: str, key: tuple[int, ...], row: UOp, col: UOp) -> UOp:
        """Operand ``name`` at ``(row, col)`` within this stage's tile: from local memory, or from the operand."""
        node, dims, (row0, col0) = sides[name]
        cols = shapes[name][1]
        if p.staged:
            return b.load(tiles[name], _plus(b, b.alu(Ops.MUL, row, b.const(cols, i32)), col), in_dtype)
        return operand(node, key, dims, _plus(b, row0, row), _plus(b, col0, col))

    current = {key: list(cell) for key, cell in accs.items()}
    acc_vec = VecDType(acc_dtype, tc.c.elements)
    for s in range(p.ks):
        frag_a = [b._add(Ops.VECTORIZE, VecDType(in_dtype, tc.a.elements), tuple(
            fragment("a", (0, s, i, e), _plus(b, warp_rows, i * m + tc.a.row_offsets[e], lanes["a"][0]),
                     _plus(b, lanes["a"][1], s * k + tc.a.col_offsets[e])) for e in range(tc.a.elements)))
            for i in range(p.tm)]
        frag_b = [b._add(Ops.VECTORIZE, VecDType(in_dtype, tc.b.elements), tuple(
            fragment("b", (1, s, j, e), _plus(b, lanes["b"][0], s * k + tc.b.row_offsets[e]),
                     _plus(b, warp_cols, j * n + tc.b.col_offsets[e], lanes["b"][1])) for e in range(tc.b.elements)))
            for j in range(p.tn)]
        for key, cell in accs.items():  # C is the accumulators' latest values (their ASSIGNs after step 0)
            c = b._add(Ops.VECTORIZE, acc_vec, tuple(current[key]))
            d = b._add(Ops.WMMA, acc_vec, (frag_a[key[0]], frag_b[key[1]], c), tc)
            current[key] = [b.assign(acc, b._add(Ops.GEP, acc_dtype, (d,), e)) for e, acc in enumerate(cell)]
    if p.staged:
        b.barrier()  # every warp is done with this stage's tiles before the next stage overwrites them
    b.end_range(stage)
    for (i, j), cell in accs.items():
        for e, acc in enumerate(cell):
            idxs = list(base)
            place(idxs, p.m_dims, _plus(b, m_block, warp_rows, i * m + tc.c.row_offsets[e], lanes["c"][0]))
            place(idxs, p.n_dims, _plus(b, n_block, warp_cols, j * n + tc.c.col_offsets[e], lanes["c"][1]))
            index, _ = view_index(b, low.out_st, idxs)
            b.store(low.out_buf, index, acc)
    return (math.prod(grid),), (threads,)


def _plus(b: KernelBuilder, u: UOp, *offsets: UOp | int) -> UOp:
    for o in offsets:
        u = b.alu(Ops.ADD, u, o if isinstance(o, UOp) else b.const(o, dtypes.int32))
    return u
