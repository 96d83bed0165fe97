"""Builds VALU instructions (VOP1/VOP2/VOP3/VOPC/VOP3P) from their disassembly into numpy steps.

Plain operations come from :data:`.valu_table.VALU`; this module adds the forms with special
operands: compares (to VCC/an SGPR, or EXEC for ``v_cmpx``), ``v_cndmask``, carries
(``v_add_co_ci_u32`` ...), ``v_mad_u64_u32``, the division helpers that pass VCC, lane access
(``v_readlane``/``v_writelane``/``v_readfirstlane``) and packed 16-bit math.  Results are written only
to the lanes EXEC enables; a compare writes 0 for the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from tg_rdna.emulator import numerics as nm
from tg_rdna.emulator import numerics64 as nm64
from tg_rdna.emulator.errors import EmulatorError
from tg_rdna.emulator.operands import EXEC_LO, VCC_LO, Operand, immediate_bits, type_width
from tg_rdna.emulator.state import NP_TYPES, U32, U64, Ctx, constant, pack_mask, unpack_mask
from tg_rdna.emulator.step import Built, bit_list, modifier_values, regs_of
from tg_rdna.emulator.valu_table import PACKED, VALU, VOp

_CMP = re.compile(r"^v_cmp(x?)_(\w+?)_(f16|f32|f64|i16|i32|i64|u16|u32|u64)$")
_CMP_FN: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "f": lambda a, b: np.zeros(np.broadcast_shapes(a.shape, b.shape), bool),
    "t": lambda a, b: np.ones(np.broadcast_shapes(a.shape, b.shape), bool),
    "lt": np.less, "eq": np.equal, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "lg": lambda a, b: (a < b) | (a > b), "ne": np.not_equal, "neq": lambda a, b: ~(a == b),
    "o": lambda a, b: ~np.isnan(a) & ~np.isnan(b), "u": lambda a, b: np.isnan(a) | np.isnan(b),
    "nge": lambda a, b: ~(a >= b), "nlg": lambda a, b: ~((a < b) | (a > b)), "ngt": lambda a, b: ~(a > b),
    "nle": lambda a, b: ~(a <= b), "nlt": lambda a, b: ~(a < b),
}
Builder = Callable[[list[Operand], dict[str, str]], Built]
TRANS_NAMES = frozenset(n for n, op in VALU.items() if op.trans)


def base_name(mnemonic: str) -> str:
    return re.sub(r"_e(32|64)$", "", mnemonic)


def _flush_in(ctx: Ctx, value: np.ndarray, typ: str) -> np.ndarray:
    return ctx.flush(value, typ, output=False)


def _finish_float(ctx: Ctx, value: np.ndarray, typ: str, ftz: bool, mods: dict[str, str]) -> np.ndarray:
    if typ not in ("f32", "f16"):
        return value
    if "mul" in mods or "div" in mods or "clamp" in mods:
        value = _output_modifiers(value, mods)
    return ctx.flush(value, typ, output=True) if ftz else value


def _output_modifiers(value: np.ndarray, mods: dict[str, str]) -> np.ndarray:
    """omod (``mul:2``, ``mul:4``, ``div:2``), then clamp to [0, 1] (NaN to 0)."""
    with np.errstate(all="ignore"):
        if "mul" in mods:
            value = (value * value.dtype.type(int(mods["mul"]))).astype(value.dtype)
        if "div" in mods:
            value = (value / value.dtype.type(int(mods["div"]))).astype(value.dtype)
        if "clamp" in mods:
            value = np.where(np.isnan(value), 0, np.clip(value, 0, 1)).astype(value.dtype)
    return value


def build_valu(name: str, ops: list[Operand], mods: tuple[str, ...]) -> Built:
    """The step of a VALU instruction; EmulatorError for forms the emulator does not know."""
    built = _build(name, ops, modifier_values(mods))
    operands = {tuple(r for _, r in op.regs()) for op in ops if op.kind == "v"}
    built.vgpr_operands = sorted(regs for regs in operands if all(("v", r) in built.reads for r in regs))
    return built


def _build(name: str, ops: list[Operand], md: dict[str, str]) -> Built:
    if name in VALU:
        return _plain(VALU[name], ops, md)
    if name in PACKED:
        return _packed(PACKED[name], ops, md)
    m = _CMP.match(name)
    if m:
        return _compare(m.group(1) == "x", m.group(2), m.group(3), ops)
    builder = _SPECIAL.get(name)
    if builder is None:
        raise EmulatorError(f"unsupported instruction {name}")
    return builder(ops, md)


def _check_mods(md: dict[str, str], allowed: set[str]) -> None:
    extra = set(md) - allowed
    if extra:
        raise EmulatorError(f"unsupported modifier(s) {', '.join(sorted(extra))}")


def _plain(op: VOp, ops: list[Operand], md: dict[str, str]) -> Built:
    _check_mods(md, {"clamp", "mul", "div", "op_sel"})
    if op.dst[0] != "f" and ({"clamp", "mul", "div"} & set(md)):
        raise EmulatorError("clamp/omod on an integer result is not supported")
    dst, srcs = ops[0], list(ops[1:])
    if op.accumulate:
        srcs.append(dst)
    if len(srcs) != len(op.srcs):
        raise EmulatorError(f"expected {len(op.srcs)} source operands, found {len(srcs)}")
    sel = bit_list(md.get("op_sel", ""), len(srcs) + 1)
    scalar_dst = dst.kind == "s"
    if scalar_dst:
        raise EmulatorError("a scalar destination for this VALU instruction is not supported")
    # what each step would otherwise decide again: how each source is read, whether the result is finished
    readers = [_reader(o, t, sel[i], op.ftz) for i, (o, t) in enumerate(zip(srcs, op.srcs))]
    finish = _finisher(op.dst, op.ftz, md)
    write = _writer(dst, op.dst, sel[len(srcs)] if len(sel) > len(srcs) else False)
    fn = op.fn

    def run(ctx: Ctx) -> None:
        result = np.asarray(fn(*[read(ctx) for read in readers]))
        write(ctx, result if finish is None else finish(ctx, result))

    return Built(run, regs_of(srcs), regs_of([dst]), valu=True, trans=op.trans)


Reader = Callable[[Ctx], np.ndarray]


def _reader(o: Operand, typ: str, hi: bool, ftz: bool) -> Reader:
    """How a step reads the source ``o`` as ``typ`` (``ctx.vsrc``, with its denormals flushed where ``ftz`` and the
    kernel's mode say so): a 32-bit VGPR or constant without modifiers directly, anything else through vsrc."""
    read: Reader
    if type_width(typ) == 32 and not (o.absolute or o.neg) and o.kind in ("v", "imm", "fimm"):
        if o.kind == "v":
            index, dtype = o.index, NP_TYPES[typ]

            def read(ctx: Ctx) -> np.ndarray:  # (the executor has checked the index against the VGPRs allocated)
                return ctx.st.v[index, ctx.w].view(dtype)
        else:
            value = constant(o, typ)

            def read(ctx: Ctx) -> np.ndarray:
                return value
    else:
        def read(ctx: Ctx) -> np.ndarray:
            return ctx.vsrc(o, typ, hi=hi)
    if not ftz or typ not in ("f32", "f16", "f64"):
        return read

    def flushed(ctx: Ctx) -> np.ndarray:
        return ctx.flush(read(ctx), typ, output=False)
    return flushed


def _finisher(typ: str, ftz: bool, mods: dict[str, str]) -> Callable[[Ctx, np.ndarray], np.ndarray] | None:
    """:func:`_finish_float` for a result of ``typ``, or None where it would return the value unchanged."""
    if typ not in ("f32", "f16") or not (ftz or {"mul", "div", "clamp"} & set(mods)):
        return None
    return lambda ctx, value: _finish_float(ctx, value, typ, ftz, mods)


def _writer(dst: Operand, typ: str, hi: bool) -> Callable[[Ctx, np.ndarray], None]:
    """How a step writes its result to ``dst`` as ``typ`` (``ctx.vwrite``; a 32-bit register directly)."""
    if dst.kind == "v" and type_width(typ) == 32:
        index, dtype = dst.index, NP_TYPES[typ]

        def write(ctx: Ctx, value: np.ndarray) -> None:
            ctx.set_vreg(index, (value if value.dtype == dtype else value.astype(dtype)).view(U32))
        return write
    return lambda ctx, value: ctx.vwrite(dst, typ, value, hi=hi)


def _packed(op: VOp, ops: list[Operand], md: dict[str, str]) -> Built:
    _check_mods(md, {"op_sel", "op_sel_hi", "neg_lo", "neg_hi", "clamp"})
    dst, srcs = ops[0], list(ops[1:])
    n = len(srcs)
    if n != len(op.srcs):
        raise EmulatorError(f"expected {len(op.srcs)} source operands, found {n}")
    lo_sel = bit_list(md.get("op_sel", ""), n)
    hi_sel = bit_list(md["op_sel_hi"], n) if "op_sel_hi" in md else [True] * n
    neg_lo, neg_hi = bit_list(md.get("neg_lo", ""), n), bit_list(md.get("neg_hi", ""), n)

    def half(ctx: Ctx, o: Operand, t: str, hi: bool, neg: bool) -> np.ndarray:
        if o.kind in ("imm", "fimm"):
            # a constant is a 32-bit value: an inline constant has its 16-bit value in the low half and 0 in
            # the high half (LLVM prints <1.0, 0.0> as plain `1.0`); a literal is all 32 bits
            inline = o.kind == "fimm" or (-16 <= o.value <= 64 and not o.text.lower().lstrip("-").startswith("0x"))
            word = immediate_bits(o, t) if inline else o.value & 0xFFFFFFFF
            v = np.full((1, 1), (word >> 16) if hi else word & 0xFFFF, np.uint16).view(
                np.float16 if t == "f16" else np.uint16)
        else:
            v = ctx.vsrc(o, t, hi=hi)
        if neg:
            v = -v
        return _flush_in(ctx, v, t) if op.ftz else v

    def run(ctx: Ctx) -> None:
        lo = op.fn(*[half(ctx, o, t, lo_sel[i], neg_lo[i]) for i, (o, t) in enumerate(zip(srcs, op.srcs))])
        hi = op.fn(*[half(ctx, o, t, hi_sel[i], neg_hi[i]) for i, (o, t) in enumerate(zip(srcs, op.srcs))])
        lo = _finish_float(ctx, np.asarray(lo), op.dst, op.ftz, md)
        hi = _finish_float(ctx, np.asarray(hi), op.dst, op.ftz, md)
        lo_bits = np.ascontiguousarray(np.broadcast_to(lo, (ctx.k, 32))).view(np.uint16).astype(U32)
        hi_bits = np.ascontiguousarray(np.broadcast_to(hi, (ctx.k, 32))).view(np.uint16).astype(U32)
        ctx.vwrite(dst, "b32", lo_bits | (hi_bits << U32(16)))

    return Built(run, regs_of(srcs), regs_of([dst]), valu=True)


def _class(value: np.ndarray, mask: np.ndarray) -> np.ndarray:
    v = value
    tiny = np.finfo(v.dtype).tiny
    neg = np.signbit(v)
    width = v.dtype.itemsize
    bits_u = np.ascontiguousarray(v).view({2: np.uint16, 4: np.uint32, 8: np.uint64}[width])
    mant_top = (bits_u >> {2: 9, 4: 22, 8: 51}[width]) & 1
    classes = [np.isnan(v) & (mant_top == 0), np.isnan(v) & (mant_top == 1), np.isneginf(v),
               neg & np.isfinite(v) & (np.abs(v) >= tiny), neg & (v != 0) & (np.abs(v) < tiny),
               neg & (v == 0), ~neg & (v == 0), ~neg & (v != 0) & (np.abs(v) < tiny),
               ~neg & np.isfinite(v) & (np.abs(v) >= tiny), np.isposinf(v)]
    out = np.zeros(np.broadcast_shapes(v.shape, mask.shape), bool)
    for bit, c in enumerate(classes):
        out |= c & (((mask >> U32(bit)) & U32(1)) == 1)
    return out


def _compare(exec_form: bool, cond: str, typ: str, ops: list[Operand]) -> Built:
    if exec_form:
        dst, srcs = None, ops
    else:
        dst, srcs = ops[0], ops[1:]
    if len(srcs) != 2:
        raise EmulatorError("a compare takes two sources")
    if cond == "class":
        def fn(ctx: Ctx) -> np.ndarray:
            return _class(_flush_in(ctx, ctx.vsrc(srcs[0], typ), typ), ctx.vsrc(srcs[1], "u32"))
    elif cond in _CMP_FN:
        if typ[0] != "f" and cond not in ("lt", "eq", "le", "gt", "ne", "ge", "f", "t"):
            raise EmulatorError(f"unsupported compare v_cmp_{cond}_{typ}")
        cmp = _CMP_FN[cond]

        def fn(ctx: Ctx) -> np.ndarray:  # (the executor runs steps with floating-point errors off)
            return cmp(_flush_in(ctx, ctx.vsrc(srcs[0], typ), typ), _flush_in(ctx, ctx.vsrc(srcs[1], typ), typ))
    else:
        raise EmulatorError(f"unsupported compare condition {cond!r}")

    single = dst is not None and dst.kind == "s" and dst.count == 1

    def run(ctx: Ctx) -> None:
        result = np.broadcast_to(fn(ctx), (ctx.k, 32)) & ctx.exec_mask
        bits = pack_mask(result)
        if exec_form:
            ctx.set_sreg(EXEC_LO, bits)
        else:
            assert dst is not None
            if single:
                ctx.set_sreg(dst.index, bits)  # (swrite's conversions, for the one register of a wave32 mask)
            else:
                ctx.swrite(dst, "b32", bits)

    writes = frozenset([("s", EXEC_LO)]) if exec_form else regs_of([dst] if dst else [])
    return Built(run, regs_of(srcs), writes, valu=True)


def _mask_of(ctx: Ctx, op: Operand) -> np.ndarray:
    return unpack_mask(ctx.sread(op, "b32"))


def _cndmask(ops: list[Operand], md: dict[str, str]) -> Built:
    _check_mods(md, set())
    dst, a, b, sel = ops
    typ = "f32" if a.neg or a.absolute or b.neg or b.absolute else "b32"

    def run(ctx: Ctx) -> None:
        ctx.vwrite(dst, typ, np.where(_mask_of(ctx, sel), ctx.vsrc(b, typ), ctx.vsrc(a, typ)))

    return Built(run, regs_of([a, b, sel]), regs_of([dst]), valu=True)


def _carry(op: str, with_carry_in: bool) -> Builder:
    def build(ops: list[Operand], md: dict[str, str]) -> Built:
        _check_mods(md, set())
        dst, sdst, a, b = ops[:4]
        cin = ops[4] if with_carry_in else None

        def run(ctx: Ctx) -> None:
            x = ctx.vsrc(a, "u32").astype(U64)
            y = ctx.vsrc(b, "u32").astype(U64)
            c = unpack_mask(ctx.sread(cin, "b32")).astype(U64) if cin is not None else U64(0)
            if op == "subrev":
                x, y = y, x
            if op == "add":
                total = x + y + c
                carry = total >> U64(32)
            else:
                total = x - y - c
                carry = (y + c > x).astype(U64)
            ctx.vwrite(dst, "u32", (total & U64(0xFFFFFFFF)).astype(U32))
            ctx.swrite(sdst, "b32", pack_mask(np.broadcast_to(carry == 1, (ctx.k, 32)) & ctx.exec_mask))

        srcs = [a, b] + ([cin] if cin is not None else [])
        return Built(run, regs_of(srcs), regs_of([dst, sdst]), valu=True)
    return build


def _mad64(signed: bool) -> Builder:
    def build(ops: list[Operand], md: dict[str, str]) -> Built:
        _check_mods(md, set())
        dst, sdst, a, b, c = ops

        def run(ctx: Ctx) -> None:
            if signed:
                sprod = ctx.vsrc(a, "i32").astype(np.int64) * ctx.vsrc(b, "i32").astype(np.int64)
                scc = ctx.vsrc(c, "i64")
                total = sprod.astype(U64) + scc.astype(U64)
                over = ((sprod >= 0) == (scc >= 0)) & ((total.astype(np.int64) >= 0) != (sprod >= 0))
            else:
                uprod = ctx.vsrc(a, "u32").astype(U64) * ctx.vsrc(b, "u32").astype(U64)
                ucc = ctx.vsrc(c, "u64")
                total = uprod + ucc
                over = total < ucc
            ctx.vwrite(dst, "u64", total)
            ctx.swrite(sdst, "b32", pack_mask(np.broadcast_to(over, (ctx.k, 32)) & ctx.exec_mask))

        return Built(run, regs_of([a, b, c]), regs_of([dst, sdst]), valu=True)
    return build


def _div_scale(ops: list[Operand], md: dict[str, str]) -> Built:
    _check_mods(md, set())
    dst, sdst, s0, s1, s2 = ops

    def run(ctx: Ctx) -> None:
        vals = [_flush_in(ctx, ctx.vsrc(o, "f32"), "f32") for o in (s0, s1, s2)]
        d, vcc = nm.div_scale_f32(*vals)
        ctx.vwrite(dst, "f32", d)
        ctx.swrite(sdst, "b32", pack_mask(np.broadcast_to(vcc, (ctx.k, 32)) & ctx.exec_mask))

    return Built(run, regs_of([s0, s1, s2]), regs_of([dst, sdst]), valu=True)


def _div_scale64(ops: list[Operand], md: dict[str, str]) -> Built:
    _check_mods(md, set())
    dst, sdst, s0, s1, s2 = ops

    def run(ctx: Ctx) -> None:
        d, vcc = nm64.div_scale_f64(*(ctx.vsrc(o, "f64") for o in (s0, s1, s2)))
        ctx.vwrite(dst, "f64", d)
        ctx.swrite(sdst, "b32", pack_mask(np.broadcast_to(vcc, (ctx.k, 32)) & ctx.exec_mask))

    return Built(run, regs_of([s0, s1, s2]), regs_of([dst, sdst]), valu=True)


def _div_fmas(ops: list[Operand], md: dict[str, str], typ: str = "f32") -> Built:
    _check_mods(md, set())
    dst, a, b, c = ops
    vcc = Operand("s", VCC_LO, text="vcc_lo")

    def run(ctx: Ctx) -> None:
        if typ == "f64":
            x, y, z = (ctx.vsrc(o, "f64") for o in (a, b, c))
            ctx.vwrite(dst, "f64", nm64.div_fmas_f64(x, y, z, _mask_of(ctx, vcc)))
            return
        x, y, z = (_flush_in(ctx, ctx.vsrc(o, "f32"), "f32") for o in (a, b, c))
        r = nm.div_fmas_f32(x, y, z, _mask_of(ctx, vcc))
        ctx.vwrite(dst, "f32", _finish_float(ctx, r, "f32", True, {}))

    return Built(run, regs_of([a, b, c, vcc]), regs_of([dst]), valu=True)


def _readfirstlane(ops: list[Operand], md: dict[str, str]) -> Built:
    sdst, src = ops

    def run(ctx: Ctx) -> None:
        m = ctx.exec_mask
        lane = np.where(m.any(axis=1), np.argmax(m, axis=1), 0)
        ctx.swrite(sdst, "b32", ctx.vsrc(src, "u32")[np.arange(ctx.k), lane])

    return Built(run, regs_of([src]), regs_of([sdst]), valu=True)


def _readlane(ops: list[Operand], md: dict[str, str]) -> Built:
    sdst, src, sel = ops

    def run(ctx: Ctx) -> None:
        lane = (ctx.sread(sel, "u32") & U32(31)).astype(np.int64)
        ctx.swrite(sdst, "b32", np.broadcast_to(ctx.vsrc(src, "u32"), (ctx.k, 32))[np.arange(ctx.k), lane])

    return Built(run, regs_of([src, sel]), regs_of([sdst]), valu=True)


def _writelane(ops: list[Operand], md: dict[str, str]) -> Built:
    vdst, src, sel = ops

    def run(ctx: Ctx) -> None:
        lane = (ctx.sread(sel, "u32") & U32(31)).astype(np.int64)
        mask = np.zeros((ctx.k, 32), bool)
        mask[np.arange(ctx.k), lane] = True  # ignores EXEC, as the reference says
        ctx.vwrite(vdst, "b32", ctx.sread(src, "b32")[:, None], mask=mask)

    return Built(run, regs_of([src, sel]), regs_of([vdst]), valu=True)


def _fma_mix(result: str) -> Builder:
    """v_fma_mix_f32 / v_fma_mixlo_f16 / v_fma_mixhi_f16: an FMA whose sources are each f32, or an f16 half
    (op_sel_hi[i] = 1; op_sel[i] picks the high half) widened to f32; one rounding to the result type."""
    def build(ops: list[Operand], md: dict[str, str]) -> Built:
        _check_mods(md, {"op_sel", "op_sel_hi", "clamp"})
        dst, srcs = ops[0], ops[1:]
        if len(srcs) != 3:
            raise EmulatorError("expected 3 source operands")
        half = bit_list(md.get("op_sel_hi", ""), 3)
        hi = bit_list(md.get("op_sel", ""), 3)

        def source(ctx: Ctx, o: Operand, i: int) -> np.ndarray:
            if half[i]:
                bare = Operand(o.kind, o.index, o.count, o.value, o.fvalue, False, False, o.half, o.text)
                v = _flush_in(ctx, ctx.vsrc(bare, "f16", hi=hi[i]), "f16").astype(np.float32)
            else:
                v = _flush_in(ctx, ctx.vsrc(Operand(o.kind, o.index, o.count, o.value, o.fvalue, False, False,
                                                    o.half, o.text), "f32"), "f32")
            if o.absolute:
                v = np.abs(v)
            return -v if o.neg else v

        def run(ctx: Ctx) -> None:
            a, b, c = (source(ctx, o, i) for i, o in enumerate(srcs))
            exact = nm.fma_odd(a, b, c)
            if result == "f32":
                ctx.vwrite(dst, "f32", _finish_float(ctx, exact.astype(np.float32), "f32", True, md))
            else:
                r = _finish_float(ctx, exact.astype(np.float16), "f16", True, md)
                ctx.vwrite(dst, "f16", r, hi=result == "hi")

        return Built(run, regs_of(srcs + ([dst] if result != "f32" else [])), regs_of([dst]), valu=True)
    return build


def _div_fixup_f16(ops: list[Operand], md: dict[str, str]) -> Built:
    """V_DIV_FIXUP_F16 through the f32 rules: the special cases (NaN, inf, zero, signs) are the same, and an
    f16 quotient that under/overflows is already 0/inf when it reaches the fixup."""
    _check_mods(md, set())
    dst, q, den, num = ops

    def run(ctx: Ctx) -> None:
        vals = [ctx.vsrc(o, "f16").astype(np.float32) for o in (q, den, num)]
        ctx.vwrite(dst, "f16", nm.div_fixup_f32(*vals).astype(np.float16))

    return Built(run, regs_of([q, den, num, dst]), regs_of([dst]), valu=True)


def _nop(ops: list[Operand], md: dict[str, str]) -> Built:
    return Built(None, valu=True)


_SPECIAL: dict[str, Builder] = {
    "v_cndmask_b32": _cndmask,
    "v_add_co_u32": _carry("add", False), "v_sub_co_u32": _carry("sub", False),
    "v_subrev_co_u32": _carry("subrev", False), "v_add_co_ci_u32": _carry("add", True),
    "v_sub_co_ci_u32": _carry("sub", True), "v_subrev_co_ci_u32": _carry("subrev", True),
    "v_mad_u64_u32": _mad64(False), "v_mad_i64_i32": _mad64(True),
    "v_div_scale_f32": _div_scale, "v_div_fmas_f32": _div_fmas,
    "v_div_scale_f64": _div_scale64, "v_div_fmas_f64": lambda ops, md: _div_fmas(ops, md, "f64"),
    "v_readfirstlane_b32": _readfirstlane, "v_readlane_b32": _readlane, "v_writelane_b32": _writelane,
    "v_nop": _nop,
    "v_fma_mix_f32": _fma_mix("f32"), "v_fma_mixlo_f16": _fma_mix("lo"), "v_fma_mixhi_f16": _fma_mix("hi"),
    "v_div_fixup_f16": _div_fixup_f16,
}


def build_vopd(text: str) -> Built:
    """A dual-issue VOPD pair ``v_dual_X ... :: v_dual_Y ...``: two VALU operations issued together.

    Both read their sources before either writes; the emulator runs X then Y, so it refuses a pair in
    which Y reads what X writes (the hardware's operand rules exclude it too).  ``v_dual_cndmask_b32``
    selects with VCC."""
    from tg_rdna.emulator.operands import parse_operand
    from tg_rdna.emulator.program import split_operands

    halves: list[Built] = []
    for part in text.split("::"):
        mnemonic, _, rest = part.strip().partition(" ")
        if not mnemonic.startswith("v_dual_"):
            raise EmulatorError(f"unsupported dual-issue form {text!r}")
        name = "v_" + mnemonic.removeprefix("v_dual_")
        texts, mods = split_operands(rest.strip())
        ops = [parse_operand(o) for o in texts]
        if name == "v_cndmask_b32":
            ops.append(Operand("s", VCC_LO, text="vcc_lo"))
        halves.append(build_valu(name, ops, mods))
    if len(halves) != 2:
        raise EmulatorError(f"a dual-issue instruction has two halves: {text!r}")
    x, y = halves
    if y.reads & x.writes or x.writes & y.writes:
        raise EmulatorError("dual-issue halves that depend on each other are not supported")

    def run(ctx: Ctx) -> None:
        assert x.run is not None and y.run is not None
        x.run(ctx)
        y.run(ctx)

    return Built(run, x.reads | y.reads, x.writes | y.writes, valu=True, trans=x.trans or y.trans,
                 vgpr_operands=sorted(set(x.vgpr_operands) | set(y.vgpr_operands)))
