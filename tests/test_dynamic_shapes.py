"""Dynamic shapes (tg.engine.dynamic, tg.codegen.generalize): formulas fitted to lowerings at three sizes, the kernel
built from them, and the engine's rules for reusing it, on numpy's interpreter (which declares dynamic shapes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tg import Tensor
from tg.codegen.capabilities import Capabilities
from tg.codegen.generalize import bound, evaluate, fit, skeleton
from tg.codegen.lower import lower
from tg.engine.dynamic import EXACT_AFTER
from tg.schedule.scheduler import Kernel, create_schedule
from tg.support.dtype import INDEX_LIMIT


def _samples(formulas: list[Any], sizes: list[int]) -> list[tuple[int, tuple[int, ...]]]:
    return [(t, tuple(f(t) for f in formulas)) for t in sizes]


def test_fit_finds_polynomials_and_quotients() -> None:
    formulas = [lambda t: 7, lambda t: 3 * t + 1, lambda t: 4 * t * t - t, lambda t: 3 * t * t,
                lambda t: -(-3 * t * t // 128), lambda t: t - 1]
    polys = fit(_samples(formulas, [13, 17, 19]), divisors=(128,))
    assert polys == ((0, 0, 7, 1), (0, 3, 1, 1), (4, -1, 0, 1), (3, 0, 0, 1), (3, 0, 0, 128), (0, 1, -1, 1))
    assert evaluate(polys, 40) == tuple(f(40) for f in formulas)


def test_fit_takes_an_exact_quotient_when_no_divisor_explains_it() -> None:
    """(3t² + 1) / 4 at odd t (an integer there, with rational coefficients): the quotient of its coefficients."""
    polys = fit(_samples([lambda t: (3 * t * t + 1) // 4], [5, 7, 9, 11]))
    assert polys == ((3, 0, 1, 4),)


def test_fit_refuses() -> None:
    assert fit(_samples([lambda t: t], [3, 4])) is None  # two sizes fix no quadratic
    assert fit(_samples([lambda t: 2 ** t], [2, 3, 4, 5])) is None  # a quadratic through 3 sizes misses the 4th
    assert fit(_samples([lambda t: t ** 3], [2, 3, 4])) is not None  # ... which three sizes alone cannot tell


def test_bound_keeps_every_step_within_int32_and_launch_limits() -> None:
    hi = bound(((1, 0, 0, 1),), 1, 0)
    assert hi * hi + 1 <= INDEX_LIMIT < (hi + 1) * (hi + 1) + 1
    assert bound(((0, 1, 0, 1), (0, 8, 0, 1)), 1, 1, (800,)) == 100  # the launch dim 8t fits 800 up to t = 100
    assert bound(((INDEX_LIMIT, 0, 0, 1),), 1, 0) == 0  # not even t = 1: no kernel


def _kernel(t: int) -> Kernel:
    """Attention's weighted sum: (1, 4, t, t) weights times values read from a (1, t, 96) projection."""
    qkv = Tensor(np.ones((1, t, 96), dtype=np.float32)).reshape(1, t, 3, 4, 8).permute(2, 0, 3, 1, 4)
    out = Tensor(np.ones((1, 4, t, t), dtype=np.float32)) @ (qkv[2] + 1.0)
    (kernel,) = [k for k in create_schedule([out.lazydata]) if isinstance(k, Kernel) and "r" in k.name.split("_")]
    return kernel


def test_skeleton_is_blind_to_sizes_that_coincide() -> None:
    """At t = 12 the stride 8t is 96, the projection's row: the builder shares one constant for both, and the
    structure must not change (constants count where used)."""
    caps = Capabilities()
    structures = {t: skeleton(lower(_kernel(t), caps)) for t in (5, 12)}
    assert structures[5][0] == structures[12][0]
    assert structures[5][1] != structures[12][1]


