"""The plugin contract itself, on the backend under test: the Program record its emitter returns and the launch and
buffer ABI its runtime follows (section 4 of :mod:`tg.hooks`).  The rest of the kit goes through Tensors; these
tests talk to the emitter and the runtime directly, the way core does, so a contract slip is named as such."""

from __future__ import annotations

import numpy as np
import pytest

from tg import hooks
from tg.backends.contract import Backend
from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.rewrites import apply_capabilities
from tg.codegen.uops import Ops, UOp
from tg.engine.device import device_state
from tg.support.dtype import dtypes


@pytest.fixture
def backend() -> Backend:
    return device_state().backend


def _kernel(n: int = 40) -> LoweredKernel:
    """out[i] = a[i] * 2 + b[i] (a float32, b int32), with its buffers defined out of order, fitted to the target."""
    b = KernelBuilder()
    out = b.define_global(0, dtypes.float32, True)
    ints = b.define_global(2, dtypes.int32, False)
    floats = b.define_global(1, dtypes.float32, False)
    g = b.special("gidx0", n)
    value = b.alu(Ops.ADD, b.alu(Ops.MUL, b.load(floats, g, dtypes.float32), b.const(2.0, dtypes.float32)),
                  b.cast(b.load(ints, g, dtypes.int32), dtypes.float32))
    b.store(out, g, value)
    caps = device_state().capabilities
    uops: list[UOp] = apply_capabilities(b.uops, caps)
    return LoweredKernel("contract_axpb", uops, (n,), (1,), 3 * 4 * n)


def test_render_returns_a_program_with_the_buffers_in_launch_order(backend: Backend) -> None:
    kernel = _kernel()
    program = backend.emitter.render(kernel)
    assert isinstance(program, Program), f"render() returned {type(program).__name__}, not a tg.hooks.Program"
    assert program.name and program.source
    assert [(p.index, p.dtype.name, p.writable) for p in program.buffers] == [
        (0, "float32", True), (1, "float32", False), (2, "int32", False)], "buffers in launch order (by index)"
    assert all(isinstance(d, int) and d >= 1 for d in (*program.global_size, *program.local_size))
    assert program.variables == ()


def test_a_launch_reads_and_writes_the_buffers_in_program_order(backend: Backend) -> None:
    runtime, n = backend.runtime, 40
    program = backend.emitter.render(_kernel(n))
    binary = runtime.compile(program)
    a = np.linspace(-3, 3, n).astype(np.float32)
    c = np.arange(n, dtype=np.int32) - 7
    handles = [runtime.alloc(4 * n) for _ in range(3)]
    try:
        runtime.copyin(handles[1], a.data.cast("B"))
        runtime.copyin(handles[2], c.data.cast("B"))
        seconds = runtime.launch(program, binary, handles, {})
        assert seconds is None or seconds >= 0
        runtime.synchronize()
        out = np.empty(n, np.float32)
        runtime.copyout(out.data.cast("B"), handles[0])
        np.testing.assert_allclose(out, a * 2 + c, rtol=1e-6)
    finally:
        for h in handles:
            runtime.free(h)


@pytest.mark.parametrize("nbytes", [1, 3, 8, 1000])
def test_buffers_round_trip_bytes_of_any_length(backend: Backend, nbytes: int) -> None:
    """alloc gives at least the bytes asked for; copyin then copyout returns them, from a byte view of format B."""
    runtime = backend.runtime
    data = (np.arange(nbytes) * 37 % 251).astype(np.uint8)
    handle = runtime.alloc(max(nbytes, 8))
    try:
        runtime.copyin(handle, data.data.cast("B"))
        back = np.zeros(nbytes, np.uint8)
        runtime.copyout(back.data.cast("B"), handle)
        np.testing.assert_array_equal(back, data)
    finally:
        runtime.free(handle)


def test_the_backend_is_declared_under_the_current_hook_spec(backend: Backend) -> None:
    caps = backend.emitter.capabilities
    assert caps.renders <= hooks.OPTIONAL
    assert isinstance(backend.runtime.available().ok, bool)
