"""The list of supported instructions is consistent with the builders."""

from __future__ import annotations

import pytest
from tg_rdna.emulator import EmulatorError
from tg_rdna.emulator.catalog import supported_instructions
from tg_rdna.emulator.operands import parse_operand
from tg_rdna.emulator.valu import build_valu
from tg_rdna.emulator.valu_table import PACKED, VALU


def test_catalog_lists_the_core_instructions() -> None:
    names = supported_instructions()
    assert len(names) == len(set(names)) > 400
    for needed in ("v_exp_f32", "v_div_scale_f32", "v_add_co_ci_u32", "v_cmpx_gt_u32", "v_cmp_class_f32",
                   "s_and_saveexec_b32", "s_cbranch_execz", "global_load_d16_hi_b16", "ds_load_2addr_b32",
                   "s_waitcnt_depctr", "v_pk_fma_f16", "v_mad_u64_u32"):
        assert needed in names
    assert "v_sad_u32" not in names


@pytest.mark.parametrize("name", sorted(VALU) + sorted(PACKED))
def test_every_table_entry_builds(name: str) -> None:
    op = VALU.get(name) or PACKED[name]
    n = len(op.srcs) - (1 if op.accumulate else 0)
    ops = [parse_operand(f"v{i}") for i in range(n + 1)]
    assert build_valu(name, ops, ()).valu
    with pytest.raises(EmulatorError, match="source operands"):
        build_valu(name, ops + [parse_operand("v9")], ())
