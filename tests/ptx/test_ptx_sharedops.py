"""The emulator's ldmatrix and cp.async on hand-written PTX: the fragment layouts of the PTX ISA's ldmatrix tables, and
cp.async copies that reach shared memory only at the wait that covers them (and other threads only after bar.sync)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tg_ptx", reason="tg-ptx is not installed (nox -s ptx runs these tests)")

from tg_ptx.emulator import EmulatorError, GlobalMemory, compile_kernel, run_kernel  # noqa: E402

RNG = np.random.default_rng(15)
HEADER = ".version 7.8\n.target sm_80\n.address_size 64\n"


def kernel(body: str, shared: int = 2048) -> str:
    return (f"{HEADER}\n.visible .entry k(.param .u64 out, .param .u64 inp)\n{{\n"
            "\t.reg .pred %p<8>;\n\t.reg .b32 %r<32>;\n\t.reg .b64 %rd<8>;\n\t.reg .f32 %f<8>;\n"
            f"\t.shared .align 16 .b8 t[{shared}];\n"
            "\tld.param.u64 %rd0, [out];\n\tld.param.u64 %rd1, [inp];\n"
            "\tmov.u32 %r0, %tid.x;\n\tand.b32 %r1, %r0, 31;\n\tshr.u32 %r2, %r0, 5;\n"  # r1 lane, r2 warp
            f"{body}\n\tret;\n}}\n")


def run(source: str, block: int, out: np.ndarray, inp: np.ndarray, grid: int = 1) -> np.ndarray:
    memory = GlobalMemory()
    bufs = []
    for array in (out, inp):
        a = memory.alloc(array.nbytes)
        a.data[: array.nbytes] = array.view(np.uint8).reshape(-1)
        bufs.append(a)
    run_kernel(compile_kernel(source), memory, grid, block, [b.address for b in bufs])
    return bufs[0].data[: out.nbytes].view(out.dtype).copy()


# each thread copies 32 bytes of inp (its block's 2048) to shared memory with plain ld/st, then bar.sync
FILL = """
\tmov.u32 %r3, t;
\tshl.b32 %r4, %r0, 5;
\tadd.u32 %r5, %r3, %r4;
\tmov.u32 %r6, %ctaid.x;
\tmad.lo.u32 %r6, %r6, 2048, %r4;
\tcvt.u64.u32 %rd2, %r6;
\tadd.s64 %rd2, %rd1, %rd2;
\tld.global.v4.b32 {%r8, %r9, %r10, %r11}, [%rd2];
\tst.shared.v4.b32 [%r5], {%r8, %r9, %r10, %r11};
\tld.global.v4.b32 {%r8, %r9, %r10, %r11}, [%rd2+16];
\tst.shared.v4.b32 [%r5+16], {%r8, %r9, %r10, %r11};
\tbar.sync 0;
"""
# the row address lane l of warp w supplies: w * 1024 + ((5 * l) % 32) * 32 + 16 * ((l >> 4) & 1), a permutation
ROW_ADDRESS = """
\tmul.lo.u32 %r12, %r1, 5;
\tand.b32 %r12, %r12, 31;
\tshl.b32 %r12, %r12, 5;
\tshr.u32 %r13, %r1, 4;
\tand.b32 %r13, %r13, 1;
\tshl.b32 %r13, %r13, 4;
\tadd.u32 %r12, %r12, %r13;
\tshl.b32 %r13, %r2, 10;
\tadd.u32 %r12, %r12, %r13;
\tadd.u32 %r12, %r12, %r3;
"""


def row_address(w: int, lane: int) -> int:
    return w * 1024 + ((5 * lane) % 32) * 32 + 16 * ((lane >> 4) & 1)


def expected_ldmatrix(halves: np.ndarray, count: int, trans: bool, warps: int) -> np.ndarray:
    """The PTX ISA's ldmatrix fragment tables: lane 8j+r addresses row r of matrix j; lane l's register j holds row
    l/4, columns 2(l%4) and 2(l%4)+1 (with .trans: rows 2(l%4), 2(l%4)+1 of column l/4), lower column first."""
    out = np.zeros((warps * 32, 4), np.uint32)
    for w in range(warps):
        for j in range(count):
            m = np.array([halves[row_address(w, 8 * j + r) // 2:][:8] for r in range(8)], np.uint32)
            for lane in range(32):
                g, q = lane >> 2, lane & 3
                lo, hi = (m[2 * q, g], m[2 * q + 1, g]) if trans else (m[g, 2 * q], m[g, 2 * q + 1])
                out[w * 32 + lane, j] = lo | (hi << 16)
    return out


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("trans", [False, True])
@pytest.mark.parametrize("space", ["shared", "shared::cta"])
def test_ldmatrix_fragments_follow_the_isa_tables(count: int, trans: bool, space: str) -> None:
    regs = ", ".join(f"%r{16 + j}" for j in range(count))
    stores = "".join(f"\tst.global.b32 [%rd3+{4 * j}], %r{16 + j};\n" for j in range(count))
    src = kernel(FILL + ROW_ADDRESS + f"""
