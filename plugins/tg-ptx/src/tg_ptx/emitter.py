"""The PTX emitter: renders one kernel's micro-ops as one ``.entry`` of PTX assembly.

Registers are declared by type (see :mod:`tg_ptx.writer` for the dtype -> register mapping) and
allocated one per value; constants become immediates where PTX takes them.  Loops are labels and
``bra``; masked loads and stores are ``setp`` + ``@p``; DEFINE_LOCAL is a ``.shared`` array and
BARRIER ``bar.sync 0``; vector loads and stores are ``.v2``/``.v4`` (at most 16 bytes each).
Float ``add``/``sub``/``mul`` carry ``.rn`` so ptxas never contracts them into an fma the micro-ops did
not ask for; MULACC is ``fma.rn``.  exp2, log2 and sin come from :mod:`tg_ptx.mathlib`.  Launch
variables (DEFINE_VAR) are ``.param .u32``/``.f32`` after the buffers' (:mod:`tg_ptx.params`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from tg.backends.contract import Capabilities, Emitter
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.render import TextRenderer
from tg.codegen.tensor_cores import MMA_16x8x16_F16_F32
from tg.codegen.uops import ALU, Ops, PtrDType, UOp, VecDType
from tg.support.dtype import DType, dtypes

from tg_ptx import __version__, async_copy, fragments, mathlib
from tg_ptx.arch import isa_version, target_arch
from tg_ptx.params import VARIABLE_TYPES, EntryParams
from tg_ptx.writer import (
    ADDR,
    F32,
    F64,
    PRED,
    S32,
    SHARED_ADDR,
    U16,
    Const,
    Writer,
    f16_bits,
    fold_moves,
    immediate,
    offset_text,
    pieces,
    ptx_type,
)

CAPABILITIES = Capabilities(
    dtypes=frozenset({"float16", "float32", "float64", "int8", "uint8", "int32", "int64", "bool"}),
    sin_is_sin2pi=False,  # sin is range-reduced in software (mathlib)
    vector_width=4,  # ld/st .v4
    local_memory=48 * 1024,  # static .shared per block
    group_size=128,  # threads per block: gidx0 = %ctaid.x, lidx0 = %tid.x
    launch_dims=3,  # gidx1 = %ctaid.y, gidx2 = %ctaid.z: rows and planes without division
    launch_limits=(2**31 - 1, 65535, 65535),  # CUDA's grid
    upcast=16,  # a reduction thread computes a 4x4 register tile (matmul: float4 loads of B, 4 rows of A)
    # div.rn is IEEE division, fma.rn fuses a*b+c; pow is lowered through exp2/log2 by core
    renders=frozenset({Ops.NEG, Ops.RECIP, Ops.SUB, Ops.CMPEQ, Ops.MOD, Ops.DIV, Ops.MULACC}),
    # float16 contractions on the tensor cores: mma.sync.aligned.m16n8k16 (sm_80 and newer), float32 accumulators
    tensor_cores=(MMA_16x8x16_F16_F32,),
    # "ldmatrix": fragments whose shared-memory addresses are provably ldmatrix rows load with ldmatrix (sm_75+;
    # tg_ptx.fragments); "cp_async": vector staging copies global -> shared are cp.async (sm_80+; tg_ptx.async_copy);
    # False keeps scalar ld.shared fragments and ld.global + st.shared copies
    extra={"ldmatrix": True, "cp_async": True},
    variables=frozenset(VARIABLE_TYPES),  # .param .u32 / .param .f32 after the buffers (tg_ptx.params)
)

_SPECIALS = {"gidx": "%ctaid", "lidx": "%tid"}
_WRAPPING = {Ops.ADD, Ops.SUB, Ops.MUL, Ops.NEG, Ops.MULACC, Ops.IDIV}


Value = str | Const | list[Any]


class PTXEmitter(Emitter):
    """Micro-ops -> PTX for ``sm_80`` and newer; the target comes from :func:`tg_ptx.arch.target_arch`."""

    target = "ptx"
    language = "ptx"
    capabilities = CAPABILITIES

    def render(self, kernel: LoweredKernel) -> Program:
        name = kernel_name(kernel.name)
        block = math.prod(kernel.local_size)
        extra = self.capabilities.extra
        k = _Kernel(name, kernel.uops, target_arch(), block, bool(extra.get("ldmatrix")), bool(extra.get("cp_async")))
        return Program.of(kernel, k.render(), name=name)


def kernel_name(name: str) -> str:
    """A PTX identifier for the kernel: tg's name with anything else than [A-Za-z0-9_] replaced."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name) or "kernel"
    return clean if not clean[0].isdigit() else f"k_{clean}"


