"""The PTX emulator on hand-written PTX: divergence, barriers, shared memory, instruction semantics, clear errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("tg_ptx", reason="tg-ptx is not installed (nox -s ptx runs these tests)")

from tg_ptx.emulator import EmulatorError, GlobalMemory, compile_kernel, executor, run_kernel  # noqa: E402
from tg_ptx.emulator.numerics import convert, fma64  # noqa: E402
from tg_ptx.emulator.ptxtypes import TYPES  # noqa: E402

HEADER = ".version 7.0\n.target sm_80\n.address_size 64\n"


def kernel(body: str, params: str = ".param .u64 out", regs: str = "", extra: str = "") -> str:
    return (f"{HEADER}\n.visible .entry k({params})\n{extra}\n{{\n"
            "\t.reg .pred %p<8>;\n\t.reg .b32 %r<16>;\n\t.reg .b64 %rd<8>;\n\t.reg .f32 %f<8>;\n\t.reg .f64 %fd<4>;\n"
            f"{regs}\n{body}\n\tret;\n}}\n")


PROLOGUE = """
\tld.param.u64 %rd0, [out];
\tmov.u32 %r0, %tid.x;
\tmov.u32 %r1, %ctaid.x;
\tmov.u32 %r2, %ntid.x;
\tmad.lo.s32 %r3, %r1, %r2, %r0;
\tmul.wide.s32 %rd1, %r3, 4;
\tadd.s64 %rd1, %rd0, %rd1;
"""


def run(source: str, grid: int, block: int, out: np.ndarray, *more: Any) -> np.ndarray:
    memory = GlobalMemory()
    buffers = []
    for array in (out, *[m for m in more if isinstance(m, np.ndarray)]):
        a = memory.alloc(array.nbytes)
        a.data[: array.nbytes] = array.view(np.uint8).reshape(-1)
        buffers.append(a)
    scalars = [m for m in more if not isinstance(m, np.ndarray)]
    run_kernel(compile_kernel(source), memory, grid, block, [b.address for b in buffers] + scalars)
    return buffers[0].data[: out.nbytes].view(out.dtype).copy()


def test_if_else_both_sides_run_and_reconverge() -> None:
    src = kernel(PROLOGUE + """
\tand.b32 %r4, %r3, 1;
\tsetp.eq.s32 %p0, %r4, 0;
\t@%p0 bra EVEN;
\tmov.b32 %r5, 100;
\tbra.uni DONE;
EVEN:
\tmov.b32 %r5, 200;
DONE:
\tadd.s32 %r5, %r5, %r3;
\tst.global.s32 [%rd1], %r5;
""")
    got = run(src, 2, 8, np.zeros(16, np.int32))
    t = np.arange(16)
    np.testing.assert_array_equal(got, np.where(t % 2 == 0, 200, 100) + t)


def test_loops_with_a_different_trip_count_per_thread() -> None:
    src = kernel(PROLOGUE + """
\tmov.b32 %r5, 0;
\tmov.b32 %r6, 0;
\tsetp.ge.s32 %p1, %r6, %r3;
\t@%p1 bra END;
LOOP:
\tadd.s32 %r5, %r5, %r6;
\tadd.s32 %r6, %r6, 1;
\tsetp.lt.s32 %p1, %r6, %r3;
\t@%p1 bra LOOP;
END:
\tst.global.s32 [%rd1], %r5;
""")
    got = run(src, 1, 12, np.zeros(12, np.int32))
    np.testing.assert_array_equal(got, [t * (t - 1) // 2 for t in range(12)])


def test_bra_uni_must_not_diverge_within_a_warp() -> None:
    src = kernel(PROLOGUE + """
\tsetp.lt.s32 %p0, %r0, 40;
\t@%p0 bra.uni SKIP;
\tst.global.s32 [%rd1], 1;
SKIP:
""")
    with pytest.raises(EmulatorError, match="bra.uni diverges inside warp 1"):
        run(src, 1, 64, np.zeros(64, np.int32))
    uniform = src.replace("%r0, 40", "%r0, 32")  # warp 0 branches, warp 1 does not: allowed
    np.testing.assert_array_equal(run(uniform, 1, 64, np.zeros(64, np.int32)), [0] * 32 + [1] * 32)


def test_guarded_exit_ends_only_those_threads() -> None:
    src = kernel(PROLOGUE + """
