"""First light: a copy kernel runs and the basic descriptor state is right."""

from __future__ import annotations

import numpy as np
from rdna_emu_asm import requires_llvm, run1

pytestmark = requires_llvm

# out[i] = in[i] * 2 + 1 for a 1-D grid: i = group * 64 + tid.x
COPY = """
  s_load_b128 s[4:7], s[0:1], 0x0
  v_and_b32 v1, 0x3ff, v0
  s_lshl_b32 s8, s2, 6
  v_add_nc_u32 v1, s8, v1
  v_lshlrev_b32 v1, 2, v1
  s_waitcnt lgkmcnt(0)
  global_load_b32 v2, v1, s[6:7]
  s_waitcnt vmcnt(0)
  v_fma_f32 v2, v2, 2.0, 1.0
  global_store_b32 v1, v2, s[4:5]
  s_endpgm
"""


def test_copy_kernel() -> None:
    x = np.arange(256, dtype=np.float32)
    out = run1(COPY, [x], np.zeros(256, np.float32), n=256, local=64)
    np.testing.assert_array_equal(out, x * 2 + 1)


def test_disassembly_lists_the_program() -> None:
    from rdna_emu_asm import kernel

    text = kernel(COPY).disassembly()
    assert "global_load_b32 v2, v1, s[6:7]" in text and text.splitlines()[-1].endswith("s_endpgm")
