"""Launch variables on tg-rdna: 4 bytes each in the kernarg segment after the buffers, declared by value in the code
object's metadata (the hidden arguments after them, 8-aligned), read with ``s_load_b32``, and every value's bits
reaching the kernel unchanged on the emulator."""

from __future__ import annotations

import re
import struct
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rdna_helpers import needs_llvm
from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.rewrites import eliminate_dead
from tg.support.dtype import dtypes
from tg.support.ops import Ops
from tg_rdna import build, toolchain, variables
from tg_rdna.emitter import RDNAEmitter
from tg_rdna.runtime_emu import EmulatorRuntime, kernarg

#: float32 values whose bits must survive: signed zeros, NaN, infinities, the smallest subnormal, 1e-40 (a subnormal
#: once rounded to float32), the largest float32.
FLOATS = [-0.0, 0.0, float("nan"), float("inf"), -float("inf"), 2.0**-149, float(np.float32(1e-40)),
          float(np.finfo(np.float32).max), -3.25]
INTS = [0, -7, 2**31 - 1, -(2**31)]
F32, I32 = dtypes.float32, dtypes.int32


def variables_kernel(inputs: int = 0) -> LoweredKernel:
    """``floats[i] = p0 (+ the inputs' elements i)``, ``ints[i] = n0 + i`` over 4 threads; with many inputs the
    buffers' addresses no longer stay in SGPRs (the variables' offsets then follow many buffers)."""
    b = KernelBuilder()
    floats, ints = b.define_global(0, F32, True), b.define_global(1, I32, True)
    ins = [b.define_global(2 + k, F32, False) for k in range(inputs)]
    n, p = b.define_var("n0", I32, -(2**31), 2**31 - 1), b.define_var("p0", F32)
    i = b.special("gidx0", 4)
    value = p
    for buf in ins:
        value = b.alu(Ops.ADD, value, b.load(buf, i, F32))
    b.store(floats, i, value)
    b.store(ints, i, b.alu(Ops.ADD, n, i))
    return LoweredKernel(f"tg_vars{inputs}", eliminate_dead(b.uops), (4,), (1,))


