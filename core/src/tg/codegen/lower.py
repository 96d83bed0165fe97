"""Lowering: a scheduled kernel's expression tree becomes a micro-op list for one backend.

The kernel's shape is simplified first (adjacent dimensions that every buffer walks contiguously are
merged), then each output element gets one thread: ``gidx0`` (times the work-group size plus ``lidx0``
when the backend runs work groups) is unravelled into per-dimension indices, reductions loop over
their axes in each thread, and every load and store goes through its view's index and validity
expressions.  A kernel with row-fused reductions (REDUCE nodes below its root, see :mod:`tg.schedule.scheduler`)
gets one thread per row, which runs each fused reduction's loop in turn, then the kernel's own loop (symbolic: as
many threads as the launch variable ``n0`` says).  The
capability-driven rewrites of :mod:`tg.codegen.rewrites` then fit the list to the backend.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

from tg.codegen import contraction
from tg.codegen.builder import KernelBuilder
from tg.codegen.capabilities import Capabilities, NotSymbolic
from tg.codegen.indexing import view_index
from tg.codegen.kernel_tree import (
    all_trackers,
    fused_reductions,
    indexed_trackers,
    merge_dims,
    node_shape,
    reshape_node,
)
from tg.codegen.opts import ShapedKernel, choose_opts, grouped_reduce_lanes, row_dim
from tg.codegen.program import LoweredKernel, SymbolicSize
from tg.codegen.uops import Ops, UOp, VecDType
from tg.graph.shapetracker import ShapeTracker
from tg.schedule.scheduler import Kernel, KNode, ScalarParam
from tg.support.dtype import INDEX_LIMIT, DType, dtypes

#: Threads a GPU runs in lockstep (an NVIDIA warp, an RDNA wave32): a shaped launch whose rows are narrower than
#: this (or than the target's group size) is launched flat instead.
SIMD_THREADS = 32


def lower(kernel: Kernel, caps: Capabilities, symbolic: bool = False, stable: bool = False) -> LoweredKernel:
    """``kernel`` as micro-ops for a target of ``caps``.  ``symbolic``: for every size of its outermost dimension
    (the launch variable ``n0``; see :mod:`tg.engine.symbolic`), or :class:`NotSymbolic` where core cannot lower it
    so (work-group reductions, tensor cores, no room for a second row).  ``stable``: work groups of
    ``caps.group_size`` threads whatever the sizes (not fewer for a small launch), so that lowerings at other sizes
    have the same micro-ops (:mod:`tg.engine.dynamic`)."""
    _check_index_range(kernel)
    return _Lowering(kernel, caps, symbolic, stable).run()


def symbolic_bound(kernel: Kernel, inner_threads: int, group: int, caps: Capabilities) -> int:
    """The largest outermost size ``hi`` a symbolic lowering of ``kernel`` runs right at: every index of every view
    (the outermost view's dim ``axis`` and a view under it's dim 0 of size ``N``, strides at least 0), the output's
    and the threads' counts fit int32, and the work groups fit the target's first launch dimension.  Depends only on
    what the symbolic key holds."""
    ast = kernel.ast
    body = ast.src[0] if ast.op == "REDUCE" else ast
    axis = next(i for i, s in enumerate(kernel.output.shape) if s != 1)
    hi = INDEX_LIMIT // max(1, math.prod(kernel.output.shape[axis + 1:]))
    hi = min(hi, (INDEX_LIMIT - group) // max(1, inner_threads))
    for st in indexed_trackers(body, []):
        for v in st.views:
            dim = axis if v is st.views[-1] else 0
            inner = sum(max(0, (size - 1) * stride) for size, stride in zip(v.shape[dim + 1:], v.strides[dim + 1:]))
            room = INDEX_LIMIT - v.offset - inner
            if v.strides[dim] > 0:
                hi = min(hi, room // v.strides[dim] + 1)
            elif room < 0:
                return 0
    if caps.launch_limits:
        hi = min(hi, caps.launch_limits[0] * group // max(1, inner_threads))
    return hi


def _check_index_range(kernel: Kernel) -> None:
    """Refuse, before anything runs, a kernel whose int32 indices would wrap (a silent wrong answer otherwise): the
    output's and every input buffer's element count, and the length of the reduction, must fit."""
    ast = kernel.ast
    body = ast.src[0] if ast.op == "REDUCE" else ast
    full = node_shape(body, kernel.output.shape)
    reduced = math.prod(full[a] for a in ast.arg[1]) if ast.op == "REDUCE" else 1
    sizes = {"output": math.prod(kernel.output.shape), "reduction": reduced}
    sizes.update({f"input {i + 1}": math.prod(inp.shape) for i, inp in enumerate(kernel.inputs)})
    for what, size in sizes.items():
        if size > INDEX_LIMIT:
            raise ValueError(f"kernel {kernel.name}: its {what} has {size:,} elements, and tg indexes with 32-bit "
                             f"integers (at most {INDEX_LIMIT:,}): split the tensor into smaller pieces")


class _Lowering:
    """One kernel's lowering; the strategy depends on the kernel and the backend's capabilities:

    - elementwise: one thread per output element, or per ``vector_width`` elements of the innermost
      dimension when the backend has vectors (vector loads/stores where the data is contiguous and
      aligned, one scalar op per lane in between);
    - reduction: one thread per output, looping over the reduced axes; or, when the backend has work
      groups and local memory and the outputs are few, one work group per output whose lanes each
      reduce a strided share, store it to local memory, meet at a barrier, and lane 0 finishes;
    - a contraction the target's tensor cores fit: :mod:`tg.codegen.contraction`.
    """

    def __init__(self, kernel: Kernel, caps: Capabilities, symbolic: bool = False, stable: bool = False):
        self.kernel, self.caps, self.symbolic, self.stable = kernel, caps, symbolic, stable
        self.launch_vars: tuple[tuple[int, SymbolicSize], ...] = ()
        ast = kernel.ast
        self.reduce_op = ast.arg[0] if ast.op == "REDUCE" else None
        body = ast.src[0] if ast.op == "REDUCE" else ast
        self.fused = fused_reductions(body)
        full_shape = node_shape(body, kernel.output.shape)
        reduce_axes = set(ast.arg[1]) if ast.op == "REDUCE" else set(self.fused[0].arg[1]) if self.fused else set()
        out_st = ShapeTracker.contiguous(kernel.output.shape).expand(full_shape)
        axis = next((i for i, s in enumerate(full_shape) if s != 1), -1) if symbolic else -1
        every_reduced = reduce_axes.union(*(n.arg[1] for n in self.fused))
        if symbolic and (axis < 0 or any(a <= axis for a in every_reduced)):
            raise NotSymbolic(f"kernel {kernel.name}: its outermost dimension is reduced")
        # (a symbolic kernel's unmasked constants may have views of any size: they read nothing, so they do not count)
        trackers = indexed_trackers(body, [out_st]) if symbolic else [*all_trackers(body, []), out_st]
        groups = merge_dims(full_shape, reduce_axes, trackers, axis)
        self.shape = tuple(math.prod(full_shape[i] for i in g) for g in groups)
        self.reduce_dims = [j for j, g in enumerate(groups) if g[0] in reduce_axes]
        if self.shape != full_shape:
            memo: dict[int, KNode] = {}
            body = reshape_node(body, self.shape, memo)
            self.fused = [memo[id(n)] for n in self.fused]
            out_st = out_st.reshape(self.shape)
        self.body, self.out_st = body, out_st
        if symbolic and not all(rows_under(st.key, full_shape[axis]) for st in indexed_trackers(body, [out_st])):
            raise NotSymbolic(f"kernel {kernel.name}: a view that does not merge its outer dimensions")
        self.global_dims = [j for j in range(len(self.shape)) if j not in self.reduce_dims]
        shaped = ShapedKernel(self.shape, tuple(self.reduce_dims), self.reduce_op, kernel.output.dtype, symbolic)
        if symbolic and (0 in self.reduce_dims or (self.reduce_op is not None and caps.tensor_cores) or
                         grouped_reduce_lanes(replace(shaped, shape=(2, *self.shape[1:])), caps) > 1):
            # a work group per output is chosen by the number of outputs, and sums in another order than a thread
            # per output: such a kernel is built for its exact size, so every size sums alike
            raise NotSymbolic(f"kernel {kernel.name}: reduction on tensor cores or in work groups")
        self.opts = choose_opts(shaped, caps)
        self.b = KernelBuilder()
        self.memo: dict[tuple[int, tuple[int, ...]], UOp] = {}
        self.vectors: dict[tuple[int, tuple[int, ...]], UOp] = {}
        self.vec_dim = -1  # the kernel dim whose consecutive elements are vector lanes (-1: none)
        self.params: list[UOp] = []  # the scalar parameters' DEFINE_VARs, by slot (none: they are constants)

    def _group_size(self, n_threads: int) -> int:
        return max(1, self.caps.group_size if self.stable else min(self.caps.group_size, n_threads))

    def run(self) -> LoweredKernel:
        b = self.b
        out_dtype = self.kernel.output.dtype
        self.out_buf = b.define_global(0, out_dtype, True)
        self.in_bufs = [b.define_global(i + 1, inp.dtype, False) for i, inp in enumerate(self.kernel.inputs)]
        if "float32" in self.caps.variables:  # else the parameters are constants, and the engine keys by their values
            self.params = [b.define_var(f"p{i}", dtypes.float32) for i in range(len(self.kernel.params))]
        n_outputs = math.prod(self.shape[j] for j in self.global_dims)
        lanes = self.opts.group_lanes
        on_cores = contraction.plan(self) if self.caps.tensor_cores and not self.fused else None
        if self.fused:
            global_size, local_size = self._row_passes(n_outputs)
        elif on_cores is not None:
            global_size, local_size = contraction.lower_contraction(self, on_cores)
        elif lanes > 1:
            global_size, local_size = self._grouped_reduce(n_outputs, lanes)
        else:
            global_size, local_size = self._per_thread(n_outputs)
        name = self.kernel.symbolic_name if self.symbolic else self.kernel.name
        return LoweredKernel(name, b.uops, global_size, local_size, self.kernel.bytes_moved, self.launch_vars)

    # -- thread indexing --------------------------------------------------------------------------------------

    def _unravel(self, gid: UOp, sizes: list[int]) -> list[UOp]:
        b, out, i32 = self.b, [], dtypes.int32
        for pos, size in enumerate(sizes):
            inner = math.prod(sizes[pos + 1:])
            d = b.alu(Ops.IDIV, gid, b.const(inner, i32))
            out.append(b.alu(Ops.MOD, d, b.const(size, i32)) if pos else d)
        return out

    def _threads(self, n_threads: int) -> tuple[UOp, UOp, int]:
        """The global thread id, the gate that masks threads past the end, and the group size."""
        b, i32 = self.b, dtypes.int32
        group = self._group_size(n_threads)
        if group > 1:
            n_groups = -(-n_threads // group)
            gid = b.alu(Ops.ADD, b.alu(Ops.MUL, b.special("gidx0", n_groups), b.const(group, i32)),
                        b.special("lidx0", group))
            return gid, b.alu(Ops.CMPLT, gid, b.const(n_threads, i32)), group
        return b.special("gidx0", n_threads), b.const(True, dtypes.bool), 1

    def _symbolic_threads(self, inner: int) -> tuple[UOp, UOp, tuple[int, ...], tuple[int, ...]]:
        """A flat launch of ``n0 * inner`` threads, ``n0`` the outermost dimension's size (a launch variable):
        the global thread id, its gate, and the launch at ``n0``'s upper bound (resolved at each launch)."""
        b, i32 = self.b, dtypes.int32
        group = max(1, self.caps.group_size)
        hi = symbolic_bound(self.kernel, inner, group, self.caps)
        if hi < 2:
            raise NotSymbolic(f"kernel {self.kernel.name}: no room for a second row within 32-bit indices")
        n = b.define_var("n0", i32, 2, hi)
        self.launch_vars = ((0, SymbolicSize("n0", inner, group)),)
        n_groups = -(-hi * inner // group)
        if group == 1:  # the launch is exactly n0 * inner threads
            return b.special("gidx0", n_groups), b.const(True, dtypes.bool), (n_groups,), (1,)
        gid = b.alu(Ops.ADD, b.alu(Ops.MUL, b.special("gidx0", n_groups), b.const(group, i32)),
                    b.special("lidx0", group))
        return gid, b.alu(Ops.CMPLT, gid, b.alu(Ops.MUL, n, b.const(inner, i32))), (n_groups,), (group,)

    def _symbolic_rows(self, sizes: list[int]) -> tuple[list[UOp], UOp, tuple[int, ...], tuple[int, ...]]:
        """A launch of two dimensions whose first (``gidx0``, in work groups with ``lidx0``) walks the innermost
        output dimension and whose second (``gidx1``) the rest, ``n0`` times the sizes between: the indices of
        ``sizes`` (outermost first), the gate, and the launch at ``n0``'s upper bound (resolved at each launch)."""
        b, i32 = self.b, dtypes.int32
        cols, mid = sizes[-1], math.prod(sizes[1:-1])
        group = self._group_size(cols)
        n_groups = -(-cols // group)
        if self.caps.launch_limits and n_groups > self.caps.launch_limits[0]:
            raise NotSymbolic(f"kernel {self.kernel.name}: its rows are longer than the launch's first dimension")
        limits = self.caps.launch_limits
        hi = symbolic_bound(self.kernel, cols * mid, 1, replace(self.caps, launch_limits=()))
        if len(limits) > 1:
            hi = min(hi, limits[1] // max(1, mid))
        if hi < 2:
            raise NotSymbolic(f"kernel {self.kernel.name}: no room for a second row within 32-bit indices")
        b.define_var("n0", i32, 2, hi)
        self.launch_vars = ((1, SymbolicSize("n0", mid, 1)),)
        if group > 1:
            col = b.alu(Ops.ADD, b.alu(Ops.MUL, b.special("gidx0", n_groups), b.const(group, i32)),
                        b.special("lidx0", group))
            gate = b.alu(Ops.CMPLT, col, b.const(cols, i32))
        else:
            col, gate = b.special("gidx0", cols), b.const(True, dtypes.bool)
        rows = self._unravel(b.special("gidx1", hi * mid), sizes[:-1])
        return [*rows, col], gate, (n_groups, hi * mid), (group, 1)

    def _launch_dims(self, sizes: list[int], group: int) -> int:
        """How many launch dimensions the output ``sizes`` take: ``Capabilities.launch_dims``, or fewer where a
        dimension would pass the target's ``launch_limits`` (1: flat)."""
        if len(sizes) < 2:
            return 1
        limits, inner_first = self.caps.launch_limits, sizes[::-1]
        for dims in range(self.caps.launch_dims, 1, -1):
            launch = [*inner_first[:dims - 1], math.prod(inner_first[dims - 1:])]
            launch[0] = -(-launch[0] // group)
            if all(n <= most for n, most in zip(launch, limits)):
                return dims
        return 1

    def _shaped_launch(self, sizes: list[int], group: int, dims: int
                       ) -> tuple[list[UOp], UOp, tuple[int, ...], tuple[int, ...]]:
        """One launch index per output dimension (``dims`` > 1 launch dimensions): ``gidx0`` walks the innermost
        size (in groups of ``group`` threads ``lidx0`` when above 1), ``gidx1`` the next...; the sizes beyond the
        last launch dimension fold into it.  The indices of ``sizes`` (outermost first), the gate of threads past
        the end, and the launch's global and local dims (innermost first)."""
        b, i32 = self.b, dtypes.int32
        inner_first = sizes[::-1]
        heads, tail = inner_first[:dims - 1], inner_first[dims - 1:]
        gate, launch, indices = b.const(True, dtypes.bool), [], []
        for k, size in enumerate(heads):
            if k == 0 and group > 1:
                groups = -(-size // group)
                idx = b.alu(Ops.ADD, b.alu(Ops.MUL, b.special("gidx0", groups), b.const(group, i32)),
                            b.special("lidx0", group))
                gate, launch = b.alu(Ops.CMPLT, idx, b.const(size, i32)), [groups]
            else:
                idx = b.special(f"gidx{k}", size)
                launch.append(size)
            indices.append(idx)
        if tail:
            folded = math.prod(tail)
            indices += self._unravel(b.special(f"gidx{len(heads)}", folded), tail[::-1])[::-1]
            launch.append(folded)
        return indices[::-1], gate, tuple(launch), (group,) + (1,) * (len(launch) - 1)

    def _fold_order(self, global_dims: list[int], dims: int) -> list[int]:
        """``global_dims`` (outermost first) with the output dims that fold into the last launch dimension
        reordered for a reduction so that the one chosen by :func:`~tg.codegen.opts.row_dim` is innermost: the
        launch's neighbouring rows then share the loads that do not depend on it."""
        folded = [j for j in global_dims[:len(global_dims) - (dims - 1)] if self.shape[j] > 1]
        if self.reduce_op is None or len(folded) < 2 or self.opts.upcast:
            return global_dims
        loads = [(st.views[-1].strides, st.views[-1].mask) for st in all_trackers(self.body, [])
                 if len(st.views[-1].strides) == len(self.shape)]
        best = row_dim(self.shape, folded, global_dims[-1], loads)
        if best == folded[-1]:
            return global_dims
        moved = [j for j in global_dims if j != best]
        at = len(global_dims) - dims  # just outside the dims that have launch dimensions of their own
        return [*moved[:at], best, *moved[at:]]

    # -- strategies --------------------------------------------------------------------------------------------

    def _per_thread(self, n_outputs: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        b, i32 = self.b, dtypes.int32
        plan = list(self.opts.upcast)
        amounts = dict(plan)
        threads = {j: self.shape[j] // amounts.get(j, 1) for j in self.global_dims}  # along each output dim
        sizes = list(threads.values())
        n_threads = math.prod(sizes)
        # a launch dimension for each output dim a thread index walks: one of a single thread (size 1, or a
        # register tile as wide as the dim) would make the work groups one thread wide.  (Not for a kernel of a
        # dynamic family (stable): its launch must keep its dimensions at every size, see tg.engine.dynamic.)
        walked = [j for j, n in threads.items() if n > 1 or self.stable]
        inner = threads[walked[-1]] if walked else 1
        group = self._group_size(inner)
        # rows of fewer threads than a SIMD group (32) would leave most of each one idle: such kernels launch flat
        narrowest = min(SIMD_THREADS, self.caps.group_size)
        dims = 1
        if self.caps.launch_dims > 1 and not self.symbolic and (inner >= narrowest or self.stable):
            dims = self._launch_dims([threads[j] for j in walked], group)
        shaped = dims > 1
        global_dims = self.global_dims
        if shaped:
            global_dims = self._fold_order(walked, dims)
            sizes = [threads[j] for j in global_dims]
            indices, gate, global_size, local_size = self._shaped_launch(sizes, group, dims)
        elif self.symbolic and self.caps.launch_dims > 1 and len(sizes) > 1 and sizes[-1] >= narrowest:
            indices, gate, global_size, local_size = self._symbolic_rows(sizes)
            shaped = True
        elif self.symbolic:
            gid, gate, global_size, local_size = self._symbolic_threads(math.prod(sizes[1:]))
        else:
            gid, gate, group = self._threads(n_threads)
            global_size, local_size = (-(-n_threads // group),), (group,)
        self.gate = gate
        base: list[UOp] = [b.const(0, i32)] * len(self.shape)
        if not shaped:  # unravelled after the constant above: the flat kernels' micro-ops keep their order
            indices = self._unravel(gid, sizes)
        for j, idx in zip(global_dims, indices):
            base[j] = b.alu(Ops.MUL, idx, b.const(amounts[j], i32)) if j in amounts else idx
        # the innermost planned dim becomes vector lanes when it is exactly the backend's vector width
        vec = len(plan) - 1 if plan and plan[-1][1] == self.caps.vector_width > 1 else None
        self.vec_dim = plan[-1][0] if vec is not None else -1
        lanes = list(itertools.product(*[range(a) for _, a in plan]))
        lane_idxs = []
        for lane in lanes:
            idxs = list(base)
            for (j, _), off in zip(plan, lane):
                idxs[j] = b.alu(Ops.ADD, base[j], b.const(off, i32))
            lane_idxs.append(idxs)
        if self.reduce_op is not None:
            dtype = self.kernel.output.dtype
            accs = [b.define_acc(reduce_identity(self.reduce_op, dtype), dtype) for _ in lanes]
            unroll, last = self.opts.unroll, self.reduce_dims[-1]
            ranges = [b.range(0, self.shape[j] // (unroll if j == last else 1)) for j in self.reduce_dims]
            for step in range(unroll):  # the innermost loop's iterations step, step+1...: its order of accumulation
                at = ranges[-1] if unroll == 1 else \
                    b.alu(Ops.ADD, b.alu(Ops.MUL, ranges[-1], b.const(unroll, i32)), b.const(step, i32))
                for idxs in lane_idxs:
                    for j, r in zip(self.reduce_dims, ranges):
                        idxs[j] = at if j == last else r
                values = [self._render(self.body, idxs, lane + (step,) * (unroll > 1), vec)
                          for idxs, lane in zip(lane_idxs, lanes)]
                for acc, value in zip(accs, values):
                    b.assign(acc, b.alu(self.reduce_op, acc, value))
            for r in reversed(ranges):
                b.end_range(r)
            results = accs
            for idxs in lane_idxs:
                for j in self.reduce_dims:
                    idxs[j] = b.const(0, i32)
        else:
            results = [self._render(self.body, idxs, lane, vec) for idxs, lane in zip(lane_idxs, lanes)]
        self._store_lanes(results, lane_idxs, lanes, vec)
        return global_size, local_size

    def _row_passes(self, n_rows: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A kernel with row-fused reductions: one thread per row (the output's index without the reduced dims),
        which runs the loop of each fused reduction in turn (sources first), then the kernel's own loop: its
        reduction, or the elementwise values it stores one by one.  A fused reduction's value is its accumulator,
        read after its loop; nothing else rendered inside one loop is reused in another."""
        b, i32 = self.b, dtypes.int32
        if self.symbolic:  # n0 rows times the output dims inside the outermost one, counted at each launch
            gid, gate, global_size, local_size = self._symbolic_threads(
                math.prod(self.shape[j] for j in self.global_dims[1:]))
        else:
            gid, gate, group = self._threads(n_rows)
            global_size, local_size = (-(-n_rows // group),), (group,)
        self.gate = gate
        idxs: list[UOp] = [b.const(0, i32)] * len(self.shape)
        for j, idx in zip(self.global_dims, self._unravel(gid, [self.shape[j] for j in self.global_dims])):
            idxs[j] = idx
        accs = [b.define_acc(reduce_identity(n.arg[0], n.dtype), n.dtype) for n in self.fused]
        own = None
        if self.reduce_op is not None:
            dtype = self.kernel.output.dtype
            own = b.define_acc(reduce_identity(self.reduce_op, dtype), dtype)
        done: dict[tuple[int, tuple[int, ...]], UOp] = {}

        def loop(body: KNode, acc: UOp | None, op: Ops | None) -> None:
            self.memo = dict(done)  # values of another loop's iterations are out of scope here
            ranges = [b.range(0, self.shape[j]) for j in self.reduce_dims]
            for j, r in zip(self.reduce_dims, ranges):
                idxs[j] = r
            value = self._render(body, idxs)
            if acc is None:
                index, _ = view_index(b, self.out_st, idxs)
                b.store(self.out_buf, index, value, None if _true(gate) else gate)
            else:
                assert op is not None
                b.assign(acc, b.alu(op, acc, value))
            for r in reversed(ranges):
                b.end_range(r)

        for node, acc in zip(self.fused, accs):
            loop(node.src[0], acc, node.arg[0])
            done[(id(node), ())] = acc
        loop(self.body, own, self.reduce_op)
        self.memo = {}
        if own is not None:
            for j in self.reduce_dims:
                idxs[j] = b.const(0, i32)
            index, _ = view_index(b, self.out_st, idxs)
            b.store(self.out_buf, index, own, None if _true(gate) else gate)
        return global_size, local_size

    def _store_lanes(self, results: list[UOp], lane_idxs: list[list[UOp]], lanes: list[tuple[int, ...]],
                     vec: int | None) -> None:
        b, gate = self.b, self.gate
        gate_or_none = None if _true(gate) else gate
        dtype = self.kernel.output.dtype
        if vec is None or not _vectorizable(self.out_st, self.vec_dim, self.caps.vector_width):
            for value, idxs in zip(results, lane_idxs):
                index, _ = view_index(b, self.out_st, idxs)
                b.store(self.out_buf, index, value, gate_or_none)
            return
        width = self.caps.vector_width
        for start in range(0, len(lanes), width):  # lanes along the vector dim are consecutive
            group = results[start:start + width]
            index, _ = view_index(b, self.out_st, lane_idxs[start])
            b.store(self.out_buf, index, b._add(Ops.VECTORIZE, VecDType(dtype, width), tuple(group)), gate_or_none)

    def _grouped_reduce(self, n_outputs: int, lanes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        b, i32 = self.b, dtypes.int32
        assert self.reduce_op is not None
        dtype = self.kernel.output.dtype
        identity = reduce_identity(self.reduce_op, dtype)
        out_sizes = [self.shape[j] for j in self.global_dims]
        dims = self._launch_dims(out_sizes, 1) if self.caps.launch_dims > 1 else 1
        shaped = dims > 1
        if shaped:
            outputs, _, global_size, _ = self._shaped_launch(out_sizes, 1, dims)
            lane = b.special("lidx0", lanes)
        else:
            output = b.special("gidx0", n_outputs)
            lane = b.special("lidx0", lanes)
            global_size = (n_outputs,)
        self.gate = b.const(True, dtypes.bool)
        idxs: list[UOp] = [b.const(0, i32)] * len(self.shape)
        if not shaped:
            outputs = self._unravel(output, out_sizes)
        for j, idx in zip(self.global_dims, outputs):
            idxs[j] = idx
        size = math.prod(self.shape[j] for j in self.reduce_dims)
        acc = b.define_acc(identity, dtype)
        step = b.range(0, -(-size // lanes))
        r = b.alu(Ops.ADD, b.alu(Ops.MUL, step, b.const(lanes, i32)), lane)
        in_range = b.alu(Ops.CMPLT, r, b.const(size, i32))
        for j, idx in zip(self.reduce_dims, self._unravel(r, [self.shape[j] for j in self.reduce_dims])):
            idxs[j] = idx
        self.gate = in_range
        value = b.alu(Ops.WHERE, in_range, self._render(self.body, idxs), b.const(identity, dtype))
        b.assign(acc, b.alu(self.reduce_op, acc, value))
        b.end_range(step)
        partials = b.define_local("partials", dtype, lanes)
        b.store(partials, lane, acc)
        b.barrier()
        total = b.define_acc(identity, dtype)
        k = b.range(0, lanes)
        b.assign(total, b.alu(self.reduce_op, total, b.load(partials, k, dtype)))
        b.end_range(k)
        for j in self.reduce_dims:
            idxs[j] = b.const(0, i32)
        index, _ = view_index(b, self.out_st, idxs)
        b.store(self.out_buf, index, total, b.alu(Ops.CMPEQ, lane, b.const(0, i32)))
        return global_size, (lanes,) + (1,) * (len(global_size) - 1)

    # -- expressions -----------------------------------------------------------------------------------------

    def _render(self, node: KNode, idxs: list[UOp], lane: tuple[int, ...] = (), vec: int | None = None) -> UOp:
        """The micro-op of ``node``'s value; operands are built first, left to right, each node once per lane."""
        b, memo = self.b, self.memo
        stack: list[tuple[KNode, bool]] = [(node, False)]
        while stack:
            n, operands_done = stack.pop()
            key = (id(n), lane)
            if key in memo:
                continue
            if n.op in ("ALU", "CAST") and not operands_done:
                stack.append((n, True))
                stack.extend((s, False) for s in reversed(n.src))
                continue
            if n.op == "LOAD":
                out = self._load(n, idxs, lane, vec)
            elif n.op == "CONST":
                value, st = n.arg
                out = self._param(value.slot, n.dtype) if isinstance(value, ScalarParam) else b.const(value, n.dtype)
                if st.has_mask:
                    _, valid = view_index(b, st, idxs)
                    out = b.alu(Ops.WHERE, valid, out, b.const(0, n.dtype))
            elif n.op == "ALU":
                out = b.alu(n.arg, *[memo[(id(s), lane)] for s in n.src], dtype=n.dtype)
            elif n.op == "CAST":
                src = memo[(id(n.src[0]), lane)]
                out = b.bitcast(src, n.dtype) if n.arg else b.cast(src, n.dtype)
            else:
                raise AssertionError(n.op)
            memo[key] = out
        return memo[(id(node), lane)]

    def _param(self, slot: int, dtype: DType) -> UOp:
        """Scalar parameter ``slot`` as a value of ``dtype``: the float32 launch variable (a float16 value was
        rounded to float16 on the host, so it converts back exactly), or its value as a constant."""
        if not self.params:
            return self.b.const(self.kernel.params[slot], dtype)
        var = self.params[slot]
        return var if dtype == dtypes.float32 else self.b.cast(var, dtype)

    def _load(self, node: KNode, idxs: list[UOp], lane: tuple[int, ...], vec: int | None) -> UOp:
        b = self.b
        slot, st = node.arg
        buf = self.in_bufs[slot - 1]
        alt = b.const(0, node.dtype)
        width = self.caps.vector_width
        if vec is not None and _vectorizable(st, self.vec_dim, width):
            row = (id(node), lane[:vec] + lane[vec + 1:])
            if row not in self.vectors:  # the row's lane 0 comes first: its index is the vector's start
                index, valid = view_index(b, st, idxs)
                gate = b.alu(Ops.AND, valid, self.gate)
                vec_alt = b._add(Ops.VECTORIZE, VecDType(node.dtype, width), (alt,) * width)
                self.vectors[row] = b.load(buf, index, VecDType(node.dtype, width), None if _true(gate) else gate,
                                           vec_alt)
            return b._add(Ops.GEP, node.dtype, (self.vectors[row],), lane[vec])
        index, valid = view_index(b, st, idxs)
        gate = b.alu(Ops.AND, valid, self.gate)
        return b.load(buf, index, node.dtype, None if _true(gate) else gate, alt)


def rows_under(views: tuple[tuple[Any, ...], ...], n: int) -> bool:
    """Whether every view under the outermost one of ``views`` (``ShapeTracker.key``: shape, strides, offset, mask
    each) walks the ``n`` rows in its first dimension, unmasked, with a stride of at least 0, under an unmasked
    outermost view: unravelling an index into it then never reads ``n``, so a kernel for every outermost size may read
    through it (the rule of the symbolic key, :mod:`tg.engine.symbolic`, and of symbolic lowering; a masked view's
    index that another view unravels may be clamped into the mask, which holds ``n``)."""
    if len(views) > 1 and views[-1][3] is not None:
        return False
    return all(shape and shape[0] == n and strides[0] >= 0 and mask is None for shape, strides, _, mask in views[:-1])


def _vectorizable(st: ShapeTracker, dim: int, width: int) -> bool:
    """A load can read ``width`` lanes at once: one view, unit stride and no mask on ``dim``, aligned start."""
    if len(st.views) != 1:
        return False
    v = st.views[0]
    if v.strides[dim] != 1 or (v.mask is not None and v.mask[dim] != (0, v.shape[dim])):
        return False
    return v.offset % width == 0 and all(s % width == 0 for i, s in enumerate(v.strides) if i != dim)


def _true(u: UOp) -> bool:
    return u.op is Ops.CONST and u.arg is True


def reduce_identity(op: Ops, dtype: DType) -> float | int | bool:
    if op is Ops.ADD:
        return False if dtype == dtypes.bool else 0
    if dtype.is_float:
        return -math.inf
    if dtype == dtypes.bool:
        return False
    info = (1 << (8 * dtype.itemsize - 1)) if dtype.kind == "i" else 0
    return -info
