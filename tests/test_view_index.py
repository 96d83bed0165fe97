"""view_index over stacks of views: the index and validity it builds agree with the views' own arithmetic at every
element, and a masked outer view (a pad or shrink of a reshaped, masked view: a strided convolution's input
gradient) leaves its inner views no division or remainder but by the stride."""

from __future__ import annotations

import itertools

import pytest
from test_index_simplify import evaluate
from tg.codegen.builder import KernelBuilder
from tg.codegen.indexing import view_index
from tg.codegen.uops import Ops, UOp
from tg.graph.shapetracker import ShapeTracker


def reference(st: ShapeTracker, idx: tuple[int, ...]) -> int | None:
    """The buffer element at ``idx`` by walking the views one by one (None where a mask hides it)."""
    for depth in reversed(range(len(st.views))):
        view = st.views[depth]
        if view.mask is not None and any(not lo <= i < hi for i, (lo, hi) in zip(idx, view.mask)):
            return None
        flat = view.offset + sum(i * s for i, s in zip(idx, view.strides))
        if depth == 0:
            return flat
        inner = st.views[depth - 1].shape
        idx = tuple((flat // max(1, _prod(inner[k + 1:]))) % inner[k] for k in range(len(inner)))
    raise AssertionError("unreachable")


def _prod(xs: tuple[int, ...]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def unstrided(n: int, c: int, o: int, stride: int, offset: int, length: int) -> ShapeTracker:
    """(n, c, o) spread to positions offset, offset + stride, ... of a zero axis of ``length`` (conv.py's _unstride)."""
    st = ShapeTracker.contiguous((n, c, o)).reshape((n, c, o, 1)).pad(((0, 0), (0, 0), (0, 0), (0, stride - 1)))
    st = st.reshape((n, c, o * stride)).shrink(((0, n), (0, c), (0, stride * (o - 1) + 1)))
    span = stride * (o - 1) + 1
    return st.pad(((0, 0), (0, 0), (offset, length - offset - span)))


def divisors(u: UOp) -> set[int]:
    """The constants that ``u`` divides or takes a remainder by."""
    seen, stack, out = set(), [u], set()
    while stack:
        x = stack.pop()
        if id(x) not in seen:
            seen.add(id(x))
            if x.op in (Ops.IDIV, Ops.MOD):
                out.add(x.src[1].arg)
            stack.extend(x.src)
    return out


def indexed_like_reference(st: ShapeTracker) -> UOp:
    """view_index's index of ``st`` (over one launch index per dim), after checking its index and validity against
    :func:`reference` at every element."""
    b = KernelBuilder()
    idxs = [b.special(f"i{k}", s) for k, s in enumerate(st.shape)]
    index, valid = view_index(b, st, idxs)
    for point in itertools.product(*(range(s) for s in st.shape)):
        values = {f"i{k}": v for k, v in enumerate(point)}
        want = reference(st, point)
        assert bool(evaluate(valid, values)) == (want is not None), point
        if want is not None:
            assert evaluate(index, values) == want, point
    return index


@pytest.mark.parametrize("stride,offset", [(2, 0), (2, 3), (3, 1), (1, 2)])
def test_unstrided_gradient_view_index_is_exact_and_divides_only_by_the_stride(stride: int, offset: int) -> None:
    n, c, o = 3, 4, 5
    length = stride * (o - 1) + 1 + offset + 2
    st = unstrided(n, c, o, stride, offset, length)
    assert len(st.views) == (2 if stride > 1 else 1)
    index = indexed_like_reference(st)
    assert divisors(index) <= {stride}  # the position within a stride, not the rows of the inner view


def test_masked_views_in_a_stack_index_like_their_reference() -> None:
    """Pads, shrinks and flips around reshapes that do not merge: every valid element's index is the reference's."""
    st = ShapeTracker.contiguous((4, 6)).pad(((1, 0), (0, 2))).reshape((5, 2, 4)).flip((2,))
    st = st.shrink(((1, 5), (0, 2), (1, 4))).pad(((0, 1), (1, 0), (0, 0))).reshape((5, 9))
    indexed_like_reference(st)


@pytest.mark.parametrize(("shape", "order"), [((3, 4, 5), (1, 0, 2)), ((3, 4, 5), (2, 1, 0)),
                                              ((3, 1, 4, 5), (2, 0, 1, 3)), ((3, 1, 4, 5), (0, 2, 3, 1))])
def test_a_permuted_view_of_a_view_folds_into_one_view(shape: tuple[int, ...], order: tuple[int, ...]) -> None:
    """A transpose of a view's contiguous result is the view with its axes permuted: one view, not a stack of two (a
    stack indexes through a division and a remainder, which kept tg-clang from tiling a weight gradient, 20x slower);
    the same element at every index."""
    inner = ShapeTracker.contiguous(tuple(reversed(shape))).permute(tuple(reversed(range(len(shape)))))
    outer = ShapeTracker.contiguous(shape).permute(order)
    folded = inner + outer
    assert len(folded.views) == 1 and folded == inner.permute(order)
    stacked = ShapeTracker((*inner.views, *outer.views))
    for point in itertools.product(*(range(s) for s in folded.shape)):
        assert reference(folded, point) == reference(stacked, point), point
    indexed_like_reference(folded)


def test_views_that_are_not_permutations_still_stack() -> None:
    """An offset, a mask or a broadcast over a transposed view is not a permutation of it: two views, same elements."""
    inner = ShapeTracker.contiguous((4, 6)).permute((1, 0))  # (6, 4), not contiguous
    base = ShapeTracker.contiguous((6, 4))
    for outer in (base.shrink(((1, 5), (0, 4))), base.pad(((0, 0), (1, 0))), base.reshape((6, 4, 1)).expand((6, 4, 3))):
        composed = inner + outer
        assert len(composed.views) == 2, outer
        stacked = ShapeTracker((*inner.views, *outer.views))
        for point in itertools.product(*(range(s) for s in composed.shape)):
            assert reference(composed, point) == reference(stacked, point), (outer, point)
