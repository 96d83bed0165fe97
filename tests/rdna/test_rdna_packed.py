"""Packed float16 math (tg_rdna.packed): float16 micro-ops on lanes 2k/2k+1 of one vector become one ``v_pk_*``
instruction; the results are bit for bit those of the scalar path and of numpy's float16 arithmetic, NaN, inf,
denormal and -0.0 inputs included; where the pattern does not match exactly, the lanes stay scalar."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rdna_helpers import needs_llvm
from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.uops import Ops, UOp, VecDType
from tg.support.dtype import dtypes
from tg_rdna import packed
from tg_rdna.emitter import RDNAEmitter

N = 256
F16 = dtypes.float16
H4 = VecDType(F16, 4)
Expr = Callable[[KernelBuilder, UOp, UOp, UOp, UOp], UOp]  # (builder, x, y, z, s) -> one lane's value


def _kernel(expr: Expr, name: str) -> LoweredKernel:
    """out[i] = expr(x[i], y[i], z[i], s) for 4 lanes per thread (vector loads, GEPs, VECTORIZE), s = y[0]."""
    b = KernelBuilder()
    o, x, y, z = (b.define_global(i, F16, i == 0) for i in range(4))
    g = b.special("gidx0", N // 4)
    idx = b.alu(Ops.MUL, g, b.const(4, dtypes.int32))
    s = b.load(y, b.const(0, dtypes.int32), F16)
    vx, vy, vz = (b.load(buf, idx, H4) for buf in (x, y, z))
    lanes = [expr(b, *(b._add(Ops.GEP, F16, (v,), i) for v in (vx, vy, vz)), s) for i in range(4)]
    b.store(o, idx, b._add(Ops.VECTORIZE, H4, tuple(lanes)))
    return LoweredKernel(name, b.uops, (N // 4,), (1,))


def _render(kernel: LoweredKernel, pack: bool = True) -> Program:
    emitter = RDNAEmitter()
    emitter.packed_f16 = pack
    return emitter.render(kernel)


def _code(source: str) -> list[str]:
    return [line.split("//")[0].strip() for line in source.splitlines()
            if line.startswith("  ") and not line.strip().startswith(("//", "."))]


def _run(program: Program, *inputs: np.ndarray) -> np.ndarray:
    from test_rdna_emu import _run as run_on_emulator

    return run_on_emulator(program, *inputs, out_dtype=np.uint16, n=N)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float16 inputs: NaNs (both signs, a payload), +-inf, +-0, denormals, the largest values, and random ones."""
    special = np.array([0x7E00, 0xFE00, 0x7C01 | 0x200, 0x7C00, 0xFC00, 0x0000, 0x8000, 0x0001, 0x8001, 0x03FF,
                        0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00, 0x3555, 0x2E66], np.uint16).view(np.float16)
    rng = np.random.default_rng(11)
    out = []
    for k in range(3):
        v = (rng.standard_normal(N) * 2.0 ** rng.integers(-20, 12, N)).astype(np.float16)
        v[:len(special)] = np.roll(special, 5 * k)  # every special value meets every other in some lane
        v[len(special):2 * len(special)] = np.roll(special, 7 * k + 1)
        rng.shuffle(v[2 * len(special):])
        out.append(v)
    return out[0], out[1], out[2]


