"""tg-clang's kernels built for every value of a size (tg.engine.dynamic, tg_clang.dynamic, tg_clang.dynamic_rows):
rendered one thread at a time (or in a row-pass kernel's lanes) and right at every size, bit for bit the exact
kernels' (TG_SYMBOLIC=verify); a size whose exact kernel sums in another order (lanes across a loop) is built for
itself, and still right."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from tg import Tensor
from tg.backends.contract import NotSymbolic


@pytest.fixture
def clang(monkeypatch: pytest.MonkeyPatch, fresh_devices: None) -> Iterator[dict[str, list[Any]]]:
    """The clang device, fresh, with TG_SYMBOLIC=verify (every reuse checked against the exact kernel's bits): the
    programs it compiles, the sizes ``n0`` its launches passed, and why its emitter refused kernels for every size."""
    from tg.engine.device import device_state

    monkeypatch.setenv("TG_SYMBOLIC", "verify")
    state = device_state("clang")
    seen: dict[str, list[Any]] = {"compiled": [], "refused": [], "sizes": []}
    compile_, render, launch = state.backend.runtime.compile, state.backend.emitter.render, state.launch

    def rendering(kernel: Any) -> Any:
        try:
            return render(kernel)
        except NotSymbolic as reason:
            if kernel.dynamic:
                seen["refused"].append(str(reason))
            raise

    def compiling(program: Any) -> Any:
        seen["compiled"].append(program)
        return compile_(program)

    def launching(ready: Any, buffers: Any, values: Any, *rest: Any) -> Any:
        seen["sizes"].append(values.get("n0"))
        return launch(ready, buffers, values, *rest)

    monkeypatch.setattr(state.backend.runtime, "compile", compiling)
    monkeypatch.setattr(state.backend.emitter, "render", rendering)
    monkeypatch.setattr(state, "launch", launching)
    yield seen


def _scores(t: int) -> tuple[np.ndarray, np.ndarray]:
    """(t, t) products over 8 of a (t, 8) input with itself transposed: the size is both dims and a stride."""
    x = np.random.default_rng(t).standard_normal((t, 8)).astype(np.float32)
    a = Tensor(x, device="clang")
    return (a @ a.T).numpy(), x.astype(np.float64) @ x.T.astype(np.float64)


def test_one_kernel_for_every_size_right_below_and_above(clang: dict[str, list[Any]]) -> None:
    """Built at the third size (5, 6, 7), then launched at sizes below and above them; verify compares each launch
    with the exact kernel's bits (and raises if one differs)."""
    for t in (5, 6, 7, 2, 33):
        got, want = _scores(t)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"t={t}")
    dynamic = [p for p in clang["compiled"] if "n0" in p.variables]
    assert [p.attributes["strategy"] for p in dynamic] == ["scalar"], dynamic
    assert [n for n in clang["sizes"] if n is not None] == [7, 2, 33], clang["sizes"]
    assert not clang["refused"], clang["refused"]


def test_a_sum_over_the_size_is_built_per_size_only_where_lanes_split_its_loop(clang: dict[str, list[Any]]) -> None:
    """A float sum whose loop follows the size: one kernel for every size (its loop one thread at a time), except at
    sizes whose exact kernel runs the loop across SIMD lanes (long rows: another order), which get their own."""
    for t in (5, 6, 7, 9, 300, 2):
        x = np.random.default_rng(t).standard_normal((3, t)).astype(np.float32)
        np.testing.assert_allclose(Tensor(x, device="clang").sum(axis=1).numpy(), x.sum(axis=1), rtol=1e-5,
                                   atol=1e-5)
    assert not clang["refused"], clang["refused"]
    assert [n for n in clang["sizes"] if n is not None] == [7, 9, 2], clang["sizes"]
    # (verify builds each size's exact kernel too: only 300's takes lanes across the loop)
    strategies = [p.attributes["strategy"] for p in clang["compiled"] if "n0" not in p.variables]
    assert [s for s in strategies if not s.startswith("scalar")] == ["reduce1x64"], strategies