def _sum_over(t: int) -> None:
    x = np.random.default_rng(t).standard_normal((3, t, 4)).astype(np.float32)
    np.testing.assert_allclose(Tensor(x).sum(axis=1).numpy(), x.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_built_at_the_third_size_then_reused(interpreter: Any) -> None:
    for t in (5, 6, 7, 9, 2, 40):
        _sum_over(t)
    names = [p.name for p in interpreter.compiled]
    assert names == ["r_add_3_1_4", "r_add_3_1_4", "r_add_3_1_4"], names  # (named by the output's shape)
    assert [bool(p.launch_vars) or "n0" in p.variables for p in interpreter.compiled] == [False, False, True]


def test_a_kernel_met_at_one_size_is_not_lowered_for_families(interpreter: Any, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """A family's lowering is a second one on top of the exact build: a kernel whose outline (its structure without
    views and int32 constants) is new skips it; the second kernel of the outline brings the first one's lowering
    (kept without its buffers: they go when the program drops them), so the third size still builds the family."""
    import gc
    import weakref

    from tg.engine import dynamic

    lowered: list[tuple[int, ...]] = []
    original = dynamic._lower_for_families

    def counting(kernel: Kernel, state: Any) -> Any:
        lowered.append(kernel.output.shape)
        return original(kernel, state)

    monkeypatch.setattr(dynamic, "_lower_for_families", counting)
    x = Tensor(np.ones((3, 5, 4), dtype=np.float32))
    out = x.sum(axis=1).realize()
    assert lowered == []
    gone = weakref.ref(out.lazydata.base.realized)
    del out
    gc.collect()
    assert gone() is None  # (the kept kernel holds no buffer)
    _sum_over(6)
    assert lowered == [(3, 1, 4), (3, 1, 4)]  # the first one's, then the second's
    _sum_over(7)
    assert [bool(p.launch_vars) or "n0" in p.variables for p in interpreter.compiled] == [False, False, True]


def test_a_misfit_is_built_for_its_size(interpreter: Any) -> None:
    """A cube's t³ elements: the quadratic through 2, 3 and 4 is wrong at 5, 6 and 7, which are built (and right)
    for their exact sizes after refits that find no quadratic through four sizes or more."""
    for t in (2, 3, 4, 5, 6, 7, 3):
        x = np.random.default_rng(t).standard_normal((t, t, t)).astype(np.float32)
        np.testing.assert_array_equal((Tensor(x) * 3.0).relu().numpy(), np.maximum(x * np.float32(3.0), 0))
    names = [p.name for p in interpreter.compiled]
    assert names == ["mul_max_2_2_2", "mul_max_3_3_3", "mul_max_n_n_n", "mul_max_5_5_5", "mul_max_6_6_6",
                     "mul_max_7_7_7"], names
    assert [bool(p.launch_vars) for p in interpreter.compiled] == [False, False, True, False, False, False]


def test_turned_off(interpreter: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_SYMBOLIC", "0")
    for t in (5, 6, 7, 9):
        _sum_over(t)
    assert len(interpreter.compiled) == 4 and not any(p.launch_vars for p in interpreter.compiled)


def test_a_size_launched_often_gets_its_exact_kernel(interpreter: Any) -> None:
    """The family's kernel serves size 9 for EXACT_AFTER launches; then 9 gets a kernel of its own (the same bits),
    and 10, met once, still shares the family's."""

    for t in (5, 6, 7):
        _sum_over(t)
    assert len(interpreter.compiled) == 3
    for _ in range(EXACT_AFTER - 1):
        _sum_over(9)
    assert len(interpreter.compiled) == 3
    _sum_over(9)
    exact = interpreter.compiled[3:]
    assert len(exact) == 1 and not exact[0].launch_vars and "n0" not in exact[0].variables
    for _ in range(3):
        _sum_over(9)
    _sum_over(10)
    assert len(interpreter.compiled) == 4


@pytest.mark.parametrize("eager_launches", [0, EXACT_AFTER - 2])
def test_a_jitted_function_runs_a_size_s_exact_kernel(interpreter: Any, eager_launches: int) -> None:
    """A call tg.jit traces launches the exact kernel of a size a family serves: its replays run that kernel many
    times, and the two traced calls it compares must run the same kernels.  (Before, the family's kernel served the
    first traced calls and the exact one took over at the size's EXACT_AFTER-th launch: EXACT_AFTER - 2 eager
    launches before put that between the second and third call, and the jit raised JitError.)"""
    import tg

    for t in (5, 6, 7):
        _sum_over(t)
    for _ in range(eager_launches):
        _sum_over(9)
    assert len(interpreter.compiled) == 3
    summed = tg.jit(lambda x: x.sum(axis=1))
    rng = np.random.default_rng(5)
    for _ in range(5):
        x = rng.standard_normal((3, 9, 4)).astype(np.float32)
        np.testing.assert_allclose(summed(Tensor(x)).numpy(), x.sum(axis=1), rtol=1e-5, atol=1e-5)
    assert summed.replays == 2
    exact = interpreter.compiled[3:]
    assert len(exact) == 1 and not exact[0].launch_vars and "n0" not in exact[0].variables, exact


def test_a_jitted_function_called_once_per_size_shares_the_family_kernel(interpreter: Any) -> None:
    """Each size is a variant of the jitted function; one called once (each length of a growing context) is never
    compared or replayed, so it keeps the kernel for every size: no exact kernel is built for it."""
    import tg

    for t in (5, 6, 7):
        _sum_over(t)
    summed = tg.jit(lambda x: x.sum(axis=1))
    rng = np.random.default_rng(6)
    for t in range(9, 15):
        x = rng.standard_normal((3, t, 4)).astype(np.float32)
        np.testing.assert_allclose(summed(Tensor(x)).numpy(), x.sum(axis=1), rtol=1e-5, atol=1e-5)
    assert len(interpreter.compiled) == 3, [p.name for p in interpreter.compiled]


def test_a_family_the_emitter_refuses_is_not_tried_again(interpreter: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An emitter that refuses kernels for every size (NotSymbolic) is asked once per family, not at every third
    size; each size is built exactly, and right."""
    from tg.backends.contract import NotSymbolic

    emitter, asked = interpreter.backend.emitter, []
    render = emitter.render

    def refusing(kernel: Any) -> Any:
        if kernel.dynamic:
            asked.append(kernel.name)
            raise NotSymbolic("refused here")
        return render(kernel)

    monkeypatch.setattr(emitter, "render", refusing)
    for t in (5, 6, 7, 9, 10, 11, 12, 13, 14):
        _sum_over(t)
    assert len(asked) == 1, asked
    assert len(interpreter.compiled) == 9 and not any(p.launch_vars or "n0" in p.variables
                                                       for p in interpreter.compiled)


def test_a_size_whose_exact_rendering_differs_is_built_exactly(interpreter: Any, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """An emitter that overrides ``same_bits`` is asked at each size with the kernel for every size and the size's
    exact kernel; where it answers False (its exact rendering would sum in another order), that size is built exactly,
    the others share the family's kernel."""
    asked: list[int] = []

    def same_bits(self: Any, dynamic: Any, exact: Any, values: Any) -> bool:
        assert "n0" in dynamic.variables and not exact.dynamic
        (loop,) = [u for u in exact.uops if u.op.name == "RANGE"]  # the sum over t, a constant loop here
        asked.append(loop.src[1].arg)
        assert values == {"n0": asked[-1]}
        return asked[-1] != 9

    monkeypatch.setattr(type(interpreter.backend.emitter), "same_bits", same_bits)
    for t in (5, 6, 7, 9, 10, 9):
        _sum_over(t)
    assert asked == [7, 9, 10], asked  # (9 again has its kernel)
    built = interpreter.compiled
    assert len(built) == 4 and not built[3].launch_vars and "n0" not in built[3].variables  # 9's own kernel


def test_a_size_whose_work_dwarfs_a_compile_is_built_exactly(interpreter: Any, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """A kernel for every size runs without the exact kernels' tiles (tg-clang: one thread at a time), so a size whose
    work is EXACT_WORK or more gets its exact kernel at once, and is no sample of a family; the small sizes around
    it still share one."""
    from tg.codegen.tiles import thread_cost
    from tg.engine import dynamic

    x = Tensor(np.ones((3, 30, 4), dtype=np.float32)).sum(axis=1)
    (kernel,) = [k for k in create_schedule([x.lazydata]) if isinstance(k, Kernel)]
    lowered = lower(kernel, Capabilities())
    monkeypatch.setattr(dynamic, "EXACT_WORK", thread_cost(lowered.uops) * 12)  # sums over 30 and more are heavy
    for t in (5, 40, 6, 7, 9, 30, 10):
        _sum_over(t)
    dynamic_sizes = [bool(p.launch_vars) or "n0" in p.variables for p in interpreter.compiled]
    assert dynamic_sizes == [False, False, False, True, False], dynamic_sizes  # 5, 40, 6, then every size; 30


@pytest.mark.parametrize("interpreter", ["interpret,launch_dims=3,group_size=128"], indirect=True)
def test_families_on_a_target_with_launch_dims(interpreter: Any) -> None:
    """On a GPU-like target (a launch dimension per output dim), attention scores and their softmax over t tokens
    are built for a few sizes and then reused: a family's launch keeps its dimensions at every size, even where a
    kernel of one size would launch flat (rows narrower than a SIMD group)."""
    rng = np.random.default_rng(0)
    for t in range(4, 24):
        q, k = (rng.standard_normal((1, 4, t, 16)).astype(np.float32) for _ in range(2))
        got = ((Tensor(q) @ Tensor(k).transpose(-1, -2)) * 0.25).softmax(-1).numpy()
        e = np.exp((q @ k.transpose(0, 1, 3, 2)) * np.float32(0.25))
        np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    compiled = interpreter.compiled
    # 20 sizes of 4 kernels each: 80 builds if none were reused (the families were broken so, at 79)
    assert len(compiled) <= 20, [p.name for p in compiled]
    assert any(bool(p.launch_vars) or "n0" in p.variables for p in compiled)  # (a kernel for every size)
