"""Memory instruction widths and forms: 8/16-bit loads with extension, d16 halves, 64/96/128-bit, LDS."""

from __future__ import annotations

import numpy as np
from rdna_emu_asm import requires_llvm, run1

pytestmark = requires_llvm
U = np.uint32

HEAD = """
  s_load_b128 s[4:7], s[0:1], 0x0
  v_and_b32 v1, 0x3ff, v0
  s_waitcnt lgkmcnt(0)
"""


def test_narrow_loads_extend() -> None:
    raw = np.array([0x80, 0x7F, 0xFF, 0x01] * 16, np.uint8)
    body = HEAD + """
  v_lshlrev_b32 v2, 1, v1
  v_mov_b32 v10, 0x12345678
  v_mov_b32 v11, 0x12345678
  global_load_u8 v3, v1, s[6:7]
  global_load_i8 v4, v1, s[6:7]
  global_load_u16 v5, v2, s[6:7]
  global_load_i16 v6, v2, s[6:7]
  global_load_d16_b16 v10, v2, s[6:7]
  global_load_d16_hi_b16 v11, v2, s[6:7]
  v_lshlrev_b32 v7, 5, v1
  s_waitcnt vmcnt(0)
  global_store_b128 v7, v[3:6], s[4:5]
  global_store_b64 v7, v[10:11], s[4:5] offset:16
  s_endpgm
"""
    out = run1(body, [raw], np.zeros(32 * 8, U), n=32).reshape(32, 8)
    i = np.arange(32)
    u8 = raw[i].astype(U)
    u16 = raw.view(np.uint16)[i].astype(U)
    np.testing.assert_array_equal(out[:, 0], u8)
    np.testing.assert_array_equal(out[:, 1], raw[i].view(np.int8).astype(np.int32).view(U))
    np.testing.assert_array_equal(out[:, 2], u16)
    np.testing.assert_array_equal(out[:, 3], raw.view(np.int16)[i].astype(np.int32).view(U))
    np.testing.assert_array_equal(out[:, 4], 0x12340000 | u16)  # d16 keeps the high half
    np.testing.assert_array_equal(out[:, 5], 0x5678 | (u16 << 16))  # d16_hi keeps the low half


def test_wide_and_narrow_stores_with_vaddr_pairs() -> None:
    x = np.arange(32 * 4, dtype=U) * 0x01010101
    body = HEAD + """
  v_lshlrev_b32 v2, 4, v1
  v_add_co_u32 v8, vcc_lo, s6, v2
  v_mov_b32 v9, s7
  v_add_co_ci_u32_e32 v9, vcc_lo, 0, v9, vcc_lo
  global_load_b128 v[3:6], v[8:9], off
  global_load_b96 v[10:12], v[8:9], off offset:4
  v_add_co_u32 v8, vcc_lo, s4, v2
  v_mov_b32 v9, s5
  v_add_co_ci_u32_e32 v9, vcc_lo, 0, v9, vcc_lo
  s_waitcnt vmcnt(0)
  global_store_b8 v[8:9], v3, off
  global_store_b16 v[8:9], v4, off offset:2
  global_store_b96 v[8:9], v[10:12], off offset:4
  s_endpgm
"""
    out = run1(body, [x], np.zeros(32 * 4, U), n=32).reshape(32, 4)
    xx = x.reshape(32, 4)
    np.testing.assert_array_equal(out[:, 0], (xx[:, 0] & 0xFF) | ((xx[:, 1] & 0xFFFF) << 16))
    np.testing.assert_array_equal(out[:, 1:], np.concatenate([xx[:, 1:], np.zeros((32, 0), U)], axis=1))


def test_lds_widths() -> None:
    body = HEAD + """
  v_lshlrev_b32 v2, 3, v1
  v_mov_b32 v3, v1
  v_mov_b32 v4, 0x80
  v_mad_u32_u24 v4, v1, 0x10001, v4
  ds_store_b64 v2, v[3:4]
  s_waitcnt lgkmcnt(0)
  ds_load_u16 v5, v2 offset:4
  ds_load_i8 v6, v2 offset:4
  ds_load_b64 v[7:8], v2
  ds_store_b8 v2, v4 offset:1
  s_waitcnt lgkmcnt(0)
  ds_load_b32 v9, v2
  v_lshlrev_b32 v10, 5, v1
  s_waitcnt lgkmcnt(0)
  v_mov_b32 v11, v9
  global_store_b128 v10, v[5:8], s[4:5]
  global_store_b32 v10, v11, s[4:5] offset:16
  s_endpgm
"""
    out = run1(body, [np.zeros(1, U)], np.zeros(32 * 8, U), n=32, lds=256).reshape(32, 8)
    i = np.arange(32, dtype=U)
    hi = i * 0x10001 + 0x80
    np.testing.assert_array_equal(out[:, 0], hi & 0xFFFF)
    np.testing.assert_array_equal(out[:, 1], ((hi & 0xFF).astype(np.uint8).view(np.int8)).astype(np.int32).view(U))
    np.testing.assert_array_equal(out[:, 2], i)
    np.testing.assert_array_equal(out[:, 3], hi)
    np.testing.assert_array_equal(out[:, 4], i | ((hi & 0xFF) << 8))  # ds_store_b8 at byte 1


def test_lds_two_address_forms_and_cache_bits() -> None:
    body = HEAD + """
  v_lshlrev_b32 v2, 2, v1
  v_add_nc_u32 v3, 0x64, v1
  ds_store_2addr_b32 v2, v1, v3 offset1:64
  s_waitcnt lgkmcnt(0)
  s_barrier
  ds_load_2addr_stride64_b32 v[4:5], v2 offset1:1
  v_lshlrev_b32 v6, 3, v1
  s_waitcnt lgkmcnt(0)
  global_store_b64 v6, v[4:5], s[4:5] glc slc
  s_endpgm
"""
    out = run1(body, [np.zeros(1, U)], np.zeros((64, 2), U), n=64, local=64, lds=512)
    i = np.arange(64, dtype=U)
    np.testing.assert_array_equal(out[:, 0], i)  # word i
    np.testing.assert_array_equal(out[:, 1], i + 100)  # word i + 64 (stride64: offset1 counts 64 words)


def test_bpermute_reads_other_lanes() -> None:
    body = HEAD + """
  v_xor_b32 v2, 1, v1
  v_lshlrev_b32 v2, 2, v2
  v_mul_u32_u24 v3, v1, 10
  ds_bpermute_b32 v4, v2, v3
  v_lshlrev_b32 v6, 2, v1
  s_waitcnt lgkmcnt(0)
  global_store_b32 v6, v4, s[4:5]
  s_endpgm
"""
    out = run1(body, [np.zeros(1, U)], np.zeros(64, U), n=64, local=64)
    np.testing.assert_array_equal(out, (np.arange(64) ^ 1) * 10)
