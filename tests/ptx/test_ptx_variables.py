"""Launch variables on tg-ptx: ``.param .u32``/``.param .f32`` after the buffers, accepted by ptxas, and every value's
bits reaching the kernel unchanged through the emulator and through both CUDA bindings' argument packing (driven by
the stand-ins of :mod:`fake_cuda`: no GPU here)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tg_ptx", reason="tg-ptx is not installed (nox -s ptx runs these tests)")

import fake_cuda  # noqa: E402
from tg.codegen.builder import KernelBuilder  # noqa: E402
from tg.codegen.program import LoweredKernel, Program  # noqa: E402
from tg.codegen.rewrites import eliminate_dead  # noqa: E402
from tg.support.dtype import dtypes  # noqa: E402
from tg.support.ops import Ops  # noqa: E402
from tg_ptx import ptxas, runtime_cuda  # noqa: E402
from tg_ptx.arch import set_detected_arch  # noqa: E402
from tg_ptx.emitter import PTXEmitter  # noqa: E402
from tg_ptx.emulator import EmulatorError  # noqa: E402
from tg_ptx.emulator.executor import param_value  # noqa: E402
from tg_ptx.emulator.ptxtypes import TYPES  # noqa: E402
from tg_ptx.params import EntryParams, variable_values  # noqa: E402
from tg_ptx.runtime_emu import EmulatorRuntime  # noqa: E402
from tg_ptx.writer import Writer  # noqa: E402

#: float32 values whose bits must survive: signed zeros, NaN, infinities, the smallest subnormal, 1e-40 (a subnormal
#: once rounded to float32), the largest float32.
FLOATS = [-0.0, 0.0, float("nan"), float("inf"), -float("inf"), 2.0**-149, float(np.float32(1e-40)),
          float(np.finfo(np.float32).max), -3.25]
INTS = [0, -7, 2**31 - 1, -(2**31)]


def variables_kernel() -> LoweredKernel:
    """``floats[i] = p0`` and ``ints[i] = n0 + i`` over 4 threads: each variable's value stored as it arrived."""
    f32, i32 = dtypes.float32, dtypes.int32
    b = KernelBuilder()
    floats, ints = b.define_global(0, f32, True), b.define_global(1, i32, True)
    n, p = b.define_var("n0", i32, -(2**31), 2**31 - 1), b.define_var("p0", f32)
    i = b.special("gidx0", 4)
    b.store(floats, i, p)
    b.store(ints, i, b.alu(Ops.ADD, n, i))
    return LoweredKernel("tg_vars", eliminate_dead(b.uops), (4,), (1,))


def _bits(x: Any) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def run_variables(runtime: Any, program: Program, n0: int, p0: float) -> tuple[np.ndarray, np.ndarray]:
    """Launch ``program`` (from :func:`variables_kernel`) on ``runtime``; the floats and ints it stored.  The values
    carry a name the kernel does not take, as core's may."""
    handles = [runtime.alloc(16), runtime.alloc(16)]
    for h in handles:
        runtime.copyin(h, memoryview(np.full(16, 0xAB, np.uint8)))
    runtime.launch(program, runtime.compile(program), handles, {"p0": p0, "n0": n0, "dropped": 1.5})
    floats, ints = np.zeros(4, np.float32), np.zeros(4, np.int32)
    runtime.copyout(floats.view(np.uint8).data, handles[0])
    runtime.copyout(ints.view(np.uint8).data, handles[1])
    return floats, ints


def check_arrival(runtime: Any, program: Program) -> None:
    for n0, p0 in zip(INTS * 3, FLOATS):
        floats, ints = run_variables(runtime, program, n0, p0)
        assert np.array_equal(_bits(floats), np.full(4, _bits(np.float32(p0)))), f"p0={p0!r}: {floats}"
        want = (np.int64(n0) + np.arange(4)).astype(np.int32)  # int32 addition wraps
        np.testing.assert_array_equal(ints, want, err_msg=f"n0={n0}")


# -- the emitter ---------------------------------------------------------------------------------------------


def test_variables_are_scalar_params_after_the_buffers_in_their_order() -> None:
    program = PTXEmitter().render(variables_kernel())
    assert program.variables == ("n0", "p0") and program.variable_dtypes == ("int32", "float32")
    params = re.findall(r"\.param \.(\w+) (\w+)", program.source)
    assert params == [("u64", "data0"), ("u64", "data1"), ("u32", "n0"), ("f32", "p0")]
    assert re.search(r"ld\.param\.f32 %f\d+, \[p0\];", program.source)
    assert re.search(r"ld\.param\.u32 %r\d+, \[n0\];", program.source)
    assert {"int32", "float32"} <= PTXEmitter.capabilities.variables


