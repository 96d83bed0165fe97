"""rdna:emu end to end: kernels built by LLVM run on the emulator; a kernel with a wait or a hazard stall taken
out fails there, naming what it read too soon.  Skipped where the emulator package is not installed."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rdna_helpers import needs_llvm
from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.uops import Ops
from tg.support.dtype import DType, dtypes
from tg_rdna.emitter import RDNAEmitter
from tg_rdna.runtime_emu import EmulatorRuntime

emulator = pytest.importorskip("tg_rdna.emulator", reason="tg_rdna.emulator is not installed (tg-rdna's emulator)")
pytestmark = needs_llvm
N = 100


def _unary(op: Ops, dtype: DType = dtypes.float32) -> Program:
    b = KernelBuilder()
    o, x = b.define_global(0, dtype, True), b.define_global(1, dtype, False)
    g = b.special("gidx0", N)
    b.store(o, g, b.alu(op, b.load(x, g, dtype)))
    return RDNAEmitter().render(LoweredKernel(f"{op.name.lower()}_{N}", b.uops, (N,), (1,)))


def _run(program: Program, *inputs: np.ndarray, out_dtype: type = np.float32, n: int = N) -> np.ndarray:
    """Launch ``program`` on rdna:emu with buffers [out, *inputs]; the n elements of out."""
    rt = EmulatorRuntime()
    out = np.zeros(n, out_dtype)
    handles = []
    for arr in (out, *inputs):
        h = rt.alloc(arr.nbytes)
        rt.copyin(h, memoryview(np.ascontiguousarray(arr).view(np.uint8).reshape(-1)))
        handles.append(h)
    rt.launch(program, rt.compile(program), handles, {})
    rt.copyout(memoryview(out.view(np.uint8).reshape(-1)), handles[0])
    return out


def test_a_kernel_runs_on_the_emulator(cache_dir: Path) -> None:
    x = np.linspace(-30, 30, N).astype(np.float32)
    np.testing.assert_array_equal(_run(_unary(Ops.SQRT), np.abs(x)), np.sqrt(np.abs(x)))
    np.testing.assert_allclose(_run(_unary(Ops.EXP2), x), np.exp2(x), rtol=3e-7)


def test_exp2_keeps_denormal_results_and_log2_reads_denormal_inputs(cache_dir: Path) -> None:
    x = np.linspace(-149, -120, N).astype(np.float32)
    np.testing.assert_allclose(_run(_unary(Ops.EXP2), x), np.exp2(x), rtol=3e-7, atol=0)
    tiny = np.float32(2.0 ** -140) * np.linspace(1, 100, N).astype(np.float32)
    np.testing.assert_allclose(_run(_unary(Ops.LOG2), tiny), np.log2(tiny.astype(np.float64)), rtol=1e-7)


def test_int64_division_matches_the_hook_table(cache_dir: Path) -> None:
    b = KernelBuilder()
    o, x, y = (b.define_global(i, dtypes.int64, i == 0) for i in range(3))
    g = b.special("gidx0", N)
    b.store(o, g, b.alu(Ops.IDIV, b.load(x, g, dtypes.int64), b.load(y, g, dtypes.int64)))
    program = RDNAEmitter().render(LoweredKernel("idiv64", b.uops, (N,), (1,)))
    rng = np.random.default_rng(1)
    xs = rng.integers(-(2**62), 2**62, N, dtype=np.int64)
    ys = rng.integers(-(2**31), 2**31, N, dtype=np.int64)
    xs[:4], ys[:4] = [np.iinfo(np.int64).min, 7, -7, 5], [-1, 0, 2, -3]
    expected = np.where(ys == 0, 0, np.trunc(xs.astype(object) / np.where(ys == 0, 1, ys).astype(object)))
    expected[0] = np.iinfo(np.int64).min
    got = _run(program, xs, ys, out_dtype=np.int64)
    assert [int(v) for v in got] == [int(v) for v in expected]


def _without(source: str, pattern: str) -> str:
    lines = source.splitlines()
    hit = next(i for i, line in enumerate(lines) if re.match(pattern, line.strip()))
    return "\n".join(lines[:hit] + lines[hit + 1:])


def test_a_removed_load_wait_is_caught(cache_dir: Path) -> None:
    program = _unary(Ops.SQRT)
    broken = replace(program, source=_without(program.source, r"s_waitcnt vmcnt\(0\)"))
    with pytest.raises(emulator.EmulatorError, match=r"(?i)vmcnt|wait"):
        _run(broken, np.ones(N, np.float32))


def test_a_removed_transcendental_stall_is_caught(cache_dir: Path) -> None:
    program = _unary(Ops.EXP2)
    broken = replace(program, source=_without(program.source, r"s_waitcnt_depctr"))
    with pytest.raises(emulator.EmulatorError, match=r"(?i)trans|depctr|hazard"):
        _run(broken, np.ones(N, np.float32))


def test_a_kernel_with_more_buffers_than_sgprs_runs(cache_dir: Path) -> None:
    from test_rdna_emitter import many_buffers

    program = RDNAEmitter().render(LoweredKernel("sum40", many_buffers(40).uops, (N,), (1,)))
    inputs = [np.full(N, i, np.float32) for i in range(40)]
    np.testing.assert_array_equal(_run(program, *inputs), np.full(N, sum(range(40)), np.float32))


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("count", [2, 4])
@pytest.mark.parametrize("name", ["float32", "float16", "int64", "int8", "uint8", "bool", "int32"])
def test_vector_lanes_are_packed_and_unpacked_in_memory_order(name: str, count: int, gated: bool,
                                                              cache_dir: Path) -> None:
    from test_rdna_emitter import vector_copy

    dtype = getattr(dtypes, name)
    uops = vector_copy(dtype, count, gated, N).uops
    program = RDNAEmitter().render(LoweredKernel(f"vec_{name}", uops, (N // count,), (1,)))
    rng = np.random.default_rng(3)
    x = (rng.random(N) > 0.5) if name == "bool" else rng.integers(-100, 100, N).astype(dtype.np)
    if name == "uint8":
        x = rng.integers(0, 250, N).astype(np.uint8)
    source = x.copy()
    if gated:
        source[N - 2 * count:] = 0
    expected = (source | True) if name == "bool" else (source + 1).astype(dtype.np)
    expected = expected.reshape(-1, count)[:, ::-1].reshape(-1)
    got = _run(program, x, out_dtype=dtype.np)
    np.testing.assert_array_equal(got, expected)


def test_float16_mulacc_is_rounded_once(cache_dir: Path) -> None:
    """a*b+c in float16 with one rounding (v_fma_f16): through f32 it would round twice on these inputs."""
    b = KernelBuilder()
    o = b.define_global(0, dtypes.float16, True)
    xs = [b.define_global(i, dtypes.float16, False) for i in (1, 2, 3)]
    g = b.special("gidx0", N)
    b.store(o, g, b.alu(Ops.MULACC, *(b.load(x, g, dtypes.float16) for x in xs)))
    program = RDNAEmitter().render(LoweredKernel("fma16", b.uops, (N,), (1,)))
    assert "v_fma_f16" in program.source
    rng = np.random.default_rng(5)
    x, y, z = (rng.standard_normal(N).astype(np.float16) for _ in range(3))
    x[:2], y[:2], z[:2] = np.float16(-1.5625), np.float16(-0.12), np.float16(199.8)  # f32 then f16: 200.0
    exact = (x.astype(np.float64) * y.astype(np.float64) + z.astype(np.float64)).astype(np.float16)
    assert exact[0] == np.float16(199.9)
    np.testing.assert_array_equal(_run(program, x, y, z, out_dtype=np.float16), exact)


def test_a_kernel_rendered_in_the_frugal_order_computes_the_same(cache_dir: Path) -> None:
    from test_rdna_emitter import hoisted_tests

    program = RDNAEmitter().render(LoweredKernel("hoisted", hoisted_tests(300).uops, (N,), (1,)))
    x = np.linspace(-2, 32, N).astype(np.float32)
    thresholds = (np.arange(300) / 10).astype(np.float32)
    expected = (x[:, None] < thresholds[None, :]).sum(axis=1).astype(np.float32)
    np.testing.assert_array_equal(_run(program, x), expected)
