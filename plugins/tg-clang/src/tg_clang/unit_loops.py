"""The C loops of a tiled kernel's work unit (:mod:`tg_clang.tiling`): gangs of lanes, each packing its panels, with
micro-tiles of rows inside; and the last, partial gang of columns, taken by masked micro-tiles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tg.codegen.tiles import Tiling

if TYPE_CHECKING:
    from tg_clang.tiling import Pack


def gang_loops(name: str, args: str, pk_args: str, packs: list[Pack], t: Tiling, lanes: int, rolled: str,
               gangs: tuple[str, str, str], tiles: tuple[str, str, str]) -> list[str]:
    """The loops of a work unit: gangs of lanes along ``gangs`` (variable, low, high), each packing its panels,
    then micro-tiles of ``t.rows`` (a smaller remainder tile, then single ones) along ``tiles``; ``rolled`` precedes
    the loops that must stay rolled."""
    (gv, g_lo, g_hi), (tv, t_lo, t_hi) = gangs, tiles
    call = f"({args}, row0, col0{pk_args});"
    out = [f"    {rolled}for (int32_t {gv} = {g_lo}; {gv} < {g_hi}; {gv} += {lanes}) {{"]
    out += [f"      {name}_pack{p.index}({args}, {gv}, pk{p.index});" for p in packs]
    out.append(f"      int32_t {tv} = {t_lo};")
    if t.rows > 1:
        out.append(f"      {rolled}for (; {tv} + {t.rows} <= {t_hi}; {tv} += {t.rows}) {name}_tile{t.rows}{call}")
    if t.remainder > 1:
        out.append(f"      if ({tv} + {t.remainder} <= {t_hi}) {{ {name}_tile{t.remainder}{call[:-1]}; "
                   f"{tv} += {t.remainder}; }}")
    out += [f"      {rolled}for (; {tv} < {t_hi}; {tv}++) {name}_tile1{call}", "    }"]
    return out


def masked_loop(name: str, args: str, t: Tiling, last_block: int, packs: list[Pack]) -> list[str]:
    """The rows of a work unit's share of the last, partial gang: its packs, then micro-tiles as tall as the full
    ones."""
    pk_args = "".join(f", pkM{p.index}" for p in packs)
    call = f"({args}, row0, {t.full_cols}{pk_args});"
    out = [f"    if (cb == {last_block}) {{"]
    out += [f"      {name}_packM{p.index}({args}, {t.full_cols}, pkM{p.index});" for p in packs]
    out.append("      int32_t row0 = r_lo;")
    if t.rows > 1:
        out.append(f"      for (; row0 + {t.rows} <= r_hi; row0 += {t.rows}) {name}_tileM{t.rows}{call}")
    if t.remainder > 1:
        out.append(f"      if (row0 + {t.remainder} <= r_hi) {{ {name}_tileM{t.remainder}{call[:-1]}; "
                   f"row0 += {t.remainder}; }}")
    return [*out, f"      for (; row0 < r_hi; row0++) {name}_tileM1{call}", "    }"]