def _scalar(dtype: Any) -> DType:
    base = dtype.base if isinstance(dtype, (VecDType, PtrDType)) else dtype
    assert isinstance(base, DType), dtype
    return base


def _is_alu(u: UOp) -> bool:
    return u.op in ALU


class _Kernel(TextRenderer):
    """One kernel being rendered: core's walk dispatches each micro-op to a ``render_<op>`` method (ALU ops to
    :meth:`from_table`, which picks the instructions by dtype); the lines go to a :class:`Writer`."""

    def __init__(self, name: str, uops: list[UOp], arch: str, block: int = 1, ldmatrix: bool = False,
                 cp_async: bool = False):
        super().__init__(uops)
        self.name, self.arch = name, arch
        self.w = Writer()
        self.values: dict[int, Value] = {}
        self.params = EntryParams()  # the buffers' and launch variables' .param declarations
        self.shared: list[str] = []
        self.shared_names: set[str] = set()
        self.readonly: set[int] = set()
        self.loops: dict[int, tuple[str, str, str, str, str]] = {}  # RANGE -> counter, end, labels, branch
        self.max_threads = block  # the launch's threads per block (.maxntid), even where lidx0 is unused
        self.fragments = fragments.plan(uops, block) if ldmatrix else fragments.Plans()
        self.copies = async_copy.plan(uops) if cp_async else async_copy.Plan()
        self.copying = False  # cp.async issued since the last cp.async.wait_all

    # -- whole kernel ----------------------------------------------------------------------------------------

    def render(self) -> str:
        self.render_uops()  # core removed dead values already (tg.codegen.rewrites.eliminate_dead)
        params = ",\n".join(f"\t{p}" for p in self.params.declarations())
        head = [
            "//",
            f"// {self.name}: generated by tg-ptx {__version__} from tg micro-ops",
            "//",
            f".version {isa_version(self.arch)}",
            f".target {self.arch}",
            ".address_size 64",
            "",
            f".visible .entry {self.name}(" + (f"\n{params}\n" if params else "") + ")",
            f".maxntid {self.max_threads}, 1, 1",
            "{",
            *self.w.declarations(),
            *self.shared,
            "",
        ]
        return "\n".join([*head, *fold_moves(self.w.lines), "\tret;", "}", ""])

    # -- values ----------------------------------------------------------------------------------------------

    def operand(self, u: UOp) -> str:
        """``u`` as an instruction operand: its register, or an immediate for an int/f32/f64 constant."""
        v = self.values[id(u)]
        if isinstance(v, Const):
            return immediate(v)
        assert isinstance(v, str), f"{u} is a vector"
        return v

    def register(self, u: UOp) -> str:
        """``u`` in a register (a constant is moved into a fresh one here)."""
        v = self.values[id(u)]
        return self.in_register(v) if not isinstance(v, list) else self.fail(u, "is a vector")

    def in_register(self, v: Value) -> str:
        if isinstance(v, Const):
            pt = ptx_type(v.dtype)
            reg = self.w.reg(pt.reg)
            self.w.op(f"mov.{pt.bits if pt.arith == 'f16' else pt.arith} {reg}, {immediate(v)}")
            return reg
        assert isinstance(v, str)
        return v

    def lanes(self, u: UOp) -> list[Value]:
        v = self.values[id(u)]
        return v if isinstance(v, list) else [v]

    def fail(self, u: UOp, why: str) -> Any:
        raise NotImplementedError(f"tg-ptx cannot render {u.op.name} ({u.dtype}): {why}")

    def new(self, dtype: DType) -> str:
        return self.w.reg(ptx_type(dtype).reg)

    # -- dispatch --------------------------------------------------------------------------------------------

    def render_define_global(self, u: UOp) -> None:
        index, _, writable = u.arg
        self.values[id(u)] = self.params.buffer(self.w, index)
        if not writable:
            self.readonly.add(id(u))

    def render_define_var(self, u: UOp) -> None:
        self.values[id(u)] = self.params.variable(self.w, u.arg[0], _scalar(u.dtype))

    def render_define_acc(self, u: UOp) -> None:
        dt = _scalar(u.dtype)
        reg = self.new(dt)
        self.move(reg, Const(u.arg, dt), dt)
        self.values[id(u)] = reg

    def render_assign(self, u: UOp) -> None:
        acc = self.values[id(u.src[0])]
        assert isinstance(acc, str)
        if self.values[id(u.src[1])] != acc:
            self.move(acc, self.values[id(u.src[1])], _scalar(u.dtype))
        self.values[id(u)] = acc

    def render_barrier(self, u: UOp) -> None:
        self.wait_copies()
        self.w.op("bar.sync 0")

    def wait_copies(self) -> None:
        if self.copying:
            self.w.op("cp.async.wait_all")
            self.copying = False

    def render_vectorize(self, u: UOp) -> None:
        if id(u) in self.copies.skip:
            return
        lanes: list[Value] = []
        for s in u.src:
            v = self.values[id(s)]
            if s.op in (Ops.DEFINE_ACC, Ops.ASSIGN):  # an accumulator changes later: copy its value now
                copy = self.new(_scalar(s.dtype))
                self.move(copy, v, _scalar(s.dtype))
                v = copy
            lanes.append(v)
        self.values[id(u)] = lanes

    def render_wmma(self, u: UOp) -> None:
        fragments.render_mma(self, u)

    def render_gep(self, u: UOp) -> None:
        if id(u) not in self.copies.skip:
            self.values[id(u)] = self.lanes(u.src[0])[u.arg]

    def render_cast(self, u: UOp) -> None:
        self.values[id(u)] = self.cast(self.values[id(u.src[0])], _scalar(u.src[0].dtype), _scalar(u.dtype))

    def render_bitcast(self, u: UOp) -> None:
        self.values[id(u)] = self.bitcast(u)

    def from_table(self, u: UOp) -> None:
        """ALU ops: instructions chosen by the operands' dtype."""
        if not _is_alu(u):
            self.fail(u, "unknown micro-op")
        self.values[id(u)] = self.alu(u)

    def move(self, dst: str, v: Value, dt: DType) -> None:
        pt = ptx_type(dt)
        if dt == dtypes.bool:
            self.w.op(f"mov.pred {dst}, {self.in_register(v) if not isinstance(v, Const) else int(bool(v.value))}")
        elif dt == dtypes.float16:
            src = f16_bits(v.value) if isinstance(v, Const) else v
            self.w.op(f"mov.b16 {dst}, {src}")
        else:
            src = immediate(v) if isinstance(v, Const) else v
            self.w.op(f"mov.{pt.arith} {dst}, {src}")

    # -- definitions and control flow ------------------------------------------------------------------------

    def render_define_local(self, u: UOp) -> None:
        name, size = u.arg
        dt = _scalar(u.dtype)
        ident = kernel_name(str(name))
        while ident in self.shared_names:
            ident += "_"
        self.shared_names.add(ident)
        nbytes = max(1, size * ptx_type(dt).size)
        self.shared.append(f"\t.shared .align 16 .b8 {ident}[{nbytes}];  // {size} x {dt.name}")
        reg = self.w.reg(SHARED_ADDR)
        self.w.op(f"mov.u32 {reg}, {ident}")
        self.values[id(u)] = reg

    def render_special(self, u: UOp) -> None:
        name, size = u.arg
        kind, axis = name[:-1], int(name[-1])
        if kind not in _SPECIALS or axis > 2:
            self.fail(u, f"unknown thread index {name}")
        reg = self.w.reg(S32)
        self.w.op(f"mov.u32 {reg}, {_SPECIALS[kind]}.{'xyz'[axis]}")
        self.values[id(u)] = reg

    def render_const(self, u: UOp) -> None:
        dt = _scalar(u.dtype)
        if dt in (dtypes.float16, dtypes.bool):  # no immediates of these types: a register, set here
            reg = self.new(dt)
            self.move(reg, Const(u.arg, dt), dt)
            self.values[id(u)] = reg
        else:
            self.values[id(u)] = Const(u.arg, dt)

    def render_range(self, u: UOp) -> None:
        w = self.w
        counter = w.reg(S32)
        start, end = self.operand(u.src[0]), self.operand(u.src[1])
        top, exit_ = w.new_label("loop"), w.new_label("end")
        # every thread of a warp loops the same number of times when the bounds are kernel-wide values
        uniform = all(s.op is Ops.CONST for s in u.src[:2])
        bra = "bra.uni" if uniform else "bra"
        w.op(f"mov.u32 {counter}, {start}")
        static = u.src[0].op is Ops.CONST and u.src[1].op is Ops.CONST and u.src[0].arg < u.src[1].arg
        if not static:
            skip = w.reg(PRED)
            w.op(f"setp.ge.s32 {skip}, {counter}, {end}")
            w.op(f"{bra} {exit_}", guard=skip)
        w.label(top)
        self.loops[id(u)] = (counter, end, top, exit_, bra)
        self.values[id(u)] = counter

    def render_endrange(self, u: UOp) -> None:
        counter, end, top, exit_, bra = self.loops[id(u.src[0])]
        again = self.w.reg(PRED)
        self.w.op(f"add.s32 {counter}, {counter}, 1")
        self.w.op(f"setp.lt.s32 {again}, {counter}, {end}")
        self.w.op(f"{bra} {top}", guard=again)
        self.w.label(exit_)

    # -- memory ----------------------------------------------------------------------------------------------

    def address(self, buf: UOp, idx: UOp, size: int) -> tuple[str, int]:
        """The address of ``buf[idx]`` as (register, constant byte offset)."""
        base = self.values[id(buf)]
        assert isinstance(base, str)
        local = isinstance(buf.dtype, PtrDType) and buf.dtype.local
        index = self.values[id(idx)]
        if isinstance(index, Const) and index.value * size >= 0:
            return base, int(index.value) * size
        reg = self.in_register(index)
        if local:
            addr = self.w.reg(SHARED_ADDR)
            self.w.op(f"mad.lo.s32 {addr}, {reg}, {size}, {base}")
        else:
            addr = self.w.reg(ADDR)
            self.w.op(f"mul.wide.s32 {addr}, {reg}, {size}")
            self.w.op(f"add.s64 {addr}, {base}, {addr}")
        return addr, 0

    def space(self, buf: UOp, store: bool) -> str:
        if isinstance(buf.dtype, PtrDType) and buf.dtype.local:
            return "shared"
        return "global.nc" if not store and id(buf) in self.readonly else "global"

    def render_load(self, u: UOp) -> None:
        w = self.w
        if id(u) in self.copies.skip:
            return
        if self.space(u.src[0], store=False) == "shared":
            self.wait_copies()
        frag = self.fragments.by_load.get(id(u))
        if frag is not None:  # one ldmatrix (at the first of its loads) loads the whole fragment for render_wmma
            frag.regs = frag.regs or fragments.render(w, frag, self.register(frag.tile), self.register(frag.tid))
            self.values[id(u)] = Const(0.0, dtypes.float16)
            return
        dt = _scalar(u.dtype)
        pt = ptx_type(dt)
        count = u.dtype.count if isinstance(u.dtype, VecDType) else 1
        base, offset = self.address(u.src[0], u.src[1], pt.size)
        gate = self.register(u.src[2]) if len(u.src) > 2 else None
        alts = self.lanes(u.src[3]) if len(u.src) > 3 else []
        is_bool = dt == dtypes.bool
        dests = [w.reg(U16) if is_bool else self.new(dt) for _ in range(count)]
        if gate is not None:  # masked-off threads keep the alternative value and touch no memory
            for d, alt in zip(dests, alts):
                if is_bool:
                    w.op(f"mov.u16 {d}, 0")
                else:
                    self.move(d, alt, dt)
        space = self.space(u.src[0], store=False)
        for first, n in pieces(count, pt.size):
            regs = dests[first:first + n]
            operand = regs[0] if n == 1 else "{" + ", ".join(regs) + "}"
            vec = "" if n == 1 else f".v{n}"
            w.op(f"ld.{space}{vec}.{pt.mem} {operand}, [{base}{offset_text(offset + first * pt.size)}]", guard=gate)
        if is_bool:
            preds = []
            for d, alt in zip(dests, alts or [Const(False, dt)] * count):
                p = w.reg(PRED)
                w.op(f"setp.ne.u16 {p}, {d}, 0")
                if gate is not None and not (isinstance(alt, Const) and not alt.value):
                    w.op(f"mov.pred {p}, {self.in_register(alt)}", guard="!" + gate)
                preds.append(p)
            dests = preds
        self.values[id(u)] = dests if isinstance(u.dtype, VecDType) else dests[0]

    def render_store(self, u: UOp) -> None:
        w = self.w
        if id(u) in self.copies.by_store:
            async_copy.render(self, u, self.copies.by_store[id(u)])
            self.copying = True
            return
        buf, idx, value = u.src[0], u.src[1], u.src[2]
        dt = _scalar(value.dtype)
        pt = ptx_type(dt)
        base, offset = self.address(buf, idx, pt.size)
        gate = self.register(u.src[3]) if len(u.src) > 3 else None
        regs = []
        for lane in self.lanes(value):
            if dt == dtypes.bool:
                byte = w.reg(U16)
                w.op(f"selp.u16 {byte}, 1, 0, {self.in_register(lane)}")
                regs.append(byte)
            else:
                regs.append(self.in_register(lane))
        space = self.space(buf, store=True)
        for first, n in pieces(len(regs), pt.size):
            part = regs[first:first + n]
            operand = part[0] if n == 1 else "{" + ", ".join(part) + "}"
            vec = "" if n == 1 else f".v{n}"
            w.op(f"st.{space}{vec}.{pt.mem} [{base}{offset_text(offset + first * pt.size)}], {operand}", guard=gate)

    # -- conversions -----------------------------------------------------------------------------------------

    def cast(self, v: Value, src: DType, dst: DType) -> Value:
        w = self.w
        if src == dst:
            return v
        if isinstance(v, Const):
            v = self.in_register(v)
        assert isinstance(v, str)
        s, d = ptx_type(src), ptx_type(dst)
        out = self.new(dst)
        if dst == dtypes.bool:
            if src.is_float:
                zero = self.new(src) if src == dtypes.float16 else None
                if zero is not None:
                    w.op(f"mov.b16 {zero}, 0x0000")
                w.op(f"setp.neu.{s.arith} {out}, {v}, {zero or immediate(Const(0.0, src))}")
            else:
                w.op(f"setp.ne.{s.arith} {out}, {v}, 0")
        elif src == dtypes.bool:
            one, zero = (f16_bits(1.0), f16_bits(0.0)) if dst == dtypes.float16 else (
                (immediate(Const(1.0, dst)), immediate(Const(0.0, dst))) if dst.is_float else ("1", "0"))
            kind = "b16" if dst == dtypes.float16 else d.arith
            w.op(f"selp.{kind} {out}, {one}, {zero}, {v}")
        elif src.is_float and dst.is_float:
            rounding = ".rn" if dst.itemsize < src.itemsize else ""
            w.op(f"cvt{rounding}.{d.arith}.{s.arith} {out}, {v}")
        elif src.is_float:  # to an integer: truncate toward zero, saturate to the type's range, NaN -> 0
            w.op(f"cvt.rzi.{d.mem}.{s.arith} {out}, {v}")
            if src.itemsize == 8 or dst.itemsize == 8:  # there the GPU gives NaN the top bit alone, not 0
                nan = self.new(dtypes.bool)
                w.op(f"setp.nan.{s.arith} {nan}, {v}, {v}")
                w.op(f"selp.{d.arith} {out}, 0, {out}, {nan}")
        elif dst.is_float:
            w.op(f"cvt.rn.{d.arith}.{s.arith} {out}, {v}")
        elif dst.itemsize == 1:  # integer narrowing to 8 bits: keep the low byte, extended by its sign or not
            w.op(f"cvt.{d.arith}.{d.mem} {out}, {v}")
        else:
            w.op(f"cvt.{d.arith}.{s.arith} {out}, {v}")
        return out

    def bitcast(self, u: UOp) -> Value:
        src, dst = _scalar(u.src[0].dtype), _scalar(u.dtype)
        v = self.values[id(u.src[0])]
        if src.itemsize != dst.itemsize:
            self.fail(u, f"bitcast from {src.name} to {dst.name} changes the size")
        if src == dst:
            return v
        if src.itemsize == 1:  # int8/uint8/bool: the same byte read another way
            return self.cast(v, src, dst) if dtypes.bool in (src, dst) else self._rewrap(v, src, dst)
        out = self.new(dst)
        self.w.op(f"mov.{ptx_type(dst).bits} {out}, {self.in_register(v)}")
        return out

    def _rewrap(self, v: Value, src: DType, dst: DType) -> str:
        out = self.new(dst)
        d = ptx_type(dst)
        self.w.op(f"cvt.{d.arith}.{d.mem} {out}, {self.in_register(v)}")
        return out

    # -- arithmetic ------------------------------------------------------------------------------------------

    def alu(self, u: UOp) -> str:
        op = u.op
        dt = _scalar(u.dtype)
        operand_dt = _scalar(u.src[-1].dtype) if op is Ops.WHERE else _scalar(u.src[0].dtype)
        if operand_dt == dtypes.bool and op is not Ops.WHERE:
            return self.pred_alu(u)
        if op in (Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ):
            return self.compare(u, operand_dt)
        if op is Ops.WHERE:
            return self.where(u, dt)
        if dt.is_float:
            return self.float_alu(u, dt)
        return self.int_alu(u, dt)

    def compare(self, u: UOp, dt: DType) -> str:
        pt = ptx_type(dt)
        names = {Ops.CMPLT: "lt", Ops.CMPEQ: "eq", Ops.CMPNE: "neu" if dt.is_float else "ne"}
        out = self.w.reg(PRED)
        self.w.op(f"setp.{names[u.op]}.{pt.arith} {out}, {self.operand(u.src[0])}, {self.operand(u.src[1])}")
        return out

    def where(self, u: UOp, dt: DType) -> str:
        cond = self.register(u.src[0])
        out = self.new(dt)
        if dt == dtypes.bool:
            self.w.op(f"mov.pred {out}, {self.register(u.src[2])}")
            self.w.op(f"mov.pred {out}, {self.register(u.src[1])}", guard=cond)
            return out
        pt = ptx_type(dt)
        kind = pt.arith if dt.is_float and dt != dtypes.float16 else pt.bits
        self.w.op(f"selp.{kind} {out}, {self.operand(u.src[1])}, {self.operand(u.src[2])}, {cond}")
        return out

    def pred_alu(self, u: UOp) -> str:
        w, op = self.w, u.op
        a = self.register(u.src[0])
        b = self.register(u.src[1]) if len(u.src) > 1 else ""
        out = w.reg(PRED)
        if op in (Ops.AND, Ops.MUL):
            w.op(f"and.pred {out}, {a}, {b}")
        elif op in (Ops.OR, Ops.ADD, Ops.MAX):
            w.op(f"or.pred {out}, {a}, {b}")
        elif op in (Ops.XOR, Ops.CMPNE, Ops.SUB):
            w.op(f"xor.pred {out}, {a}, {b}")
        elif op is Ops.CMPEQ:
            w.op(f"xor.pred {out}, {a}, {b}")
            w.op(f"not.pred {out}, {out}")
        elif op is Ops.CMPLT:  # a < b for bools: !a and b
            w.op(f"not.pred {out}, {a}")
            w.op(f"and.pred {out}, {out}, {b}")
        elif op is Ops.NEG:  # bool NEG is NOT (as Tensor.neg on bools)
            w.op(f"not.pred {out}, {a}")
        else:
            self.fail(u, "no such operation on bool")
        return out

    def int_alu(self, u: UOp, dt: DType) -> str:
        w, op = self.w, u.op
        pt = ptx_type(dt)
        t = pt.arith
        srcs = [self.operand(s) for s in u.src] if len(u.src) > 1 else [self.register(u.src[0])]
        simple = {Ops.ADD: f"add.{t}", Ops.SUB: f"sub.{t}", Ops.MUL: f"mul.lo.{t}", Ops.MAX: f"max.{t}",
                  Ops.AND: f"and.{pt.bits}", Ops.OR: f"or.{pt.bits}", Ops.XOR: f"xor.{pt.bits}",
                  Ops.MULACC: f"mad.lo.{t}", Ops.NEG: f"neg.s{t[1:]}"}
        if op in (Ops.IDIV, Ops.MOD):  # x / 0 == x % 0 == 0, MIN / -1 == MIN
            divisor = self.values[id(u.src[1])]
            known = int(divisor.value) if isinstance(divisor, Const) else None
            out = mathlib.int_divmod(w, pt, op is Ops.IDIV, srcs[0], srcs[1], known)
        elif op in simple:
            out = w.reg(pt.reg)
            w.op(f"{simple[op]} {out}, {', '.join(srcs)}")
        else:
            self.fail(u, "no such operation on integers")
        if pt.size == 1 and op in _WRAPPING:  # 8-bit results live in 16-bit registers: wrap them
            w.op(f"cvt.{t}.{pt.mem} {out}, {out}")
        return out

    def float_alu(self, u: UOp, dt: DType) -> str:
        w, op = self.w, u.op
        t = ptx_type(dt).arith
        if op in (Ops.ADD, Ops.SUB, Ops.MUL, Ops.MULACC, Ops.NEG, Ops.TRUNC) or (op is Ops.MAX and t != "f64"):
            srcs = [self.operand(s) for s in u.src] if len(u.src) > 1 else [self.register(u.src[0])]
            out = self.new(dt)
            name = {Ops.ADD: "add.rn", Ops.SUB: "sub.rn", Ops.MUL: "mul.rn", Ops.MULACC: "fma.rn", Ops.NEG: "neg",
                    Ops.MAX: "max.NaN", Ops.TRUNC: f"cvt.rzi.{t}"}[op]
            w.op(f"{name}.{t} {out}, {', '.join(srcs)}")
            return out
        if op is Ops.MAX:  # f64: max, except that NaN in either operand gives NaN (like numpy)
            a, b = self.operand(u.src[0]), self.operand(u.src[1])
            out, nan, total = self.new(dt), w.reg(PRED), self.new(dt)
            w.op(f"max.f64 {out}, {a}, {b}")
            w.op(f"setp.nan.f64 {nan}, {a}, {b}")
            w.op(f"add.rn.f64 {total}, {a}, {b}")
            w.op(f"selp.f64 {out}, {total}, {out}, {nan}")
            return out
        if t == "f16":  # no f16 instruction: compute in f32, round once
            wide = [str(self.cast(self.values[id(s)], dtypes.float16, dtypes.float32)) for s in u.src]
            result = self._float_math(u, wide, "f32")
            return str(self.cast(result, dtypes.float32, dtypes.float16))
        srcs = [self.operand(s) for s in u.src] if len(u.src) > 1 else [self.register(u.src[0])]
        return self._float_math(u, srcs, t)

    def _float_math(self, u: UOp, srcs: list[str], t: str) -> str:
        w, op = self.w, u.op
        cls = F32 if t == "f32" else F64
        if op in (Ops.DIV, Ops.SQRT, Ops.RECIP):
            out = w.reg(cls)
            name = {Ops.DIV: "div.rn", Ops.SQRT: "sqrt.rn", Ops.RECIP: "rcp.rn"}[op]
            w.op(f"{name}.{t} {out}, {', '.join(srcs)}")
            return out
        regs = [self._reg_of(s, cls, t) for s in srcs]
        if op is Ops.EXP2:
            return mathlib.exp2_f32(w, regs[0]) if t == "f32" else mathlib.exp2_f64(w, regs[0])
        if op is Ops.LOG2:
            return mathlib.log2_f32(w, regs[0]) if t == "f32" else mathlib.log2_f64(w, regs[0])
        if op is Ops.SIN:
            return mathlib.sin_f32(w, regs[0]) if t == "f32" else mathlib.sin_f64(w, regs[0])
        return self.fail(u, "no such operation on floats")

    def _reg_of(self, operand: str, cls: Any, t: str) -> str:
        if operand.startswith("%"):
            return operand
        reg = self.w.reg(cls)
        self.w.op(f"mov.{t} {reg}, {operand}")
        return reg
