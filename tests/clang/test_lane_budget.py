"""A small kernel whose micro-tiles would do many element operations lane by lane takes the scalar rendering.

A padded convolution of a few small images, tiled with its lanes down the output channels, gathers every window
position lane by lane inside fully unrolled loops: thousands of scalar loads that clang took seconds to compile,
for a kernel that runs in tens of microseconds either way (``tiling.LANE_OPS_BUDGET``, ``tiling.SMALL_WORK``).
Each test uses shapes of its own (a process renders a kernel of a given structure once), and kernels are built for
their exact sizes only (TG_SYMBOLIC=0: a second size of a structure would otherwise build one kernel for every size).
"""

from __future__ import annotations

import numpy as np
import pytest
from clang_helpers import matches_numpy, new_kernels
from tg.codegen.builder import KernelBuilder
from tg.codegen.uops import Ops
from tg.support.dtype import dtypes
from tg_clang import tiling
from tg_clang.spmd import LaneRenderer, _has_avx2

rng = np.random.default_rng(23)


@pytest.fixture(autouse=True)
def _exact_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_SYMBOLIC", "0")


def _conv_strategy(size: int) -> str:
    """The strategy of the convolution kernel of a (2, 1, size, size) input and 3 padded 3x3 filters (checked
    against numpy)."""
    x = rng.standard_normal((2, 1, size, size)).astype("float32")
    w = rng.standard_normal((3, 1, 3, 3)).astype("float32")
    kernels = new_kernels(lambda: matches_numpy(lambda t: t[0].conv2d(t[1], padding=1), [x, w]))
    conv = [strategy for name, strategy, _ in kernels if name.startswith("mul_r_add")]
    assert len(conv) == 1, kernels
    return conv[0]


def test_a_small_convolution_gathering_its_windows_renders_scalar() -> None:
    assert _conv_strategy(9) == "scalar"


def test_without_the_budget_the_same_convolution_is_tiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """What sends it to the scalar renderer is the count of lane-by-lane operations."""
    monkeypatch.setattr(tiling, "LANE_OPS_BUDGET", 10**9)
    assert _conv_strategy(10).startswith("tiledT")


def test_a_kernel_past_the_small_size_keeps_its_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget applies to small kernels only: a big one runs long enough for the tiles to pay their compile."""
    monkeypatch.setattr(tiling, "SMALL_WORK", 1000)
    assert _conv_strategy(11).startswith("tiledT")


def test_the_count_multiplies_by_the_fully_unrolled_loops_around_a_gather() -> None:
    """A gather inside a 3x3 nest that is unrolled fully (9 copies), in a rolled loop of 100 (one copy), and one
    gather between the two: 16 lanes x (9 + 1)."""
    i32, f32 = dtypes.int32, dtypes.float32
    b = KernelBuilder()
    out, inp = b.define_global(0, f32, True), b.define_global(1, f32, False)
    lane, two = b.special("lane", 16), b.const(2, i32)
    outer = b.range(0, 100)
    acc = b.define_acc(0.0, f32)
    between = b.load(inp, b.alu(Ops.MUL, lane, two), f32)  # stride 2: a gather
    i, j = b.range(0, 3), b.range(0, 3)
    inner = b.load(inp, b.alu(Ops.ADD, b.alu(Ops.MUL, lane, two), b.alu(Ops.ADD, i, j)), f32)
    total = b.assign(acc, b.alu(Ops.ADD, acc, b.alu(Ops.MUL, inner, between)))
    b.end_range(j)
    b.end_range(i)
    b.store(out, b.alu(Ops.ADD, lane, b.alu(Ops.MUL, outer, b.const(16, i32))), total)
    b.end_range(outer)
    renderer = LaneRenderer(b.uops, 16, {})
    renderer.unroll_limit = tiling.ROLLED_TRIPS  # the 3x3 nest (9) is unrolled fully, the loop of 100 is not
    renderer.render()
    assert renderer.unrolled_lane_ops == 16 * 9 + 16
    assert renderer.copies == [1]  # every loop closed


@pytest.mark.skipif(not _has_avx2(), reason="needs a CPU with AVX2 (its masked loads replace the lane "
                    "loops that this test expects not to be counted); run it on an AVX2 or AVX-512 machine")
def test_lane_loops_the_preprocessor_drops_are_not_counted() -> None:
    """A padded convolution with one output channel tiles its lanes along the image rows: its padded loads are masked
    vector loads on AVX2 (the lane-by-lane fallback is compiled only without it), so it keeps its tiles."""
    x = rng.standard_normal((1, 1, 40, 40)).astype("float32")
    w = rng.standard_normal((1, 1, 3, 3)).astype("float32")
    kernels = new_kernels(lambda: matches_numpy(lambda t: t[0].conv2d(t[1], padding=1), [x, w]))
    conv = [strategy for name, strategy, _ in kernels if name.startswith("mul_r_add")]
    assert conv and conv[0].startswith("tiled"), kernels