def test_row_passes_over_the_size_take_the_exact_kernels_lanes(clang: dict[str, list[Any]]) -> None:
    """A row-pass kernel (max, then sum, then divide, over rows of the size): one kernel for every size runs one
    thread per row where rows are shorter than a gang and the exact kernels' row lanes (16) where they are not (32:
    no leftover iterations; 33: one), bit for bit (verify); rows of 130, whose exact kernel takes a wider gang, are
    built for their size."""
    for t in (5, 6, 7, 3, 17, 32, 33, 130):
        x = np.random.default_rng(t).standard_normal((4, t, t)).astype(np.float32)
        a = Tensor(x, device="clang")
        y = a - a.max(axis=-1, keepdim=True)
        want = x - x.max(-1, keepdims=True)
        np.testing.assert_allclose((y / y.sum(axis=-1, keepdim=True)).numpy(), want / want.sum(-1, keepdims=True),
                                   rtol=1e-4, atol=1e-4, err_msg=f"t={t}")
    assert not clang["refused"], clang["refused"]
    assert [n for n in clang["sizes"] if n is not None] == [7, 3, 17, 32, 33], clang["sizes"]
    dynamic = [p.attributes["strategy"] for p in clang["compiled"] if "n0" in p.variables]
    assert dynamic == ["rows3x16n"], dynamic


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp2_log2_sin_get_one_kernel_for_every_size(clang: dict[str, list[Any]], dtype: str) -> None:
    """exp, log and sin of a (t, t) transposed input: the exact kernels' lanes and the scalar code call the same
    functions, so one scalar kernel serves every size, bit for bit the exact kernels' (verify raises otherwise), at
    sizes whose exact kernels run full gangs, narrower ones and a masked last gang."""
    for t in (5, 6, 7, 2, 16, 33):
        x = np.random.default_rng(t).standard_normal((t, t)).astype(dtype) * 30
        a = Tensor(x, device="clang").T
        got = (a.exp() + a.abs().log() + a.sin()).numpy()
        with np.errstate(over="ignore"):  # (exp of 100 is inf in float32, in tg too)
            want = np.exp(x.T) + np.log(np.abs(x.T)) + np.sin(x.T)
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)
    assert not clang["refused"], clang["refused"]
    dynamic = [p for p in clang["compiled"] if "n0" in p.variables]
    assert dynamic and {p.attributes["strategy"] for p in dynamic} == {"scalar"}, dynamic
    assert "tg_exp2" in dynamic[0].source and "tg_sin" in dynamic[0].source
    assert [n for n in clang["sizes"] if n is not None] == [7, 2, 16, 33], clang["sizes"]


def test_without_lanes_every_kernel_is_taken(clang: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """TG_CLANG_SPMD=0: the exact kernels are scalar too, so a sum over the size gets one kernel for every size, bit
    for bit theirs."""
    monkeypatch.setenv("TG_CLANG_SPMD", "0")
    for t in (5, 6, 7, 33):
        x = np.random.default_rng(t).standard_normal((3, t, 5)).astype(np.float32)
        np.testing.assert_allclose(Tensor(x, device="clang").sum(axis=1).numpy(), x.sum(axis=1), rtol=1e-5,
                                   atol=1e-5)
    assert not clang["refused"] and any("n0" in p.variables for p in clang["compiled"])


def test_a_launch_whose_inner_dimension_follows_the_size_is_refused() -> None:
    """The scalar renderer splits a unit into the launch's indices by the inner dims' sizes as constants (their
    bounds, in a kernel for every size): right where only the outermost dim follows ``n0``, or where the one that
    does is the only dim above 1, and refused otherwise (work groups keep a family's launch two-dimensional)."""
    from tg.codegen.program import LoweredKernel, SymbolicSize
    from tg_clang.dynamic import refusal

    def launch(grid: tuple[int, ...], *axes: int) -> LoweredKernel:
        return LoweredKernel("k", [], grid, (1,) * len(grid), launch_vars=tuple((a, SymbolicSize("n0")) for a in axes),
                             dynamic=True)

    assert refusal(launch((100, 3), 1)) is None
    assert refusal(launch((100, 1), 0)) is None
    assert refusal(launch((100,), 0)) is None
    for refused in (launch((100, 3), 0), launch((100, 3), 0, 1)):
        assert "other than the outermost" in (refusal(refused) or ""), refused