\tsetp.gt.s32 %p0, %r3, 4;
\t@%p0 exit;
\tst.global.s32 [%rd1], 7;
""")
    got = run(src, 1, 8, np.full(8, -1, np.int32))
    np.testing.assert_array_equal(got, [7] * 5 + [-1] * 3)


def test_shared_memory_is_per_block_and_bar_sync_orders_it() -> None:
    src = kernel(PROLOGUE + """
\tmov.u32 %r7, buf;
\tshl.b32 %r8, %r0, 2;
\tadd.s32 %r9, %r7, %r8;
\tst.shared.s32 [%r9], %r3;
\tbar.sync 0;
\tsub.s32 %r10, %r2, 1;
\tsub.s32 %r10, %r10, %r0;
\tshl.b32 %r10, %r10, 2;
\tadd.s32 %r10, %r7, %r10;
\tld.shared.s32 %r11, [%r10];
\tst.global.s32 [%rd1], %r11;
""", extra="", regs="\t.shared .align 4 .b8 buf[64];")
    got = run(src, 3, 4, np.zeros(12, np.int32))
    np.testing.assert_array_equal(got, [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8])


def test_a_barrier_in_divergent_code_is_an_error() -> None:
    src = kernel(PROLOGUE + """
\tsetp.lt.s32 %p0, %r0, 2;
\t@%p0 bra SKIP;
\tbar.sync 0;
SKIP:
\tst.global.s32 [%rd1], 1;
""")
    with pytest.raises(EmulatorError, match="bar.sync"):
        run(src, 1, 4, np.zeros(4, np.int32))


def test_unsupported_instructions_and_modifiers_are_named() -> None:
    with pytest.raises(EmulatorError, match="unsupported instruction 'popc'.*line"):
        compile_kernel(kernel("\tpopc.b32 %r1, %r2;"))
    with pytest.raises(EmulatorError, match=r"rounding mode \.rz"):
        compile_kernel(kernel("\tadd.rz.f32 %f1, %f2, %f3;"))
    with pytest.raises(EmulatorError, match=r"\.local state space"):
        compile_kernel(kernel("\tld.local.f32 %f1, [%rd1];"))
    with pytest.raises(EmulatorError, match="not declared"):
        compile_kernel(kernel("\tmov.f32 %q1, %f2;"))
    with pytest.raises(EmulatorError, match=r"\.func"):
        compile_kernel(HEADER + ".func f() { ret; }\n" + kernel("").split(HEADER)[1])
    with pytest.raises(EmulatorError, match=".version"):
        compile_kernel(".entry k() { ret; }")


def test_operand_types_follow_the_isa_rules() -> None:
    regs = "\t.reg .s32 %s<2>;\n\t.reg .u16 %h<2>;"
    with pytest.raises(EmulatorError, match=r"%s1 is declared \.s32.*\.f32"):
        compile_kernel(kernel("\tld.global.f32 %s1, [%rd1];", regs=regs))  # ptxas: "Arguments mismatch"
    with pytest.raises(EmulatorError, match=r"%h0 is declared \.u16"):
        compile_kernel(kernel("\tadd.s32 %r1, %h0, %r2;", regs=regs))
    compile_kernel(kernel("\tld.global.u8 %h0, [%rd1];\n\tcvt.s32.s8 %s0, %r1;\n\tmov.b32 %f1, %s1;\n"
                          "\tadd.u32 %s0, %s1, %r2;", regs=regs))  # wider registers, .b and s/u mixes are fine


def test_memory_faults_are_reported_with_the_address() -> None:
    src = kernel(PROLOGUE + "\tst.global.s32 [%rd1+64], 1;")
    with pytest.raises(EmulatorError, match="outside every buffer.*has 16 bytes"):
        run(src, 1, 4, np.zeros(4, np.int32))
    src = kernel(PROLOGUE + "\tst.global.s32 [%rd1+2], 1;")
    with pytest.raises(EmulatorError, match="misaligned"):
        run(src, 1, 4, np.zeros(4, np.int32))
    src = kernel(PROLOGUE + "\tld.global.v4.f32 {%f0, %f1, %f2, %f3}, [%rd1];\n\tst.global.f32 [%rd1], %f0;")
    with pytest.raises(EmulatorError, match="misaligned"):
        run(src, 1, 4, np.zeros(16, np.float32))


def test_a_predicated_off_load_touches_no_memory() -> None:
    src = kernel(PROLOGUE + """
