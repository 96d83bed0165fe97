"""The RDNA3 emitter: renders one kernel's micro-ops as one gfx1100 wave32 kernel in LLVM's AMDGPU assembly.

Every value lives in VGPRs (one per lane; v0 holds the packed work-item ids), allocated from its definition to its
last use (:mod:`tg_rdna.regs`); constants are instruction literals.  The kernel-argument pointers are loaded
once with ``s_load_b128``/``s_load_b64`` into SGPR pairs from the kernarg segment (s[0:1]), a launch variable
(``DEFINE_VAR``, int32 or float32) with ``s_load_b32`` from after them and copied into a VGPR; ``gidx<d>`` is the
work-group id SGPR ``s<2+d>``, ``lidx<d>`` a 10-bit field of v0.  Global loads and stores are ``global_load_*`` /
``global_store_*`` with the buffer's SGPR base and a 32-bit byte offset; a gated one runs under EXEC masked with
``s_and_saveexec_b32`` and restored after (a masked-off lane keeps the alternative value and touches no memory).
Loops (``RANGE``) keep the lanes still iterating in EXEC and leave with ``s_cbranch_execz``.  ``DEFINE_LOCAL`` is
LDS (``ds_load_*``/``ds_store_*``), ``BARRIER`` is ``s_barrier`` after this wave's stores are done.  The waits
and hazard stalls are placed by :class:`tg_rdna.asm.Asm`; ALU ops, casts and the math sequences are in
:mod:`tg_rdna.alu`; float16 micro-ops on lanes 2k and 2k+1 of one vector are paired into packed instructions
(:mod:`tg_rdna.packed`, which also picks the order the micro-ops are rendered in).  The kernel descriptor and
metadata come from :mod:`tg_rdna.codeobject`.  A kernel that needs more registers than a wave has in core's order
is rendered again in :func:`tg_rdna.schedule.sink`'s.
"""

from __future__ import annotations

import math
import re
from typing import Any

from tg.backends.contract import Capabilities, Emitter, TooManyRegisters
from tg.codegen.program import LoweredKernel, Program, variable_params
from tg.codegen.render import TextRenderer
from tg.codegen.uops import Ops, PtrDType, UOp, VecDType, format_uops
from tg.support.dtype import DType

from tg_rdna import __version__
from tg_rdna.alu import AluMixin, kind_of
from tg_rdna.asm import Asm
from tg_rdna.codeobject import MAX_SGPRS, MAX_VGPRS, KernelDescription, assembly
from tg_rdna.packed import PackedMixin, Plan, plan
from tg_rdna.regs import OutOfRegisters, Registers, last_uses
from tg_rdna.schedule import sink
from tg_rdna.vectors import VectorMixin, block_registers

GROUP_SIZE = 128
RESIDENT_SGPRS = 72  # buffer addresses kept in SGPRs for the whole kernel up to this many SGPRs
LOCAL_MEMORY = 32 * 1024
CAPABILITIES = Capabilities(
    dtypes=frozenset({"float16", "float32", "int8", "uint8", "int32", "int64", "bool"}),
    sin_is_sin2pi=True,  # v_sin_f32 takes revolutions
    local_memory=LOCAL_MEMORY,  # LDS per work group (gfx1100 has 64 KiB)
    group_size=GROUP_SIZE,  # 4 wave32 waves per work group: gidx0 = s2, lidx0 = v0[9:0]
    launch_dims=3,  # the output's shape in the grid: gidx1 = s3, gidx2 = s4 (lidx1/2 = v0[19:10], v0[29:20])
    # 4 lanes: global_load_b128 / global_store_b128 for float32 (tg_rdna.vectors); a kernel whose vectors keep more
    # than 256 VGPRs live (vectorised int64 x ** y) raises TooManyRegisters and core lowers it again without them
    vector_width=4,
    upcast=16,  # a reduction thread computes a 4x4 register tile
    # exact division (v_div_scale/v_div_fmas/v_div_fixup), v_fma_f32 for a*b+c
    renders=frozenset({Ops.NEG, Ops.RECIP, Ops.SUB, Ops.CMPEQ, Ops.DIV, Ops.MULACC}),
    variables=frozenset({"int32", "float32"}),  # 4 bytes each in the kernarg segment after the buffers (codeobject)
)
_SIZES = {1: "8", 2: "16", 4: "32", 8: "64"}


