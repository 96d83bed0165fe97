"""Micro-op programs for tg-ptx's tests: every micro-op kind, in every dtype it applies to, with inputs.

Each :class:`Program` is a kernel built directly with :class:`tg.codegen.uops.KernelBuilder` plus the buffers it
runs on.  It goes through the hook spec's API like core's kernels do: :meth:`Program.lowered` is the
:class:`~tg.codegen.program.LoweredKernel`, an emitter renders that into a :class:`~tg.codegen.program.Program`
(the source, its entry's name, buffers and launch), and a runtime compiles and launches that.
:func:`run_numpy` runs it on core's numpy backend (the semantic reference), :func:`run_emu` renders it to PTX
and runs the text on tg-ptx's emulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from tg.backends.contract import Capabilities
from tg.backends.numpy_backend import NumpyEmitter, NumpyRuntime
from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel
from tg.codegen.program import Program as Rendered
from tg.codegen.tensor_cores import MMA_16x8x16_F16_F32
from tg.codegen.uops import Ops, UOp, VecDType
from tg.support.dtype import DType, dtypes
from tg_ptx.emitter import PTXEmitter
from tg_ptx.runtime_emu import EmulatorRuntime

N = 64  # threads of the elementwise programs


@dataclass
class Program:
    name: str
    uops: list[UOp]
    buffers: list[np.ndarray]  # buffer 0 is the output (its initial contents matter for gated stores)
    global_size: tuple[int, ...]
    local_size: tuple[int, ...] = (1,)
    rtol: float = 0.0
    values: dict[str, int | float] = field(default_factory=dict)  # the launch variables' values

    def lowered(self) -> LoweredKernel:
        """The kernel as core would hand it to an emitter."""
        return LoweredKernel(self.name, self.uops, self.global_size, self.local_size)

    def rendered(self) -> Rendered:
        """What the PTX emitter makes of it: the PTX text with its entry's name, buffers and launch."""
        return PTXEmitter().render(self.lowered())

    def ptx(self) -> str:
        return self.rendered().source


def run_numpy(p: Program) -> np.ndarray:
    program = NumpyEmitter(Capabilities()).render(p.lowered())
    runtime = NumpyRuntime()
    handles = [b.copy().view(np.uint8).reshape(-1) for b in p.buffers]
    runtime.launch(program, runtime.compile(program), handles, p.values)
    return handles[0].view(p.buffers[0].dtype)


def run_emu(p: Program, source: str | None = None, values: dict[str, int] | None = None,
            **changes: Any) -> np.ndarray:
    """Run ``p`` on the emulator: its PTX, or ``source`` (hand-modified PTX) with the Program's other fields
    (``changes`` replaces more of them, e.g. ``variables``); ``values`` are the variables' values."""
    runtime = EmulatorRuntime()
    handles = []
    for b in p.buffers:
        h = runtime.alloc(b.nbytes)
        runtime.copyin(h, np.ascontiguousarray(b).view(np.uint8).reshape(-1).data)
        handles.append(h)
    program = p.rendered()
    if source is not None:
        changes["source"] = source
    program = replace(program, **changes)
    runtime.launch(program, runtime.compile(program), handles, p.values if values is None else values)
    out = np.empty_like(p.buffers[0])
    runtime.copyout(out.view(np.uint8).reshape(-1).data, handles[0])
    return out


# -- data ------------------------------------------------------------------------------------------------------


def data(dtype: DType, seed: int, n: int = N, *, nonzero: bool = False, special: bool = True,
         low: float | None = None, high: float | None = None) -> np.ndarray:
    """Random values of ``dtype``; floats include inf, nan, signed zeros and subnormals when ``special``."""
    rng = np.random.default_rng(seed)
    if dtype == dtypes.bool:
        return rng.random(n) < 0.5
    if dtype.is_int:
        info = np.iinfo(dtype.np)
        lo = max(info.min, -(2**40)) if low is None else low
        hi = min(info.max, 2**40) if high is None else high
        x = rng.integers(int(lo), int(hi), size=n, endpoint=True).astype(dtype.np)
        if nonzero:
            x[x == 0] = 1
        return x
    lo, hi = (-10.0 if low is None else low), (10.0 if high is None else high)
    x = rng.uniform(lo, hi, n).astype(dtype.np)
    if special:
        tiny = np.finfo(dtype.np).tiny
        extras = [math.inf, -math.inf, math.nan, 0.0, -0.0, float(tiny) / 4, -float(tiny) / 8, 1.0, 0.5]
        x[: len(extras)] = np.array(extras).astype(dtype.np)
    if nonzero:
        x[x == 0] = 1
    return x