def _numpy(expr: Callable[..., np.ndarray], x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(expr(x, y, z, np.full_like(y, y[0]))).astype(np.float16).view(np.uint16)


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (a.astype(np.float64) * b + c).astype(np.float16)  # a*b exact in float64, one more rounding


CASES: dict[str, tuple[Expr, Callable[..., np.ndarray], list[str]]] = {
    "mulacc": (lambda b, x, y, z, s: b.alu(Ops.MULACC, x, y, z), lambda x, y, z, s: _fma(x, y, z),
               ["v_pk_fma_f16"] * 2),
    "mul_then_add": (lambda b, x, y, z, s: b.alu(Ops.ADD, b.alu(Ops.MUL, x, y), z), lambda x, y, z, s: x * y + z,
                     ["v_pk_mul_f16", "v_pk_add_f16"] * 2),
    "neg_of_sum_with_a_constant": (lambda b, x, y, z, s: b.alu(Ops.NEG, b.alu(Ops.ADD, x, b.const(-1.5, F16))),
                                   lambda x, y, z, s: -(x + np.float16(-1.5)), ["v_pk_add_f16", "v_xor_b32"] * 2),
    "times_a_scalar": (lambda b, x, y, z, s: b.alu(Ops.MUL, b.alu(Ops.ADD, x, y), s),
                       lambda x, y, z, s: (x + y) * s, ["v_pk_add_f16", "v_pk_mul_f16"] * 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_paired_lanes_render_as_packed_instructions(case: str) -> None:
    expr, _, want = CASES[case]
    code = _code(_render(_kernel(expr, case)).source)
    got = [t.split()[0] for t in code if t.startswith(("v_pk_", "v_xor_b32"))]
    assert got == want, "\n".join(code)
    assert not any(t.startswith(("v_cvt_f32_f16", "v_cvt_f16_f32", "v_fma_f16")) for t in code)
    if case == "times_a_scalar":  # the scalar in both halves: op_sel_hi 0 for it
        assert any(t.startswith("v_pk_mul_f16") and t.endswith("op_sel_hi:[1,0]") for t in code), code
    stores = [t for t in code if t.startswith("global_store")]
    assert stores and all("b64" in t for t in stores)
    assert not any(t.startswith("v_lshl_or_b32") for t in code), "a VECTORIZE of pairs packs nothing again"


@needs_llvm
@pytest.mark.parametrize("case", list(CASES))
def test_packed_results_are_bit_for_bit_the_scalar_path_and_numpy(case: str, cache_dir: Path) -> None:
    pytest.importorskip("tg_rdna.emulator", reason="tg_rdna.emulator is not installed")
    expr, reference, _ = CASES[case]
    kernel = _kernel(expr, case)
    inputs = _inputs()
    packed_bits = _run(_render(kernel), *inputs)
    scalar = _render(kernel, pack=False)
    assert "v_pk_" not in scalar.source
    np.testing.assert_array_equal(packed_bits, _run(scalar, *inputs))
    np.testing.assert_array_equal(packed_bits, _numpy(reference, *inputs))


def test_unpairable_ops_and_mismatched_lanes_stay_scalar() -> None:
    def expr(b: KernelBuilder, x: UOp, y: UOp, z: UOp, s: UOp) -> UOp:
        return b.alu(Ops.ADD, b.alu(Ops.MAX, x, y), b.alu(Ops.SUB, z, x))

    code = _code(_render(_kernel(expr, "max_sub")).source)
    assert not any(t.startswith("v_pk_") for t in code), code  # MAX (NaN) and SUB stay scalar; so does their ADD

    b = KernelBuilder()  # lanes 0 and 1 of different vectors, and lanes 1/2 of one: no pair
    o, x, y = (b.define_global(i, F16, i == 0) for i in range(3))
    g = b.special("gidx0", N // 4)
    idx = b.alu(Ops.MUL, g, b.const(4, dtypes.int32))
    vx, vy = b.load(x, idx, H4), b.load(y, idx, H4)
    lane = [[b._add(Ops.GEP, F16, (v,), i) for i in range(4)] for v in (vx, vy)]
    sums = [b.alu(Ops.ADD, lane[0][0], lane[0][0]), b.alu(Ops.ADD, lane[1][1], lane[1][1]),
            b.alu(Ops.MUL, lane[0][1], lane[1][1]), b.alu(Ops.MUL, lane[0][2], lane[1][2])]
    b.store(o, idx, b._add(Ops.VECTORIZE, H4, tuple(sums)))
    assert packed.plan(b.uops).pair_of == {}


def test_a_plan_keeps_the_order_valid_and_pairs_chains() -> None:
    kernel = _kernel(CASES["mul_then_add"][0], "chain")
    p = packed.plan(kernel.uops)
    assert len(p.pairs) == 4 and len(p.skip) == 12  # 2 MUL + 2 ADD pairs; every lane's GEP read packed only
    assert all(op[0] in ("vec", "pair") for pair in p.pairs for op in pair.operands)
    where = {id(u): i for i, u in enumerate(p.order)}
    assert all(where[id(s)] < where[id(u)] for u in p.order for s in u.src if id(s) in where)
    assert all(where[id(pair.hi)] == where[id(pair.lo)] + 1 for pair in p.pairs)
    assert not p.extract_hi  # nothing reads a high lane unpacked


def test_a_high_lane_read_unpacked_gets_its_own_register() -> None:
    def expr(b: KernelBuilder, x: UOp, y: UOp, z: UOp, s: UOp) -> UOp:
        return b.alu(Ops.MAX, b.alu(Ops.MUL, x, y), z)  # MAX stays scalar: it reads both lanes of the MUL pair

    source = _render(_kernel(expr, "mul_max")).source
    code = _code(source)
    assert sum(t.startswith("v_pk_mul_f16") for t in code) == 2
    assert sum(bool(re.match(r"v_lshrrev_b32 v\d+, 16, v\d+$", t)) for t in code) == 2, source