\tldmatrix.sync.aligned.m8n8.x{count}{'.trans' if trans else ''}.{space}.b16 {{{regs}}}, [%r12];
\tmul.wide.u32 %rd3, %r0, 16;
\tadd.s64 %rd3, %rd0, %rd3;
{stores}""")
    halves = RNG.integers(0, 1 << 16, 1024, dtype=np.uint16)
    got = run(src, 64, np.zeros(64 * 4, np.uint32), halves).reshape(64, 4)
    np.testing.assert_array_equal(got[:, :count], expected_ldmatrix(halves, count, trans, 2)[:, :count])


def test_ldmatrix_feeds_mma_as_its_a_and_b_fragments() -> None:
    """A 16x16 row-major and B 16x8 k-major in shared memory: ldmatrix.x4 gives A's fragment, ldmatrix.x2.trans B's,
    and mma.sync then computes A @ B."""
    a = RNG.uniform(-1, 1, (16, 16)).astype(np.float16)
    b = RNG.uniform(-1, 1, (16, 8)).astype(np.float16)
    inp = np.zeros(1024, np.float16)
    inp[:256], inp[256:384] = a.reshape(-1), b.reshape(-1)
    src = kernel(FILL + """
\tand.b32 %r12, %r1, 15;
\tshl.b32 %r12, %r12, 5;
\tshr.u32 %r13, %r1, 4;
\tshl.b32 %r13, %r13, 4;
\tadd.u32 %r12, %r12, %r13;
\tadd.u32 %r12, %r12, %r3;
\tldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r16, %r17, %r18, %r19}, [%r12];
\tand.b32 %r14, %r1, 15;
\tshl.b32 %r14, %r14, 4;
\tadd.u32 %r14, %r14, 512;
\tadd.u32 %r14, %r14, %r3;
\tldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%r20, %r21}, [%r14];
\tmov.f32 %f0, 0f00000000;
\tmma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%f1, %f2, %f3, %f4}, {%r16, %r17, %r18, %r19}, {%r20, %r21}, \
{%f0, %f0, %f0, %f0};
\tshr.u32 %r22, %r1, 2;
\tand.b32 %r23, %r1, 3;
\tshl.b32 %r23, %r23, 1;
\tmad.lo.u32 %r24, %r22, 8, %r23;
\tmul.wide.u32 %rd3, %r24, 4;
\tadd.s64 %rd3, %rd0, %rd3;
\tst.global.v2.f32 [%rd3], {%f1, %f2};
\tst.global.v2.f32 [%rd3+256], {%f3, %f4};
""")
    got = run(src, 32, np.zeros((16, 8), np.float32), inp).reshape(16, 8)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-6, atol=1e-6)


def test_ldmatrix_needs_the_whole_warp_and_aligned_rows() -> None:
    body = FILL + "\tsetp.lt.u32 %p0, %r1, 16;\n\t@%p0 ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%r16}, [%r3];\n"
    with pytest.raises(EmulatorError, match="all 32 threads"):
        run(kernel(body), 64, np.zeros(4, np.uint32), np.zeros(1024, np.uint16))
    body = FILL + "\tadd.u32 %r3, %r3, 8;\n\tldmatrix.sync.aligned.m8n8.x1.shared.b16 {%r16}, [%r3];\n"
    with pytest.raises(EmulatorError, match="multiple of 16"):
        run(kernel(body), 64, np.zeros(4, np.uint32), np.zeros(1024, np.uint16))


# -- cp.async -------------------------------------------------------------------------------------------------

# thread i copies bytes [16 i, 16 i + 16) of inp to shared [16 i, ...) (r5: its shared address, rd2: its source)
ISSUE = """
\tmov.u32 %r3, t;
\tshl.b32 %r4, %r0, 4;
\tadd.u32 %r5, %r3, %r4;
\tcvt.u64.u32 %rd2, %r4;
\tadd.s64 %rd2, %rd1, %rd2;
"""
# thread i reads the 16 bytes thread (i + 1) % 64 copied and stores them to out[16 i...]
READ_NEIGHBOUR = """
\tadd.u32 %r6, %r0, 1;
\tand.b32 %r6, %r6, 63;
\tshl.b32 %r6, %r6, 4;
\tadd.u32 %r6, %r6, %r3;
\tld.shared.v4.b32 {%r8, %r9, %r10, %r11}, [%r6];
\tcvt.u64.u32 %rd3, %r4;
\tadd.s64 %rd3, %rd0, %rd3;
\tst.global.v4.b32 [%rd3], {%r8, %r9, %r10, %r11};
"""


def neighbours(data: np.ndarray) -> np.ndarray:
    return np.roll(data.reshape(64, 16), -1, axis=0).reshape(-1)


@pytest.mark.parametrize("copy", [
    "cp.async.ca.shared.global [%r5], [%rd2], 16;\n\tcp.async.wait_all;",
    "cp.async.cg.shared::cta.global [%r5], [%rd2], 16;\n\tcp.async.commit_group;\n\tcp.async.wait_group 0;",
    "cp.async.ca.shared.global [%r5], [%rd2], 8;\n\tcp.async.ca.shared.global [%r5+8], [%rd2+8], 4;\n"
    "\tcp.async.commit_group;\n\tcp.async.ca.shared.global [%r5+12], [%rd2+12], 4;\n\tcp.async.commit_group;\n"
    "\tcp.async.wait_group 0;",
])
def test_cp_async_data_is_there_after_wait_and_barrier(copy: str) -> None:
    data = RNG.integers(0, 256, 1024, dtype=np.uint8)
    got = run(kernel(ISSUE + f"\t{copy}\n\tbar.sync 0;\n" + READ_NEIGHBOUR), 64, np.zeros(1024, np.uint8), data)
    np.testing.assert_array_equal(got, neighbours(data))


def test_cp_async_src_size_reads_that_many_bytes_and_fills_zeros() -> None:
    """src-size 0 copies 16 zeros and touches no global memory (its source may lie outside every buffer)."""
    src = kernel(ISSUE + """