def test_a_variable_name_that_could_clash_is_refused() -> None:
    params, w = EntryParams(), Writer()
    params.variable(w, "p0", dtypes.float32)
    for name in ("p0", "data3", "1x", "a.b"):
        with pytest.raises(NotImplementedError, match="identifier"):
            params.variable(w, name, dtypes.float32)
    with pytest.raises(NotImplementedError, match="float64"):
        params.variable(w, "d", dtypes.float64)


@pytest.mark.skipif(ptxas.find_tool("ptxas") is None, reason=f"ptxas was not found: {ptxas.REMEDY}")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_ptxas_accepts_the_variables(monkeypatch: pytest.MonkeyPatch, arch: str) -> None:
    monkeypatch.setenv("TG_PTX_VERIFY", arch)
    v = ptxas.Verifier()
    program = PTXEmitter().render(variables_kernel())
    v.add(program.source, program.name)
    v.flush()
    assert v.counts == {arch: 1}


# -- the values a launch passes ------------------------------------------------------------------------------


def test_variable_values_are_numpy_scalars_of_their_dtypes_in_parameter_order() -> None:
    program = PTXEmitter().render(variables_kernel())
    values = variable_values(program, {"p0": -0.0, "n0": -5, "dropped": 2.0})
    assert [type(v) for v in values] == [np.int32, np.float32]
    assert values[0] == -5 and _bits(values[1]) == 0x80000000
    with pytest.raises(TypeError):  # a float is never truncated into an int32
        variable_values(program, {"p0": 1.0, "n0": 2.5})
    with pytest.raises(OverflowError):
        variable_values(program, {"p0": 1.0, "n0": 2**31})
    with pytest.raises(OverflowError):  # nor a finite float rounded to inf
        variable_values(program, {"p0": 1e300, "n0": 1})
    untyped = Program("k", "", (), (1,), (1,), variables=("n",))  # a Program that names no dtypes: int32
    assert [type(v) for v in variable_values(untyped, {"n": 3})] == [np.int32]


def test_the_emulator_takes_a_parameter_as_the_bytes_a_driver_copies() -> None:
    assert _bits(param_value("p", TYPES["f32"], np.float32(-0.0))) == 0x80000000
    assert param_value("n", TYPES["u32"], np.int32(-1)) == 0xFFFFFFFF
    assert param_value("n", TYPES["s32"], -1) == -1 and param_value("a", TYPES["u64"], 2**40) == 2**40
    with pytest.raises(EmulatorError, match="double"):  # what a binding would pack as 8 bytes
        param_value("p", TYPES["f32"], 0.5)
    with pytest.raises(EmulatorError, match="8 bytes"):
        param_value("p", TYPES["f32"], np.float64(0.5))
    with pytest.raises(EmulatorError, match="numpy scalar"):
        param_value("n", TYPES["s32"], 2.0)


def test_each_value_arrives_bit_exactly_on_the_emulator() -> None:
    runtime = EmulatorRuntime()
    assert {"int32", "float32"} <= runtime.variable_dtypes
    check_arrival(runtime, PTXEmitter().render(variables_kernel()))


# -- the GPU runtime, through stand-ins for both bindings ----------------------------------------------------


@pytest.fixture
def fresh_arch(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("TG_PTX_ARCH", raising=False)
    yield
    set_detected_arch(None)


@pytest.mark.parametrize("binding", ["pycuda", "cuda-bindings"])
def test_each_value_arrives_bit_exactly_through_the_cuda_bindings(monkeypatch: pytest.MonkeyPatch, fresh_arch: Any,
                                                                  binding: str) -> None:
    """cuda-bindings: the kernel reads 4 bytes per variable from the pointer array (a double would be 8, its low half
    garbage); pycuda: a numpy scalar packed by its dtype (a bare Python float is refused)."""
    driver = (fake_cuda.install_pycuda if binding == "pycuda" else fake_cuda.install_cuda_bindings)(monkeypatch)
    runtime = runtime_cuda.CudaRuntime()
    assert {"int32", "float32"} <= runtime.variable_dtypes
    program = PTXEmitter().render(variables_kernel())
    check_arrival(runtime, program)
    assert runtime.device().binding == binding and len(driver.launches) == len(FLOATS)
    name, values, _, _ = driver.launches[0]
    assert name == "tg_vars" and [np.asarray(v).dtype.itemsize for v in values[2:]] == [4, 4]  # as the kernel reads
