"""Control flow: EXEC-masked branches, per-wave loops, LDS and barriers across the waves of a group."""

from __future__ import annotations

import numpy as np
import pytest
from rdna_emu_asm import Buffers, kernel, requires_llvm, run1, run_elementwise
from tg_rdna.emulator import EmulatorError, Memory

pytestmark = requires_llvm


def test_if_else_with_saveexec() -> None:
    # if (x > 10) x = x * 3 else x = x + 100
    body = """
  v_cmp_lt_u32_e32 vcc_lo, 10, v2
  s_and_saveexec_b32 s20, vcc_lo
  s_cbranch_execz .Lelse
  v_mul_lo_u32 v2, v2, 3
.Lelse:
  s_xor_b32 s21, exec_lo, s20
  s_mov_b32 exec_lo, s21
  s_cbranch_execz .Lend
  v_add_nc_u32 v2, 0x64, v2
.Lend:
  s_or_b32 exec_lo, exec_lo, s20
"""
    x = np.arange(64, dtype=np.uint32) * 3 % 23
    got = run_elementwise(body, x)
    np.testing.assert_array_equal(got, np.where(x > 10, x * 3, x + 100))


def test_execz_branch_skips_for_an_empty_exec() -> None:
    # every lane fails the compare: the branch must skip the store of 1 (and run the one of 2)
    body = """
  v_cmp_gt_u32_e32 vcc_lo, 0, v2
  s_and_saveexec_b32 s20, vcc_lo
  s_cbranch_execz .Lskip
  s_mov_b32 s22, 1
  s_branch .Lend
.Lskip:
  s_mov_b32 s22, 2
.Lend:
  s_or_b32 exec_lo, exec_lo, s20
  v_mov_b32 v2, s22
"""
    got = run_elementwise(body, np.arange(64, dtype=np.uint32))
    assert (got == 2).all()


