"""Index arithmetic of views: the element a kernel thread reads or writes through a ShapeTracker."""

from __future__ import annotations

from tg.codegen.builder import KernelBuilder
from tg.codegen.uops import Ops, UOp
from tg.graph.shapetracker import ShapeTracker, View, prod
from tg.support.dtype import dtypes


def view_index(b: KernelBuilder, st: ShapeTracker, idxs: list[UOp]) -> tuple[UOp, UOp]:
    """Index and validity (int32 and bool micro-ops) of the element at ``idxs`` (one per dim)."""
    valid = b.const(True, dtypes.bool)
    index: UOp | None = None
    for depth, view in enumerate(reversed(st.views)):
        if index is not None:  # unravel the flat index of the next view into this one's dims
            idxs, rest = [], index
            for i, s in enumerate(view.shape):
                inner = prod(view.shape[i + 1:])
                d = b.alu(Ops.IDIV, rest, b.const(inner, dtypes.int32))
                idxs.append(b.alu(Ops.MOD, d, b.const(s, dtypes.int32)) if i else d)
        if view.mask is not None:
            for idx, (lo, hi), s in zip(idxs, view.mask, view.shape):
                if lo > 0:
                    valid = b.alu(Ops.AND, valid, b.alu(Ops.CMPLT, b.const(lo - 1, dtypes.int32), idx))
                if hi < s:
                    valid = b.alu(Ops.AND, valid, b.alu(Ops.CMPLT, idx, b.const(hi, dtypes.int32)))
            if depth < len(st.views) - 1:
                index = _masked_flat_index(b, view, idxs)
                continue
        index = b.const(view.offset, dtypes.int32)
        for idx, stride in zip(idxs, view.strides):
            if stride != 0:
                index = b.alu(Ops.ADD, index, b.alu(Ops.MUL, idx, b.const(stride, dtypes.int32)))
    assert index is not None
    return index, valid


def _masked_flat_index(b: KernelBuilder, view: View, idxs: list[UOp]) -> UOp:
    """The flat index of a masked view that an inner view unravels, with each masked dim's index clamped into its
    mask (the value only matters where the element is valid) and counted from the mask's start: every term is then
    at least 0 and as small as the mask allows, so the inner view's divisions by its dims' sizes simplify (a pad
    or a shrink of a reshaped view otherwise leaves a quotient that could cross a row for the masked-off lanes)."""
    i32 = dtypes.int32
    assert view.mask is not None
    start = view.offset + sum(lo * stride for (lo, _), stride in zip(view.mask, view.strides))
    index = b.const(start, i32)
    for idx, (lo, hi), stride in zip(idxs, view.mask, view.strides):
        if stride == 0:
            continue
        term = b.alu(Ops.ADD, idx, b.const(-lo, i32)) if lo else idx
        if term.vmin < 0:
            term = b.alu(Ops.MAX, term, b.const(0, i32))
        top = hi - 1 - lo
        if term.vmax > top:  # min(term, top) as top - max(top - term, 0)
            over = b.alu(Ops.MAX, b.alu(Ops.SUB, b.const(top, i32), term), b.const(0, i32))
            term = b.alu(Ops.SUB, b.const(top, i32), over)
        index = b.alu(Ops.ADD, index, b.alu(Ops.MUL, term, b.const(stride, i32)))
    return index
