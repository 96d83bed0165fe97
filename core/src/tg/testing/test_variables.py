"""Launch variables and scalar parameters.

A backend that declares launch variables (``Capabilities.variables`` and ``Runtime.variable_dtypes``) receives a
kernel's scalars by value at launch (``DEFINE_VAR``): int32 and float32 values must arrive bit-exact (-0.0, NaN,
inf, float32 subnormals), by name, with no value kept from an earlier launch of the same binary.  Core then passes
the Python floats of tensor arithmetic (``x * lr``) as parameters, so a value that changes every step compiles
nothing new.  On a backend that declares none, the same programs must give the same answers with the values
compiled in (a new kernel per value).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import tg
from tg import Tensor
from tg.testing import require

SPECIALS = [0.5, -0.0, 0.0, float("nan"), float("inf"), -float("inf"), 1e-40, -3.25, 1.0]


def _state() -> Any:
    from tg.engine.device import device_state

    return device_state()


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal bit for bit (so -0.0 is not 0.0), except that any NaN matches any NaN: hardware may make another NaN
    than numpy's from arithmetic (NVIDIA's 0x7fffffff)."""
    nan = np.isnan(want)
    bits = np.uint32 if want.dtype == np.float32 else np.uint16
    return bool(np.array_equal(np.isnan(got), nan) and np.array_equal(np.ascontiguousarray(got[~nan]).view(bits),
                                                                        np.ascontiguousarray(want[~nan]).view(bits)))


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the programs the backend under test compiles from here on (its runtime's ``compile``); under
    TG_SYMBOLIC=verify, without the exact-size kernels that check each symbolic one (they would be counted too)."""
    if os.environ.get("TG_SYMBOLIC", "").strip().lower() == "verify":
        monkeypatch.setenv("TG_SYMBOLIC", "1")
    runtime = _state().backend.runtime
    original, names = runtime.compile, []

    def counting(program: Any) -> Any:
        names.append(program.name)
        return original(program)

    monkeypatch.setattr(runtime, "compile", counting)
    yield names


def test_launch_variables_arrive_exactly_by_name() -> None:
    """A hand-built kernel ``out[i] = x[i] * p0 + n0`` stored where ``i < n0``: one binary launched with n0 = 5, 9, 5
    and p0 in turn -0.0, NaN, inf, a float32 subnormal... gives exactly numpy's float32 answer every time."""
    from tg.codegen.builder import KernelBuilder
    from tg.codegen.program import LoweredKernel
    from tg.codegen.rewrites import apply_capabilities, eliminate_dead
    from tg.engine.device import Buffer, ReadyKernel
    from tg.support.dtype import dtypes
    from tg.support.ops import Ops

    state = _state()
    caps = state.capabilities
    if not {"int32", "float32"} <= caps.variables:
        pytest.skip(f"backend {state.backend.name!r} declares no int32 and float32 launch variables "
                    "(Capabilities.variables, Runtime.variable_dtypes)")
    f32, i32 = dtypes.float32, dtypes.int32
    b = KernelBuilder()
    out, inp = b.define_global(0, f32, True), b.define_global(1, f32, False)
    n, p = b.define_var("n0", i32, 0, 16), b.define_var("p0", f32)
    i = b.special("gidx0", 16)
    value = b.alu(Ops.ADD, b.alu(Ops.MUL, b.load(inp, i, f32), p), b.cast(n, f32))
    b.store(out, i, value, b.alu(Ops.CMPLT, i, n))
    uops = eliminate_dead(apply_capabilities(b.uops, caps))
    program = state.backend.emitter.render(LoweredKernel("tg_kit_variables", uops, (16,), (1,)))
    assert program.variables == ("n0", "p0") and program.variable_dtypes == ("int32", "float32")
    kernel = ReadyKernel(program, state.compile(program))
    x = (np.arange(16, dtype=np.float32) - 8) / 4  # products exact, so a fused multiply-add rounds alike
    src = Buffer(state.backend, 16, f32)
    src.copyin(x)
    for count in (5, 9, 5):
        for scale in SPECIALS:
            dst = Buffer(state.backend, 16, f32)
            dst.copyin(np.full(16, 7.0, np.float32))
            state.launch(kernel, [dst, src], {"p0": scale, "n0": count})
            with np.errstate(all="ignore"):
                want = np.where(np.arange(16) < count, x * np.float32(scale) + np.float32(count), np.float32(7.0))
            got = dst.numpy()
            assert _same(got, want.astype(np.float32)), f"n0={count}, p0={scale!r}: {got} != {want}"


def _takes_params() -> bool:
    return bool(_state().scalar_params)


def test_a_changing_python_float_compiles_nothing(compiles: list[str]) -> None:
    """``a * lr + b`` with a new Python float each time: one kernel on a backend with float launch variables (else
    one per value), and every result bit-exact with numpy's float32 arithmetic."""
    a = np.linspace(-1, 1, 37, dtype=np.float32)
    b = np.linspace(3, 5, 37, dtype=np.float32)
    ta, tb = Tensor(a), Tensor(b)
    ta.realize(), tb.realize()
    del compiles[:]
    for lr in [0.1 * 0.9 ** k for k in range(10)]:
        got = (ta * lr + tb).numpy()
        want = a * np.float32(lr) + b
        np.testing.assert_allclose(got, want, rtol=2e-7, atol=0, err_msg=f"lr={lr}")
    assert len(compiles) == (1 if _takes_params() else 10), compiles


def test_special_values_through_one_kernel() -> None:
    """-0.0, 0.0, NaN, +-inf, a subnormal in turn through the same kernel: nothing of an earlier value stays."""
    x = np.array([-0.0, 0.0, 1.0, -2.0, np.inf, -np.inf, 3e-39, 1.5], np.float32)
    t = Tensor(x)
    for v in SPECIALS + SPECIALS[::-1]:
        with np.errstate(all="ignore"):
            want = x * np.float32(v)
        got = (t * v).numpy()
        assert _same(got, want), f"x * {v!r}: {got} != {want}"


def test_parameters_keep_their_places() -> None:
    """``a * s + t`` and ``a * t + s`` share a structure but not their values' places."""
    a = np.arange(6, dtype=np.float32)
    ta = Tensor(a)
    for s, t in ((2.0, 10.0), (10.0, 2.0), (0.5, -1.0)):
        np.testing.assert_array_equal((ta * s + t).numpy(), a * np.float32(s) + np.float32(t))
        np.testing.assert_array_equal((ta * t + s).numpy(), a * np.float32(t) + np.float32(s))
        np.testing.assert_array_equal((ta > 2).where(s, t).numpy(), np.where(a > 2, np.float32(s), np.float32(t)))


def test_more_scalars_than_parameter_slots() -> None:
    """20 different floats in one expression: those past the kernel's parameter slots are constants, all right."""
    a = np.linspace(0, 1, 11, dtype=np.float32)
    t, want = Tensor(a), a.copy()
    out = t
    for k in range(20):
        c = 0.25 + k / 16
        out, want = out * c + 1.0, want * np.float32(c) + np.float32(1.0)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_scalars_round_to_the_tensor_dtype_once(dtype: str) -> None:
    """A float scalar takes the tensor's dtype, rounded once from the Python float (float16 through a float32
    parameter: exact), whether it is a parameter or a constant."""
    require(dtype)
    ones = Tensor(np.ones(3, dtype))
    for v in (65519.0, 1.0 + 2.0**-11 + 2.0**-30, 3 * 2.0**-26, 0.1, -1e-9):
        with np.errstate(over="ignore"):
            want = np.full(3, v, dtype)
        np.testing.assert_array_equal(
            (ones * v).numpy().view(np.uint8), want.view(np.uint8), err_msg=f"1 * {v!r} as {dtype}")


def test_ints_and_exponents_stay_constants(compiles: list[str]) -> None:
    """Python ints (index-like; integer rules read them) and ``**`` exponents are compiled in: a new value is a new
    kernel, and ``a * 2`` is not ``a * 2.0`` (an int tensor times a float is a float tensor)."""
    a = Tensor(np.arange(5, dtype=np.int32))
    a.realize()
    del compiles[:]
    # (values no other test multiplies by: a kernel of another size may serve these, see test_symbolic)
    assert (a * 40001).numpy().tolist() == [0, 40001, 80002, 120003, 160004]
    assert (a * 40003).numpy().tolist() == [0, 40003, 80006, 120009, 160012]
    assert len(compiles) == 2
    x = Tensor(np.array([1.0, 2.0, 3.0], np.float32))
    np.testing.assert_allclose((x ** 2.0).numpy(), [1, 4, 9])
    np.testing.assert_allclose((x ** 3.0).numpy(), [1, 8, 27])
    assert (a * 2.0).dtype == tg.float32 and (a * 2.0).numpy().tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_turned_off_every_value_compiles(compiles: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """TG_SCALAR_PARAMS=0 compiles a Python float into the kernel: a new value, a new kernel, still right."""
    monkeypatch.setenv("TG_SCALAR_PARAMS", "0")
    a = np.arange(4, dtype=np.float32)
    t = Tensor(a)
    t.realize()
    del compiles[:]
    for v in (1.5, 2.5, 3.5):
        np.testing.assert_array_equal((t * v).numpy(), a * np.float32(v))
    assert len(compiles) == 3


def test_hand_written_sgd_compiles_nothing_after_its_first_steps(compiles: list[str]) -> None:
    """``p.sub_(lr * p.grad)`` with a decaying Python-float lr: after two steps, no step compiles a kernel (each
    value is a parameter, and a parameter updated every step stays one update deep), and the result is SGD's."""
    if not _takes_params():
        pytest.skip(f"backend {_state().backend.name!r} takes no float32 launch variables: each lr is a new kernel")
    rng = np.random.default_rng(0)
    x, w0 = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal((4, 1)).astype(np.float32)
    w, tx = Tensor(w0.copy(), requires_grad=True), Tensor(x)
    want, counts = w0.copy(), []
    for step in range(8):
        lr = 0.1 * 0.9 ** step
        loss = (tx @ w).sum()
        loss.backward()
        assert w.grad is not None
        with tg.no_grad():
            w.sub_(lr * w.grad)
            w.grad = None
        loss.item()
        want = want - np.float32(lr) * x.sum(0, keepdims=True).T
        counts.append(len(compiles))
    assert counts[2:] == [counts[2]] * 6, f"kernels compiled per step: {counts}"
    np.testing.assert_allclose(w.numpy(), want, rtol=1e-5, atol=1e-6)


def test_jit_sees_a_changed_closure_float_as_a_different_call() -> None:
    """A Python float from a jitted function's closure that changes between the calls it compares is an error
    (a replay would repeat one value); passed as an argument, each value is a variant of its own, all right."""
    from tg.support.errors import JitError

    x = Tensor(np.arange(4, dtype=np.float32))
    scale = [1.0]

    @tg.jit
    def closure(t: Tensor) -> Tensor:
        return t * scale[0]

    closure(x)
    scale[0] = 2.0
    closure(x)
    scale[0] = 3.0
    with pytest.raises(JitError, match="Python float"):
        closure(x)

    @tg.jit
    def argument(t: Tensor, s: float) -> Tensor:
        return t * s

    for _ in range(4):
        for s in (0.5, 4.0):
            np.testing.assert_array_equal(argument(x, s).numpy(), np.arange(4, dtype=np.float32) * np.float32(s))
