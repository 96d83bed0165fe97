"""Row passes SIMD along the row (:mod:`tg_clang.row_lanes`): a fused softmax, log_softmax or layernorm runs its
lanes along each of its loops, right at lengths around the gang (leftover iterations past the last whole gang,
in a pass that reads an earlier pass's accumulator), and only kernels of the shape it rebuilds are taken."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tg import Tensor
from tg.codegen.builder import KernelBuilder
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import dtypes
from tg.testing import reference

rng = np.random.default_rng(11)

OPS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[np.ndarray], np.ndarray]]] = {
    "softmax": (lambda t: t.softmax(-1), reference.softmax),
    "log_softmax": (lambda t: t.log_softmax(-1), reference.log_softmax),
    "layernorm": (lambda t: t.layernorm(-1), reference.layernorm),
}


def _binaries() -> dict[str, tuple[str, str]]:
    from tg.engine.device import device_state

    return {p.name: (p.strategy, src) for (_, src), p in device_state("clang").binaries.items()}


def _staggered(rows: int, length: int) -> np.ndarray:
    """Rows shifted by 40 and scaled by 1..5 row after row: another row's max or sum is far off."""
    r = np.arange(rows).reshape(-1, 1)
    return (rng.standard_normal((rows, length)) * (1 + r % 5) - 40.0 * r).astype(np.float32)


def test_a_softmax_walks_its_rows_in_lanes(fresh_devices: None) -> None:
    x = _staggered(300, 1000)
    got = Tensor(x, device="clang").softmax(-1).numpy()
    np.testing.assert_allclose(got, reference.softmax(x.astype(np.float64)), rtol=1e-5, atol=1e-7)
    (strategy, source), = _binaries().values()
    assert strategy.startswith("rows3x"), strategy
    assert "memcpy(&" in source and "] = data1[" not in source  # contiguous vector loads, no gathers
    assert "tg_vexp2f(" in source


@pytest.mark.parametrize("length", [16, 17, 31, 64, 65, 127, 1025, 4096])
@pytest.mark.parametrize("op", OPS)
def test_lengths_around_the_gang(op: str, length: int) -> None:
    tg_fn, np_fn = OPS[op]
    x = _staggered(9, length)
    atol = 1e-5 * float(np.abs(x).max()) if op == "layernorm" else 1e-6
    np.testing.assert_allclose(tg_fn(Tensor(x, device="clang")).numpy(), np_fn(x.astype(np.float64)), rtol=2e-5,
                               atol=atol)


def test_rows_shorter_than_a_gang_keep_lanes_across_rows(fresh_devices: None) -> None:
    x = _staggered(200, 7)
    np.testing.assert_allclose(Tensor(x, device="clang").softmax(-1).numpy(), reference.softmax(x.astype(np.float64)),
                               rtol=1e-5, atol=1e-7)
    assert not any(s.startswith("rows") for s, _ in _binaries().values())


def test_one_row_pass_kernel_for_every_row_count(fresh_devices: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Met at a second row count, a softmax's row-pass kernel is built once for every count (its rows and work units
    follow ``n0``), in lanes with its stash as the exact kernels are, and gives their bits at counts below and above
    it (TG_SYMBOLIC=verify compares each launch with the exact kernel's output)."""
    monkeypatch.setenv("TG_SYMBOLIC", "verify")
    for rows in (2, 5, 1, 33, 3):
        x = _staggered(rows, 37)
        np.testing.assert_allclose(Tensor(x, device="clang").softmax(-1).numpy(), reference.softmax(x), rtol=2e-5,
                                   atol=1e-6)
    symbolic = [(name, strategy, src) for name, (strategy, src) in _binaries().items() if "_n_" in name]
    assert len(symbolic) == 1, [name for name, _, _ in symbolic]
    (_, strategy, source), = symbolic
    assert strategy.startswith("rows3x"), strategy
    assert "(n0 * 1)" in source  # the rows counted from the launch variable


def _two_loops(read_inside: bool = False, start: float = 0.0, nested: bool = False) -> list[UOp]:
    """acc = sum of row i; then out[i, j] = x[i, j] / acc, as core lowers a row fusion (or broken as asked)."""
    b, i32, f32 = KernelBuilder(), dtypes.int32, dtypes.float32
    out, inp = b.define_global(0, f32, True), b.define_global(1, f32, False)
    row = b.special("gidx0", 4)
    acc = b.define_acc(start, f32)
    outer = b.range(0, 2) if nested else None
    r = b.range(0, 64)
    x = b.load(inp, b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(64, i32)), r), f32)
    b.assign(acc, b.alu(Ops.ADD, acc, x))
    if read_inside:
        b.store(out, r, b.alu(Ops.MUL, acc, x))
    b.end_range(r)
    if outer is not None:
        b.end_range(outer)
    r2 = b.range(0, 64)
    at = b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(64, i32)), r2)
    b.store(out, at, b.alu(Ops.DIV, b.load(inp, at, f32), acc))
    b.end_range(r2)
    return b.uops


def test_only_the_shape_it_rebuilds_is_taken() -> None:
    from tg_clang.row_lanes import find_row_passes

    passes = find_row_passes(_two_loops())
    assert passes is not None and passes.trips == (64, 64) and [len(a) for a in passes.accs] == [1, 0]
    assert find_row_passes(_two_loops(read_inside=True)) is None  # a partial sum read in its own loop
    assert find_row_passes(_two_loops(start=1.0)) is None  # would be counted once per lane
    assert find_row_passes(_two_loops(nested=True)) is None  # a loop inside a loop


@pytest.mark.parametrize("length", [64, 1031])
def test_a_later_pass_reads_back_the_exp_of_an_earlier_one(monkeypatch: pytest.MonkeyPatch, length: int) -> None:
    """The softmax's third pass reads exp(x - max) from the stack array its second pass filled: the same bits as
    computing it again (lanes and leftover alike)."""
    from tg.engine.device import reset_devices
    from tg_clang import row_lanes

    x = _staggered(40, length)
    reset_devices()
    stashed = Tensor(x, device="clang").softmax(-1).numpy()
    (strategy, source), = _binaries().values()
    assert strategy.endswith("s") and "rc0[" in source and source.count("= tg_vexp2f(v") == 1, strategy
    monkeypatch.setattr(row_lanes, "STASH_BYTES", 0)
    reset_devices()
    again = Tensor(x, device="clang").softmax(-1).numpy()
    (strategy, source), = _binaries().values()
    assert not strategy.endswith("s") and "rc0[" not in source, strategy
    reset_devices()
    np.testing.assert_array_equal(stashed, again)
    np.testing.assert_allclose(stashed, reference.softmax(x.astype(np.float64)), rtol=1e-5, atol=1e-7)
