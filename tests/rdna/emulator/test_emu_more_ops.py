"""More VALU forms: compare classes, byte permutes, f64 basics, rtz packing, VOP3 op_sel on f16."""

from __future__ import annotations

import numpy as np
from rdna_emu_asm import requires_llvm, run1, run_elementwise

pytestmark = requires_llvm
F = np.float32
U = np.uint32


def test_cmp_class() -> None:
    x = np.array([np.nan, -np.inf, -1, -1e-40, -0.0, 0.0, 1e-40, 1, np.inf], F)
    # mask: quiet NaN (bit 1) | -0 (bit 5) | +denormal (bit 7) | +inf (bit 9)
    got = run_elementwise("  v_mov_b32 v3, 0x2a2\n  v_cmp_class_f32_e64 s20, v2, v3\n"
                          "  v_cndmask_b32_e64 v2, 0, 1, s20", x, out_dtype=U)
    np.testing.assert_array_equal(got, [1, 0, 0, 0, 1, 0, 1, 0, 1])


def test_perm_bswap_and_selectors() -> None:
    x = np.array([0x11223344, 0x80FF7F01], U)
    got = run_elementwise("  v_perm_b32 v2, 0, v2, 0x10203", x)
    np.testing.assert_array_equal(got, x.byteswap())
    # 0x0c: zero byte, 0x0d+: 0xff, 0x09: the sign of byte 3 of the low source, replicated
    got = run_elementwise("  v_perm_b32 v2, 0, v2, 0x90d0c00", x)
    want = [(int(v) & 0xFF) | 0xFF << 16 | (0xFF if v >> 31 else 0) << 24 for v in x]
    np.testing.assert_array_equal(got, want)


def test_float64_basics() -> None:
    a = np.array([1.5, -2.25, 1e300, 3.0], np.float64)
    b = np.array([2.0, 0.5, 1e10, 1 / 3], np.float64)
    body = """
  s_load_b64 s[6:7], s[0:1], 0x0
  s_load_b128 s[8:11], s[0:1], 0x8
  v_and_b32 v1, 0x3ff, v0
  v_lshlrev_b32 v5, 3, v1
  v_lshlrev_b32 v1, 3, v1
  s_waitcnt lgkmcnt(0)
  global_load_b64 v[12:13], v5, s[8:9]
  global_load_b64 v[14:15], v5, s[10:11]
  s_waitcnt vmcnt(0)
  v_mul_f64 v[12:13], v[12:13], v[14:15]
  v_add_f64 v[12:13], v[12:13], 1.0
  v_cvt_f32_f64 v2, v[12:13]
  v_cvt_i32_f64 v3, v[12:13]
  global_store_b64 v1, v[2:3], s[6:7]
  s_endpgm
"""
    out = run1(body, [a, b], np.zeros((4, 2), U), n=4)
    with np.errstate(over="ignore", invalid="ignore"):
        want = a * b + 1
        np.testing.assert_array_equal(out[:, 0].view(F), want.astype(F))
    np.testing.assert_array_equal(out[:, 1].view(np.int32), [4, -0, 2 ** 31 - 1, 2])


def test_cvt_pk_rtz_truncates() -> None:
    a = np.array([1.0009765625 + 2 ** -12, -1.0009765625 - 2 ** -12, 70000, 0.1], F)
    got = run_elementwise("  v_cvt_pk_rtz_f16_f32 v2, v2, 1.0", a, out_dtype=U)
    lo = (got & 0xFFFF).astype(np.uint16).view(np.float16)
    np.testing.assert_array_equal(lo, np.array([1.0009765625, -1.0009765625, 65504, 0.0999755859375], np.float16))
    assert ((got >> 16) == 0x3C00).all()


def test_f16_vop3_op_sel_reads_and_writes_high_halves() -> None:
    lo = np.array([1, 2], np.float16)
    hi = np.array([10, 20], np.float16)
    packed = lo.view(np.uint16).astype(U) | (hi.view(np.uint16).astype(U) << 16)
    # high half = hi * lo + lo (op_sel picks src0's high half and writes the destination's high half)
    got = run_elementwise("  v_fma_f16 v2, v2, v2, v2 op_sel:[1,0,0,1]", packed)
    np.testing.assert_array_equal((got >> 16).astype(np.uint16).view(np.float16), hi * lo + lo)
    np.testing.assert_array_equal((got & 0xFFFF).astype(np.uint16).view(np.float16), lo)


def test_med3_clamps() -> None:
    x = np.array([-1, 0.25, 2, np.nan, -0.0], F)
    got = run_elementwise("  v_med3_f32 v2, v2, 0, 1.0", x)
    np.testing.assert_array_equal(got, [0, 0.25, 1, 0, 0])  # NaN: min(NaN, 0, 1) = 0