\tsetp.lt.s32 %p0, %r3, 2;
\tmov.f32 %f0, 0f3F800000;
\t@%p0 ld.global.f32 %f0, [%rd1+1000000];
\tst.global.f32 [%rd1], %f0;
""")
    with pytest.raises(EmulatorError, match="outside every buffer"):
        run(src, 1, 4, np.zeros(4, np.float32))
    src = src.replace("setp.lt.s32 %p0, %r3, 2", "setp.lt.s32 %p0, %r3, 0")
    np.testing.assert_array_equal(run(src, 1, 4, np.zeros(4, np.float32)), [1, 1, 1, 1])


def test_reading_a_register_nothing_wrote_is_an_error() -> None:
    with pytest.raises(EmulatorError, match="%f3 is read before"):
        run(kernel(PROLOGUE + "\tst.global.f32 [%rd1], %f3;"), 1, 2, np.zeros(2, np.float32))


def test_launch_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    src = kernel(PROLOGUE + "\tst.global.s32 [%rd1], %r3;", extra=".maxntid 4, 1, 1")
    with pytest.raises(EmulatorError, match="maxntid"):
        run(src, 1, 8, np.zeros(8, np.int32))
    monkeypatch.setattr(executor, "MAX_STEPS", 50)
    spin = kernel("LOOP:\n\tbra.uni LOOP;")
    with pytest.raises(EmulatorError, match="endless loop"):
        run(spin, 1, 1, np.zeros(1, np.int32))


def test_large_grids_run_in_chunks_of_whole_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "CHUNK_THREADS", 32)
    src = kernel(PROLOGUE + "\tst.global.s32 [%rd1], %r1;")
    got = run(src, 10, 16, np.zeros(160, np.int32))
    np.testing.assert_array_equal(got, np.repeat(np.arange(10), 16))


def test_scalar_parameters_and_predicate_pairs() -> None:
    src = kernel(PROLOGUE + """
\tld.param.s32 %r4, [n];
\tsetp.lt.and.s32 %p0|%p1, %r3, %r4, 1;
\tselp.s32 %r5, 10, 20, %p0;
\tselp.s32 %r6, 1, 0, %p1;
\tadd.s32 %r5, %r5, %r6;
\t@!%p1 add.s32 %r5, %r5, 100;
\tst.global.s32 [%rd1], %r5;
""", params=".param .u64 out, .param .s32 n")
    got = run(src, 1, 6, np.zeros(6, np.int32), 3)
    np.testing.assert_array_equal(got, [110, 110, 110, 21, 21, 21])


@pytest.mark.parametrize(("cmp", "expected"), [
    ("eq", [0, 0, 0, 1]), ("ne", [1, 0, 0, 0]), ("equ", [0, 1, 1, 1]), ("neu", [1, 1, 1, 0]),
    ("lt", [1, 0, 0, 0]), ("ltu", [1, 1, 1, 0]), ("num", [1, 0, 0, 1]), ("nan", [0, 1, 1, 0])])
def test_ordered_and_unordered_float_comparisons(cmp: str, expected: list[int]) -> None:
    src = kernel(PROLOGUE + f"""
\tld.global.f32 %f0, [%rd1];
\tld.global.f32 %f1, [%rd1+16];
\tsetp.{cmp}.f32 %p0, %f0, %f1;
\tselp.f32 %f2, 0f3F800000, 0f00000000, %p0;
\tst.global.f32 [%rd1], %f2;
""")
    buf = np.array([1, np.nan, 2, 3, 2, 2, np.nan, 3], np.float32)
    got = run(src, 1, 4, buf)
    np.testing.assert_array_equal(got[:4], expected)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_cvt_semantics_from_the_isa() -> None:
    f32, s8, u8, s32, f16 = TYPES["f32"], TYPES["s8"], TYPES["u8"], TYPES["s32"], TYPES["f16"]
    x = np.array([1.5, -2.5, 300.0, -300.0, np.nan, np.inf], np.float32)
    np.testing.assert_array_equal(convert(x, f32, s8, "rni", False, False), [2, -2, 127, -128, 0, 127])
    np.testing.assert_array_equal(convert(x, f32, u8, "rzi", False, False), [1, 0, 255, 0, 0, 255])
    np.testing.assert_array_equal(convert(x, f32, s32, "rmi", False, False)[:2], [1, -3])
    np.testing.assert_array_equal(convert(np.array([300, -1], np.int32), s32, s8, "", False, False), [44, -1])
    np.testing.assert_array_equal(convert(np.array([300, -1], np.int32), s32, u8, "", True, False), [255, 0])
    np.testing.assert_array_equal(convert(np.array([70000.0], np.float32), f32, f16, "", False, False), [np.inf])
    np.testing.assert_array_equal(convert(np.array([2.5, -0.5], np.float32), f32, f32, "rni", False, False), [2, -0])


def test_integer_division_and_shifts() -> None:
    src = kernel(PROLOGUE + """
