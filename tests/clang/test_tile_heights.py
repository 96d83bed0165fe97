"""The heights of the micro-tiles a tiled kernel compiles: only those its work units take.

Each height is an always-inlined C function, compiled once per call site: a height no unit reaches (the one-row
tile where the last unit's remainder is a tile of its own) is compile time for nothing.  The C loops must still
cover every row of every unit exactly once: the first test walks them in Python over many tilings, the second
checks the heights of real kernels and their results.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from clang_helpers import matches_numpy, new_kernels
from tg.codegen.tiles import Tiling, choose_tiling, transposed_tiling
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import dtypes
from tg_clang import cpu_shapes
from tg_clang.unit_loops import tile_heights

rng = np.random.default_rng(23)


def _walk(start: int, end: int, rows: int, heights: tuple[int, ...]) -> list[tuple[int, int]]:
    """The tiles (first row, height) the C loops of :func:`tg_clang.unit_loops.gang_loops` take from start to end."""
    tiles, row = [], start
    if rows > 1:
        while row + rows <= end:
            tiles.append((row, rows))
            row += rows
    remainder = next((h for h in heights if 1 < h < rows), 0)
    if remainder and row + remainder <= end:
        tiles.append((row, remainder))
        row += remainder
    if 1 in heights:
        while row < end:
            tiles.append((row, 1))
            row += 1
    return tiles


def _covers_each_row_once(t: Tiling, heights: tuple[int, ...]) -> None:
    extent, block = (t.row_len, t.block_cols) if t.transposed else (t.full_rows, t.block_rows)
    covered: list[int] = []
    for lo in range(0, extent, block):
        for first, height in _walk(lo, min(lo + block, extent), t.rows, heights):
            assert height in heights, (t, heights, height)
            covered += range(first, first + height)
    assert covered == list(range(extent)), (t, heights)


def test_every_row_of_every_unit_is_in_exactly_one_tile() -> None:
    """Over tilings of many launches (both orientations, tall units): the heights cover each row once, and the
    one-row tile is among them only where a unit needs it."""
    i32 = dtypes.int32
    loop = [UOp(Ops.RANGE, i32, (UOp(Ops.CONST, i32, (), 0), UOp(Ops.CONST, i32, (), 64)), 0)]  # tiles of rows
    checked = dropped = 0
    for rows in (1, 2, 4, 6):
        for n_rows in range(1, 130):
            for row_len in (16, 40, 97):
                for t in (choose_tiling(loop, (row_len, n_rows), 16, rows),
                          transposed_tiling(loop, (n_rows, row_len), 16, rows)):
                    if t is None:
                        continue
                    for each in (t, cpu_shapes.taller_units(t)):
                        _covers_each_row_once(each, tile_heights(each))
                        checked += 1
                        dropped += 1 not in tile_heights(each) and each.rows > 1
                    assert 1 in tile_heights(t, every_size=True) and t.rows in tile_heights(t, every_size=True)
    assert checked > 1000 and dropped > 100, (checked, dropped)


def test_a_unit_whose_block_is_not_whole_tiles_keeps_single_rows() -> None:
    odd = Tiling(lanes=16, rows=6, row_len=64, n_rows=50, full_cols=64, block_rows=10, block_cols=16)
    assert tile_heights(odd) == (6, 2, 1)
    _covers_each_row_once(odd, tile_heights(odd))


@pytest.mark.parametrize(("m", "heights"), [(10, {5}), (9, {5, 4}), (37, {6, 1}), (17, {6, 5})])
def test_a_matmul_compiles_the_heights_its_rows_take(m: int, heights: set[int]) -> None:
    """(m, k) @ (k, 48): m rows in tiles of at most 6 (as even as the fewest tiles allow), and one tile of the
    remainder; a one-row tile only where one row is left.  (k differs per case: kernels for every m are built
    once per structure, with every height.)"""
    k = 90 + m
    a, b = rng.standard_normal((m, k)).astype("float32"), rng.standard_normal((k, 48)).astype("float32")
    new = new_kernels(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b], rtol=1e-4))
    (name, strategy, source), = [k for k in new if k[1].startswith("tiled")]
    assert strategy.startswith(f"tiled{max(heights)}x"), strategy
    compiled = {int(h) for h in re.findall(rf"void {name}_tile(\d+)\(", source)}
    assert compiled == heights, (compiled, source[-1500:])
