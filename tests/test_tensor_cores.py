"""Tensor cores in core: the layout description, which contractions the lowering puts on them, and the result
through the numpy backend's reference WMMA (the kit runs the same products on every backend)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tg import Tensor
from tg.backends.numpy_backend import NumpyEmitter, NumpyRuntime
from tg.codegen.capabilities import Capabilities
from tg.codegen.lower import lower
from tg.codegen.tensor_cores import Fragment, MMA_16x8x16_F16_F32
from tg.codegen.uops import Ops
from tg.schedule.scheduler import Kernel, create_schedule

CAPS = Capabilities(dtypes=frozenset({"float16", "float32", "int32", "bool"}), tensor_cores=(MMA_16x8x16_F16_F32,))


def kernels(t: Tensor) -> list[Kernel]:
    return [k for k in create_schedule([t.lazydata]) if isinstance(k, Kernel)]


def wmma_count(t: Tensor, caps: Capabilities = CAPS) -> int:
    return sum(u.op is Ops.WMMA for k in kernels(t) for u in lower(k, caps).uops)


def test_the_mma_layout_holds_each_element_once() -> None:
    tc = MMA_16x8x16_F16_F32
    table = tc.a.table(32)
    assert table[5][:4] == ((1, 2), (1, 3), (9, 2), (9, 3))  # lane 5: group 1, second pair of columns
    assert tc.b.table(32)[6] == ((4, 1), (5, 1), (12, 1), (13, 1))
    assert tc.c.table(32)[31] == ((7, 6), (7, 7), (15, 6), (15, 7))


def test_a_layout_that_misses_elements_is_refused() -> None:
    tc = MMA_16x8x16_F16_F32
    broken = Fragment(tc.c.rows, tc.c.cols, (0, 0, 0, 0), (0, 1, 0, 1))  # rows 8..15 never held
    with pytest.raises(ValueError, match="fragment c does not hold each element of its 16x8 matrix exactly once"):
        dataclasses.replace(tc, c=broken)


def rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float16)


@pytest.mark.parametrize(("sa", "sb", "mmas"), [
    ((16, 16), (16, 8), 1),  # one tile, one step of K
    ((32, 32), (32, 32), 8),  # 2x4 tiles per work group: 8 WMMA in the loop body (it runs for 2 steps of K)
    ((2, 16, 32), (2, 32, 8), 1),  # a batch dimension
])
def test_contractions_that_fit_run_on_the_tensor_core(sa: tuple[int, ...], sb: tuple[int, ...], mmas: int) -> None:
    a, b = Tensor(rand(*sa)), Tensor(rand(*sb))
    assert wmma_count(a @ b) == mmas


@pytest.mark.parametrize(("sa", "sb", "dtype"), [
    ((16, 16), (16, 12), "float16"),  # N not a multiple of 8
    ((24, 16), (16, 8), "float16"),  # M not a multiple of 16
    ((16, 20), (20, 8), "float16"),  # K not a multiple of 16
    ((16, 16), (16, 8), "float32"),  # not the core's input dtype
])
def test_other_contractions_do_not(sa: tuple[int, ...], sb: tuple[int, ...], dtype: str) -> None:
    a, b = Tensor(rand(*sa)).cast(dtype), Tensor(rand(*sb)).cast(dtype)
    assert wmma_count(a @ b) == 0
    assert wmma_count(Tensor(rand(16, 16)) @ Tensor(rand(16, 8)), Capabilities()) == 0  # no cores declared


def test_elementwise_products_summed_are_not_contractions() -> None:
    x = Tensor(rand(16, 16))
    assert wmma_count((x * x).sum(axis=1, keepdim=True).cast("float16")) == 0


STAGED = dataclasses.replace(CAPS, group_size=128, local_memory=1 << 14)


@pytest.mark.parametrize(("sa", "sb", "threads"), [
    ((64, 64), (64, 64), 128),  # 2x2 warps, each 2x4 tiles: A and B go through local memory
    ((64, 32), (32, 40), 64),  # 2x1 warps
    ((48, 64), (64, 24), 32),  # no block of several warps divides the sizes: fragments straight from memory
])
def test_blocks_of_several_warps_stage_their_tiles_in_local_memory(sa: tuple[int, ...], sb: tuple[int, ...],
                                                                    threads: int) -> None:
    (kernel,) = [k for k in kernels(Tensor(rand(*sa)) @ Tensor(rand(*sb))) if k.ast.op == "REDUCE"]
    lowered = lower(kernel, STAGED)
    ops = [u.op for u in lowered.uops]
    assert lowered.local_size == (threads,)
    assert (ops.count(Ops.DEFINE_LOCAL), ops.count(Ops.BARRIER)) == ((2, 2) if threads > 32 else (0, 0))
    assert lower(kernel, dataclasses.replace(STAGED, local_memory=1024)).local_size == (32,)  # tiles do not fit


@pytest.mark.parametrize("caps", [CAPS, STAGED], ids=["one warp", "staged"])
def test_the_reference_wmma_matches_numpy(caps: Capabilities) -> None:
    a, b = rand(2, 64, 48), rand(2, 48, 64)
    (kernel,) = [k for k in kernels(Tensor(a) @ Tensor(b)) if k.ast.op == "REDUCE"]
    lowered = lower(kernel, caps)
    program = NumpyEmitter(caps).render(lowered)
    runtime = NumpyRuntime()
    out = np.zeros(2 * 64 * 64, np.float32)
    runtime.launch(program, runtime.compile(program),
                   [out.view(np.uint8), a.view(np.uint8).reshape(-1), b.view(np.uint8).reshape(-1)], {})
    want = np.matmul(a.astype(np.float64), b.astype(np.float64)).reshape(-1)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