# -- builders -----------------------------------------------------------------------------------------------------


def _elementwise(name: str, out_dtype: DType, inputs: list[np.ndarray], in_dtypes: list[DType],
                 body: Body, rtol: float = 0.0) -> Program:
    b = KernelBuilder()
    out = b.define_global(0, out_dtype, True)
    bufs = [b.define_global(i + 1, dt, False) for i, dt in enumerate(in_dtypes)]
    g = b.special("gidx0", N)
    values = [b.load(buf, g, dt) for buf, dt in zip(bufs, in_dtypes)]
    b.store(out, g, body(b, values))
    return Program(name, b.uops, [np.zeros(N, out_dtype.np), *inputs], (N,), rtol=rtol)


FLOATS = [dtypes.float16, dtypes.float32, dtypes.float64]
INTS = [dtypes.int8, dtypes.uint8, dtypes.int32, dtypes.int64]
RTOL = {"float16": 1e-3, "float32": 2e-7, "float64": 1e-15}
TRANSCENDENTAL_RTOL = {"float16": 1e-3, "float32": 1e-6, "float64": 1e-14}

Body = Callable[[KernelBuilder, list[UOp]], UOp]


def alu(op: Ops) -> Body:
    """The body ``op(inputs...)``."""
    def body(b: KernelBuilder, v: list[UOp]) -> UOp:
        return b.alu(op, *v)
    return body


def cast(dtype: DType, bitcast: bool = False) -> Body:
    def body(b: KernelBuilder, v: list[UOp]) -> UOp:
        return b.bitcast(v[0], dtype) if bitcast else b.cast(v[0], dtype)
    return body


FLOAT_BINARY = [Ops.ADD, Ops.SUB, Ops.MUL, Ops.DIV, Ops.MAX, Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ]
FLOAT_UNARY = [Ops.NEG, Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIP, Ops.TRUNC]
INT_BINARY = [Ops.ADD, Ops.SUB, Ops.MUL, Ops.IDIV, Ops.MOD, Ops.MAX, Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ, Ops.AND,
              Ops.OR, Ops.XOR]
BOOL_BINARY = [Ops.AND, Ops.OR, Ops.XOR, Ops.CMPNE, Ops.CMPEQ, Ops.CMPLT, Ops.MAX, Ops.ADD, Ops.MUL]


def alu_programs() -> list[Program]:
    out: list[Program] = []
    for dt in FLOATS:
        for op in FLOAT_BINARY:
            res = dtypes.bool if op in (Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ) else dt
            out.append(_elementwise(f"{op.name.lower()}_{dt.name}", res, [data(dt, 1), data(dt, 2)], [dt, dt],
                                    alu(op), RTOL[dt.name]))
        for op in FLOAT_UNARY:
            low, high = {Ops.SIN: (-100.0, 100.0), Ops.EXP2: (-30.0, 30.0)}.get(op, (-10.0, 10.0))
            if op is Ops.LOG2 or op is Ops.SQRT:
                low = 0.0
            x = data(dt, 3, low=low, high=high)
            out.append(_elementwise(f"{op.name.lower()}_{dt.name}", dt, [x], [dt],
                                    alu(op), TRANSCENDENTAL_RTOL[dt.name]))
        out.append(_elementwise(f"mulacc_{dt.name}", dt, [data(dt, 4), data(dt, 5), data(dt, 6)], [dt, dt, dt],
                                alu(Ops.MULACC), RTOL[dt.name] * 4))
        out.append(_elementwise(f"where_{dt.name}", dt, [data(dtypes.bool, 7), data(dt, 8), data(dt, 9)],
                                [dtypes.bool, dt, dt], alu(Ops.WHERE)))
    for dt in INTS:
        for op in INT_BINARY:
            res = dtypes.bool if op in (Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ) else dt
            divisor = op in (Ops.IDIV, Ops.MOD)
            out.append(_elementwise(f"{op.name.lower()}_{dt.name}", res, [data(dt, 12), data(dt, 13, nonzero=divisor)],
                                    [dt, dt], alu(op)))
        out.append(_elementwise(f"neg_{dt.name}", dt, [data(dt, 14)], [dt], alu(Ops.NEG)))
        out.append(_elementwise(f"where_{dt.name}", dt, [data(dtypes.bool, 15), data(dt, 16), data(dt, 17)],
                                [dtypes.bool, dt, dt], alu(Ops.WHERE)))
        out.append(_elementwise(f"mulacc_{dt.name}", dt, [data(dt, 18), data(dt, 19), data(dt, 20)], [dt, dt, dt],
                                alu(Ops.MULACC)))
    bt = dtypes.bool
    for op in BOOL_BINARY:
        out.append(_elementwise(f"{op.name.lower()}_bool", bt, [data(bt, 21), data(bt, 22)], [bt, bt],
                                alu(op)))
    out.append(_elementwise("where_bool", bt, [data(bt, 23), data(bt, 24), data(bt, 25)], [bt, bt, bt],
                            alu(Ops.WHERE)))
    return out