\tld.global.s32 %r4, [%rd1];
\tld.global.s32 %r5, [%rd1+16];
\tdiv.s32 %r6, %r4, %r5;
\trem.s32 %r7, %r4, %r5;
\tshl.b32 %r8, %r6, 4;
\tshr.s32 %r9, %r4, 33;
\tshr.u32 %r10, %r4, 28;
\tst.global.s32 [%rd1], %r6;
\tst.global.s32 [%rd1+16], %r7;
\tst.global.s32 [%rd1+32], %r8;
\tst.global.s32 [%rd1+48], %r9;
\tst.global.s32 [%rd1+64], %r10;
""")
    buf = np.zeros(24, np.int32)
    buf[:8] = [7, -7, 7, -7, 2, 2, -2, 0]
    got = run(src, 1, 4, buf)
    np.testing.assert_array_equal(got[0:4], [3, -3, -3, -1])  # truncates toward zero; x/0 is all ones
    np.testing.assert_array_equal(got[4:8], [1, -1, 1, -7])  # the dividend's sign; x%0 is x
    np.testing.assert_array_equal(got[8:12], [48, -48, -48, -16])
    np.testing.assert_array_equal(got[12:16], [0, -1, 0, -1])  # shift >= 32 fills with the sign
    np.testing.assert_array_equal(got[16:20], [0, 15, 0, 15])


def test_min_max_nan_rules() -> None:
    src = kernel(PROLOGUE + """
\tld.global.f32 %f0, [%rd1];
\tld.global.f32 %f1, [%rd1+8];
\tmax.f32 %f2, %f0, %f1;
\tmax.NaN.f32 %f3, %f0, %f1;
\tst.global.f32 [%rd1], %f2;
\tst.global.f32 [%rd1+8], %f3;
""")
    got = run(src, 1, 2, np.array([np.nan, 1, 2, np.nan], np.float32))
    np.testing.assert_array_equal(got[:2], [2, 1])
    assert np.isnan(got[2:]).all()
    got = run(src, 1, 2, np.array([-0.0, 0.0, 0.0, -0.0], np.float32))
    assert not np.signbit(got).any()  # the ISA: +0.0 > -0.0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fma_rounds_once() -> None:
    a = np.array([1 + 2.0**-30, 0.1, 1e308, np.inf])
    b = np.array([1 - 2.0**-30, 10.0, 10.0, 0.0])
    c = np.array([-1.0, -1.0, -1e308, 1.0])
    got = fma64(a, b, c)
    assert got[0] == -(2.0**-60)  # unfused: 0.0
    assert got[1] == 5.551115123125783e-17  # 0.1*10 - 1 exactly, rounded once
    assert np.isinf(got[2]) and np.isnan(got[3])


def test_f16_registers_and_special_registers() -> None:
    src = kernel(PROLOGUE + """
\tmul.wide.s32 %rd2, %r3, 2;
\tadd.s64 %rd2, %rd0, %rd2;
\tld.global.b16 %h0, [%rd2];
\tmov.b16 %h1, 0x3C00;
\tadd.rn.f16 %h2, %h0, %h1;
\tcvt.f32.f16 %f0, %h2;
\tcvt.rn.f32.u32 %f1, %r1;
\tadd.f32 %f0, %f0, %f1;
\tcvt.rn.f16.f32 %h2, %f0;
\tst.global.b16 [%rd2], %h2;
""", regs="\t.reg .b16 %h<4>;")
    got = run(src, 2, 3, np.array([0.5, 1, 2, 3, 4, 65504], np.float16))
    np.testing.assert_array_equal(got, [1.5, 2, 3, 5, 6, 65504])  # 65504 + 2 rounds back down