\tand.b32 %r7, %r0, 3;
\tmul.lo.u32 %r7, %r7, 5;
\tsetp.eq.u32 %p0, %r7, 15;
\tselp.b32 %r7, 16, %r7, %p0;
\tsetp.eq.u32 %p1, %r7, 0;
\t@%p1 add.s64 %rd2, %rd2, 1048576;
\tcp.async.ca.shared.global [%r5], [%rd2], 16, %r7;
\tcp.async.wait_all;
\tbar.sync 0;
""" + READ_NEIGHBOUR)
    data = RNG.integers(1, 256, 1024, dtype=np.uint8)
    want = data.reshape(64, 16).copy()
    for i in range(64):
        want[i, [0, 5, 10, 16][i % 4]:] = 0
    got = run(src, 64, np.zeros(1024, np.uint8), data)
    np.testing.assert_array_equal(got, neighbours(want.reshape(-1)))


def test_reading_a_copy_before_its_wait_fails_loudly() -> None:
    src = kernel(ISSUE + "\tcp.async.ca.shared.global [%r5], [%rd2], 16;\n\tcp.async.commit_group;\n"
                 "\tbar.sync 0;\n" + READ_NEIGHBOUR)
    with pytest.raises(EmulatorError, match="still copying"):
        run(src, 64, np.zeros(1024, np.uint8), np.zeros(1024, np.uint8))


def test_reading_another_threads_copy_before_bar_sync_fails_loudly() -> None:
    src = kernel(ISSUE + "\tcp.async.ca.shared.global [%r5], [%rd2], 16;\n\tcp.async.wait_all;\n" + READ_NEIGHBOUR)
    with pytest.raises(EmulatorError, match="bar.sync"):
        run(src, 64, np.zeros(1024, np.uint8), np.zeros(1024, np.uint8))


def test_a_thread_sees_its_own_copy_right_after_its_wait() -> None:
    src = kernel(ISSUE + """