ALL_DTYPES = [dtypes.bool, *INTS, *FLOATS]


def _cast_input(src: DType, dst: DType) -> np.ndarray:
    """Values whose conversion is defined in both dtypes (C leaves out-of-range float-to-int undefined)."""
    if src == dtypes.bool:
        return data(src, 30)
    if dst == dtypes.bool:
        return data(src, 31) if not src.is_float else data(src, 31, low=-2, high=2)
    if src.is_float and dst.is_int:
        lo, hi = (0.0, 250.0) if dst.kind == "u" else (-120.0, 120.0)
        return data(src, 32, special=False, low=lo, high=hi)
    if src.is_int and dst.is_int:
        return data(src, 33)
    if src.is_int and dst == dtypes.float16:
        return data(src, 34, low=-60000 if src.kind == "i" else 0, high=60000)
    return data(src, 35)


def cast_programs() -> list[Program]:
    out = []
    for src in ALL_DTYPES:
        for dst in ALL_DTYPES:
            if src != dst:
                out.append(_elementwise(f"cast_{src.name}_to_{dst.name}", dst, [_cast_input(src, dst)], [src],
                                        cast(dst)))
    pairs = [(dtypes.float32, dtypes.int32), (dtypes.int32, dtypes.float32), (dtypes.float64, dtypes.int64),
             (dtypes.int64, dtypes.float64), (dtypes.int8, dtypes.uint8), (dtypes.uint8, dtypes.int8)]
    for src, dst in pairs:
        out.append(_elementwise(f"bitcast_{src.name}_to_{dst.name}", dst, [data(src, 36)], [src],
                                cast(dst, bitcast=True)))
    out.append(_elementwise("bitcast_uint8_to_bool", dtypes.bool, [data(dtypes.uint8, 37, low=0, high=1)],
                            [dtypes.uint8], cast(dtypes.bool, bitcast=True)))
    out.append(_elementwise("bitcast_bool_to_int8", dtypes.int8, [data(dtypes.bool, 38)], [dtypes.bool],
                            cast(dtypes.int8, bitcast=True)))
    return out


def const_programs() -> list[Program]:
    out = []
    for dt in ALL_DTYPES:
        values: list[float | int | bool]
        if dt.is_float:
            values = [1.5, -0.0, math.inf, -math.inf, math.nan, 1e-6]
        elif dt == dtypes.bool:
            values = [True, False]
        else:
            values = [int(np.iinfo(dt.np).min), int(np.iinfo(dt.np).max), 0, 7]
        for i, v in enumerate(values):
            b = KernelBuilder()
            buf = b.define_global(0, dt, True)
            g = b.special("gidx0", N)
            b.store(buf, g, b.const(v, dt))
            out.append(Program(f"const{i}_{dt.name}", b.uops, [np.zeros(N, dt.np)], (N,)))
    return out