class RDNAEmitter(Emitter):
    """Micro-ops -> gfx1100 (RDNA3) wave32 assembly, one kernel per code object."""

    target = "rdna"
    language = "rdna"
    capabilities = CAPABILITIES

    #: Pair float16 micro-ops of lanes 2k/2k+1 into packed instructions (:mod:`tg_rdna.packed`).
    packed_f16 = True

    def render(self, kernel: LoweredKernel) -> Program:
        name = kernel_name(kernel.name)
        try:
            source, desc = self._render(name, kernel, None)
        except RegisterPressureError:  # core's order keeps too much live: values right before their use instead
            source, desc = self._render(name, kernel, sink(kernel.uops))
        return Program.of(kernel, source, name=name, kernarg_size=desc.explicit_size, lds=desc.lds)


    def _render(self, name: str, kernel: LoweredKernel, order: list[UOp] | None) -> tuple[str, KernelDescription]:
        uops = kernel.uops if order is None else order
        pairs = plan(uops) if self.packed_f16 else Plan(list(uops))
        try:
            return _Kernel(name, kernel, pairs).render()
        except RegisterPressureError:
            if not pairs.pair_of:
                raise
            return _Kernel(name, kernel, Plan(list(uops))).render()  # the pairs kept vectors live too long


class RegisterPressureError(TooManyRegisters):
    """A kernel needs more VGPRs or SGPRs live at once than a wave has (tg-rdna does not spill): core lowers it
    again without register tiles and vector lanes (see ``TooManyRegisters`` in :mod:`tg.hooks`)."""