\tcp.async.ca.shared.global [%r5], [%rd2], 16;
\tcp.async.wait_all;
\tld.shared.v4.b32 {%r8, %r9, %r10, %r11}, [%r5];
\tcvt.u64.u32 %rd3, %r4;
\tadd.s64 %rd3, %rd0, %rd3;
\tst.global.v4.b32 [%rd3], {%r8, %r9, %r10, %r11};
""")
    data = RNG.integers(0, 256, 1024, dtype=np.uint8)
    np.testing.assert_array_equal(run(src, 64, np.zeros(1024, np.uint8), data), data)


def test_wait_group_n_leaves_the_n_most_recent_groups_in_flight() -> None:
    """Two groups; wait_group 1 completes the first only: its bytes read fine, the second group's are in flight."""
    issue = ISSUE + ("\tcp.async.ca.shared.global [%r5], [%rd2], 8;\n\tcp.async.commit_group;\n"
                     "\tcp.async.ca.shared.global [%r5+8], [%rd2+8], 8;\n\tcp.async.commit_group;\n"
                     "\tcp.async.wait_group 1;\n\tbar.sync 0;\n")
    first = issue + "\tld.shared.v2.b32 {%r8, %r9}, [%r5];\n"
    run(kernel(first), 64, np.zeros(4, np.uint8), np.zeros(1024, np.uint8))
    with pytest.raises(EmulatorError, match="still copying"):
        run(kernel(first + "\tld.shared.v2.b32 {%r8, %r9}, [%r5+8];\n"), 64, np.zeros(4, np.uint8),
            np.zeros(1024, np.uint8))


def test_a_store_over_a_copy_in_flight_fails_loudly() -> None:
    src = kernel(ISSUE + "\tcp.async.ca.shared.global [%r5], [%rd2], 16;\n\tst.shared.b32 [%r5], %r0;\n")
    with pytest.raises(EmulatorError, match="still copying"):
        run(src, 64, np.zeros(4, np.uint8), np.zeros(1024, np.uint8))


@pytest.mark.parametrize(("copy", "message"), [
    ("cp.async.cg.shared.global [%r5], [%rd2], 8;", "cp-size of 16"),
    ("cp.async.ca.shared.global [%r5], [%rd2], 2;", "4, 8 or 16"),
    ("cp.async.ca.shared.global [%r5+4], [%rd2], 16;", "misaligned"),
    ("cp.async.ca.shared.global [%r5], [%rd2], 8, 12;", "exceeds"),
])
def test_bad_copies_are_refused(copy: str, message: str) -> None:
    with pytest.raises(EmulatorError, match=message):
        run(kernel(ISSUE + f"\t{copy}\n"), 64, np.zeros(4, np.uint8), np.zeros(1024, np.uint8))