def memory_programs() -> list[Program]:
    out = []
    i32 = dtypes.int32
    for dt in ALL_DTYPES:
        # a masked load whose masked-off threads have indices outside the buffer on both sides
        b = KernelBuilder()
        o, a = b.define_global(0, dt, True), b.define_global(1, dt, False)
        g = b.special("gidx0", N)
        idx = b.alu(Ops.SUB, g, b.const(3, i32))
        gate = b.alu(Ops.AND, b.alu(Ops.CMPLT, b.const(2, i32), g), b.alu(Ops.CMPLT, g, b.const(N - 5, i32)))
        alt = b.const(True if dt == dtypes.bool else 7, dt)
        b.store(o, g, b.load(a, idx, dt, gate, alt))
        out.append(Program(f"gated_load_{dt.name}", b.uops, [np.zeros(N, dt.np), data(dt, 40, n=N - 8)], (N,)))
        # a masked store: every third thread writes
        b = KernelBuilder()
        o, a = b.define_global(0, dt, True), b.define_global(1, dt, False)
        g = b.special("gidx0", N)
        gate = b.alu(Ops.CMPEQ, b.alu(Ops.MOD, g, b.const(3, i32)), b.const(0, i32))
        b.store(o, g, b.load(a, g, dt), gate)
        out.append(Program(f"gated_store_{dt.name}", b.uops, [data(dt, 41), data(dt, 42)], (N,)))
        # float4-style vectors: a vector load, per-lane math, a vector store; and a gated vector load
        for gated in (False, True):
            b = KernelBuilder()
            o, a = b.define_global(0, dt, True), b.define_global(1, dt, False)
            g = b.special("gidx0", N // 4)
            base = b.alu(Ops.MUL, g, b.const(4, i32))
            vec = VecDType(dt, 4)
            if gated:
                gate = b.alu(Ops.CMPLT, g, b.const(N // 8, i32))
                zero = b.const(False if dt == dtypes.bool else 3, dt)
                loaded = b.load(a, base, vec, gate, b._add(Ops.VECTORIZE, vec, (zero,) * 4))
            else:
                loaded = b.load(a, base, vec)
            lanes = [b._add(Ops.GEP, dt, (loaded,), k) for k in range(4)]
            if dt == dtypes.bool:
                lanes = [b.alu(Ops.XOR, x, b.const(k % 2 == 0, dt)) for k, x in enumerate(lanes)]
            else:
                lanes = [b.alu(Ops.ADD, x, b.const(k, dt)) for k, x in enumerate(lanes)]
            b.store(o, base, b._add(Ops.VECTORIZE, vec, tuple(lanes)))
            inp = data(dt, 43, special=False)
            out.append(Program(f"vector{'_gated' if gated else ''}_{dt.name}", b.uops, [np.zeros(N, dt.np), inp],
                               (N // 4,)))
    return out


def loop_programs() -> list[Program]:
    out = []
    i32, f32 = dtypes.int32, dtypes.float32
    for dt in (dtypes.float32, dtypes.float16, dtypes.float64, dtypes.int32, dtypes.int64):
        # out[g] = sum_k a[g*K + k] * 2, through DEFINE_ACC / RANGE / ASSIGN
        k_len = 9
        b = KernelBuilder()
        o, a = b.define_global(0, dt, True), b.define_global(1, dt, False)
        g = b.special("gidx0", N)
        acc = b.define_acc(0, dt)
        r = b.range(0, k_len)
        x = b.load(a, b.alu(Ops.ADD, b.alu(Ops.MUL, g, b.const(k_len, i32)), r), dt)
        b.assign(acc, b.alu(Ops.ADD, acc, b.alu(Ops.MUL, x, b.const(2, dt))))
        b.end_range(r)
        b.store(o, g, acc)
        inp = data(dt, 50, n=N * k_len, special=False, low=-1 if dt.is_float else -100, high=1 if dt.is_float else 100)
        out.append(Program(f"loop_sum_{dt.name}", b.uops, [np.zeros(N, dt.np), inp], (N,), rtol=RTOL[dt.name] * 20
                           if dt.is_float else 0.0))
    # nested loops with a running max
    b = KernelBuilder()
    o, a = b.define_global(0, f32, True), b.define_global(1, f32, False)
    g = b.special("gidx0", 8)
    acc = b.define_acc(-math.inf, f32)
    r1 = b.range(0, 4)
    r2 = b.range(0, 5)
    idx = b.alu(Ops.ADD, b.alu(Ops.ADD, b.alu(Ops.MUL, g, b.const(20, i32)), b.alu(Ops.MUL, r1, b.const(5, i32))), r2)
    b.assign(acc, b.alu(Ops.MAX, acc, b.load(a, idx, f32)))
    b.end_range(r2)
    b.end_range(r1)
    b.store(o, g, acc)
    out.append(Program("nested_max", b.uops, [np.zeros(8, np.float32), data(f32, 51, n=160, special=False)], (8,)))
    # a loop that runs zero times keeps the accumulator's initial value
    b = KernelBuilder()
    o = b.define_global(0, f32, True)
    g = b.special("gidx0", 4)
    acc = b.define_acc(5.0, f32)
    r = b.range(0, 0)
    b.assign(acc, b.alu(Ops.ADD, acc, b.const(1.0, f32)))
    b.end_range(r)
    b.store(o, g, acc)
    out.append(Program("empty_loop", b.uops, [np.zeros(4, np.float32)], (4,)))
    return out


def local_programs() -> list[Program]:
    """Work-group reductions through local memory and a barrier, like core's lowering makes them."""
    out = []
    i32 = dtypes.int32
    for dt, lanes in ((dtypes.float32, 8), (dtypes.int32, 16), (dtypes.float16, 8), (dtypes.bool, 4)):
        groups, per = 5, 3
        size = lanes * per
        b = KernelBuilder()
        o, a = b.define_global(0, dt, True), b.define_global(1, dt, False)
        grp = b.special("gidx0", groups)
        lane = b.special("lidx0", lanes)
        op = Ops.OR if dt == dtypes.bool else Ops.ADD
        acc = b.define_acc(False if dt == dtypes.bool else 0, dt)
        step = b.range(0, per)
        idx = b.alu(Ops.ADD, b.alu(Ops.MUL, grp, b.const(size, i32)),
                    b.alu(Ops.ADD, b.alu(Ops.MUL, step, b.const(lanes, i32)), lane))
        b.assign(acc, b.alu(op, acc, b.load(a, idx, dt)))
        b.end_range(step)
        partials = b.define_local("partials", dt, lanes)
        b.store(partials, lane, acc)
        b.barrier()
        total = b.define_acc(False if dt == dtypes.bool else 0, dt)
        k = b.range(0, lanes)
        b.assign(total, b.alu(op, total, b.load(partials, k, dt)))
        b.end_range(k)
        b.store(o, grp, total, b.alu(Ops.CMPEQ, lane, b.const(0, i32)))
        low, high = (-1.0, 1.0) if dt.is_float else (-50, 50)
        inp = data(dt, 60, n=groups * size, special=False, low=low, high=high)
        if dt == dtypes.bool:
            inp = np.zeros(groups * size, bool)
            inp[[1, 30, 40]] = True  # some groups have a True, some do not
        out.append(Program(f"group_reduce_{dt.name}", b.uops, [np.zeros(groups, dt.np), inp], (groups,), (lanes,),
                           rtol=1e-3 if dt == dtypes.float16 else 1e-6))
    # two local arrays, a gated local load and a store from a lane other than 0
    b = KernelBuilder()
    f32 = dtypes.float32
    o, a = b.define_global(0, f32, True), b.define_global(1, f32, False)
    grp, lane = b.special("gidx0", 3), b.special("lidx0", 8)
    first = b.define_local("first", f32, 8)
    second = b.define_local("second", f32, 8)
    gid = b.alu(Ops.ADD, b.alu(Ops.MUL, grp, b.const(8, i32)), lane)
    b.store(first, lane, b.load(a, gid, f32))
    b.barrier()
    neighbour = b.alu(Ops.ADD, lane, b.const(1, i32))
    inside = b.alu(Ops.CMPLT, neighbour, b.const(8, i32))
    b.store(second, lane, b.load(first, neighbour, f32, inside, b.const(-1.0, f32)))
    b.barrier()
    b.store(o, gid, b.load(second, lane, f32))
    out.append(Program("local_neighbours", b.uops, [np.zeros(24, np.float32), data(f32, 61, n=24, special=False)],
                       (3,), (8,)))
    return out


def wmma_programs() -> list[Program]:
    """Two warps, each multiplying its own 16x16 A by a 16x8 B on the tensor core, twice (K = 32 in two steps),
    with each lane loading its fragment elements as core's layout table says."""
    tc = MMA_16x8x16_F16_F32
    f16, f32, i32 = dtypes.float16, dtypes.float32, dtypes.int32
    b = KernelBuilder()
    o, a, w = b.define_global(0, f32, True), b.define_global(1, f16, False), b.define_global(2, f16, False)
    warp, lane = b.special("gidx0", 2), b.special("lidx0", 32)

    def coord(terms: tuple[tuple[int, int, int], ...], offset: int) -> UOp:
        out = b.const(offset, i32)
        for d, m, scale in terms:
            part = b.alu(Ops.MOD, b.alu(Ops.IDIV, lane, b.const(d, i32)), b.const(m, i32))
            out = b.alu(Ops.ADD, out, b.alu(Ops.MUL, part, b.const(scale, i32)))
        return out

    accs = [b.define_acc(0.0, f32) for _ in range(4)]
    step = b.range(0, 2)
    k0 = b.alu(Ops.MUL, step, b.const(16, i32))
    a_vals, b_vals = [], []
    for e in range(8):  # A is (2 warps, 16, 32) row-major
        row, col = coord(tc.a.rows, tc.a.row_offsets[e]), b.alu(Ops.ADD, k0, coord(tc.a.cols, tc.a.col_offsets[e]))
        idx = b.alu(Ops.ADD, b.alu(Ops.MUL, warp, b.const(512, i32)), b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(
            32, i32)), col))
        a_vals.append(b.load(a, idx, f16))
    for e in range(4):  # B is (32, 8) row-major, shared by both warps
        row = b.alu(Ops.ADD, k0, coord(tc.b.rows, tc.b.row_offsets[e]))
        col = coord(tc.b.cols, tc.b.col_offsets[e])
        b_vals.append(b.load(w, b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(8, i32)), col), f16))
    frag_a = b._add(Ops.VECTORIZE, VecDType(f16, 8), tuple(a_vals))
    frag_b = b._add(Ops.VECTORIZE, VecDType(f16, 4), tuple(b_vals))
    d = b._add(Ops.WMMA, VecDType(f32, 4), (frag_a, frag_b, b._add(Ops.VECTORIZE, VecDType(f32, 4), tuple(accs))),
               tc)
    for e, acc in enumerate(accs):
        b.assign(acc, b._add(Ops.GEP, f32, (d,), e))
    b.end_range(step)
    for e, acc in enumerate(accs):  # out is (2 warps, 16, 8)
        row, col = coord(tc.c.rows, tc.c.row_offsets[e]), coord(tc.c.cols, tc.c.col_offsets[e])
        idx = b.alu(Ops.ADD, b.alu(Ops.MUL, warp, b.const(128, i32)), b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(
            8, i32)), col))
        b.store(o, idx, acc)
    rng = np.random.default_rng(70)
    inputs = [rng.uniform(-2, 2, 1024).astype(np.float16), rng.uniform(-2, 2, 256).astype(np.float16)]
    return [Program("wmma_two_warps", b.uops, [np.zeros(256, np.float32), *inputs], (2,), (32,), rtol=1e-5)]


