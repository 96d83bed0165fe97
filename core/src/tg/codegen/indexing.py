"""Index arithmetic of views: the element a kernel thread reads or writes through a ShapeTracker."""

from __future__ import annotations

from tg.codegen.builder import KernelBuilder
from tg.codegen.uops import Ops, UOp
from tg.graph.shapetracker import ShapeTracker, prod
from tg.support.dtype import dtypes


def view_index(b: KernelBuilder, st: ShapeTracker, idxs: list[UOp]) -> tuple[UOp, UOp]:
    """Index and validity (int32 and bool micro-ops) of the element at ``idxs`` (one per dim)."""
    valid = b.const(True, dtypes.bool)
    index: UOp | None = None
    for view in reversed(st.views):
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
        index = b.const(view.offset, dtypes.int32)
        for idx, stride in zip(idxs, view.strides):
            if stride != 0:
                index = b.alu(Ops.ADD, index, b.alu(Ops.MUL, idx, b.const(stride, dtypes.int32)))
    assert index is not None
    return index, valid
