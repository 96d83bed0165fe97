"""Builds scalar instructions (SOP1/SOP2/SOPC/SOPK) and program control (SOPP) into steps.

Values are (k,) arrays, one per wave of the step.  SCC follows the reference: carries/borrows for
``s_add_u32``/``s_sub_u32`` (and the ``c``/``b`` forms that consume it), signed overflow for the
``_i32`` add/sub, "result != 0" for bit operations and shifts.  Branch targets come from the encoded
signed word offset: target = address + 4 + 4 * simm16.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tg_rdna.emulator.errors import EmulatorError
from tg_rdna.emulator.operands import EXEC_LO, VCC_LO, Operand
from tg_rdna.emulator.program import Instruction
from tg_rdna.emulator.state import U32, U64, Ctx
from tg_rdna.emulator.step import BARRIER, BRANCH, END, Built, regs_of

I32, I64 = np.int32, np.int64
M32 = U64(0xFFFFFFFF)
Fn = Callable[..., Any]
EXEC = Operand("s", EXEC_LO, text="exec_lo")


def _nz(x: np.ndarray) -> np.ndarray:
    return (x != 0).astype(U32)


def _shift_amount(b: np.ndarray, bits: int) -> np.ndarray:
    return (b & (bits - 1)).astype(U64)


# name -> (dst type, src types, fn(a, b, scc) -> (result, new scc or None))
_SOP2: dict[str, tuple[str, tuple[str, str], Fn]] = {
    "s_add_u32": ("u64", ("u32", "u32"), lambda a, b, c: (a.astype(U64) + b, (a.astype(U64) + b) >> U64(32))),
    "s_addc_u32": ("u64", ("u32", "u32"), lambda a, b, c: (a.astype(U64) + b + c, (a.astype(U64) + b + c) >> U64(32))),
    "s_sub_u32": ("u64", ("u32", "u32"), lambda a, b, c: (a.astype(U64) - b, (b > a))),
    "s_subb_u32": ("u64", ("u32", "u32"), lambda a, b, c: (a.astype(U64) - b - c, (b.astype(U64) + c > a))),
    "s_add_i32": ("i64", ("i32", "i32"), lambda a, b, c: _ovf(a.astype(I64) + b)),
    "s_sub_i32": ("i64", ("i32", "i32"), lambda a, b, c: _ovf(a.astype(I64) - b)),
    "s_mul_i32": ("i64", ("i32", "i32"), lambda a, b, c: (a.astype(I64) * b, None)),
    "s_mul_hi_u32": ("u64", ("u32", "u32"), lambda a, b, c: ((a.astype(U64) * b) >> U64(32), None)),
    "s_mul_hi_i32": ("i64", ("i32", "i32"), lambda a, b, c: ((a.astype(I64) * b) >> I64(32), None)),
    "s_and_b32": ("u32", ("u32", "u32"), lambda a, b, c: (a & b, _nz(a & b))),
    "s_or_b32": ("u32", ("u32", "u32"), lambda a, b, c: (a | b, _nz(a | b))),
    "s_xor_b32": ("u32", ("u32", "u32"), lambda a, b, c: (a ^ b, _nz(a ^ b))),
    "s_nand_b32": ("u32", ("u32", "u32"), lambda a, b, c: (~(a & b), _nz(~(a & b)))),
    "s_nor_b32": ("u32", ("u32", "u32"), lambda a, b, c: (~(a | b), _nz(~(a | b)))),
    "s_xnor_b32": ("u32", ("u32", "u32"), lambda a, b, c: (~(a ^ b), _nz(~(a ^ b)))),
    "s_and_not1_b32": ("u32", ("u32", "u32"), lambda a, b, c: (a & ~b, _nz(a & ~b))),
    "s_or_not1_b32": ("u32", ("u32", "u32"), lambda a, b, c: (a | ~b, _nz(a | ~b))),
    "s_and_b64": ("u64", ("u64", "u64"), lambda a, b, c: (a & b, _nz(a & b))),
    "s_or_b64": ("u64", ("u64", "u64"), lambda a, b, c: (a | b, _nz(a | b))),
    "s_xor_b64": ("u64", ("u64", "u64"), lambda a, b, c: (a ^ b, _nz(a ^ b))),
    "s_and_not1_b64": ("u64", ("u64", "u64"), lambda a, b, c: (a & ~b, _nz(a & ~b))),
    "s_or_not1_b64": ("u64", ("u64", "u64"), lambda a, b, c: (a | ~b, _nz(a | ~b))),
    "s_lshl_b32": ("u64", ("u32", "u32"), lambda a, b, c: _m32(a.astype(U64) << _shift_amount(b, 32))),
    "s_lshr_b32": ("u32", ("u32", "u32"), lambda a, b, c: (a >> (b & U32(31)), _nz(a >> (b & U32(31))))),
    "s_ashr_i32": ("i32", ("i32", "u32"), lambda a, b, c: (a >> (b & U32(31)).astype(I32),
                                                           _nz(a >> (b & U32(31)).astype(I32)))),
    "s_lshl_b64": ("u64", ("u64", "u32"), lambda a, b, c: (a << _shift_amount(b, 64), _nz(a << _shift_amount(b, 64)))),
    "s_lshr_b64": ("u64", ("u64", "u32"), lambda a, b, c: (a >> _shift_amount(b, 64), _nz(a >> _shift_amount(b, 64)))),
    "s_ashr_i64": ("i64", ("i64", "u32"), lambda a, b, c: (a >> _shift_amount(b, 64).astype(I64),
                                                           _nz(a >> _shift_amount(b, 64).astype(I64)))),
    "s_lshl1_add_u32": ("u64", ("u32", "u32"), lambda a, b, c: _carry32((a.astype(U64) << U64(1) & M32) + b)),
    "s_lshl2_add_u32": ("u64", ("u32", "u32"), lambda a, b, c: _carry32((a.astype(U64) << U64(2) & M32) + b)),
    "s_lshl3_add_u32": ("u64", ("u32", "u32"), lambda a, b, c: _carry32((a.astype(U64) << U64(3) & M32) + b)),
    "s_lshl4_add_u32": ("u64", ("u32", "u32"), lambda a, b, c: _carry32((a.astype(U64) << U64(4) & M32) + b)),
    "s_min_u32": ("u32", ("u32", "u32"), lambda a, b, c: (np.minimum(a, b), (a < b).astype(U32))),
    "s_max_u32": ("u32", ("u32", "u32"), lambda a, b, c: (np.maximum(a, b), (a > b).astype(U32))),
    "s_min_i32": ("i32", ("i32", "i32"), lambda a, b, c: (np.minimum(a, b), (a < b).astype(U32))),
    "s_max_i32": ("i32", ("i32", "i32"), lambda a, b, c: (np.maximum(a, b), (a > b).astype(U32))),
    "s_cselect_b32": ("u32", ("u32", "u32"), lambda a, b, c: (np.where(c == 1, a, b), None)),
    "s_cselect_b64": ("u64", ("u64", "u64"), lambda a, b, c: (np.where(c == 1, a, b), None)),
    "s_bfe_u32": ("u64", ("u32", "u32"), lambda a, b, c: _bfe(a, b, False)),
    "s_bfe_i32": ("u64", ("u32", "u32"), lambda a, b, c: _bfe(a, b, True)),
    "s_bfm_b32": ("u64", ("u32", "u32"), lambda a, b, c: ((((U64(1) << _shift_amount(a, 32)) - U64(1))
                                                          << _shift_amount(b, 32)) & M32, None)),
    "s_pack_ll_b32_b16": ("u32", ("u32", "u32"), lambda a, b, c: ((a & U32(0xFFFF)) | (b << U32(16)), None)),
    "s_pack_lh_b32_b16": ("u32", ("u32", "u32"), lambda a, b, c: ((a & U32(0xFFFF)) | (b & U32(0xFFFF0000)), None)),
    "s_pack_hh_b32_b16": ("u32", ("u32", "u32"), lambda a, b, c: ((a >> U32(16)) | (b & U32(0xFFFF0000)), None)),
}


def _ovf(total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return total, ((total > 2 ** 31 - 1) | (total < -(2 ** 31))).astype(U32)


def _m32(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = x & M32
    return r, _nz(r)


def _carry32(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x & M32, (x >> U64(32)).astype(U32)


def _bfe(a: np.ndarray, b: np.ndarray, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    off = (b & U32(31)).astype(I64)
    width = ((b >> U32(16)) & U32(0x7F)).astype(I64)
    width = np.minimum(width, 32)
    field = (a.astype(I64) >> off) & ((I64(1) << width) - 1)
    if signed:
        sign = (field >> np.maximum(width - 1, 0)) & 1
        field = np.where((width > 0) & (sign == 1), field - (I64(1) << width), field)
    r = field.astype(U64) & M32
    return r, _nz(r)


_SOP1: dict[str, tuple[str, str, Fn]] = {
    "s_mov_b32": ("u32", "u32", lambda a: (a, None)),
    "s_mov_b64": ("u64", "u64", lambda a: (a, None)),
    "s_not_b32": ("u32", "u32", lambda a: (~a, _nz(~a))),
    "s_not_b64": ("u64", "u64", lambda a: (~a, _nz(~a))),
    "s_abs_i32": ("i32", "i32", lambda a: (np.abs(a), _nz(np.abs(a)))),
    "s_sext_i32_i8": ("i32", "i32", lambda a: (a.astype(np.int8).astype(I32), None)),
    "s_sext_i32_i16": ("i32", "i32", lambda a: (a.astype(np.int16).astype(I32), None)),
    "s_bcnt1_i32_b32": ("u32", "u32", lambda a: _popcount(a)),
    "s_ctz_i32_b32": ("u32", "u32", lambda a: (_ctz(a), None)),
    "s_clz_i32_u32": ("u32", "u32", lambda a: (_clz(a), None)),
}


def _popcount(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.zeros(a.shape, U32)
    for bit in range(32):
        n += (a >> U32(bit)) & U32(1)
    return n, _nz(n)


def _ctz(a: np.ndarray) -> np.ndarray:
    n = np.full(a.shape, 0xFFFFFFFF, U64)
    for bit in range(31, -1, -1):
        n = np.where((a >> U32(bit)) & U32(1) == 1, U64(bit), n)
    return n.astype(U32)


def _clz(a: np.ndarray) -> np.ndarray:
    n = np.full(a.shape, 0xFFFFFFFF, U64)
    for bit in range(32):
        n = np.where((a >> U32(bit)) & U32(1) == 1, U64(31 - bit), n)
    return n.astype(U32)


_SAVEEXEC: dict[str, Fn] = {
    "s_and_saveexec_b32": lambda s, e: s & e,
    "s_or_saveexec_b32": lambda s, e: s | e,
    "s_xor_saveexec_b32": lambda s, e: s ^ e,
    "s_and_not1_saveexec_b32": lambda s, e: s & ~e,
    "s_and_not0_saveexec_b32": lambda s, e: ~s & e,
    "s_or_not1_saveexec_b32": lambda s, e: s | ~e,
}
_CMP: dict[str, Fn] = {"eq": np.equal, "lg": np.not_equal, "gt": np.greater, "ge": np.greater_equal,
                       "lt": np.less, "le": np.less_equal}
_BRANCH_COND: dict[str, Fn] = {
    "s_cbranch_scc0": lambda ctx: ctx.st.scc[ctx.w] == 0,
    "s_cbranch_scc1": lambda ctx: ctx.st.scc[ctx.w] == 1,
    "s_cbranch_vccz": lambda ctx: ctx.sreg(VCC_LO) == 0,
    "s_cbranch_vccnz": lambda ctx: ctx.sreg(VCC_LO) != 0,
    "s_cbranch_execz": lambda ctx: ctx.sreg(EXEC_LO) == 0,
    "s_cbranch_execnz": lambda ctx: ctx.sreg(EXEC_LO) != 0,
}
NOOPS = frozenset(["s_nop", "s_delay_alu", "s_sendmsg", "s_clause", "s_setprio", "s_sleep", "s_inst_prefetch",
                   "s_icache_inv", "s_ttracedata", "s_code_end"])


def _set_scc(ctx: Ctx, scc: Any) -> None:
    if scc is not None:
        ctx.st.scc[ctx.w] = np.broadcast_to(np.asarray(scc).astype(U32), (ctx.k,))


def build_salu(ins: Instruction, name: str, ops: list[Operand]) -> Built:
    if name in _SOP2:
        dt, (ta, tb), fn = _SOP2[name]
        dst, a, b = ops

        def run2(ctx: Ctx) -> None:
            r, scc = fn(ctx.sread(a, ta), ctx.sread(b, tb), ctx.st.scc[ctx.w].astype(U64))
            ctx.swrite(dst, "b64" if dt.endswith("64") and dst.count == 2 else "b32",
                       np.asarray(r).astype(np.int64 if dt[0] == "i" else U64).astype(U64))
            _set_scc(ctx, scc)
        return Built(run2, regs_of([a, b]), regs_of([dst]))
    if name in _SOP1:
        dt, ta, fn1 = _SOP1[name]
        dst, a = ops

        def run1(ctx: Ctx) -> None:
            r, scc = fn1(ctx.sread(a, ta))
            ctx.swrite(dst, dt, r)
            _set_scc(ctx, scc)
        return Built(run1, regs_of([a]), regs_of([dst]))
    if name in _SAVEEXEC:
        dst, a = ops
        op = _SAVEEXEC[name]

        def runs(ctx: Ctx) -> None:
            old = ctx.sreg(EXEC_LO).copy()
            new = op(ctx.sread(a, "u32"), old)
            ctx.swrite(dst, "u32", old)
            ctx.set_sreg(EXEC_LO, new)
            _set_scc(ctx, _nz(new))
        return Built(runs, regs_of([a, EXEC]), regs_of([dst, EXEC]))
    if name.startswith("s_cmp_") or name.startswith("s_cmpk_"):
        _, _, cond, typ = name.split("_")
        a, b = ops
        cmp = _CMP[cond]

        def runc(ctx: Ctx) -> None:
            _set_scc(ctx, cmp(ctx.sread(a, typ), ctx.sread(b, typ)))
        return Built(runc, regs_of([a, b]), frozenset())
    if name in ("s_bitcmp0_b32", "s_bitcmp1_b32"):
        a, b = ops
        want = 1 if name.endswith("1_b32") else 0

        def runb(ctx: Ctx) -> None:
            _set_scc(ctx, ((ctx.sread(a, "u32") >> (ctx.sread(b, "u32") & U32(31))) & U32(1)) == want)
        return Built(runb, regs_of([a, b]), frozenset())
    if name == "s_movk_i32":
        dst, a = ops
        value = np.int64(np.int16(a.value & 0xFFFF))

        def runk(ctx: Ctx) -> None:
            ctx.swrite(dst, "i32", np.full(ctx.k, value, np.int32))
        return Built(runk, frozenset(), regs_of([dst]))
    if name in ("s_addk_i32", "s_mulk_i32"):
        dst, a = ops
        k16 = np.int64(np.int16(a.value & 0xFFFF))

        def runak(ctx: Ctx) -> None:
            cur = ctx.sread(dst, "i32").astype(np.int64)
            if name == "s_addk_i32":
                r, scc = _ovf(cur + k16)
            else:
                r, scc = cur * k16, None
            ctx.swrite(dst, "i32", r.astype(np.int64).astype(np.uint64).astype(np.uint32).view(np.int32))
            _set_scc(ctx, scc)
        return Built(runak, regs_of([dst]), regs_of([dst]))
    if name == "s_cmov_b32":
        dst, a = ops

        def runcm(ctx: Ctx) -> None:
            ctx.swrite(dst, "u32", np.where(ctx.st.scc[ctx.w] == 1, ctx.sread(a, "u32"), ctx.sread(dst, "u32")))
        return Built(runcm, regs_of([a, dst]), regs_of([dst]))
    if name == "s_getpc_b64":
        (dst,) = ops
        nxt = ins.address + ins.size

        def rungp(ctx: Ctx) -> None:
            ctx.swrite(dst, "u64", np.full(ctx.k, nxt, np.uint64))
        return Built(rungp, frozenset(), regs_of([dst]))
    return _control(ins, name, ops)


def _control(ins: Instruction, name: str, ops: list[Operand]) -> Built:
    simm = ins.words[0] & 0xFFFF
    if name == "s_endpgm":
        return Built(kind=END)
    if name in NOOPS:
        return Built()
    if name == "s_barrier":
        return Built(kind=BARRIER)
    if name == "s_branch" or name in _BRANCH_COND:
        offset = simm - 0x10000 if simm & 0x8000 else simm
        target = ins.address + 4 + 4 * offset
        return Built(kind=BRANCH, target=target, cond=_BRANCH_COND.get(name),
                     reads=frozenset([("s", VCC_LO)]) if "vcc" in name else frozenset())
    if name == "s_waitcnt":
        vm, lgkm, exp = (simm >> 10) & 0x3F, (simm >> 4) & 0x3F, simm & 7
        del exp  # exports do not exist in compute kernels
        return Built(wait=(vm if vm < 0x3F else None, lgkm if lgkm < 0x3F else None, None))
    if name == "s_waitcnt_vscnt":
        if len(ops) != 2 or ops[0].kind != "s" or ops[0].index != 124:
            raise EmulatorError("s_waitcnt_vscnt with a register count is not supported")
        return Built(wait=(None, None, ops[1].value & 0x3F))
    if name in ("s_waitcnt_vmcnt", "s_waitcnt_lgkmcnt"):
        if len(ops) != 2 or ops[0].kind != "s" or ops[0].index != 124:
            raise EmulatorError(f"{name} with a register count is not supported")
        n = ops[1].value & 0x3F
        return Built(wait=(n, None, None) if name == "s_waitcnt_vmcnt" else (None, n, None))
    if name == "s_waitcnt_expcnt":
        return Built()
    if name == "s_denorm_mode":
        def run_mode(ctx: Ctx) -> None:
            ctx.st.denorm32[ctx.w] = simm & 3
            ctx.st.denorm16[ctx.w] = (simm >> 2) & 3
            ctx.st.all_flushing.clear()
        return Built(run_mode)
    if name == "s_round_mode":
        if simm != 0:
            raise EmulatorError("rounding modes other than round-to-nearest-even are not supported")
        return Built()
    if name == "s_waitcnt_depctr":
        return Built(va_vdst=((simm >> 12) & 0xF) == 0)
    raise EmulatorError(f"unsupported instruction {name}")
