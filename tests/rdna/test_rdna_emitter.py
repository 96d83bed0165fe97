"""The RDNA3 emitter's text: waits where the loaded registers are first read, hazard stalls, EXEC masking,
register reuse, every op of every declared dtype rendered and accepted by LLVM."""

from __future__ import annotations

import re

import pytest
from rdna_helpers import needs_llvm
from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel
from tg.codegen.uops import Ops
from tg.support.dtype import DType, dtypes
from tg_rdna import build
from tg_rdna.emitter import RDNAEmitter

N = 64


def _render(b: KernelBuilder, name: str = "k", global_size: tuple[int, ...] = (N,)) -> str:
    return RDNAEmitter().render(LoweredKernel(name, b.uops, global_size, (1,))).source


def _code(source: str) -> list[str]:
    """The instruction lines (no comments, labels or directives)."""
    out = []
    for line in source.splitlines():
        text = line.split("//")[0].strip()
        if text and not text.startswith(".") and not text.endswith(":") and line.startswith("  "):
            out.append(text)
    return out


def _binary(dtype: DType, op: Ops, out: DType | None = None) -> KernelBuilder:
    b = KernelBuilder()
    o = b.define_global(0, out or dtype, True)
    x, y = b.define_global(1, dtype, False), b.define_global(2, dtype, False)
    g = b.special("gidx0", N)
    b.store(o, g, b.alu(op, b.load(x, g, dtype), b.load(y, g, dtype)))
    return b


def test_each_load_is_waited_for_right_before_its_first_reader() -> None:
    code = _code(_render(_binary(dtypes.float32, Ops.ADD)))
    loads = [i for i, t in enumerate(code) if t.startswith("global_load_b32")]
    add = next(i for i, t in enumerate(code) if t.startswith("v_add_f32"))
    assert len(loads) == 2 and loads[0] < loads[1] < add
    assert code[add - 1] == "s_waitcnt vmcnt(0)", code  # both inputs are read by the add: wait for the younger one
    between = code[loads[0] + 1:add - 1]
    assert not any(t.startswith("s_waitcnt vmcnt") for t in between), code


def test_an_older_load_is_waited_for_with_a_count_of_the_younger_ones() -> None:
    b = KernelBuilder()
    o = b.define_global(0, dtypes.float32, True)
    x, y = b.define_global(1, dtypes.float32, False), b.define_global(2, dtypes.float32, False)
    g = b.special("gidx0", N)
    first = b.load(x, g, dtypes.float32)
    second = b.load(y, g, dtypes.float32)
    b.store(o, g, b.alu(Ops.ADD, b.alu(Ops.SQRT, first), second))
    code = _code(_render(b))
    waits = [t for t in code if t.startswith("s_waitcnt vmcnt")]
    assert waits == ["s_waitcnt vmcnt(1)", "s_waitcnt vmcnt(0)"], code
    assert code.index("s_waitcnt lgkmcnt(0)") < next(i for i, t in enumerate(code) if t.startswith("global_load"))


def test_a_transcendental_result_is_not_read_without_a_stall() -> None:
    for op in (Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.DIV):
        b = _binary(dtypes.float32, op) if op is Ops.DIV else None
        if b is None:
            b = KernelBuilder()
            o, x = b.define_global(0, dtypes.float32, True), b.define_global(1, dtypes.float32, False)
            g = b.special("gidx0", N)
            b.store(o, g, b.alu(op, b.load(x, g, dtypes.float32)))
        code = _code(_render(b))
        trans = [i for i, t in enumerate(code) if re.match(r"v_(exp|log|sin|sqrt|rcp)_f32", t)]
        assert trans, (op, code)
        for i in trans:
            dst = code[i].split()[1].rstrip(",")
            reader = next(j for j in range(i + 1, len(code)) if dst in re.split(r"[ ,]+", code[j])[1:])
            assert "s_waitcnt_depctr 0xfff" in code[i + 1:reader], (op, code[i:reader + 1])


