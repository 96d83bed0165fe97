"""Symbolic outermost sizes past the kernel's bound, and the switches (TG_SYMBOLIC), on numpy's interpreter.

The bound ``hi`` of ``n0`` comes from int32 indices and the target's launch limits; a size past it is built for
its exact size, and right.  A launch limit of 40 work groups makes the bound small enough to cross here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from tg import Tensor


def _run(n: int) -> None:
    x = np.random.default_rng(n).standard_normal((n, 8)).astype(np.float32)
    np.testing.assert_array_equal((Tensor(x) * 2.0 + 1.0).numpy(), x * np.float32(2.0) + np.float32(1.0))


def test_past_the_bound_is_built_for_its_size(interpreter: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emitter = interpreter.backend.emitter
    monkeypatch.setattr(emitter, "capabilities", replace(emitter.capabilities, launch_limits=(40,)))
    for n in (2, 5, 3):  # 8 threads a row, one per work group: rows up to 40 // 8 = 5 share the kernel
        _run(n)
    assert [p.name for p in interpreter.compiled] == ["mul_add_2_8", "mul_add_n_8"]  # built at the second size
    assert [k.bound for k in interpreter.kernels.values() if k.bound] == [5]
    _run(6)  # past it: its own kernel, sized exactly
    assert [p.name for p in interpreter.compiled] == ["mul_add_2_8", "mul_add_n_8", "mul_add_6_8"]
    assert not interpreter.compiled[2].launch_vars
    _run(4)
    assert len(interpreter.compiled) == 3


def test_turned_off(interpreter: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_SYMBOLIC", "0")
    for n in (2, 3):
        _run(n)
    assert [p.name for p in interpreter.compiled] == ["mul_add_2_8", "mul_add_3_8"]


def test_verify_catches_a_kernel_that_is_wrong_at_another_size(interpreter: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """TG_SYMBOLIC=verify compares each reuse with the exact kernel: a launch resolved to a stale size (as a runtime
    that kept its sizes from compile would run it) is an error, not a silent wrong answer."""
    from tg.codegen.program import Program
    from tg.support.errors import BackendError

    monkeypatch.setenv("TG_SYMBOLIC", "verify")
    _run(2)
    monkeypatch.setattr(Program, "resolved", lambda self, values: self.launched_as((16,), (1,)))  # always N = 2
    with pytest.raises(BackendError, match="TG_SYMBOLIC=verify"):
        _run(3)


def test_a_bad_setting_is_refused(interpreter: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_SYMBOLIC", "yes please")
    with pytest.raises(ValueError, match="TG_SYMBOLIC"):
        _run(2)


def test_row_fused_kernels_and_two_view_biases_are_built_once(interpreter: Any) -> None:
    """A softmax, a layernorm (row-fused reductions: rows counted from ``n0`` at run time) and Linear-relu-Linear (its
    second matmul reads the first bias through two views) get their kernels for every size at the second size, and
    the sizes after it compile nothing."""
    rng = np.random.default_rng(3)
    w1, b1, w2 = (rng.standard_normal(s).astype(np.float32) for s in ((6, 20), (20,), (20, 9)))
    for n in (2, 3, 7, 4, 30):
        x = rng.standard_normal((n, 6)).astype(np.float32)
        e = np.exp(x - x.max(1, keepdims=True))
        np.testing.assert_allclose(Tensor(x).softmax(-1).numpy(), e / e.sum(1, keepdims=True), rtol=1e-6, atol=1e-7)
        centered = x - x.mean(1, keepdims=True)
        want = centered / np.sqrt((centered * centered).mean(1, keepdims=True) + 1e-5)
        np.testing.assert_allclose(Tensor(x).layernorm(-1).numpy(), want, rtol=1e-5, atol=1e-5)
        got = ((Tensor(x) @ Tensor(w1) + Tensor(b1)).relu() @ Tensor(w2)).numpy()
        np.testing.assert_allclose(got, np.maximum(x @ w1 + b1, 0) @ w2, rtol=1e-5, atol=1e-5)
        if n == 2:
            exact = len(interpreter.compiled)
    built = [p.name for p in interpreter.compiled[exact:]]
    assert len(built) == exact and all("_n_" in name for name in built), built
    assert {"r_max_sub_mul_exp2_r_add_div_n_6", "r_add_mul_sub_add_sqrt_recip_n_6"} <= set(built), built
    assert any(name.startswith("add_max_mul_r_add_n_9") for name in built), built


def _load_key(views: tuple[tuple[Any, ...], ...]) -> tuple[object, ...] | None:
    """The symbolic key of a stand-in kernel of output (3, 4) that loads through ``views`` (``ShapeTracker.key``)."""
    from types import SimpleNamespace

    from tg.engine.symbolic import symbolic_key

    kernel = SimpleNamespace(output=SimpleNamespace(shape=(3, 4)), ast=SimpleNamespace(op="LOAD", arg=None),
                             structure=(("LOAD", "float32", (1, views), ()),))
    return symbolic_key(kernel, (kernel.structure, (3, 4), "float32", ("float32",)))  # type: ignore[arg-type]


def test_views_under_a_load_that_qualify() -> None:
    """A view under the outermost one qualifies with its first size N (written "n"), unmasked, under an unmasked
    view; a masked view over it (whose index may be clamped into the mask, which holds N), a masked view under it, or
    one whose first size is not N does not."""
    outer = ((3, 4), (4, 1), 0, None)
    key = _load_key((((3, 4), (0, 1), 0, None), outer))
    assert key is not None
    entries: Any = key[1]
    assert entries[0][2][1][0] == (("n", 4), (0, 1), 0, None), entries
    assert _load_key((((3, 4), (0, 1), 0, None), ((3, 4), (4, 1), 0, ((0, 3), (0, 2))))) is None
    assert _load_key((((3, 4), (0, 1), 0, ((0, 3), (1, 4))), outer)) is None
    assert _load_key((((1, 12), (0, 1), 0, None), outer)) is None


def test_lowering_takes_the_same_views() -> None:
    from tg.codegen.lower import rows_under
    from tg.graph.shapetracker import ShapeTracker, View

    inner, outer = View.create((3, 4), (0, 1)), View.create((3, 4), (4, 1))
    assert rows_under(ShapeTracker((inner, outer)).key, 3)
    assert not rows_under(ShapeTracker((inner, View.create((3, 4), (4, 1), 0, ((0, 3), (0, 2))))).key, 3)
    assert not rows_under(ShapeTracker((View.create((3, 4), (0, 1), 0, ((0, 3), (1, 4))), outer)).key, 3)
    assert not rows_under(ShapeTracker((View.create((1, 12), (0, 1)), outer)).key, 3)