def variable_programs() -> list[Program]:
    """Launch variables: ``out[g] = x[g] * p0 + n0`` where ``g < n0`` (float32 p0, int32 n0), the rest kept."""
    f32, i32 = dtypes.float32, dtypes.int32
    b = KernelBuilder()
    o, x = b.define_global(0, f32, True), b.define_global(1, f32, False)
    n, p = b.define_var("n0", i32, 0, N), b.define_var("p0", f32)
    g = b.special("gidx0", N)
    value = b.alu(Ops.ADD, b.alu(Ops.MUL, b.load(x, g, f32), p), b.cast(n, f32))
    b.store(o, g, value, b.alu(Ops.CMPLT, g, n))
    out = np.full(N, 7.0, np.float32)
    return [Program("variables_float32", b.uops, [out, data(f32, 80)], (N,), values={"n0": 41, "p0": -0.75})]


def all_programs() -> list[Program]:
    return [*alu_programs(), *cast_programs(), *const_programs(), *memory_programs(), *loop_programs(),
            *local_programs(), *wmma_programs(), *variable_programs()]


def scale_program() -> Program:
    """A small two-buffer kernel: out[g] = a[g] * 5 (int32), the output then one input."""
    b = KernelBuilder()
    o, a = b.define_global(0, dtypes.int32, True), b.define_global(1, dtypes.int32, False)
    g = b.special("gidx0", 8)
    b.store(o, g, b.alu(Ops.MUL, b.load(a, g, dtypes.int32), b.const(5, dtypes.int32)))
    return Program("scale_by_5", b.uops, [np.zeros(8, np.int32), np.arange(8, dtype=np.int32)], (8,))
