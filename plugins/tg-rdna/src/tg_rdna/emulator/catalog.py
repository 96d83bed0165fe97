"""The instructions the emulator runs, by name: for documentation, reports and the emitter's tests."""

from __future__ import annotations

from tg_rdna.emulator import memops, salu, valu, valu_table

_CMP_TYPES = ("f16", "f32", "f64", "i16", "i32", "i64", "u16", "u32", "u64")
_FLOAT_CONDS = ("f", "lt", "eq", "le", "gt", "lg", "ge", "o", "u", "nge", "nlg", "ngt", "nle", "neq", "nlt", "t",
                "class")
_INT_CONDS = ("f", "lt", "eq", "le", "gt", "ne", "ge", "t")
_SOPP = ("s_endpgm", "s_barrier", "s_branch", "s_waitcnt", "s_waitcnt_vscnt", "s_waitcnt_vmcnt",
         "s_waitcnt_lgkmcnt", "s_waitcnt_expcnt", "s_waitcnt_depctr", "s_denorm_mode", "s_round_mode",
         "s_movk_i32", "s_addk_i32", "s_mulk_i32", "s_cmov_b32", "s_getpc_b64", "s_bitcmp0_b32", "s_bitcmp1_b32")


def supported_instructions() -> list[str]:
    """Every mnemonic (without _e32/_e64) the emulator executes."""
    names: set[str] = set(valu_table.VALU) | set(valu_table.PACKED) | set(valu._SPECIAL)
    for x in ("", "x"):
        for t in _CMP_TYPES:
            for c in _FLOAT_CONDS if t[0] == "f" else _INT_CONDS:
                names.add(f"v_cmp{x}_{c}_{t}")
    names |= set(salu._SOP2) | set(salu._SOP1) | set(salu._SAVEEXEC) | set(salu._BRANCH_COND) | set(salu.NOOPS)
    names |= set(_SOPP)
    for c in ("eq", "lg", "gt", "ge", "lt", "le"):
        names |= {f"s_cmp_{c}_i32", f"s_cmp_{c}_u32", f"s_cmpk_{c}_i32", f"s_cmpk_{c}_u32"}
    names |= {"s_cmp_eq_u64", "s_cmp_lg_u64"}
    names |= set(memops._SMEM)
    for space in ("global", "flat"):
        names |= {f"{space}_load_{s}" for s in memops._LOAD} | {f"{space}_store_{s}" for s in memops._STORE}
    names |= {f"ds_{k}_{s}" for k, table in memops._DS_SUFFIX.items() for s in table}
    names |= {f"ds_{k}_2addr_{st}b{w}" for k in ("load", "store") for st in ("", "stride64_") for w in (32, 64)}
    names.add("ds_bpermute_b32")
    names |= {"buffer_gl0_inv", "buffer_gl1_inv"}
    return sorted(names)
