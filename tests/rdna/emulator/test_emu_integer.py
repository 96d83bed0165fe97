"""Integer VALU/SALU semantics: 64-bit pairs with carries, shifts, bit fields, multiplies, compares."""

from __future__ import annotations

import numpy as np
from rdna_emu_asm import requires_llvm, run1, run_elementwise

pytestmark = requires_llvm
U = np.uint32
M = 0xFFFFFFFF


def test_64bit_add_sub_through_carries() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2 ** 64, 64, dtype=np.uint64)
    b = rng.integers(0, 2 ** 64, 64, dtype=np.uint64)
    a[:4] = [2 ** 64 - 1, 2 ** 32 - 1, 0, 2 ** 63]
    b[:4] = [1, 1, 1, 2 ** 63]
    body = """
  s_load_b64 s[6:7], s[0:1], 0x0
  s_load_b128 s[8:11], s[0:1], 0x8
  v_and_b32 v1, 0x3ff, v0
  v_lshlrev_b32 v1, 3, v1
  s_waitcnt lgkmcnt(0)
  global_load_b64 v[2:3], v1, s[8:9]
  global_load_b64 v[4:5], v1, s[10:11]
  s_waitcnt vmcnt(0)
  v_add_co_u32 v6, vcc_lo, v2, v4
  v_add_co_ci_u32_e32 v7, vcc_lo, v3, v5, vcc_lo
  v_sub_co_u32 v8, s12, v6, v4
  v_sub_co_ci_u32_e64 v9, s12, v7, v5, s12
  v_xor_b32 v8, v8, v2
  v_xor_b32 v9, v9, v3
  v_or_b32 v8, v8, v9
  v_lshlrev_b64 v[10:11], 1, v[6:7]
  global_store_b64 v1, v[6:7], s[6:7]
  global_store_b32 v1, v8, s[6:7] offset:512
  global_store_b64 v1, v[10:11], s[6:7] offset:1024
  s_endpgm
"""
    out = run1(body, [a, b], np.zeros(64 * 3, np.uint64), n=64, local=64)
    np.testing.assert_array_equal(out[:64], a + b)  # wraps mod 2^64
    assert (out[64:128].view(U)[::2] == 0).all()  # (a + b) - b == a
    np.testing.assert_array_equal(out[128:], (a + b) << np.uint64(1))


def test_mad_u64_u32_and_mul_hi() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2 ** 32, 64, dtype=np.uint64).astype(U)
    b = rng.integers(0, 2 ** 32, 64, dtype=np.uint64).astype(U)
    a[0], b[0] = M, M
    got = run_elementwise("  v_mul_hi_u32 v2, v2, v3", a, b)
    np.testing.assert_array_equal(got, ((a.astype(np.uint64) * b) >> np.uint64(32)).astype(U))
    got = run_elementwise("  v_mul_lo_u32 v2, v2, v3", a, b)
    np.testing.assert_array_equal(got, a * b)
    got = run_elementwise("  v_mul_hi_i32 v2, v2, v3", a, b)
    want = ((a.view(np.int32).astype(np.int64) * b.view(np.int32)) >> 32).astype(np.int32).view(U)
    np.testing.assert_array_equal(got, want)
    # (a*b + (b<<32 | a)) mod 2^64, high half
    got = run_elementwise("  v_mov_b32 v4, v2\n  v_mov_b32 v5, v3\n"
                          "  v_mad_u64_u32 v[6:7], null, v2, v3, v[4:5]\n  v_mov_b32 v2, v7", a, b)
    full = (a.astype(np.uint64) * b + ((b.astype(np.uint64) << np.uint64(32)) | a))
    np.testing.assert_array_equal(got, (full >> np.uint64(32)).astype(U))


