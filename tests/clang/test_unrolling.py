"""The clang backend's loops in register tiles: a short nest of known counts (a convolution's window) is unrolled
fully, so what its iterations compute from the counters alone (a padded window's masks, the offsets) is constant
in the loop around it; a nest past ``tiling.ROLLED_TRIPS`` iterations is not.  (A 3x3 convolution with padding
ran at half speed while clang kept its window rolled.)  Each test uses shapes of its own: a process renders a
kernel of a given structure once.
"""

from __future__ import annotations

import re

import numpy as np
from clang_helpers import matches_numpy, new_kernels
from tg_clang import tiling
from tg_clang.crender import FULL_UNROLL

rng = np.random.default_rng(17)

#: A loop over a reduction's counter: (what precedes it, its iteration count).
_LOOP = re.compile(r"^\s*(.*)for \(int32_t r\d+_\d+ = 0; r\d+_\d+ < (\d+); r\d+_\d+\+\+\)", re.MULTILINE)


def _tile_loops(channels: int, window: int, size: int) -> list[tuple[bool, int]]:
    """(unrolled fully, iterations) of every loop of the register-tiled kernel of a padded convolution."""
    x = rng.standard_normal((2, channels, size, size)).astype("float32")
    w = rng.standard_normal((8, channels, window, window)).astype("float32")
    kernels = new_kernels(lambda: matches_numpy(lambda t: t[0].conv2d(t[1], padding=window // 2), [x, w]))
    tiled = [source for _, strategy, source in kernels if strategy.startswith("tiledA8x")]
    assert tiled, f"no aligned 8-row tiles among {kernels}"
    return [(FULL_UNROLL.strip() in before, int(n)) for before, n in _LOOP.findall(tiled[0])]


def test_a_3x3_window_is_unrolled_and_the_channel_loop_around_it_is_not() -> None:
    loops = _tile_loops(channels=6, window=3, size=16)
    assert {n for unrolled, n in loops if unrolled} == {3}, loops
    assert (False, 6) in loops, loops  # 6 x 9 iterations: past the limit
    assert 9 <= tiling.ROLLED_TRIPS < 6 * 9


def test_a_5x5_window_unrolls_its_columns_only() -> None:
    """5 x 5 = 25 iterations is past the limit: the inner loop of 5 is unrolled, the window's rows are not."""
    loops = _tile_loops(channels=5, window=5, size=16)
    unrolled = [n for u, n in loops if u]
    assert unrolled and set(unrolled) == {5}, loops
    assert sum(1 for u, n in loops if n == 5 and not u) >= len(unrolled), loops