def kernel_name(name: str) -> str:
    """A symbol for the kernel: tg's name with anything else than [A-Za-z0-9_] replaced."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name) or "kernel"
    return clean if not clean[0].isdigit() else f"k_{clean}"


def _is64(dtype: Any) -> bool:
    return isinstance(dtype, DType) and dtype.itemsize == 8


def _elem(dtype: Any) -> DType:
    base = dtype.base if isinstance(dtype, PtrDType) else dtype
    assert isinstance(base, DType), dtype
    return base


class _Kernel(PackedMixin, VectorMixin, AluMixin, TextRenderer):
    """One kernel being rendered."""

    def __init__(self, name: str, kernel: LoweredKernel, pairs: Plan | None = None):
        pairs = plan(kernel.uops) if pairs is None else pairs  # the order to render in and its float16 pairs
        super().__init__(pairs.order)
        self.plan, self.rendered_pairs = pairs, set()
        self.name, self.kernel = name, kernel
        self.a = Asm(scratch=self.tmp)
        self.dims = max(1, len(kernel.global_size), len(kernel.local_size))
        self.nbuf = len(kernel.buffers)
        # launch variables in Program.variables order (core's list, not the render order): their kernarg offsets
        variables = variable_params(kernel.uops)
        self.variables = tuple(v.arg[0] for v in variables)
        self.variable_offsets = {id(v): 8 * self.nbuf + 4 * i for i, v in enumerate(variables)}
        first_sgpr = 2 + self.dims
        self.bases_at = (first_sgpr + 3) // 4 * 4  # buffer i's address: s[bases_at+2i : +1], 16-byte aligned
        # with many buffers the addresses do not all fit in SGPRs: each is then loaded where it is used
        self.resident = self.bases_at + 2 * self.nbuf <= RESIDENT_SGPRS
        self.regs = Registers(MAX_VGPRS, self.bases_at + 2 * self.nbuf if self.resident else self.bases_at,
                              MAX_SGPRS)
        self.last = last_uses(self.uops)
        self.plan.extend_lifetimes(self.last)
        self.consts: dict[int, tuple[Any, DType]] = {}
        self.local: dict[int, int] = {}  # DEFINE_LOCAL -> its byte offset in LDS
        self.lds = 0
        self.loops: dict[int, tuple[str, str, str]] = {}  # RANGE -> (top label, end label, saved EXEC)
        self.temps: list[str] = []
        self.stemps: list[str] = []  # scratch SGPR pairs of this micro-op
        self.owned: dict[int, str] = {}  # value -> the register it owns (released after its last use)
        self.labels = 0

    # -- whole kernel ------------------------------------------------------------------------------------------

    def render(self) -> tuple[str, KernelDescription]:
        self._load_arguments()
        try:
            for position, u in enumerate(self.uops):
                self.position = position
                method = getattr(self, f"render_{u.op.name.lower()}", None)
                if id(u) in self.plan.skip:  # a GEP that only pairs read (they read its vector's register)
                    pass
                elif id(u) in self.plan.pair_of:
                    self.render_pair(u)
                elif method is not None:
                    method(u)
                else:
                    self.from_table(u)  # ALU ops: the instruction table of the operands' kind (tg_rdna.alu)
                self._release(position)
        except OutOfRegisters as exc:
            raise RegisterPressureError(f"tg-rdna: kernel {self.name} needs {exc} (tg-rdna does not spill)") from exc
        self.a.raw("s_endpgm")
        group = math.prod(self.kernel.local_size)
        desc = KernelDescription(self.name, self.nbuf, self.variables, vgprs=self.regs.vtop, sgprs=self.regs.stop,
                                 dims=self.dims, lds=self.lds, group=max(group, 1))
        launch = f"{'x'.join(map(str, self.kernel.global_size))} groups of {'x'.join(map(str, self.kernel.local_size))}"
        comment = f"{self.name}: generated by tg-rdna {__version__} from tg micro-ops; launch: {launch}"
        return assembly(desc, self.a.lines, comment), desc

    def _load_arguments(self) -> None:
        if not self.resident:
            self.a.comment(f"{self.nbuf} buffers: each address is loaded from the kernarg segment where it is used")
            return
        self.a.comment("kernel arguments: the buffers' addresses from the kernarg segment (s[0:1])")
        i = 0
        while i < self.nbuf:
            width = 2 if i + 1 < self.nbuf else 1
            lo = self.bases_at + 2 * i
            reg = f"s[{lo}:{lo + 2 * width - 1}]"
            self.a.ins(f"s_load_b{64 * width}", reg, "s[0:1]", hex(8 * i), memory="smem",
                       note=" ".join(f"buf{j}" for j in range(i, i + width)))
            i += width

    def _release(self, position: int) -> None:
        for t in self.temps + self.stemps:
            self.regs.release(t)
        self.temps.clear()
        self.stemps.clear()
        for key in [k for k, reg in self.owned.items() if self.last.get(k, -1) <= position]:
            self.regs.release(self.owned.pop(key))

    # -- values ------------------------------------------------------------------------------------------------

    def out(self, u: UOp, note: str = "") -> str:
        """A fresh register for ``u``'s value."""
        reg = self.regs.vgpr(2 if _is64(u.dtype) else 1)
        self.owned[id(u)] = reg
        self.names[id(u)] = reg
        return reg

    def tmp(self) -> str:
        reg = self.regs.vgpr()
        self.temps.append(reg)
        return reg

    def tmp_pair(self) -> str:
        reg = self.regs.vgpr(2)
        self.temps.append(reg)
        return reg

    def scalar_loop_begin(self, count: int) -> tuple[str, str]:
        """A uniform loop of ``count`` trips (an SGPR counts down); its body follows."""
        self.labels += 1
        counter, label = self.regs.sgpr(), f".L{self.name}_steps{self.labels}"
        self.a.ins("s_mov_b32", counter, str(count), note=f"{count} steps")
        self.a.label(label)
        return counter, label

    def scalar_loop_end(self, counter: str, label: str) -> None:
        self.a.ins("s_sub_u32", counter, counter, "1")
        self.a.ins("s_cmp_lg_u32", counter, "0", dst=0)
        self.a.branch("s_cbranch_scc1", label)
        self.regs.release(counter)

    def fail(self, u: UOp, why: str) -> Any:
        raise NotImplementedError(f"tg-rdna cannot render {u.op.name} ({u.dtype}): {why}\n{format_uops(self.uops)}")

    def note(self, u: UOp) -> str:
        dt = u.dtype.name if u.dtype is not None else ""
        return f"%{self.position} {u.op.name} {dt}".rstrip()

    # -- definitions -------------------------------------------------------------------------------------------

    def render_define_global(self, u: UOp) -> None:
        index = u.arg[0]
        lo = self.bases_at + 2 * index
        self.names[id(u)] = f"s[{lo}:{lo + 1}]" if self.resident else f"buf{index}"

    def render_define_var(self, u: UOp) -> None:
        """A launch variable: its 4 bytes from the kernarg segment into a scratch SGPR, then into the value's VGPR
        (ALU ops take their operands from VGPRs)."""
        scalar = self.regs.sgpr()
        self.stemps.append(scalar)
        self.a.ins("s_load_b32", scalar, "s[0:1]", hex(self.variable_offsets[id(u)]), memory="smem",
                   note=f"var_{u.arg[0]}")
        self.a.ins("v_mov_b32", self.out(u), scalar, note=f"%{self.position} {u.arg[0]}")

    def base(self, buf: UOp) -> str:
        """The SGPR pair holding a buffer's address (loaded into a scratch pair here when not resident)."""
        if self.resident:
            return self.names[id(buf)]
        pair = self.regs.sgpr(2, align=2)
        self.stemps.append(pair)
        self.a.ins("s_load_b64", pair, "s[0:1]", hex(8 * buf.arg[0]), memory="smem", note=f"buf{buf.arg[0]}")
        return pair

    def render_define_local(self, u: UOp) -> None:
        size = _elem(u.dtype).itemsize * u.arg[1]
        self.local[id(u)] = self.lds
        self.lds = (self.lds + size + 15) // 16 * 16
        self.a.comment(f"%{self.position} {u.arg[0]}: LDS bytes {self.local[id(u)]}..{self.local[id(u)] + size - 1}")

    def render_const(self, u: UOp) -> None:
        self.consts[id(u)] = (u.arg, _elem(u.dtype))

    def render_special(self, u: UOp) -> None:
        name = u.arg[0]
        d = int(name[-1])
        reg = self.out(u)
        if name.startswith("gidx"):
            self.a.ins("v_mov_b32", reg, f"s{2 + d}", note=f"{name}: work-group id")
        else:
            self.a.ins("v_bfe_u32", reg, "v0", str(10 * d), "10", note=f"{name}: work-item id")

    def render_define_acc(self, u: UOp) -> None:
        reg = self.out(u)
        if _is64(u.dtype):
            self.consts[id(u)] = (u.arg, _elem(u.dtype))
            self.move64(reg, u, note=f"%{self.position} accumulator")
            del self.consts[id(u)]
            return
        self.a.ins("v_mov_b32", reg, self.literal(u.arg, _elem(u.dtype)), note=f"%{self.position} accumulator")

    def render_assign(self, u: UOp) -> None:
        acc = self.names[id(u.src[0])]
        self.names[id(u)] = acc
        if _is64(u.dtype):
            return self.move64(acc, u.src[1], note=self.note(u))
        value = self.src(u.src[1])
        if value != acc:
            self.a.ins("v_mov_b32", acc, value, note=self.note(u))

    # -- control flow ------------------------------------------------------------------------------------------

    def render_range(self, u: UOp) -> None:
        self.labels += 1
        top, end = f".L{self.name}_loop{self.labels}", f".L{self.name}_done{self.labels}"
        saved = self.regs.sgpr()
        counter = self.out(u)
        self.a.ins("v_mov_b32", counter, self.src(u.src[0]), note=f"%{self.position} loop counter")
        self.a.ins("s_mov_b32", saved, "exec_lo", note="the lanes before the loop")
        self.a.label(top)
        self.depth += 1
        self.a.ins("v_cmp_lt_i32", "vcc_lo", counter, self.src(u.src[1]), dst=0)
        self.a.ins("s_and_b32", "exec_lo", "exec_lo", "vcc_lo", note="lanes still iterating")
        self.a.branch("s_cbranch_execz", end)
        self.loops[id(u)] = (top, end, saved)

    def render_endrange(self, u: UOp) -> None:
        top, end, saved = self.loops.pop(id(u.src[0]))
        counter = self.names[id(u.src[0])]
        self.a.ins("v_add_nc_u32", counter, "1", counter)
        self.a.branch("s_branch", top)
        self.a.label(end)
        self.a.ins("s_mov_b32", "exec_lo", saved, note="the lanes before the loop")
        self.regs.release(saved)
        self.depth -= 1

    def render_barrier(self, u: UOp) -> None:
        self.a.settle_stores()
        self.a.raw("s_barrier")

    # -- memory ------------------------------------------------------------------------------------------------

    def _byte_offset(self, index: UOp, size: int) -> str:
        """A VGPR holding ``index * size`` (bytes)."""
        reg = self.tmp()
        if index.op is Ops.CONST:
            self.a.ins("v_mov_b32", reg, self.literal(int(index.arg) * size, None))
        elif size == 1:
            self.a.ins("v_mov_b32", reg, self.names[id(index)])
        else:
            self.a.ins("v_lshlrev_b32", reg, str(size.bit_length() - 1), self.names[id(index)])
        return reg

    def _gate(self, gate: UOp | None) -> str | None:
        """Mask EXEC with ``gate``; the SGPR that holds the lanes before (None: no gate)."""
        if gate is None:
            return None
        if gate.op is Ops.CONST:
            if gate.arg:
                return None
            return "never"
        saved = self.regs.sgpr()
        self.a.ins("v_cmp_ne_u32", "vcc_lo", "0", self.names[id(gate)], dst=0)
        self.a.ins("s_and_saveexec_b32", saved, "vcc_lo", note="lanes whose gate is true")
        return saved

    def _ungate(self, saved: str | None) -> None:
        if saved is not None and saved != "never":
            self.a.ins("s_mov_b32", "exec_lo", saved, note="all lanes again")
            self.regs.release(saved)

    def render_load(self, u: UOp) -> None:
        buf, index = u.src[0], u.src[1]
        gate = u.src[2] if len(u.src) > 2 else None
        if isinstance(u.dtype, VecDType):
            return self._load_vector(u, buf, index, gate)
        dt = _elem(u.dtype)
        dst = self.out(u)
        if gate is not None and _is64(dt):
            self.move64(dst, u.src[3], note="the value where the gate is false")
        elif gate is not None:
            self.a.ins("v_mov_b32", dst, self.src(u.src[3]), note="the value where the gate is false")
        saved = self._gate(gate)
        if saved == "never":
            return
        offset = self._byte_offset(index, dt.itemsize)
        kind = kind_of(dt)
        suffix = {"i8": "i8", "u8": "u8", "bool": "u8", "f16": "u16", "i64": "b64"}.get(kind, "b32")
        if dt.itemsize not in _SIZES:
            self.fail(u, f"{dt.name} loads are not supported")
        if id(buf) in self.local:
            self.a.ins(f"ds_load_{suffix}", dst, f"{offset} offset:{self.local[id(buf)]}", memory="lds",
                       note=self.note(u))
        else:
            self.a.ins(f"global_load_{suffix}", dst, offset, self.base(buf), memory="vm", note=self.note(u))
        self._ungate(saved)

    def _load_vector(self, u: UOp, buf: UOp, index: UOp, gate: UOp | None) -> None:
        assert isinstance(u.dtype, VecDType)
        regs = self.block(u)
        if gate is not None:
            alt = u.src[3]
            if isinstance(alt.dtype, VecDType):
                for reg, lane in zip(regs, block_registers(self.names[id(alt)]), strict=True):
                    self.a.ins("v_mov_b32", reg, lane)
            else:
                self.fill(regs, [alt] * u.dtype.count, u.dtype.base)
        saved = self._gate(gate)
        if saved == "never":
            return
        offset = self._byte_offset(index, u.dtype.base.itemsize)
        local = self.local.get(id(buf))
        self.load_vector(u, offset, [] if local is not None else [self.base(buf)], local)
        self._ungate(saved)

    def render_store(self, u: UOp) -> None:
        buf, index, value = u.src[0], u.src[1], u.src[2]
        gate = u.src[3] if len(u.src) > 3 else None
        dt = _elem(buf.dtype)
        saved = self._gate(gate)
        if saved == "never":
            return
        offset = self._byte_offset(index, dt.itemsize)
        if isinstance(value.dtype, VecDType):
            local = self.local.get(id(buf))
            self.store_vector(value, offset, [] if local is not None else [self.base(buf)], local, self.note(u))
            return self._ungate(saved)
        data = self.pair(value) if _is64(dt) else self.reg(value)
        bits = _SIZES[dt.itemsize]
        if id(buf) in self.local:
            self.a.ins(f"ds_store_b{bits}", f"{offset}", f"{data} offset:{self.local[id(buf)]}", dst=0,
                       memory="ldsstore", note=self.note(u))
        else:
            self.a.ins(f"global_store_b{bits}", offset, data, self.base(buf), dst=0, memory="vstore",
                       note=self.note(u))
        self._ungate(saved)
