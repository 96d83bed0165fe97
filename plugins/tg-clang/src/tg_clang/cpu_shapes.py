"""What this CPU's registers and caches make of tg-clang's micro-tiles and work units (see :mod:`tg_clang.tiling`).

The register budget of a tile's accumulators (AVX-512's 32 registers of 64 bytes hold a 12x32 float32 tile, AVX2's
16 of 32 bytes a 6x16 one), when a gang doubles on AMD's Zen 4, whose 512-bit FMAs are two halves, and how tall the
work units of a kernel that packs panels are on the cores this process runs on.  Read from ``/proc/cpuinfo`` (the
CPU ``-march=native`` compiles for); tests pin :func:`register_bytes` and :func:`wide_gang_panel`.
"""

from __future__ import annotations

import dataclasses
import math

from tg.codegen.tiles import UNITS_TARGET, Tiling

from tg_clang.threads import thread_count


def accumulator_bytes() -> int:
    """Register bytes a micro-tile's accumulators may take: eight AVX-512 registers, or eight AVX2 ones (the
    loaded operands and the broadcasts need the rest)."""
    return 8 * register_bytes()


#: Rows a work unit with a packed panel aims at: copying the panel (a column slab of a matmul's B, one cache line
#: of a row at a time down a long stride) costs about as much as 20-40 rows of tiles use it, so the taller the unit
#: the less of it (2048 x 2048 float32 on one core: 128 rows 0.80x numpy, 512 rows 1.0x).
PACKED_BLOCK_ROWS = 512


#: Work units a launch with packed panels needs per thread it runs on, for the threads to share them evenly.
UNITS_PER_THREAD = 4


def taller_units(t: Tiling) -> Tiling:
    """``t`` with work units of about PACKED_BLOCK_ROWS rows where it packs panels, as long as the launch still
    makes enough units for the cores to share (never shorter units than core chose): UNITS_TARGET, or
    UNITS_PER_THREAD per thread where this machine runs fewer threads.  Each unit packs its own panels, so on few
    cores fewer, taller units copy them fewer times (a (256, 784) x (784, 256) matmul on one core of a 2-core
    Xeon: 32 units 1161-1724 us, 8 units 822-844 us, alternating)."""
    if t.transposed:
        return t
    col_blocks = math.ceil(t.full_cols / t.block_cols)
    row_blocks = math.ceil(min(UNITS_TARGET, UNITS_PER_THREAD * thread_count()) / col_blocks)
    most = t.rows * math.ceil(math.ceil(t.full_rows / row_blocks) / t.rows)
    block_rows = max(t.block_rows, min(t.rows * math.ceil(PACKED_BLOCK_ROWS / t.rows), most))
    return dataclasses.replace(t, block_rows=block_rows)


#: A full-height tile's gang doubles although the wider gangs leave a masked tail of columns only where the row is at
#: least WIDE_TAIL times that tail: g.T @ x with 784 columns (24 gangs of 32 and 16 columns masked; an MLP's weight
#: gradient) ran 98 -> 139-142 GFLOPS on one Xeon core (C harness, alternating), but the MNIST-1D CNN's patch
#: gradients with 125 columns (3 gangs and 29 columns) got slower (900 x 125, K = 25: 82-100 -> 127-139 us).
WIDE_TAIL = 10
#: Vector registers a full-height tile's accumulators may take when its gang doubles (12 of AVX-512's 32: a 6x32
#: float32 tile, two loads and six broadcasts per twelve FMAs instead of one and six per six; AVX2's 16 registers
#: hold no more than the 6x16 tile).
WIDE_TILE_REGISTERS = 12
#: Vector registers a wide tile's accumulators may take when its rows double as well (24 of AVX-512's 32: a 12x32
#: float32 tile, two loads and twelve broadcasts per 24 FMAs, each packed vector read once for twelve rows).
TALL_TILE_REGISTERS = 24


#: Bytes of packed panel a tile's gang may double past on AMD's Zen 4, whose 512-bit FMAs are two 256-bit halves: a
#: panel that fits L1 would no longer (512 x 512 float32: 6x32 0.91-0.95x numpy, 6x16 1.0x; 1024 and 2048, whose
#: panels are past L1 at either width, gain 3-6%).  Intel's AVX-512 cores have whole 512-bit FMA units, and the wider
#: gang wins at any panel (Xeon model 207, 512 x 512, five alternating pairs: 6x16 64-120 GFLOPS, 6x32 75-186, each
#: pair in 6x32's favour).
L1_PANEL = 32 << 10


def wide_gang_panel() -> int:
    """The packed panel's size in bytes past which a full-height tile doubles its gang (see :data:`L1_PANEL`)."""
    from tg_clang.compiler import _host_cpu

    return L1_PANEL if "AuthenticAMD" in _host_cpu() else 0


def register_bytes() -> int:
    """Bytes of one vector register of the CPU clang compiles for (-march=native): 64 with AVX-512, else 32."""
    from tg_clang.compiler import _host_cpu

    return 64 if " avx512f" in _host_cpu() else 32


def holds(rows: int, lanes: int, item: int, registers: int) -> bool:
    """Whether ``registers`` of this CPU's vector registers hold a tile of ``rows`` by ``lanes`` accumulators of
    ``item`` bytes each."""
    return rows * lanes * item <= registers * register_bytes()
