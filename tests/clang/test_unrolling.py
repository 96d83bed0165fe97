"""The clang backend's loops in register tiles: a short nest of known counts (a convolution's window) is unrolled
fully, so what its iterations compute from the counters alone (a padded window's masks, the offsets) is constant
in the loop around it; a nest past ``tiling.ROLLED_TRIPS`` iterations is not.  (A 3x3 convolution with padding
ran at half speed while clang kept its window rolled.)  A longer loop takes four iterations a trip where it holds
no loop (a matmul's k), and one a trip where it does (it would copy the nest inside).  Each test uses shapes of its
own: a process renders a kernel of a given structure once.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from clang_helpers import matches_numpy
from tg_clang import tiling
from tg_clang.crender import FULL_UNROLL, NO_UNROLL, UNROLL_4

rng = np.random.default_rng(17)

#: A loop over a reduction's counter: (what precedes it, its iteration count).
_LOOP = re.compile(r"^\s*(.*)for \(int32_t r\d+_\d+ = 0; r\d+_\d+ < (\d+); r\d+_\d+\+\+\)", re.MULTILINE)


def _new_sources(fn: Callable[[], None]) -> list[str]:
    """The C sources of the kernels ``fn`` compiles."""
    from tg.engine.device import device_state

    before = {key for key, _ in device_state("clang").binaries.items()}
    fn()
    return [key[1] for key, _ in device_state("clang").binaries.items() if key not in before]


def _conv_loops(channels: int, window: int, size: int) -> list[tuple[str, int]]:
    """(the pragma before it, iterations) of every loop of the register-tiled kernel of a padded convolution."""
    x = rng.standard_normal((2, channels, size, size)).astype("float32")
    w = rng.standard_normal((8, channels, window, window)).astype("float32")
    sources = _new_sources(lambda: matches_numpy(lambda t: t[0].conv2d(t[1], padding=window // 2), [x, w]))
    tiled = [s for s in sources if "strategy=tiledA8x" in s]
    assert tiled, f"no aligned 8-row tiles among {len(sources)} kernels"
    return [(before.strip(), int(n)) for before, n in _LOOP.findall(tiled[0])]


def _tile_loops(channels: int, window: int, size: int) -> list[tuple[bool, int]]:
    """(unrolled fully, iterations) of every loop of the register-tiled kernel of a padded convolution."""
    return [(pragma == FULL_UNROLL.strip(), n) for pragma, n in _conv_loops(channels, window, size)]


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


def test_a_long_innermost_loop_takes_four_iterations_a_trip() -> None:
    """A matmul's k loop (300 iterations, no loop inside) in its 6-row tiles."""
    a, b = rng.standard_normal((96, 300)).astype("float32"), rng.standard_normal((300, 64)).astype("float32")
    sources = _new_sources(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b]))
    tiled = [s for s in sources if "strategy=tiled6x" in s]
    assert tiled, f"no 6-row tiles among {len(sources)} kernels"
    loops = [(before.strip(), int(n)) for before, n in _LOOP.findall(tiled[0])]
    assert loops and all(loop == (UNROLL_4.strip(), 300) for loop in loops), loops


def test_a_long_loop_around_a_window_stays_rolled() -> None:
    """20 channels around a 3x3 window: 180 iterations, and four a trip would copy the unrolled window four times."""
    loops = _conv_loops(channels=20, window=3, size=16)
    assert (NO_UNROLL.strip(), 20) in loops, loops
    assert {n for pragma, n in loops if pragma == FULL_UNROLL.strip()} == {3}, loops
