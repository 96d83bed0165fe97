"""tg-ptx loads tensor-core fragments from shared memory with ldmatrix exactly where the micro-ops' addresses are
ldmatrix rows (tg_ptx.fragments), bit-identical to the scalar loads it replaces, and falls back everywhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tg_ptx", reason="tg-ptx is not installed (nox -s ptx runs these tests)")

import ptx_programs as P  # noqa: E402
from tg.codegen.builder import KernelBuilder  # noqa: E402
from tg.codegen.tensor_cores import MMA_16x8x16_F16_F32  # noqa: E402
from tg.codegen.uops import Ops, UOp, VecDType  # noqa: E402
from tg.support.dtype import dtypes  # noqa: E402
from tg_ptx import fragments  # noqa: E402
from tg_ptx.emitter import CAPABILITIES, PTXEmitter  # noqa: E402

TC = MMA_16x8x16_F16_F32
LDMATRIX_A = "ldmatrix.sync.aligned.m8n8.x4.shared.b16"
LDMATRIX_B = "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16"


def staged_program(order: list[int] | None = None, b_cols: int = 8) -> P.Program:
    """One warp: A (16x16) and B (16 x b_cols) copied to local tiles, a barrier, then each lane loads its fragments from
    the tiles as core's layout table says (``order`` permutes A's elements, which ldmatrix cannot load)."""
    f16, f32, i32 = dtypes.float16, dtypes.float32, dtypes.int32
    b = KernelBuilder()
    o, a, w = b.define_global(0, f32, True), b.define_global(1, f16, False), b.define_global(2, f16, False)
    lane = b.special("lidx0", 32)
    ta, tb = b.define_local("tile_a", f16, 256), b.define_local("tile_b", f16, 16 * b_cols)
    for r in range(8):
        q = b.alu(Ops.ADD, lane, b.const(32 * r, i32))
        b.store(ta, q, b.load(a, q, f16))
    for r in range(16 * b_cols // 32):
        q = b.alu(Ops.ADD, lane, b.const(32 * r, i32))
        b.store(tb, q, b.load(w, q, f16))
    b.barrier()

    def coord(terms: tuple[tuple[int, int, int], ...], offset: int) -> UOp:
        out = b.const(offset, i32)
        for d, m, scale in terms:
            part = b.alu(Ops.MOD, b.alu(Ops.IDIV, lane, b.const(d, i32)), b.const(m, i32))
            out = b.alu(Ops.ADD, out, b.alu(Ops.MUL, part, b.const(scale, i32)))
        return out

    def at(tile: UOp, cols: int, row: UOp, col: UOp) -> UOp:
        return b.load(tile, b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(cols, i32)), col), f16)

    a_vals = [at(ta, 16, coord(TC.a.rows, TC.a.row_offsets[e]), coord(TC.a.cols, TC.a.col_offsets[e]))
              for e in range(8)]
    b_vals = [at(tb, b_cols, coord(TC.b.rows, TC.b.row_offsets[e]), coord(TC.b.cols, TC.b.col_offsets[e]))
              for e in range(4)]
    if order is not None:
        a_vals = [a_vals[i] for i in order]
    accs = [b.const(0.0, f32)] * 4
    d = b._add(Ops.WMMA, VecDType(f32, 4), (b._add(Ops.VECTORIZE, VecDType(f16, 8), tuple(a_vals)),
                                            b._add(Ops.VECTORIZE, VecDType(f16, 4), tuple(b_vals)),
                                            b._add(Ops.VECTORIZE, VecDType(f32, 4), tuple(accs))), TC)
    for e in range(4):
        row, col = coord(TC.c.rows, TC.c.row_offsets[e]), coord(TC.c.cols, TC.c.col_offsets[e])
        b.store(o, b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(8, i32)), col), b._add(Ops.GEP, f32, (d,), e))
    rng = np.random.default_rng(15)
    inputs = [rng.uniform(-2, 2, 256).astype(np.float16), rng.uniform(-2, 2, 16 * b_cols).astype(np.float16)]
    return P.Program("staged_wmma", b.uops, [np.zeros(128, np.float32), *inputs], (1,), (32,), rtol=1e-5)


def scalar_source(p: P.Program) -> str:
    emitter = PTXEmitter()
    emitter.capabilities = replace(CAPABILITIES, extra={**CAPABILITIES.extra, "ldmatrix": False})
    return emitter.render(p.lowered()).source


def test_the_target_declares_ldmatrix() -> None:
    assert CAPABILITIES.extra["ldmatrix"] is True


def test_staged_fragments_load_with_ldmatrix_bit_identical_to_scalar_loads() -> None:
    p = staged_program()
    text = p.ptx()
    assert text.count(LDMATRIX_A) == 1 and text.count(LDMATRIX_B) == 1
    assert "ld.shared" not in text
    scalar = scalar_source(p)
    assert "ldmatrix" not in scalar and "ld.shared.b16" in scalar
    got, want = P.run_emu(p), P.run_emu(p, source=scalar)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    np.testing.assert_allclose(got, P.run_numpy(p), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("order", "matches"), [
    ([1, 0, 2, 3, 4, 5, 6, 7], False),  # a register's halves swapped: no ldmatrix loads that
    ([0, 1, 2, 3, 4, 5, 7, 6], False),
    ([0, 1, 4, 5, 2, 3, 6, 7], True),  # registers 1 and 2 swapped: still four 8x8 matrices, other lanes' rows
])
def test_fragments_use_ldmatrix_only_where_they_are_ldmatrix_rows(order: list[int], matches: bool) -> None:
    p = staged_program(order)
    text = p.ptx()
    assert (LDMATRIX_A in text) == matches and LDMATRIX_B in text
    got = P.run_emu(p)
    np.testing.assert_array_equal(got.view(np.uint32), P.run_emu(p, source=scalar_source(p)).view(np.uint32))
    np.testing.assert_allclose(got, P.run_numpy(p), rtol=1e-5, atol=1e-6)


def test_rows_not_16_byte_aligned_keep_scalar_loads() -> None:
    p = staged_program(b_cols=12)  # B's rows are 24 bytes apart: not every ldmatrix row would be aligned
    text = p.ptx()
    assert LDMATRIX_A in text and LDMATRIX_B not in text
    np.testing.assert_allclose(P.run_emu(p), P.run_numpy(p), rtol=1e-5, atol=1e-6)


def test_global_fragments_are_not_touched() -> None:
    p = next(q for q in P.wmma_programs() if q.name == "wmma_two_warps")
    assert "ldmatrix" not in p.ptx()
    assert not fragments.plan(p.uops, 32).by_vector


def test_bit_terms_fit_or_refuse() -> None:
    t = np.arange(128)
    d = (t & 15) * 64 + ((t >> 4) & 1) * 16 + ((t >> 6) & 1) * 2048 + 32
    assert fragments._bit_terms(d) == (32, [(0, 15, 64), (4, 1, 16), (6, 1, 2048)])
    d[77] += 2
    assert fragments._bit_terms(d) is None


SCRIPT = """
import sys, numpy as np
import tg_ptx.emitter as E
from tg import Tensor
E.CAPABILITIES.extra["ldmatrix"] = sys.argv[1] == "on"
rng = np.random.default_rng(15)
a = rng.uniform(-1, 1, (64, 96)).astype(np.float16)
b = rng.uniform(-1, 1, (96, 64)).astype(np.float16)
got = (Tensor(a, device="ptx:emu") @ Tensor(b, device="ptx:emu")).numpy()
want = (Tensor(a, device="numpy") @ Tensor(b, device="numpy")).numpy()
np.save(sys.argv[2], np.stack([got, want]))
"""


def test_a_float16_matmul_uses_ldmatrix_and_matches_the_scalar_path_and_numpy(tmp_path: Path) -> None:
    runs = {}
    for mode in ("on", "off"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TG_")}
        env.update(TG_PLUGINS="ptx", TG_CACHE_DIR=str(tmp_path / mode), TG_DEBUG="4")
        out = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(tmp_path / f"{mode}.npy")], env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert (LDMATRIX_A in out.stdout and LDMATRIX_B in out.stdout) == (mode == "on")
        runs[mode] = np.load(tmp_path / f"{mode}.npy")
    got, want = runs["on"]
    np.testing.assert_array_equal(got.view(np.uint16), runs["off"][0].view(np.uint16))  # bit-identical
    # the numpy backend sums in another order (as test_matmul_float16 allows): close, not bit-equal
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-2, atol=1e-2)
