"""The C loops of a tiled kernel's work unit (:mod:`tg_clang.tiling`): gangs of lanes, each packing its panels, with
micro-tiles of rows inside; and the last, partial gang of columns, taken by masked micro-tiles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tg.codegen.tiles import Tiling

if TYPE_CHECKING:
    from tg_clang.tiling import Pack


def tile_heights(t: Tiling, every_size: bool = False) -> tuple[int, ...]:
    """The heights of the micro-tiles a work unit's loops take, tallest first: ``t.rows``, then one tile of the
    remainder, then single rows.  Every work unit but the last spans a whole number of full tiles (units are
    multiples of ``t.rows``), and the last one's ``t.remainder`` rows past them are one remainder tile, so single
    rows only occur where the remainder is one row, or where the rows are only known at run time (``every_size``:
    a kernel for every size).  Each height is a function the compiler inlines at each call, so a height never
    taken would be compile time for nothing (a third of a small tiled kernel's)."""
    block = t.block_cols if t.transposed else t.block_rows
    heights = {t.rows, t.remainder} - {0}
    if every_size or block % t.rows:
        heights.add(1)
    return tuple(sorted(heights, reverse=True))


def _tile_calls(rolled: str, call: str, tile: str, rows: int, heights: tuple[int, ...], var: str, high: str
                ) -> list[str]:
    """From ``var`` up to ``high``: full tiles of ``rows``, then the smaller ``heights`` (``tile`` + height names
    each one's function; ``call`` is its arguments)."""
    out = []
    if rows > 1:
        out.append(f"      {rolled}for (; {var} + {rows} <= {high}; {var} += {rows}) {tile}{rows}{call}")
    remainder = next((h for h in heights if 1 < h < rows), 0)
    if remainder:
        out.append(f"      if ({var} + {remainder} <= {high}) {{ {tile}{remainder}{call[:-1]}; "
                   f"{var} += {remainder}; }}")
    if 1 in heights:
        out.append(f"      {rolled}for (; {var} < {high}; {var}++) {tile}1{call}")
    return out


def gang_loops(name: str, args: str, pk_args: str, packs: list[Pack], t: Tiling, lanes: int, rolled: str,
               gangs: tuple[str, str, str], tiles: tuple[str, str, str], every_size: bool = False) -> list[str]:
    """The loops of a work unit: gangs of lanes along ``gangs`` (variable, low, high), each packing its panels,
    then micro-tiles of :func:`tile_heights` along ``tiles``; ``rolled`` precedes the loops that must stay rolled."""
    (gv, g_lo, g_hi), (tv, t_lo, t_hi) = gangs, tiles
    call = f"({args}, row0, col0{pk_args});"
    out = [f"    {rolled}for (int32_t {gv} = {g_lo}; {gv} < {g_hi}; {gv} += {lanes}) {{"]
    out += [f"      {name}_pack{p.index}({args}, {gv}, pk{p.index});" for p in packs]
    out.append(f"      int32_t {tv} = {t_lo};")
    return [*out, *_tile_calls(rolled, call, f"{name}_tile", t.rows, tile_heights(t, every_size), tv, t_hi), "    }"]


def masked_loop(name: str, args: str, t: Tiling, last_block: int, packs: list[Pack]) -> list[str]:
    """The rows of a work unit's share of the last, partial gang: its packs, then micro-tiles as tall as the full
    ones (of :func:`tile_heights`)."""
    pk_args = "".join(f", pkM{p.index}" for p in packs)
    call = f"({args}, row0, {t.full_cols}{pk_args});"
    out = [f"    if (cb == {last_block}) {{"]
    out += [f"      {name}_packM{p.index}({args}, {t.full_cols}, pkM{p.index});" for p in packs]
    out.append("      int32_t row0 = r_lo;")
    return [*out, *_tile_calls("", call, f"{name}_tileM", t.rows, tile_heights(t), "row0", "r_hi"), "    }"]