def test_a_gated_store_masks_exec_and_restores_it() -> None:
    b = KernelBuilder()
    o, x = b.define_global(0, dtypes.float32, True), b.define_global(1, dtypes.float32, False)
    g = b.special("gidx0", N)
    gate = b.alu(Ops.CMPLT, g, b.const(10, dtypes.int32))
    b.store(o, g, b.load(x, g, dtypes.float32, gate, b.const(0.0, dtypes.float32)), gate)
    code = _code(_render(b))
    saves = [t for t in code if t.startswith("s_and_saveexec_b32")]
    restores = [t for t in code if t.startswith("s_mov_b32 exec_lo")]
    assert len(saves) == 2 and len(restores) == 2
    store = next(i for i, t in enumerate(code) if t.startswith("global_store"))
    assert code[store + 1].startswith("s_mov_b32 exec_lo")
    for i, t in enumerate(code):  # gfx11 VALU partial forwarding: earlier VALU results land when EXEC changes
        if t.startswith(("s_and_saveexec_b32", "s_mov_b32 exec_lo", "s_and_b32 exec_lo")):
            assert code[i + 1] == "s_waitcnt_depctr 0xfff", code[i:i + 2]


def test_a_loop_keeps_its_lanes_in_exec_and_leaves_when_none_is_left() -> None:
    b = KernelBuilder()
    o, x = b.define_global(0, dtypes.float32, True), b.define_global(1, dtypes.float32, False)
    acc = b.define_acc(0.0, dtypes.float32)
    r = b.range(0, 10)
    b.assign(acc, b.alu(Ops.ADD, acc, b.load(x, r, dtypes.float32)))
    b.end_range(r)
    b.store(o, b.const(0, dtypes.int32), acc)
    source = _render(b, global_size=(1,))
    code = _code(source)
    assert "s_and_b32 exec_lo, exec_lo, vcc_lo" in code
    assert any(t.startswith("s_cbranch_execz") for t in code) and any(t.startswith("s_branch") for t in code)
    assert re.search(r"^\.Lk_loop1:$", source, re.M) and re.search(r"^\.Lk_done1:$", source, re.M)


def test_registers_are_reused_after_their_last_use() -> None:
    b = KernelBuilder()
    o, x = b.define_global(0, dtypes.float32, True), b.define_global(1, dtypes.float32, False)
    g = b.special("gidx0", N)
    v = b.load(x, g, dtypes.float32)
    for i in range(200):
        v = b.alu(Ops.ADD, b.alu(Ops.MUL, v, v), b.const(float(i), dtypes.float32))
    b.store(o, g, v)
    source = _render(b)
    used = int(re.search(r"\.amdhsa_next_free_vgpr (\d+)", source).group(1))  # type: ignore[union-attr]
    assert used <= 8, used


def test_the_kernel_is_named_and_its_instructions_say_what_they_compute() -> None:
    source = _render(_binary(dtypes.float32, Ops.MUL), name="mul_64")
    assert re.search(r"^mul_64:$", source, re.M) and ".amdhsa_kernel mul_64" in source
    assert re.search(r"v_mul_f32 v\d+, v\d+, v\d+ +// %\d+ MUL float32", source)


