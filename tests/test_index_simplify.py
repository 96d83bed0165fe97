"""Property test of the index simplifier: ``(sum of k*x + c) // d`` and ``% d`` keep their value after rewriting."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from tg.codegen.builder import KernelBuilder, fold
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import dtypes

I32 = dtypes.int32


def evaluate(u: UOp, values: dict[str, int]) -> int:
    if u.op is Ops.CONST:
        return int(u.arg)
    if u.op is Ops.SPECIAL:
        return values[u.arg[0]]
    result = fold(u.op, [evaluate(s, values) for s in u.src], u.dtype)
    assert result is not None, f"cannot evaluate {u.op}"
    return int(result)


terms = st.lists(st.tuples(st.integers(1, 6), st.integers(0, 40)), min_size=1, max_size=3)  # (size, factor)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(terms=terms, offset=st.integers(0, 30), divisor=st.integers(1, 24), outer=st.sampled_from([None, 2, 5, 7]))
def test_divmod_rewrites_keep_values(terms: list[tuple[int, int]], offset: int, divisor: int,
                                     outer: int | None) -> None:
    b = KernelBuilder()
    xs = [b.special(f"x{i}", size) for i, (size, _) in enumerate(terms)]
    total = b.const(offset, I32)
    for x, (_, factor) in zip(xs, terms):
        total = b.alu(Ops.ADD, total, b.alu(Ops.MUL, x, b.const(factor, I32)))
    exprs = {(op,): b.alu(op, total, b.const(divisor, I32)) for op in (Ops.IDIV, Ops.MOD)}
    if outer is not None:  # a second level, as unravelling an index by several dimensions makes
        exprs = {(op, op2): b.alu(op2, e, b.const(outer, I32)) for (op,), e in exprs.items()
                 for op2 in (Ops.IDIV, Ops.MOD)}
    python = {Ops.IDIV: lambda a, c: a // c, Ops.MOD: lambda a, c: a % c}
    for point in itertools.product(*(range(size) for size, _ in terms)):
        values = {f"x{i}": v for i, v in enumerate(point)}
        plain = offset + sum(v * f for v, (_, f) in zip(point, terms))
        for ops, e in exprs.items():
            want = python[ops[0]](plain, divisor)
            if len(ops) == 2:
                want = python[ops[1]](want, outer)
            assert evaluate(e, values) == want, (ops, values)

def test_padded_window_index_needs_no_modulo() -> None:
    """``(x + 11*k) % 10`` for x < 8, k < 3 (a conv's sliding window over a padded row) is ``x + k``."""
    b = KernelBuilder()
    x, k = b.special("x", 8), b.special("k", 3)
    folded = b.alu(Ops.MOD, b.alu(Ops.ADD, x, b.alu(Ops.MUL, k, b.const(11, I32))), b.const(10, I32))
    assert folded.op is Ops.ADD and {s.arg[0] for s in folded.src} == {"x", "k"}


def test_a_row_of_an_aligned_tile_divides_by_its_period_without_the_row_offset() -> None:
    """``(8*t + r) // 32`` is ``t // 4`` and ``% 32`` is ``(t % 4)*8 + r`` for 0 <= r < 8 (the rows of an aligned
    register tile share their quotient); with r >= 8 the offset is kept."""
    b = KernelBuilder()
    t = b.special("t", 100)
    row = b.alu(Ops.ADD, b.alu(Ops.MUL, t, b.const(8, I32)), b.const(5, I32))
    q, m = b.alu(Ops.IDIV, row, b.const(32, I32)), b.alu(Ops.MOD, row, b.const(32, I32))
    assert q.op is Ops.IDIV and q.src[0] is t and q.src[1].arg == 4
    assert m.op is Ops.ADD and m.src[1].arg == 5 and m.src[0].src[0].op is Ops.MOD and m.src[0].src[0].src[0] is t
    far = b.alu(Ops.ADD, b.alu(Ops.MUL, t, b.const(8, I32)), b.const(9, I32))
    assert b.alu(Ops.IDIV, far, b.const(32, I32)).src[0] is far
    for value in range(100):
        for r in (5, 9):
            assert evaluate(b.alu(Ops.IDIV, b.alu(Ops.ADD, b.alu(Ops.MUL, t, b.const(8, I32)), b.const(r, I32)),
                                  b.const(32, I32)), {"t": value}) == (8 * value + r) // 32


def test_a_row_of_a_view_unravelled_by_a_multiple_of_its_length_drops_the_column() -> None:
    """``(21*row + col + 1) // 525`` is ``row // 25`` and ``% 525`` is ``(row % 25)*21 + col + 1`` for col < 19: the
    column's range (not only a constant) keeps the sum inside one row; with col < 21 it could cross, and stays."""
    b = KernelBuilder()
    row, col, wide = b.special("row", 2500), b.special("col", 19), b.special("wide", 21)
    flat = b.alu(Ops.ADD, b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(21, I32)), col), b.const(1, I32))
    q, m = b.alu(Ops.IDIV, flat, b.const(525, I32)), b.alu(Ops.MOD, flat, b.const(525, I32))
    assert q.op is Ops.IDIV and q.src[0] is row and q.src[1].arg == 25
    crossing = b.alu(Ops.ADD, b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(21, I32)), wide), b.const(1, I32))
    assert b.alu(Ops.IDIV, crossing, b.const(525, I32)).src[0] is crossing
    for r in (0, 24, 25, 1234, 2499):
        for c in range(19):
            want = 21 * r + c + 1
            assert evaluate(q, {"row": r, "col": c}) == want // 525
            assert evaluate(m, {"row": r, "col": c}) == want % 525