def _bits(x: Any) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def run_variables(program: Program, values: dict[str, Any], inputs: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rt = EmulatorRuntime()
    handles = [rt.alloc(16) for _ in range(2 + inputs)]
    for h in handles:  # -0.0: x + -0.0 is x for every float x, -0.0 and NaN included
        rt.copyin(h, memoryview(np.full(4, -0.0, np.float32).view(np.uint8)))
    rt.launch(program, rt.compile(program), handles, values)
    floats, ints = np.zeros(4, np.float32), np.zeros(4, np.int32)
    rt.copyout(memoryview(floats.view(np.uint8)), handles[0])
    rt.copyout(memoryview(ints.view(np.uint8)), handles[1])
    return floats, ints


def test_the_emitter_and_both_runtimes_declare_int32_and_float32() -> None:
    from tg_rdna.runtime_cl import OpenCLRuntime

    assert {"int32", "float32"} <= RDNAEmitter.capabilities.variables
    assert {"int32", "float32"} <= EmulatorRuntime.variable_dtypes
    assert {"int32", "float32"} <= OpenCLRuntime.variable_dtypes


def test_the_kernel_loads_each_variable_after_the_buffers() -> None:
    program = RDNAEmitter().render(variables_kernel())
    assert program.variables == ("n0", "p0") and program.variable_dtypes == ("int32", "float32")
    assert program.attributes["kernarg_size"] == 24  # 2 addresses, 2 variables
    assert re.search(r"s_load_b32 s\d+, s\[0:1\], 0x10 .*var_n0", program.source)
    assert re.search(r"s_load_b32 s\d+, s\[0:1\], 0x14 .*var_p0", program.source)
    for line in (".amdhsa_kernarg_size 280", "{.name: var_n0, .offset: 16, .size: 4, .value_kind: by_value}",
                 "{.name: var_p0, .offset: 20, .size: 4, .value_kind: by_value}",
                 "{.offset: 24, .size: 4, .value_kind: hidden_block_count_x}"):
        assert line in program.source, line


@needs_llvm
def test_the_code_object_lists_the_by_value_arguments_and_its_kernarg_size_covers_them(cache_dir: Path) -> None:
    """One buffer and one variable: 12 explicit bytes, rounded to 16, the hidden block 8-aligned after them."""
    b = KernelBuilder()
    out = b.define_global(0, F32, True)
    b.store(out, b.special("gidx0", 4), b.define_var("p0", F32))
    program = RDNAEmitter().render(LoweredKernel("one_var", eliminate_dead(b.uops), (4,), (1,)))
    data = build.link(program.source, program.name)
    path = toolchain.find("llvm-readelf")
    assert path is not None
    with tempfile.TemporaryDirectory() as tmp:
        co = Path(tmp) / "k.co"
        co.write_bytes(data)
        notes = subprocess.run([path, "--notes", str(co)], capture_output=True, text=True, check=True).stdout
    for text in (".name:           var_p0\n        .offset:         8\n        .size:           4\n"
                 "        .value_kind:     by_value",
                 ".offset:         16\n        .size:           4\n        .value_kind:     hidden_block_count_x",
                 ".kernarg_segment_size: 272"):
        assert text in notes, text
    assert program.attributes["kernarg_size"] == 16 and len(kernarg(program, [0], {"p0": 1.0})) == 16


def test_the_launch_packs_each_variable_in_four_bytes_exactly() -> None:
    program = RDNAEmitter().render(variables_kernel())
    values = {"p0": -0.0, "n0": -1, "dropped": 2.5}
    assert variables.pack(program, values) == struct.pack("<iI", -1, 0x80000000)
    scalars = variables.scalars(program, {"p0": float("nan"), "n0": 5})
    assert [type(s) for s in scalars] == [np.int32, np.float32] and _bits(scalars[1]) == 0x7FC00000
    with pytest.raises(struct.error):  # a float is never truncated into an int32
        variables.pack(program, {"p0": 1.0, "n0": 2.5})
    with pytest.raises(OverflowError):  # nor rounded to inf
        variables.pack(program, {"p0": 1e300, "n0": 1})
    untyped = Program("k", "", (), (1,), (1,), variables=("n",))  # a Program that names no dtypes: int32
    assert variables.pack(untyped, {"n": 3}) == struct.pack("<i", 3)


@needs_llvm
@pytest.mark.parametrize("inputs", [0, 36])
def test_each_value_arrives_bit_exactly_on_the_emulator(cache_dir: Path, inputs: int) -> None:
    program = RDNAEmitter().render(variables_kernel(inputs))
    if inputs:
        assert "loaded from the kernarg segment where it is used" in program.source
        assert f"0x{8 * (2 + inputs) + 4:x}" in program.source  # p0 after 38 addresses and n0
    for n0, p0 in zip(INTS * 3, FLOATS):
        floats, ints = run_variables(program, {"p0": p0, "n0": n0, "dropped": 1.5}, inputs)
        assert np.array_equal(_bits(floats), np.full(4, _bits(np.float32(p0)))), f"p0={p0!r}: {floats}"
        np.testing.assert_array_equal(ints, (np.int64(n0) + np.arange(4)).astype(np.int32), err_msg=f"n0={n0}")


@needs_llvm
def test_a_variable_read_in_a_loop_stays_live_through_it(cache_dir: Path) -> None:
    """``out[i] = sum over r < 8 of x[r] * p0``: p0's register is read on every trip."""
    b = KernelBuilder()
    out, x = b.define_global(0, F32, True), b.define_global(1, F32, False)
    p = b.define_var("p0", F32)
    i = b.special("gidx0", 4)
    acc = b.define_acc(0.0, F32)
    r = b.range(0, 8)
    acc = b.assign(acc, b.alu(Ops.ADD, acc, b.alu(Ops.MUL, b.load(x, r, F32), p)))
    b.end_range(r)
    b.store(out, i, acc)
    xs = np.arange(8, dtype=np.float32) - 3
    for scale, got in _launches(b, "loop_var", xs, [{"p0": 0.5}, {"p0": -2.0}]):
        np.testing.assert_array_equal(got, np.full(4, (xs * np.float32(scale["p0"])).sum(dtype=np.float32)))


def _launches(b: KernelBuilder, name: str, xs: np.ndarray, values: list[dict[str, Any]]
              ) -> list[tuple[dict[str, Any], np.ndarray]]:
    """The kernel ``b`` built (4 float32 outputs, input ``xs``) launched on the emulator with each of ``values``."""
    program = RDNAEmitter().render(LoweredKernel(name, eliminate_dead(b.uops), (4,), (1,)))
    rt = EmulatorRuntime()
    handles = [rt.alloc(16), rt.alloc(xs.nbytes)]
    rt.copyin(handles[1], memoryview(xs.view(np.uint8)))
    out = []
    for vals in values:
        rt.launch(program, rt.compile(program), handles, vals)
        got = np.zeros(4, np.float32)
        rt.copyout(memoryview(got.view(np.uint8)), handles[0])
        out.append((vals, got))
    return out


@needs_llvm
def test_a_loop_end_computed_from_a_variable_lives_through_the_loop(cache_dir: Path) -> None:
    """``out[i] = sum over r < 2*n0 + 1 of x[r] * (r + 1)``: the loop's end is a register (a kernel built for every
    size, tg.engine.dynamic), compared at the top of every trip, so the values of the loop's body must not take it."""
    b = KernelBuilder()
    out, x = b.define_global(0, F32, True), b.define_global(1, F32, False)
    n = b.define_var("n0", I32, 0, 3)
    i = b.special("gidx0", 4)
    acc = b.define_acc(0.0, F32)
    r = b.range(b.const(0, I32), b.alu(Ops.ADD, b.alu(Ops.MUL, n, b.const(2, I32)), b.const(1, I32)))
    term = b.alu(Ops.MUL, b.load(x, r, F32), b.cast(b.alu(Ops.ADD, r, b.const(1, I32)), F32))
    acc = b.assign(acc, b.alu(Ops.ADD, acc, term))
    b.end_range(r)
    b.store(out, i, acc)
    xs = np.arange(7, dtype=np.float32) - 3
    for vals, got in _launches(b, "loop_end_var", xs, [{"n0": n0} for n0 in (0, 1, 3, 2)]):
        want = np.float32(0)
        for k in range(2 * vals["n0"] + 1):
            want = np.float32(want + xs[k] * np.float32(k + 1))
        np.testing.assert_array_equal(got, np.full(4, want), err_msg=f"{vals}")


@needs_llvm
def test_a_variable_read_before_its_load_is_done_is_caught(cache_dir: Path) -> None:
    from tg_rdna.emulator import EmulatorError  # type: ignore[import-not-found, unused-ignore]

    program = RDNAEmitter().render(variables_kernel())
    lines = program.source.splitlines()
    wait = next(k for k, line in enumerate(lines) if "s_waitcnt lgkmcnt(0)" in line)
    broken = replace(program, source="\n".join(lines[:wait] + lines[wait + 1:]))
    with pytest.raises(EmulatorError, match=r"(?i)lgkmcnt|wait"):
        run_variables(broken, {"p0": 1.0, "n0": 1})
