"""Lowering: a scheduled kernel's expression tree becomes a micro-op list for one backend.

The kernel's shape is simplified first (adjacent dimensions that every buffer walks contiguously are
merged), then each output element gets one thread: ``gidx0`` (times the work-group size plus ``lidx0``
when the backend runs work groups) is unravelled into per-dimension indices, reductions loop over
their axes in each thread, and every load and store goes through its view's index and validity
expressions.  The capability-driven rewrites of :mod:`tg.rewrites` then fit the list to the backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tg.backend_types import Capabilities
from tg.dtype import DType, dtypes
from tg.schedule import Kernel, KNode
from tg.shapetracker import Shape, ShapeTracker
from tg.uops import KernelBuilder, Ops, UOp


@dataclass
class LoweredKernel:
    name: str
    uops: list[UOp]
    global_size: tuple[int, ...]
    local_size: tuple[int, ...]
    bytes_moved: int


def _all_trackers(node: KNode, out: list[ShapeTracker]) -> list[ShapeTracker]:
    if node.op in ("LOAD", "CONST"):
        out.append(node.arg[1])
    for s in node.src:
        _all_trackers(s, out)
    return out


def merge_dims(shape: Shape, reduce_axes: set[int], trackers: list[ShapeTracker]) -> list[tuple[int, ...]]:
    """Groups of adjacent axes that every tracker walks as one (same kind: all reduced or none)."""
    groups: list[list[int]] = [[0]] if shape else []
    for i in range(1, len(shape)):
        prev = groups[-1][-1]
        ok = (prev in reduce_axes) == (i in reduce_axes)
        for st in trackers:
            v = st.views[-1]
            if not ok:
                break
            if v.strides[prev] != v.strides[i] * shape[i]:
                ok = False
            elif v.mask is not None and (v.mask[prev] != (0, shape[prev]) or v.mask[i] != (0, shape[i])):
                ok = False
        if ok:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [tuple(g) for g in groups]


def _reshape_node(node: KNode, shape: Shape, memo: dict[int, KNode]) -> KNode:
    if id(node) in memo:
        return memo[id(node)]
    if node.op in ("LOAD", "CONST"):
        out = KNode(node.op, node.dtype, (), (node.arg[0], node.arg[1].reshape(shape)))
    else:
        out = KNode(node.op, node.dtype, tuple(_reshape_node(s, shape, memo) for s in node.src), node.arg)
    memo[id(node)] = out
    return out


def lower(kernel: Kernel, caps: Capabilities) -> LoweredKernel:
    ast = kernel.ast
    reduce_op = ast.arg[0] if ast.op == "REDUCE" else None
    body = ast.src[0] if ast.op == "REDUCE" else ast
    full_shape = _node_shape(body, kernel.output.shape)
    reduce_axes = set(ast.arg[1]) if ast.op == "REDUCE" else set()
    out_st = ShapeTracker.contiguous(kernel.output.shape).expand(full_shape)
    groups = merge_dims(full_shape, reduce_axes, [*_all_trackers(body, []), out_st])
    shape = tuple(math.prod(full_shape[i] for i in g) for g in groups)
    reduce_dims = [j for j, g in enumerate(groups) if g[0] in reduce_axes]
    if shape != full_shape:
        body = _reshape_node(body, shape, {})
        out_st = out_st.reshape(shape)

    b = KernelBuilder()
    out_buf = b.define_global(0, kernel.output.dtype, True)
    in_bufs = [b.define_global(i + 1, inp.dtype, False) for i, inp in enumerate(kernel.inputs)]
    global_dims = [j for j in range(len(shape)) if j not in reduce_dims]
    n_threads = math.prod(shape[j] for j in global_dims)
    group = max(1, min(caps.extra.get("group_size", 1), n_threads))
    if group > 1:
        gid = b.alu(Ops.ADD, b.alu(Ops.MUL, b.special("gidx0", -(-n_threads // group)), b.const(group, dtypes.int32)),
                    b.special("lidx0", group))
        thread_gate = b.alu(Ops.CMPLT, gid, b.const(n_threads, dtypes.int32))
    else:
        gid = b.special("gidx0", n_threads)
        thread_gate = b.const(True, dtypes.bool)
    idxs: list[UOp] = [b.const(0, dtypes.int32)] * len(shape)
    rest = gid
    for pos, j in enumerate(global_dims):
        inner = math.prod(shape[k] for k in global_dims[pos + 1:])
        d = b.alu(Ops.IDIV, rest, b.const(inner, dtypes.int32))
        idxs[j] = b.alu(Ops.MOD, d, b.const(shape[j], dtypes.int32)) if pos else d

    memo: dict[int, UOp] = {}

    def render(node: KNode) -> UOp:
        if id(node) in memo:
            return memo[id(node)]
        if node.op == "LOAD":
            slot, st = node.arg
            index, valid = st.to_index(b, idxs)
            gate = b.alu(Ops.AND, valid, thread_gate)
            alt = b.const(0, node.dtype)
            out = b.load(in_bufs[slot - 1], index, node.dtype, None if _true(gate) else gate, alt)
        elif node.op == "CONST":
            value, st = node.arg
            out = b.const(value, node.dtype)
            if st.has_mask:
                _, valid = st.to_index(b, idxs)
                out = b.alu(Ops.WHERE, valid, out, b.const(0, node.dtype))
        elif node.op == "ALU":
            out = b.alu(node.arg, *[render(s) for s in node.src], dtype=node.dtype)
        elif node.op == "CAST":
            src = render(node.src[0])
            out = b.bitcast(src, node.dtype) if node.arg else b.cast(src, node.dtype)
        else:
            raise AssertionError(node.op)
        memo[id(node)] = out
        return out

    if reduce_op is not None:
        acc = b.define_acc(reduce_identity(reduce_op, kernel.output.dtype), kernel.output.dtype)
        ranges = []
        for j in reduce_dims:
            ranges.append(b.range(0, shape[j]))
            idxs[j] = ranges[-1]
        value = render(body)
        b.assign(acc, b.alu(reduce_op, acc, value))
        for r in reversed(ranges):
            b.end_range(r)
        result = acc
        for j in reduce_dims:
            idxs[j] = b.const(0, dtypes.int32)
    else:
        result = render(body)
    out_index, _ = out_st.to_index(b, idxs)
    b.store(out_buf, out_index, result, None if _true(thread_gate) else thread_gate)

    moved = kernel.output.dtype.itemsize * math.prod(kernel.output.shape) + sum(
        inp.dtype.itemsize * math.prod(inp.shape) for inp in kernel.inputs)
    global_size = (-(-n_threads // group),)
    return LoweredKernel(kernel.name, b.uops, global_size, (group,), moved)


def _true(u: UOp) -> bool:
    return u.op is Ops.CONST and u.arg is True


def _node_shape(node: KNode, default: Shape) -> Shape:
    if node.op in ("LOAD", "CONST"):
        return node.arg[1].shape
    for s in node.src:
        return _node_shape(s, default)
    return default


def reduce_identity(op: Ops, dtype: DType) -> float | int | bool:
    if op is Ops.ADD:
        return False if dtype == dtypes.bool else 0
    if dtype.is_float:
        return -math.inf
    if dtype == dtypes.bool:
        return False
    info = (1 << (8 * dtype.itemsize - 1)) if dtype.kind == "i" else 0
    return -info