def _all_ops() -> list[tuple[str, KernelBuilder]]:
    caps = RDNAEmitter.capabilities
    cases = []
    for name in sorted(caps.dtypes):
        dt = getattr(dtypes, name)
        binary = [Ops.ADD, Ops.MUL, Ops.MAX, Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ]
        if dt != dtypes.bool:
            binary += [Ops.SUB]
        if dt.is_int or dt == dtypes.bool:
            binary += [Ops.AND, Ops.OR, Ops.XOR]
        if dt.is_int:
            binary += [Ops.IDIV]
        if dt.is_float:
            binary += [Ops.DIV]
        for op in binary:
            out = dtypes.bool if op in (Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ) else dt
            cases.append((f"{op.name}_{name}", _binary(dt, op, out)))
        unary = [Ops.NEG] + ([Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIP, Ops.TRUNC] if dt.is_float else [])
        for op in unary:
            b = KernelBuilder()
            o, x = b.define_global(0, dt, True), b.define_global(1, dt, False)
            g = b.special("gidx0", N)
            b.store(o, g, b.alu(op, b.load(x, g, dt)))
            cases.append((f"{op.name}_{name}", b))
        for other in sorted(caps.dtypes):
            b = KernelBuilder()
            odt = getattr(dtypes, other)
            o, x = b.define_global(0, odt, True), b.define_global(1, dt, False)
            g = b.special("gidx0", N)
            b.store(o, g, b.cast(b.load(x, g, dt), odt))
            cases.append((f"CAST_{name}_{other}", b))
        b = KernelBuilder()
        o, xs = b.define_global(0, dt, True), [b.define_global(i, dt, False) for i in (1, 2, 3)]
        g = b.special("gidx0", N)
        b.store(o, g, b.alu(Ops.MULACC, *(b.load(x, g, dt) for x in xs)))
        cases.append((f"MULACC_{name}", b))
        b = KernelBuilder()
        o, c, x = b.define_global(0, dt, True), b.define_global(1, dtypes.bool, False), b.define_global(2, dt, False)
        g = b.special("gidx0", N)
        b.store(o, g, b.alu(Ops.WHERE, b.load(c, g, dtypes.bool), b.load(x, g, dt), b.const(1, dt)))
        cases.append((f"WHERE_{name}", b))
    return cases


@needs_llvm
def test_every_op_of_every_declared_dtype_renders_and_assembles(cache_dir: object) -> None:
    failures = []
    cases = _all_ops()
    for name, b in cases:
        source = _render(b, name=name)
        try:
            build.link(source, name)
        except build.AssemblerError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures[:3])
    assert len(cases) > 100


@pytest.mark.parametrize("dtype", [dtypes.float64])
def test_undeclared_dtypes_are_refused_by_name(dtype: DType) -> None:
    with pytest.raises(NotImplementedError, match=dtype.name):
        _render(_binary(dtype, Ops.ADD))


def many_buffers(count: int) -> KernelBuilder:
    """out = the sum of ``count`` float32 inputs (more buffers than fit in SGPRs for the whole kernel)."""
    b = KernelBuilder()
    o = b.define_global(0, dtypes.float32, True)
    ins = [b.define_global(i + 1, dtypes.float32, False) for i in range(count)]
    g = b.special("gidx0", N)
    total = b.load(ins[0], g, dtypes.float32)
    for buf in ins[1:]:
        total = b.alu(Ops.ADD, total, b.load(buf, g, dtypes.float32))
    b.store(o, g, total)
    return b


@needs_llvm
def test_a_kernel_with_more_buffers_than_sgprs_loads_each_address_where_it_is_used(cache_dir: object) -> None:
    source = _render(many_buffers(60), name="sum60")
    code = _code(source)
    assert sum(t.startswith("s_load_b64") for t in code) == 61  # 60 loads and the store
    assert int(re.search(r"\.amdhsa_next_free_sgpr (\d+)", source).group(1)) <= 16  # type: ignore[union-attr]
    build.link(source, "sum60")
    small = _code(_render(many_buffers(3)))
    assert small[0].startswith("s_load_b128") and sum(t.startswith("s_load") for t in small) == 2