def test_integer_division_sequence() -> None:
    # unsigned 32-bit division the way compilers emit it: float reciprocal estimate + two corrections
    rng = np.random.default_rng(4)
    n = rng.integers(0, 2 ** 32, 64, dtype=np.uint64).astype(U)
    d = rng.integers(1, 2 ** 20, 64, dtype=np.uint64).astype(U)
    d[:3] = [1, M, 7]
    body = """
  v_cvt_f32_u32 v4, v3
  v_rcp_iflag_f32 v4, v4
  s_waitcnt_depctr 0xfff
  v_mul_f32 v4, 0x4f7ffffe, v4
  v_cvt_u32_f32 v4, v4
  v_sub_nc_u32 v5, 0, v3
  v_mul_lo_u32 v5, v5, v4
  v_mul_hi_u32 v5, v4, v5
  v_add_nc_u32 v4, v4, v5
  v_mul_hi_u32 v4, v2, v4
  v_mul_lo_u32 v5, v4, v3
  v_sub_nc_u32 v5, v2, v5
  v_add_nc_u32 v6, 1, v4
  v_sub_nc_u32 v7, v5, v3
  v_cmp_ge_u32_e32 vcc_lo, v5, v3
  v_cndmask_b32_e32 v4, v4, v6, vcc_lo
  v_cndmask_b32_e32 v5, v5, v7, vcc_lo
  v_add_nc_u32 v6, 1, v4
  v_cmp_ge_u32_e32 vcc_lo, v5, v3
  v_cndmask_b32_e32 v2, v4, v6, vcc_lo
"""
    np.testing.assert_array_equal(run_elementwise(body, n, d), n // d)


def test_shifts_bitfields_and_compares() -> None:
    a = np.array([0x80000001, 0x12345678, 5, M], U)
    s = np.array([1, 33, 0, 31], U)  # shift amounts use the low 5 bits
    np.testing.assert_array_equal(run_elementwise("  v_lshlrev_b32 v2, v3, v2", a, s), a << (s & 31))
    np.testing.assert_array_equal(run_elementwise("  v_lshrrev_b32 v2, v3, v2", a, s), a >> (s & 31))
    np.testing.assert_array_equal(run_elementwise("  v_ashrrev_i32 v2, v3, v2", a, s),
                                  (a.view(np.int32) >> (s & 31).astype(np.int32)).view(U))
    np.testing.assert_array_equal(run_elementwise("  v_bfe_u32 v2, v2, 4, 8", a), (a >> 4) & 0xFF)
    np.testing.assert_array_equal(run_elementwise("  v_bfe_i32 v2, v2, 28, 4", a),
                                  ((a.view(np.int32) << 0) >> 28).view(U))
    # v_cmp to an SGPR mask, then select
    got = run_elementwise("  v_cmp_lt_i32_e64 s20, v2, v3\n  v_cndmask_b32_e64 v2, 7, 9, s20", a, s)
    np.testing.assert_array_equal(got, np.where(a.view(np.int32) < s.view(np.int32), 9, 7))
    got = run_elementwise("  v_cmp_gt_u32_e32 vcc_lo, v2, v3\n  v_cndmask_b32_e32 v2, 7, v2, vcc_lo", a, s)
    np.testing.assert_array_equal(got, np.where(a > s, a, 7))


def test_scalar_alu_and_scc() -> None:
    body = """
  s_load_b64 s[6:7], s[0:1], 0x0
  v_mov_b32 v1, 0
  s_mov_b32 s10, -1
  s_add_u32 s11, s10, 2
  s_addc_u32 s12, 0, 0
  s_sub_u32 s13, 1, 2
  s_subb_u32 s14, 5, 0
  s_cmp_lt_i32 s10, 0
  s_cselect_b32 s15, 11, 22
  s_and_not1_b32 s16, 0xff, 0x0f
  s_lshl_b64 s[18:19], s[10:11], 4
  s_mov_b32 s21, 0xabcd
  s_bfe_u32 s17, s21, 0x80004
  s_mul_i32 s20, s10, 7
  s_waitcnt lgkmcnt(0)
  v_mov_b32 v2, s11
  v_mov_b32 v3, s12
  v_mov_b32 v4, s13
  v_mov_b32 v5, s14
  global_store_b128 v1, v[2:5], s[6:7]
  v_mov_b32 v2, s15
  v_mov_b32 v3, s16
  v_mov_b32 v4, s18
  v_mov_b32 v5, s19
  global_store_b128 v1, v[2:5], s[6:7] offset:16
  v_mov_b32 v2, s17
  v_mov_b32 v3, s20
  global_store_b64 v1, v[2:3], s[6:7] offset:32
  s_endpgm
"""
    out = run1(body, [], np.zeros(10, U), n=1)
    assert list(out) == [1, 1, M, 4, 11, 0xF0, 0xFFFFFFF0, 0x1F, 0xBC, (-7) & M]


def test_64bit_literals_extend_by_signedness() -> None:
    body = """
  v_ashrrev_i64 v[4:5], 1, 0x80000000
  v_lshrrev_b64 v[6:7], 1, 0x80000000
  v_xor_b32 v2, v5, v7
"""
    got = run_elementwise(body, np.zeros(32, U))
    assert (got == 0xFFFFFFFF).all()  # i64: 0xffffffff80000000 >> 1 (high word all ones); b64: high word 0
