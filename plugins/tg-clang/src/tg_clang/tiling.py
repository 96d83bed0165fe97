"""Writes a kernel as tiled C: core's micro-tiles (:mod:`tg.codegen.tiles`) rendered SIMD across their lanes.

tg-clang declares two launch dimensions, so core keeps the output's shape (``gidx0`` the column within a row,
``gidx1`` the row).  Core's register-tile and cache-blocking pass cuts that grid into micro-tiles of R rows by G
lanes and work units of blocks of them, and replays the micro-ops as one micro-tile; this module chooses R, G and
the orientation, renders each micro-tile with the lane renderer (:mod:`tg_clang.spmd`: what the G lanes share
becomes scalar, the rest SIMD across lanes), and writes the C loops over tiles and units (a unit's own loops:
:mod:`tg_clang.unit_loops`).  The columns past the
last full gang run as one more gang whose lanes past the row are masked (:class:`MaskedReplay`), in tiles as tall
as the full ones, where the cost estimate puts that below the scalar rendering of those columns; kernels the lane
renderer cannot take run the scalar rendering, and so do small ones whose tiles would do much lane by lane
(:data:`LANE_OPS_BUDGET`: they compile in a tenth of the time).

What it adds to core's pass: *packing* — values that every row of a tile reads in its loop (a matmul's B panel)
are copied once per column gang into a contiguous stack buffer (no cache-set conflicts at power-of-two strides,
and the panel stays in L1/L2 while the rows change); the choice between core's two orientations by a cost
estimate of the rendered micro-tiles; and the gang width.  R is at most the configured rows (6); G is the
configured lanes (16), halved (down to 4) for kernels with fewer threads than a gang or whose
rows a narrower gang covers at a clearly lower estimate, tail included (rows of 19 in gangs of 4 and 3 scalar columns
or one gang of 16 and a masked one), and up to 4 times wider
for kernels with loops whose tiles have at most half the configured rows and run all SIMD (a reduction down the
rows into one row of outputs: each register of the wide gang then accumulates on its own, instead of every add
waiting for the one before).  Full-height tiles double their gang where the CPU has the registers (AVX-512: a 6x32
float32 matmul tile, each broadcast serving two FMAs; 12x32 where the launch has the rows, each packed vector then
loaded once for twelve rows), on AMD's Zen 4 only where the packed panel is past L1 at either width (its 512-bit FMAs
are two halves); :mod:`tg_clang.cpu_shapes` holds these sizes.  Inside a work unit the column gangs are the outer
loop and the micro-tiles of rows the inner one, so a packed panel serves many micro-tiles; units that pack are made
tall (about 512 rows), since copying a panel down a long stride costs as much as tens of rows of tiles using it.

A kernel whose launch rows fold several output dims (core puts innermost the one that loads varying across the
lanes do not depend on: a convolution's output channel) may take *aligned* micro-tiles: a height that divides the
innermost dim's size, starting at multiples of it, so every row of a tile has the same outer indices and the loads
that depend only on them (the image row) are made once per tile (strategy ``tiledA``).

A kernel of row passes (core's row fusion: a softmax's max, sum and quotient in one kernel) runs its lanes along
each of its loops (:mod:`tg_clang.row_lanes`) when its rows are at least a gang long.

A reduction whose outputs each read a contiguous run (a row sum) may instead run its lanes along its own loop
(:mod:`tg_clang.reduction_lanes`); that rendering is taken where its cost estimate is clearly lower, or where the
launch has fewer threads than a gang.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel, SymbolicSize
from tg.codegen.tiles import (
    COPYABLE,
    TileReplay,
    Tiling,
    choose_tiling,
    copy_expr,
    dependencies,
    has_loops,
    thread_cost,
    transposed_tiling,
)
from tg.codegen.uops import Ops, PtrDType, UOp
from tg.support.dtype import DType, dtypes

from tg_clang import cpu_shapes
from tg_clang.cfile import CKernel, dynamic_entry, file_start, kernel_params, launch_indices
from tg_clang.cprelude import storage_type
from tg_clang.crender import NO_UNROLL, loop_trips
from tg_clang.lane_cost import tile_cost
from tg_clang.reduction_lanes import plan_reduction, render_reduction_lanes
from tg_clang.row_lanes import plan_row_passes, render_row_lanes
from tg_clang.scalar import ScalarRenderer
from tg_clang.spmd import LaneRenderer, lane_supported, vector_typedefs
from tg_clang.threads import thread_count
from tg_clang.unit_loops import gang_loops, masked_loop, tile_heights

#: Largest panel (bytes) a tile may copy to the stack for reuse across its row block.
PACK_LIMIT = 1 << 18


@dataclass
class Pack:
    """A load that every row of a tile repeats (a matmul's B): copied once per column gang into ``pk{index}``."""

    index: int
    dtype: DType
    elements: int  # loop trip count times the lanes
    source: list[UOp]  # the pack's own micro-ops (a kernel of loops that copies the panel)


class PackingReplay(TileReplay):
    """Core's micro-tile replay (:class:`tg.codegen.tiles.TileReplay`) that reads loop operands every row of a
    tile repeats (a matmul's B) from the column gang's packed copy.

    With ``packs`` (the decisions of the widest tile, keyed by the original load) such an operand, which varies
    across lanes and sits in a loop, reads ``pk{index}``; ``find_packs`` makes those decisions.
    """

    def __init__(self, t: Tiling, rows: int, packs: dict[int, Pack] | None = None, find_packs: bool = False,
                 aligned: bool = False):
        super().__init__(t, rows, aligned)
        self.packs: dict[int, Pack] = {} if packs is None else packs
        self.find_packs = find_packs
        self.pack_bufs: dict[int, UOp] = {}

    def loop_operand(self, orig: UOp, value: UOp) -> UOp:
        """``value``, an operand of an accumulation in a loop, or a load of its packed panel when it varies
        across lanes, is the same for every micro-tile of the unit and depends only on loads of inputs."""
        b, t = self.b, self.t
        dtype = value.dtype
        if not isinstance(dtype, DType):
            return value
        if id(orig) not in self.packs:
            if not self.find_packs or not self.ranges:
                return value
            deps = dependencies(value)
            if any(x.op not in COPYABLE or (x.op is Ops.DEFINE_GLOBAL and id(x) not in self.readonly)
                   for x in deps.values()):
                return value
            trips = math.prod(r.src[1].arg - r.src[0].arg for r in self.ranges)
            tile_coordinate = self.col0 if t.transposed else self.row0
            if id(self.lane) not in deps or id(tile_coordinate) in deps or \
                    (self.row_tile is not None and id(self.row_tile) in deps) or \
                    trips * t.lanes * dtype.itemsize > PACK_LIMIT:
                return value
            self.packs[id(orig)] = Pack(len(self.packs), dtype, trips * t.lanes,
                                        self._pack_kernel(len(self.packs), value, dtype))
        pack = self.packs[id(orig)]
        if pack.index not in self.pack_bufs:
            self.pack_bufs[pack.index] = b.define_global(1000 + pack.index, dtype, False, f"pk{pack.index}")
        index = self._panel_index(b, self.ranges, self.lane)
        key = (-1 - pack.index, id(index))
        if key not in self.loads:  # one load for every row of the tile
            self.remember(key, b.load(self.pack_bufs[pack.index], index, dtype))
        return self.loads[key]

    def _panel_index(self, b: KernelBuilder, ranges: list[UOp], lane: UOp) -> UOp:
        i32 = dtypes.int32
        lin = b.const(0, i32)
        for r in ranges:
            lin = b.alu(Ops.ADD, b.alu(Ops.MUL, lin, b.const(r.src[1].arg - r.src[0].arg, i32)),
                        b.alu(Ops.SUB, r, b.const(r.src[0].arg, i32)))
        return b.alu(Ops.ADD, b.alu(Ops.MUL, lin, b.const(self.t.lanes, i32)), lane)

    def _pack_kernel(self, index: int, value: UOp, dtype: DType) -> list[UOp]:
        """Micro-ops that compute ``value`` for every loop iteration and lane into ``pk{index}``."""
        pb, t = KernelBuilder(), self.t
        if t.transposed:
            gang = pb.special("row0", t.full_rows - t.lanes + 1)
            mapping: dict[int, UOp] = {id(self.row0): gang}
        else:
            gang = pb.special("col0", t.full_cols - t.lanes + 1)
            mapping = {id(self.col0): gang}
        mapping[id(self.lane)] = pb.special("lane", t.lanes)
        out = pb.define_global(1000 + index, dtype, True, f"pk{index}")
        ranges = []
        for r in self.ranges:
            ranges.append(pb.range(r.src[0].arg, r.src[1].arg))
            mapping[id(r)] = ranges[-1]
        pb.store(out, self._panel_index(pb, ranges, mapping[id(self.lane)]), copy_expr(pb, value, mapping))
        for r in reversed(ranges):
            pb.end_range(r)
        return pb.uops


class MaskedReplay(PackingReplay):
    """Rows of the last, partial gang of the rows (columns ``col0 .. row_len - 1`` of ``col0 .. col0 + G - 1``): core's
    replay with every store, and every load whose address depends on the lane, gated by ``col < row_len``.

    ``col0`` is declared up to the last gang's start, so that no simplification assumes a lane in range.  A lane past
    the row computes garbage that nothing reads or writes: a load whose address does not depend on the lane is the
    one the first lane (always in the row) makes, and stays ungated.  Where the launch's rows are the tiling's, the
    launch indices are the column and the row themselves (right for every lane in the row), not a division of a flat
    index that the widened column range would keep.  Its packed panels (:class:`PackingReplay`) are the gang's own,
    copied by loads gated the same way."""

    def __init__(self, t: Tiling, rows: int, packs: dict[int, Pack] | None = None, find_packs: bool = False):
        super().__init__(dataclasses.replace(t, full_cols=t.full_cols + t.lanes), rows, packs, find_packs)
        _, col = self.coords[0]
        self.lane_ok = self.b.alu(Ops.CMPLT, col, self.b.const(t.row_len, dtypes.int32))

    def _gate(self, index: UOp | None, gate: UOp | None) -> UOp | None:
        """``gate`` and the lane's being in the row, unless ``index`` (an address) does not depend on the lane."""
        if index is not None and id(self.lane) not in dependencies(index):
            return gate
        return self.lane_ok if gate is None else self.b.alu(Ops.AND, gate, self.lane_ok)

    def _replay(self, u: UOp, src: tuple[UOp, ...], row: UOp, col: UOp) -> UOp:
        b, t = self.b, self.t
        if u.op is Ops.SPECIAL and t.grid_cols == t.row_len and t.n_rows > 1:
            return col if u.arg[0] == "gidx0" else row
        if u.op is Ops.LOAD:
            gate = self._gate(src[1], src[2] if len(src) > 2 else None)
            if gate is not None:
                assert isinstance(u.dtype, DType)
                alt = src[3] if len(src) > 3 else b.const(0, u.dtype)
                src = (src[0], src[1], gate, alt)
            return self._load(u, src)
        if u.op is Ops.STORE:
            b.store(src[0], src[1], src[2], self._gate(None, src[3] if len(src) > 3 else None))  # every store
            return src[2]
        return super()._replay(u, src, row, col)


#: Outputs of at least this many bytes are written with non-temporal stores by kernels without loops.
STREAM_BYTES = 8 << 20


def _streaming(uops: list[UOp], threads: int) -> bool:
    """Whether an elementwise kernel writes so much that its stores should bypass the caches."""
    if has_loops(uops):
        return False
    out = next((u for u in uops if u.op is Ops.DEFINE_GLOBAL and u.arg[0] == 0), None)
    if out is None or not isinstance(out.dtype, PtrDType):
        return False
    return bool(threads * out.dtype.base.itemsize >= STREAM_BYTES)


def _render_tiles(name: str, uops: list[UOp], t: Tiling, lanes: int, aligned: bool = False, every_size: bool = False
                  ) -> tuple[list[str], list[Pack], float, int]:
    """The C functions of a tiling's micro-tiles (and packs), their estimated cost per output, and how many element
    operations the tiles' code does lane by lane (:attr:`LaneRenderer.unrolled_lane_ops`; 0: all SIMD).
    ``aligned``: the full micro-tiles start at multiples of their height, which their index arithmetic may rely on
    (see :func:`aligned_rows`); ``every_size``: the kernel runs at every row count (a tile of every height, and no
    streaming stores)."""
    params = kernel_params(uops)
    sig = ", ".join(params)
    # packing pays when a column gang's panel is read by several micro-tiles
    wide = PackingReplay(t, t.rows, find_packs=(t.block_cols if t.transposed else t.block_rows) >= 2 * t.rows,
                         aligned=aligned)
    tiles = [(t.rows, wide.build(uops))]
    tiles += [(h, PackingReplay(t, h, packs=wide.packs).build(uops)) for h in tile_heights(t, every_size)[1:]]
    packs = sorted(wide.packs.values(), key=lambda p: p.index)
    pk_params = "".join(f", const {storage_type(p.dtype)} *restrict pk{p.index}" for p in packs)
    out: list[str] = []
    gang = "row0" if t.transposed else "col0"
    for p in packs:
        pack = LaneRenderer(p.source, lanes, {gang: gang})
        pack.unroll_limit = _unroll_limit(t)
        body = pack.render()
        out += [f"static void {name}_pack{p.index}({sig}, int32_t {gang}, {storage_type(p.dtype)} *restrict "
                f"pk{p.index}) {{", *body, "}"]
    cost, lane_ops = 0.0, 0
    for rows_here, tile_uops in tiles:
        streaming = not every_size and _streaming(uops, t.n_rows * t.row_len)
        specials = {"row0": "row0", "col0": "col0", "row_tile": f"(row0 / {t.rows})"}
        renderer = LaneRenderer(tile_uops, lanes, specials, streaming)
        renderer.unroll_limit = _unroll_limit(t)
        body = renderer.render()
        lane_ops += renderer.unrolled_lane_ops
        if rows_here == t.rows:
            cost = tile_cost(renderer, tile_uops, rows_here * lanes)
        out += [f"static inline __attribute__((always_inline)) void {name}_tile{rows_here}({sig}, int32_t row0, "
                f"int32_t col0{pk_params}) {{", *body, "}"]
    return out, packs, cost, lane_ops


def _render_masked(name: str, uops: list[UOp], t: Tiling, lanes: int) -> tuple[list[str], list[Pack], float]:
    """The C functions of micro-tiles of the last, partial gang of the rows (:class:`MaskedReplay`; as tall as the
    full tiles, the remainder, and one row: ``NAME_tileM<rows>``) and of its packs (``NAME_packM<index>``), the packs,
    and the tiles' estimated cost per row; none (cost infinite) for a tiling without such a gang or with lanes down
    the rows."""
    if t.transposed or t.full_cols >= t.row_len:
        return [], [], math.inf
    wide = MaskedReplay(t, t.rows, find_packs=t.block_rows >= 2 * t.rows)
    tiles = [(t.rows, wide.build(uops))]
    tiles += [(rows, MaskedReplay(t, rows, packs=wide.packs).build(uops)) for rows in tile_heights(t)[1:]]
    packs = sorted(wide.packs.values(), key=lambda p: p.index)
    sig = ", ".join(kernel_params(uops))
    pk_params = "".join(f", const {storage_type(p.dtype)} *restrict pk{p.index}" for p in packs)
    out, cost = [], math.inf
    for p in packs:
        body = LaneRenderer(p.source, lanes, {"col0": "col0"}).render()
        out += [f"static void {name}_packM{p.index}({sig}, int32_t col0, {storage_type(p.dtype)} *restrict "
                f"pk{p.index}) {{", *body, "}"]
    for rows, tile_uops in tiles:
        renderer = LaneRenderer(tile_uops, lanes, {"row0": "row0", "col0": "col0"})
        body = renderer.render()
        if rows == t.rows:
            cost = tile_cost(renderer, tile_uops, rows * lanes) * lanes
        out += [f"static inline __attribute__((always_inline)) void {name}_tileM{rows}({sig}, int32_t row0, "
                f"int32_t col0{pk_params}) {{", *body, "}"]
    return out, packs, cost


#: Micro-tiles of at least this many rows keep their long loops and the loops over them rolled (see
#: :mod:`tg_clang.crender`): each iteration is already that many independent multiply-adds per vector, so unrolling
#: gains nothing at run time and costs a third of the kernel's compile.
ROLLED_ROWS = 4
#: ... loops of more iterations than this; and a loop nest of at most this many iterations in all (a convolution's
#: window: 3 x 3) is unrolled fully, where clang's heuristic may keep it rolled (see :mod:`tg_clang.crender`).
ROLLED_TRIPS = 16


def _unroll_limit(t: Tiling) -> int | None:
    return ROLLED_TRIPS if t.rows >= ROLLED_ROWS else None


def _no_unroll(t: Tiling) -> str:
    """What precedes a loop over work units, gangs or micro-tiles of ``t``: an always-inlined micro-tile unrolled
    is the same tile copied, for nothing."""
    return NO_UNROLL if t.rows >= ROLLED_ROWS else ""


#: How many times wider than configured a gang of a kernel with loops and few rows per tile may get: each of its
#: registers carries an accumulation of its own, so the adds of a reduction overlap instead of waiting in a chain.
MAX_WIDEN = 4
#: The most bytes a widened gang's vector may hold (eight AVX registers: the accumulators and a loaded operand
#: must still fit the sixteen).
WIDE_GANG_BYTES = 256
#: The narrowest gang a kernel with fewer threads than the configured gang may get (a 128-bit register of floats).
MIN_LANES = 4


def _widest_item(uops: list[UOp]) -> int:
    """The largest element size (bytes) of any value or buffer in the kernel."""
    sizes = [(u.dtype.base if isinstance(u.dtype, PtrDType) else u.dtype).itemsize for u in uops
             if isinstance(u.dtype, (DType, PtrDType))]
    return max(sizes, default=4)


#: Iterations of the loop a tile's rows share past which twelve-row tiles pay for their longer setup and their 24
#: stores (one Xeon core and two, alternating: K of 8-64 ran 8-59% slower than 6x32, K about 256 even, K of 512 and
#: more 6-16% faster).
TALL_MIN_TRIPS = 256


def _loop_loads(uops: list[UOp]) -> tuple[int, int]:
    """The most iterations of a loop nest of ``uops`` (0 when any loop's bounds are not constants), and how many
    buffers it loads from inside loops."""
    trips, most, buffers = [1], 1, set()
    for u in uops:
        if u.op is Ops.RANGE:
            n = loop_trips(u)
            if n is None:
                return 0, 0
            trips.append(trips[-1] * n)
            most = max(most, trips[-1])
        elif u.op is Ops.ENDRANGE:
            trips.pop()
        elif u.op is Ops.LOAD and len(trips) > 1:
            buffers.add(id(u.src[0]))
    return most, len(buffers)


def _tall_tile(name: str, uops: list[UOp], grid: tuple[int, ...], t: Tiling, wide: Tiling | None, rows: int,
               n_packs: int, cost: float) -> tuple[Tiling, tuple[list[str], list[Pack], float, int]] | None:
    """The tiling of full-height tiles ``t`` with twice the gang and twice the rows, where the CPU's registers hold
    its accumulators (``cpu_shapes.TALL_TILE_REGISTERS``), the rows share a loop of :data:`TALL_MIN_TRIPS` or more
    that loads two buffers (a matmul's A rows and B panel: a second row operand, as in ``(A * C) @ B``, would take
    twelve more pointers than x86's sixteen registers hold, and the loop would reload them from the stack), the
    launch has the rows and columns (no more of them left to a tail than ``t`` leaves), it makes as many work units as
    the wide tiling ``wide`` (twice the gang, ``rows`` high) or enough for the cores, and the estimate says it costs
    less than ``t`` (``cost``, with ``n_packs`` packs): the tiling and its rendering (as :func:`_render_tiles`), or
    None.  Not for a kernel for every size (its tiles of every height would double its compile)."""
    gang = 2 * t.lanes
    if wide is None or not cpu_shapes.holds(2 * rows, gang, _widest_item(uops), cpu_shapes.TALL_TILE_REGISTERS):
        return None
    trips, loaded = _loop_loads(uops)
    if trips < TALL_MIN_TRIPS or loaded > 2:
        return None
    tall = choose_tiling(uops, grid, gang, 2 * rows)
    if tall is None or tall.rows != 2 * rows or tall.transposed or tall.full_cols != t.full_cols or \
            tall.units < min(wide.units, cpu_shapes.UNITS_PER_THREAD * thread_count()):
        return None
    rendered = _render_tiles(name, uops, tall, gang)
    if len(rendered[1]) != n_packs or rendered[3] or rendered[2] >= cost:
        return None
    return tall, rendered


def aligned_rows(uops: list[UOp], grid: tuple[int, ...], lanes: int) -> int:
    """A micro-tile height for a kernel with loops whose launch rows (``gidx1``) are divided into several output
    dims, the innermost of period ``p`` (``gidx1 % p``, ``gidx1 // p``): the largest divisor of ``p`` whose
    accumulators fit :func:`tg_clang.cpu_shapes.accumulator_bytes`, so that a tile starting at a multiple of its
    height stays within one period and its rows share what depends only on ``gidx1 // p`` (a convolution's image
    row, shared by a tile of output channels).  0 when the launch has no such rows."""
    if len(grid) != 2 or grid[0] < lanes or not has_loops(uops):
        return 0
    periods = [u.src[1].arg for u in uops if u.op in (Ops.IDIV, Ops.MOD) and u.src[0].op is Ops.SPECIAL
               and u.src[0].arg[0] == "gidx1" and u.src[1].op is Ops.CONST and u.src[1].arg > 1]
    if not periods:
        return 0
    period, most = min(periods), max(1, cpu_shapes.accumulator_bytes() // (lanes * _widest_item(uops)))
    return next((h for h in range(min(period, most), 1, -1) if period % h == 0), 0)


#: Element operations done lane by lane (gathers, strided loads, scatters: each loop over the lanes is unrolled, and so
#: are the short loops around it) past which a small kernel takes the scalar rendering: clang needs 0.5-4 s for such
#: tiles (a padded convolution of a few 9x9 images, lanes down its output channels and each window position a gather:
#: 2,736 of them, 3.8 s; the clang kit's 62 such kernels took 80 s of its compiles), the scalar rendering ~0.1 s.
#: Counted in the full-width tiles (:attr:`LaneRenderer.unrolled_lane_ops`), not in a masked last gang or the packs.
LANE_OPS_BUDGET = 256
#: ... for kernels of at most this many operations in all: they run in well under a millisecond rendered either way
#: (that convolution: 36-42 us tiled, 40 us scalar).
SMALL_WORK = 1 << 20


def _with_tail(t: Tiling, tile_cost_per_output: float, uops: list[UOp], masked_row: float = math.inf) -> float:
    """Estimated instructions of a whole non-transposed launch: the micro-tiles over the full gangs of columns, and
    over the columns past the last full gang the cheaper of the scalar rendering (one instruction per op of a
    thread) and a masked gang (``masked_row`` per row)."""
    return t.n_rows * (t.full_cols * tile_cost_per_output + min((t.row_len - t.full_cols) * thread_cost(uops),
                                                                 masked_row))


def render_tiled(kernel: LoweredKernel, lanes: int, rows: int) -> CKernel | None:
    """The whole C file of a tiled kernel, or None for the scalar rendering: where no tiling applies (work groups,
    a launch of more than the two dimensions tg-clang declares, a kernel for every size the tiles cannot follow),
    and for a small kernel whose tiles would do too much lane by lane (:data:`LANE_OPS_BUDGET`)."""
    name, uops, grid = kernel.name, kernel.uops, kernel.global_size
    if math.prod(kernel.local_size) > 1 or len(grid) > 2 or not lane_supported(uops):
        return None
    # A launch whose rows (gidx1) are n0 times ``mid`` (see tg.engine.symbolic): the tiling is chosen for the bound's
    # row count, and the rows and work units come from n0 at run time; no transposed, aligned, streaming or
    # across-the-loop alternative (each is chosen by the row count).
    symbolic = bool(kernel.launch_vars)
    row_passes = plan_row_passes(uops, grid, lanes)
    if row_passes is not None:  # taken at every size, so a kernel for every size (threads n0 times) takes it too
        if not symbolic:
            return render_row_lanes(name, uops, grid, *row_passes)
        if len(grid) == 1 and [axis for axis, _ in kernel.launch_vars] == [0]:
            return render_row_lanes(name, uops, grid, *row_passes, kernel.launch_vars[0][1])
        return None
    if symbolic and (len(grid) != 2 or [axis for axis, _ in kernel.launch_vars] != [1]):
        return None
    reduction = plan_reduction(uops, grid, lanes)
    if symbolic and reduction is not None:  # lanes across the loop may win at some sizes, and sum in another order
        return None
    while symbolic and grid[0] < lanes and lanes >= 2 * MIN_LANES:  # rows shorter than a gang tile as one long row,
        lanes //= 2  # whose length follows n0: a narrower gang keeps them rows (each output's loop is the same)
    t = choose_tiling(uops, grid, lanes, rows)
    while t is None and lanes >= 2 * MIN_LANES and math.prod(grid) < lanes:  # fewer threads than a gang: narrower
        lanes //= 2
        t = choose_tiling(uops, grid, lanes, rows)
    if t is None:
        return render_reduction_lanes(name, uops, grid, *reduction)[0] if reduction is not None else None
    if symbolic and (t.row_len != grid[0] or t.transposed):
        return None
    gang = lanes
    masked_by: dict[tuple[Tiling, int], tuple[list[str], list[Pack], float]] = {}

    def masked_gang(tiling: Tiling, width: int) -> tuple[list[str], list[Pack], float]:
        """:func:`_render_masked` of ``tiling`` at gang ``width``, rendered once (none for a kernel for every size)."""
        if symbolic:
            return [], [], math.inf
        if (tiling, width) not in masked_by:
            masked_by[tiling, width] = _render_masked(name, uops, tiling, width)
        return masked_by[tiling, width]

    functions, packs, cost, lane_ops = _render_tiles(name, uops, t, lanes, every_size=symbolic)
    if t.full_cols < t.row_len:  # a column tail: a narrower gang may leave less of the row to it
        total = _with_tail(t, cost, uops, masked_gang(t, lanes)[2])
        narrower = lanes // 2
        while narrower >= MIN_LANES:
            n = choose_tiling(uops, grid, narrower, rows)
            fits = n is not None and not (symbolic and (n.row_len != grid[0] or n.transposed))
            if n is not None and fits and n.full_cols > t.full_cols:
                rendered = _render_tiles(name, uops, n, narrower, every_size=symbolic)
                masked_row = masked_gang(n, narrower)[2]
                if _with_tail(n, rendered[2], uops, masked_row) < 0.85 * total:
                    t, lanes, gang, (functions, packs, cost, lane_ops) = n, narrower, narrower, rendered
                    total = _with_tail(t, cost, uops, masked_row)
            narrower //= 2
    if t.rows * 2 <= rows and not lane_ops and has_loops(uops):
        # few rows per tile and all SIMD: wider gangs, whose registers accumulate side by side instead of in a chain
        widest = max(1, WIDE_GANG_BYTES // (lanes * _widest_item(uops)))
        factor = 1 << min(MAX_WIDEN, widest, rows // t.rows).bit_length() - 1
        while factor > 1:  # the widest gang that leaves no more columns to the scalar tail
            wide = choose_tiling(uops, grid, lanes * factor, rows)
            if wide is not None and wide.full_cols == t.full_cols and not wide.transposed:
                t, gang = wide, lanes * factor
                functions, packs, cost, lane_ops = _render_tiles(name, uops, t, gang, every_size=symbolic)
                break
            factor //= 2
    elif t.rows == rows and not lane_ops and sum(p.elements * p.dtype.itemsize for p in packs) > \
            cpu_shapes.wide_gang_panel() and cpu_shapes.holds(rows, 2 * lanes, _widest_item(uops),
                                                              cpu_shapes.WIDE_TILE_REGISTERS):
        # full-height tiles (on Zen 4, whose panel is past L1 anyway), on a CPU with registers for twice the
        # accumulators: two vectors of each row, so each broadcast of a row's operand serves two FMAs
        wide = choose_tiling(uops, grid, 2 * lanes, rows)
        small_tail = not symbolic and wide is not None and \
            cpu_shapes.WIDE_TAIL * (t.row_len - wide.full_cols) <= t.row_len
        # with AVX-512's registers, twice the rows as well where they leave no more columns to a tail (tried first:
        # rendering the 6x32 tile too would cost the first matmul another ~13 ms; where the tall tile is rendered and
        # then turned down, the 6x32 one is rendered after it)
        taller = None if symbolic else _tall_tile(name, uops, grid, t, wide, rows, len(packs), cost)
        if taller is not None:
            (t, (functions, packs, cost, lane_ops)), gang = taller, 2 * lanes
        elif wide is not None and wide.rows == t.rows and not wide.transposed and (
                wide.full_cols == t.full_cols or small_tail):
            rendered = _render_tiles(name, uops, wide, 2 * lanes, every_size=symbolic)
            # where the wider gang leaves a column tail (a small one: WIDE_TAIL), a masked gang of its width takes it,
            # if the estimate says that is cheaper
            cheaper = wide.full_cols == t.full_cols or _with_tail(
                wide, rendered[2], uops, masked_gang(wide, 2 * lanes)[2]) < _with_tail(
                t, cost, uops, masked_gang(t, lanes)[2])
            if len(rendered[1]) == len(packs) and cheaper:  # (not where the wider panel is past PACK_LIMIT: B strided)
                t, gang, (functions, packs, cost, lane_ops) = wide, 2 * lanes, rendered
    if packs:
        t = cpu_shapes.taller_units(t)
    other = None if symbolic else transposed_tiling(uops, grid, lanes, rows)
    if other is not None:
        other_functions, other_packs, other_cost, other_lane_ops = _render_tiles(name, uops, other, lanes)
        if other_cost < 0.85 * cost:
            t, functions, packs, gang, cost, lane_ops = other, other_functions, other_packs, lanes, other_cost, \
                other_lane_ops
    height = 0 if symbolic else aligned_rows(uops, grid, lanes)
    aligned = False
    if height and not t.transposed:
        al = choose_tiling(uops, grid, lanes, height)
        if al is not None and al.rows == height and al.block_rows % height == 0 and al.n_rows % height == 0:
            al_functions, al_packs, al_cost, al_lane_ops = _render_tiles(name, uops, al, lanes, aligned=True)
            if al_cost < 0.85 * cost:
                t, functions, packs, gang, cost, lane_ops, aligned = al, al_functions, al_packs, lanes, al_cost, \
                    al_lane_ops, True
    if reduction is not None:
        across_loop, across_loop_cost = render_reduction_lanes(name, uops, grid, *reduction)
        if across_loop_cost < 0.85 * cost:
            return across_loop
    if not symbolic and lane_ops >= LANE_OPS_BUDGET and math.prod(grid) * thread_cost(uops) <= SMALL_WORK:
        return None  # compiled in a tenth of the time, and about as fast at this size (see LANE_OPS_BUDGET)
    lanes = gang
    params = kernel_params(uops)
    args = ", ".join([p.rsplit(" ", 1)[1] for p in params])
    sig = ", ".join(params)
    strategy = f"tiled{'T' if t.transposed else 'A' if aligned else ''}{t.rows}x{lanes}"
    cost = t.block_rows * t.block_cols * thread_cost(uops)
    out = [*file_start(name, t.units, cost, strategy, vector_typedefs(lanes)), *functions]
    row_tail = t.full_rows < t.n_rows
    full_rows = str(t.full_rows)
    launch_vars: tuple[tuple[int, SymbolicSize], ...] = ()
    if symbolic:
        size = kernel.launch_vars[0][1]
        full_rows = f"({size.var} * {size.scale})"
        launch_vars = ((0, SymbolicSize(size.var, size.scale, t.block_rows, math.ceil(t.full_cols / t.block_cols))),)
    col_tail = t.full_cols < t.row_len
    masked, masked_packs, masked_row = masked_gang(t, lanes)
    if col_tail and masked_row < (t.row_len - t.full_cols) * thread_cost(uops):
        out += masked
    else:
        masked, masked_packs = [], []
    if row_tail or (col_tail and not masked):
        if len(grid) == 1:
            decls, phases = ScalarRenderer(uops, {"gidx0": "gidx0"}).render()
            head = [f"static void {name}_thread({sig}, int32_t gidx0) {{"]
        else:  # thread f of the tiling is column f % T of row f / T of the launch
            decls, phases = ScalarRenderer(uops, {"gidx0": "gidx0", "gidx1": "gidx1"}).render()
            head = [f"static void {name}_thread({sig}, int32_t f) {{",
                    "  " + launch_indices("f", grid[0])]
        assert not decls and len(phases) == 1
        out += [*head, *phases[0], "}"]
    pk_args = "".join(f", pk{p.index}" for p in packs)
    n_col_blocks = math.ceil(t.full_cols / t.block_cols)
    out += [f"void {name}({sig}, int32_t start, int32_t end) {{"]
    out += [f"  {storage_type(p.dtype)} pk{p.index}[{p.elements}] __attribute__((aligned(64)));" for p in packs]
    out += [f"  {storage_type(p.dtype)} pkM{p.index}[{p.elements}] __attribute__((aligned(64)));"
            for p in masked_packs]
    out += [f"  {_no_unroll(t)}for (int32_t u = start; u < end; u++) {{",
            f"    int32_t rb = u / {n_col_blocks}, cb = u % {n_col_blocks};",
            f"    int32_t r_lo = rb * {t.block_rows}, r_hi = r_lo + {t.block_rows} < {full_rows} ? "
            f"r_lo + {t.block_rows} : {full_rows};",
            f"    int32_t c_lo = cb * {t.block_cols}, c_hi = c_lo + {t.block_cols} < {t.full_cols} ? "
            f"c_lo + {t.block_cols} : {t.full_cols};"]
    if t.transposed:  # G rows by R columns: row gangs outside, columns inside
        out += gang_loops(name, args, pk_args, packs, t, lanes, _no_unroll(t), ("row0", "r_lo", "r_hi"),
                          ("col0", "c_lo", "c_hi"))
        if row_tail:
            out += [f"    if (r_hi == {t.full_rows}) for (int32_t row = {t.full_rows}; row < {t.n_rows}; row++)",
                    f"      for (int32_t c = c_lo; c < c_hi; c++) {name}_thread({args}, row * {t.row_len} + c);"]
    else:  # R rows by G columns: column gangs outside (their packed panel stays in cache), rows inside
        out += gang_loops(name, args, pk_args, packs, t, lanes, _no_unroll(t), ("col0", "c_lo", "c_hi"),
                          ("row0", "r_lo", "r_hi"), symbolic)
    if masked:
        out += masked_loop(name, args, t, n_col_blocks - 1, masked_packs)
    elif col_tail:
        out += [f"    if (cb == {n_col_blocks - 1}) for (int32_t row = r_lo; row < r_hi; row++)",
                f"      for (int32_t c = {t.full_cols}; c < {t.row_len}; c++) {name}_thread({args}, row * "
                f"{t.row_len} + c);"]
    if not symbolic and _streaming(uops, math.prod(grid)):
        out += ["#if defined(__x86_64__) || defined(__i386__)",
                "    __builtin_ia32_sfence();  /* order the non-temporal stores before anyone reads them */", "#endif"]
    out += ["  }", "}", dynamic_entry(name, params), ""]
    return CKernel("\n".join(out), t.units, cost, strategy, launch_vars)