def vector_copy(dtype: DType, count: int, gated: bool = False, n: int = N) -> KernelBuilder:
    """out[4g:4g+count] = reversed lanes of x[4g:4g+count] + 1, through one vector load, GEP, VECTORIZE and one
    vector store; ``gated``: the last two vectors load zeros instead (a VECTORIZE as the load's alternative)."""
    from tg.codegen.uops import VecDType

    b = KernelBuilder()
    o, x = b.define_global(0, dtype, True), b.define_global(1, dtype, False)
    g = b.special("gidx0", n // count)
    idx = b.alu(Ops.MUL, g, b.const(count, dtypes.int32))
    if gated:
        zero = b.const(False if dtype == dtypes.bool else 0, dtype)
        alt = b._add(Ops.VECTORIZE, VecDType(dtype, count), (zero,) * count)
        gate = b.alu(Ops.CMPLT, g, b.const(n // count - 2, dtypes.int32))
        vec = b.load(x, idx, VecDType(dtype, count), gate, alt)
    else:
        vec = b.load(x, idx, VecDType(dtype, count))
    lanes = [b._add(Ops.GEP, dtype, (vec,), i) for i in range(count)]
    one = b.const(True if dtype == dtypes.bool else 1, dtype)
    bumped = [b.alu(Ops.OR if dtype == dtypes.bool else Ops.ADD, lane, one) for lane in reversed(lanes)]
    b.store(o, idx, b._add(Ops.VECTORIZE, VecDType(dtype, count), tuple(bumped)))
    return b


@needs_llvm
@pytest.mark.parametrize("count", [2, 4])
def test_vector_loads_and_stores_are_one_instruction_per_16_bytes(count: int, cache_dir: object) -> None:
    for name in sorted(RDNAEmitter.capabilities.dtypes):
        dtype = getattr(dtypes, name)
        source = _render(vector_copy(dtype, count), name=f"vec_{name}_{count}")
        code = _code(source)
        loads = [t for t in code if t.startswith("global_load")]
        stores = [t for t in code if t.startswith("global_store")]
        chunks = max(1, dtype.itemsize * count // 16)
        assert len(loads) == len(stores) == chunks, (name, loads, stores)
        build.link(source, f"vec_{name}_{count}")


def hoisted_tests(count: int = 300) -> KernelBuilder:
    """out = how many of ``count`` thresholds k/10 lie above x, with every comparison listed before the first
    use (core's order can be like that): ``count`` bools live at once in that order."""
    b = KernelBuilder()
    o, x = b.define_global(0, dtypes.float32, True), b.define_global(1, dtypes.float32, False)
    g = b.special("gidx0", N)
    v = b.load(x, g, dtypes.float32)
    tests = [b.alu(Ops.CMPLT, v, b.const(k / 10, dtypes.float32)) for k in range(count)]
    total = b.const(0.0, dtypes.float32)
    for t in tests:
        total = b.alu(Ops.WHERE, t, b.alu(Ops.ADD, total, b.const(1.0, dtypes.float32)), total)
    b.store(o, g, total)
    return b


def test_a_kernel_too_big_in_cores_order_is_rendered_in_a_frugal_one() -> None:
    from tg_rdna.emitter import RegisterPressureError, _Kernel
    from tg_rdna.schedule import sink

    kernel = LoweredKernel("hoisted", hoisted_tests().uops, (N,), (1,))
    with pytest.raises(RegisterPressureError, match="VGPRs"):
        _Kernel("hoisted", kernel).render()
    source = RDNAEmitter().render(kernel).source
    assert int(re.search(r"\.amdhsa_next_free_vgpr (\d+)", source).group(1)) < 16  # type: ignore[union-attr]
    order = sink(kernel.uops)
    assert sorted(map(id, order)) == sorted(map(id, kernel.uops))
    position = {id(u): i for i, u in enumerate(order)}
    assert all(position[id(s)] < position[id(u)] for u in order for s in u.src)  # still SSA order


def test_the_frugal_order_keeps_loop_invariants_outside_and_accumulator_reads_in_place() -> None:
    from tg_rdna.schedule import sink

    b = KernelBuilder()
    o, x = b.define_global(0, dtypes.float32, True), b.define_global(1, dtypes.float32, False)
    g = b.special("gidx0", N)
    scale = b.alu(Ops.MUL, b.load(x, g, dtypes.float32), b.const(2.0, dtypes.float32))  # used inside the loop
    acc = b.define_acc(0.0, dtypes.float32)
    r = b.range(0, 4)
    before = b.alu(Ops.ADD, acc, b.const(1.0, dtypes.float32))  # reads the accumulator before it changes
    b.assign(acc, b.alu(Ops.ADD, acc, scale))
    b.store(o, g, before)  # read after the ASSIGN: moving `before` down would read the new value
    b.end_range(r)
    order = sink(b.uops)
    position = {id(u): i for i, u in enumerate(order)}
    loop = next(i for i, u in enumerate(order) if u.op is Ops.RANGE)
    assert position[id(scale)] < loop
    assign = next(i for i, u in enumerate(order) if u.op is Ops.ASSIGN)
    assert position[id(before)] < assign