def test_loop_with_a_different_trip_count_per_wave() -> None:
    # each wave loops (its wave index + 1) * 3 times: sum += i; per-wave scalar branches
    body = """
  s_load_b64 s[6:7], s[0:1], 0x0
  v_and_b32 v1, 0x3ff, v0
  v_lshrrev_b32 v2, 5, v1
  v_readfirstlane_b32 s10, v2
  s_add_u32 s10, s10, 1
  s_mul_i32 s10, s10, 3
  s_mov_b32 s11, 0
  v_mov_b32 v3, 0
.Lloop:
  v_add_nc_u32 v3, s11, v3
  s_add_u32 s11, s11, 1
  s_cmp_lg_u32 s11, s10
  s_cbranch_scc1 .Lloop
  v_lshlrev_b32 v1, 2, v1
  s_waitcnt lgkmcnt(0)
  global_store_b32 v1, v3, s[6:7]
  s_endpgm
"""
    out = run1(body, [], np.zeros(128, np.uint32), n=128, local=128)
    trips = (np.arange(128) // 32 + 1) * 3
    np.testing.assert_array_equal(out, trips * (trips - 1) // 2)


# work-group sum through LDS: every wave stores its values, barrier, wave 0's lane 0 adds all up
REDUCE = """
  s_load_b128 s[4:7], s[0:1], 0x0
  v_and_b32 v1, 0x3ff, v0
  s_lshl_b32 s3, s2, 7
  v_add_nc_u32 v2, s3, v1
  v_lshlrev_b32 v2, 2, v2
  v_lshlrev_b32 v3, 2, v1
  s_waitcnt lgkmcnt(0)
  global_load_b32 v4, v2, s[6:7]
  s_waitcnt vmcnt(0)
  ds_store_b32 v3, v4
  s_waitcnt lgkmcnt(0)
  s_barrier
  v_cmp_eq_u32_e32 vcc_lo, 0, v1
  s_and_saveexec_b32 s8, vcc_lo
  s_cbranch_execz .Lend
  v_mov_b32 v5, 0
  v_mov_b32 v6, 0
  s_mov_b32 s9, 0
.Lsum:
  ds_load_b32 v7, v6
  s_waitcnt lgkmcnt(0)
  v_add_nc_u32 v5, v5, v7
  v_add_nc_u32 v6, 4, v6
  s_add_u32 s9, s9, 1
  s_cmp_lg_u32 s9, 128
  s_cbranch_scc1 .Lsum
  v_mov_b32 v8, s2
  v_lshlrev_b32 v8, 2, v8
  global_store_b32 v8, v5, s[4:5]
.Lend:
  s_endpgm
"""


def test_lds_and_barrier_across_four_waves() -> None:
    x = np.arange(128 * 5, dtype=np.uint32) * 7 % 1000
    out = run1(REDUCE, [x], np.zeros(5, np.uint32), n=128 * 5, local=128, lds=512)
    np.testing.assert_array_equal(out, x.reshape(5, 128).sum(axis=1))


def test_lds_is_private_to_each_group() -> None:
    # each group writes its id into LDS word 0, barrier, everyone reads it back
    body = """
  s_load_b64 s[6:7], s[0:1], 0x0
  v_and_b32 v1, 0x3ff, v0
  v_mov_b32 v2, 0
  v_mov_b32 v3, s2
  v_cmp_eq_u32_e32 vcc_lo, 0, v1
  s_and_saveexec_b32 s8, vcc_lo
  ds_store_b32 v2, v3
  s_or_b32 exec_lo, exec_lo, s8
  s_waitcnt lgkmcnt(0)
  s_barrier
  ds_load_b32 v4, v2
  s_lshl_b32 s3, s2, 6
  v_add_nc_u32 v1, s3, v1
  v_lshlrev_b32 v1, 2, v1
  s_waitcnt lgkmcnt(0)
  global_store_b32 v1, v4, s[6:7]
  s_endpgm
"""
    out = run1(body, [], np.zeros(64 * 6, np.uint32), n=64 * 6, local=64, lds=16)
    np.testing.assert_array_equal(out, np.repeat(np.arange(6), 64))


def test_deadlocked_barrier_is_an_error() -> None:
    # wave 1 of the group skips the barrier (scalar branch) and ends: wave 0 would wait forever
    body = """
  v_and_b32 v1, 0x3ff, v0
  v_lshrrev_b32 v2, 5, v1
  v_readfirstlane_b32 s10, v2
  s_cmp_eq_u32 s10, 1
  s_cbranch_scc1 .Lout
  s_barrier
.Lout:
  s_endpgm
"""
    co = kernel(body)
    with pytest.raises(EmulatorError, match=r"deadlock: 1 wave\(s\) of work-group 0 wait at s_barrier"):
        co.launch("k", b"", (2,), (64,), Memory())


def test_barriers_at_different_places_are_an_error() -> None:
    body = """
  v_and_b32 v1, 0x3ff, v0
  v_lshrrev_b32 v2, 5, v1
  v_readfirstlane_b32 s10, v2
  s_cmp_eq_u32 s10, 1
  s_cbranch_scc1 .Lother
  s_barrier
  s_endpgm
.Lother:
  s_barrier
  s_endpgm
"""
    with pytest.raises(EmulatorError, match="different s_barrier"):
        kernel(body).launch("k", b"", (1,), (64,), Memory())


def test_endless_loop_hits_the_step_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_RDNA_EMU_MAX_STEPS", "5000")
    body = """
.Lspin:
  s_add_u32 s5, s5, 1
  s_branch .Lspin
"""
    with pytest.raises(EmulatorError, match="more than 5000 steps"):
        kernel(body).launch("k", b"", (1,), (32,), Memory())


def test_cmpx_writes_exec() -> None:
    body = """
  s_mov_b32 s20, exec_lo
  v_cmpx_gt_u32_e32 16, v2
  v_mov_b32 v2, 99
  s_mov_b32 exec_lo, s20
"""
    x = np.arange(64, dtype=np.uint32) % 32
    np.testing.assert_array_equal(run_elementwise(body, x), np.where(x < 16, 99, x))


def test_readlane_writelane() -> None:
    body = """
  v_readlane_b32 s20, v2, 5
  v_mov_b32 v3, s20
  v_writelane_b32 v3, s20, 0
  v_add_nc_u32 v2, v3, 1
"""
    x = np.arange(64, dtype=np.uint32) * 10
    want = np.repeat(np.array([50, 370]), 32) + 1
    np.testing.assert_array_equal(run_elementwise(body, x), want)


def test_many_workgroups_run_together() -> None:
    """2,000 waves run each instruction in one vectorized step (their speed is bench material, not a test's)."""
    from rdna_emu_asm import elementwise

    co = kernel(elementwise("  v_fma_f32 v2, v2, v3, 1.0", 2))
    n = 1000 * 64
    x = np.linspace(-5, 5, n).astype(np.float32)
    y = np.linspace(3, -3, n).astype(np.float32)
    bufs = Buffers()
    out = bufs.add(np.zeros(n, np.float32))
    bufs.add(x)
    bufs.add(y)
    co.launch("k", bufs.kernarg(), (1000,), (64,), bufs.mem)
    np.testing.assert_array_equal(bufs.get(out, x), (x.astype(np.float64) * y + 1).astype(np.float32))
    steps = co.last_steps
    assert steps == 13, steps  # one step per instruction for all 2,000 waves together


def test_large_grids_run_in_chunks_of_whole_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_RDNA_EMU_CHUNK_WAVES", "8")  # 2 groups of 4 waves at a time
    x = np.arange(128 * 5, dtype=np.uint32) * 7 % 1000
    out = run1(REDUCE, [x], np.zeros(5, np.uint32), n=128 * 5, local=128, lds=512)
    np.testing.assert_array_equal(out, x.reshape(5, 128).sum(axis=1))


def test_lds_is_not_zero_before_the_first_store() -> None:
    body = """
  s_load_b64 s[6:7], s[0:1], 0x0
  v_and_b32 v1, 0x3ff, v0
  v_lshlrev_b32 v1, 2, v1
  ds_load_b32 v2, v1
  s_waitcnt lgkmcnt(0)
  global_store_b32 v1, v2, s[6:7]
  s_endpgm
"""
    out = run1(body, [], np.zeros(32, np.uint32), n=32, lds=128)
    assert (out == 0xFFFFFFFF).all()
