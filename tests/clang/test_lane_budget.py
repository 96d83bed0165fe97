"""A small kernel whose micro-tiles would do many element operations lane by lane takes the scalar rendering.

A padded convolution of a few small images, tiled with its lanes down the output channels, gathers every window
position lane by lane inside fully unrolled loops: thousands of scalar loads that clang took seconds to compile,
for a kernel that runs in tens of microseconds either way (``tiling.LANE_OPS_BUDGET``, ``tiling.SMALL_WORK``).
Each test uses shapes of its own (a process renders a kernel of a given structure once), and kernels are built for
their exact sizes only (TG_SYMBOLIC=0: a second size of a structure would otherwise build one kernel for every size).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from clang_helpers import matches_numpy, new_kernels
from tg_clang import tiling

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


def _lane_ops(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """kernel name -> the lane-by-lane operations of each tiling rendered for it from now on."""
    seen: dict[str, list[int]] = {}
    original = tiling._render_tiles

    def spy(name: str, *args: Any, **kwargs: Any) -> Any:
        rendered = original(name, *args, **kwargs)
        seen.setdefault(name, []).append(rendered[3])
        return rendered

    monkeypatch.setattr(tiling, "_render_tiles", spy)
    return seen


def test_the_count_follows_the_unrolled_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    """The convolution's gathers sit in its fully unrolled 3x3 window: the count is past the budget, and at least a
    gang's gather per window position; a matmul's tiles are SIMD throughout and count nothing."""
    seen, budget = _lane_ops(monkeypatch), tiling.LANE_OPS_BUDGET
    monkeypatch.setattr(tiling, "LANE_OPS_BUDGET", 10**9)
    assert _conv_strategy(12).startswith("tiledT")
    conv = [ops for name, ops in seen.items() if name.startswith("mul_r_add")]
    assert conv and max(conv[0]) >= max(budget, 9 * 16), seen  # (at least a gang's gather per window position)
    a, b = rng.standard_normal((48, 40)).astype("float32"), rng.standard_normal((40, 64)).astype("float32")
    kernels = new_kernels(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b]))
    matmul = [name for name, strategy, _ in kernels if strategy.startswith("tiled")]
    assert matmul and seen[matmul[0]][0] == 0, seen  # (a transposed alternative, also rendered, gathers)
