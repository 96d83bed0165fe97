"""Tiles a kernel's threads for the lane renderer and writes the tiled C kernel.

tg-clang declares two launch dimensions, so core keeps the output's shape: ``gidx0`` is the column within a row
of T threads (the innermost output dimension) and ``gidx1`` the row (the outer dimensions folded together).
Seen as that grid, the kernel runs *micro-tiles* of R rows by G consecutive threads (``row0``..``row0+R-1``,
columns ``col0``..``col0+G-1``): the micro-ops are replayed through core's
:class:`~tg.codegen.builder.KernelBuilder` with ``gidx0 = col0 + lane`` and ``gidx1 = row0 + r`` (through
``f % T`` and ``f // T`` of the tiling's thread ``f``, which the builder's range-based simplification reduces to
exactly those).  What the R rows share (a load of the same matrix element for a
matmul's B, say) is built once; what the G lanes share becomes scalar; the rest is SIMD across lanes.
The columns past the last full gang, and kernels the lane renderer cannot take, run the scalar rendering.

For kernels with loops there is a second orientation, G rows (the lanes) by R columns, for loop bodies that
depend on the row more than on the column (a matmul whose output is transposed); elementwise kernels whose rows
are shorter than a gang may take it too (one column per tile).  A cost estimate of the two rendered micro-tiles
picks one.  Values that every row of a tile reads in its loop (a matmul's B panel) are copied once per column
gang into a contiguous stack buffer (*packing*: no cache-set conflicts at power-of-two strides, and the panel
stays in L1/L2 while the rows change).  When replaying, ``(x // k) * k + x % k`` (core's unravelling of a
short row put back together) is folded to ``x``.

R is at most the configured rows (6), as even as the fewest tiles allow (10 rows: two tiles of 5); the rows
left below the last whole tile run as one smaller tile.  G is the configured lanes (16), halved (down to 4) for
kernels with fewer threads than a gang, and up to 4 times wider for kernels with loops whose tiles have at most
half the configured rows and run all SIMD (a reduction down the rows into one row of outputs: each register of
the wide gang then accumulates on its own, instead of every add waiting for the one before).

A work unit of the C function is a block of rows by a block of columns; inside a unit the column gangs are
the outer loop and the micro-tiles of rows the inner one (cache blocking).  A kernel with loops takes blocks of
about BLOCK_TARGET rows (fewer when that would leave under UNITS_TARGET units), so that a packed panel serves
many micro-tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel
from tg.codegen.rewrites import eliminate_dead
from tg.codegen.uops import ALU, Ops, PtrDType, UOp
from tg.support.dtype import DType, dtypes

from tg_clang.cfile import CKernel, dynamic_entry, header, kernel_params, launch_indices, thread_cost
from tg_clang.cprelude import PRELUDE, storage_type
from tg_clang.scalar import ScalarRenderer
from tg_clang.spmd import LaneRenderer, lane_supported, vector_typedefs

#: Operations per work unit the runtime hands out (large enough to hide the cost of a call).
UNIT_OPS = 1 << 16


@dataclass(frozen=True)
class Tiling:
    lanes: int  # G: threads per gang (SIMD width of the tile)
    rows: int  # R: rows per micro-tile
    row_len: int  # T: threads per row
    n_rows: int
    full_cols: int  # columns covered by whole gangs (a multiple of G)
    block_rows: int  # rows per work unit
    block_cols: int  # columns per work unit (a multiple of G)
    transposed: bool = False  # lanes run down the rows (G rows by R columns per micro-tile)
    grid_cols: int = 0  # the launch's innermost size (gidx0); the rest of the launch is gidx1

    @property
    def full_rows(self) -> int:
        return self.n_rows - self.n_rows % self.lanes if self.transposed else self.n_rows

    @property
    def remainder(self) -> int:
        """Rows (columns, transposed) left after the last whole micro-tile: work units are multiples of ``rows``,
        so only the last unit has them, and one micro-tile of this height covers them."""
        return (self.row_len if self.transposed else self.full_rows) % self.rows

    @property
    def units(self) -> int:
        return math.ceil(self.full_rows / self.block_rows) * math.ceil(self.full_cols / self.block_cols)


def choose_tiling(uops: list[UOp], grid: tuple[int, ...], lanes: int, rows: int) -> Tiling | None:
    """A tiling of the kernel's threads (launched as ``grid``: ``gidx0`` the columns, ``gidx1`` the rows), or None
    when the lane renderer should not take it."""
    n = math.prod(grid)
    if not lane_supported(uops) or n < lanes:
        return None
    row_len = grid[0]
    if row_len < lanes:  # rows shorter than a gang: one long row, the unravelling stays per lane
        row_len = n
    n_rows = n // row_len
    full_cols = row_len - row_len % lanes
    has_loop = any(u.op is Ops.RANGE for u in uops)
    cost = thread_cost(uops)
    if has_loop:
        r = _even_split(n_rows, rows)
        block_rows = _block(n_rows, r, max(1, full_cols // lanes))
    else:
        r = 1
        block_rows = max(1, min(n_rows, UNIT_OPS // max(1, full_cols * cost)))
    gang_ops = block_rows * lanes * cost
    block_cols = lanes * max(1, min(full_cols // lanes, math.ceil(UNIT_OPS / gang_ops)))
    return Tiling(lanes, r, row_len, n_rows, full_cols, block_rows, block_cols, grid_cols=grid[0])


def transposed_tiling(uops: list[UOp], grid: tuple[int, ...], lanes: int, rows: int) -> Tiling | None:
    """The other orientation for a kernel with loops: G rows (lanes) by R columns per micro-tile, for kernels
    whose loop body depends more on the row than on the column (a matmul whose output is transposed)."""
    n, row_len = math.prod(grid), grid[0]
    n_rows = n // row_len
    if n_rows < lanes or row_len < 2:
        return None
    if not any(u.op is Ops.RANGE for u in uops):  # elementwise: only for rows shorter than a gang
        if row_len >= lanes:
            return None
        gangs_per_unit = max(1, min(n_rows // lanes, UNIT_OPS // (lanes * row_len * thread_cost(uops))))
        return Tiling(lanes, 1, row_len, n_rows, row_len, lanes * gangs_per_unit, row_len, transposed=True,
                      grid_cols=row_len)
    r = _even_split(row_len, rows)
    gangs = n_rows // lanes
    block_cols = _block(row_len, r, gangs)
    want_blocks = math.ceil(UNITS_TARGET / math.ceil(row_len / block_cols))
    block_rows = lanes * max(1, min(4, math.ceil(gangs / want_blocks)))
    return Tiling(lanes, r, row_len, n_rows, row_len, block_rows, block_cols, transposed=True, grid_cols=row_len)


#: Rows (columns, transposed) of micro-tiles that a work unit of a kernel with loops aims at: the packed panel is
#: copied once per unit, so a tall unit spreads the copy over many tiles.
BLOCK_TARGET = 128
#: Work units a kernel with loops aims at (at least), so that the cores can share the work out evenly.
UNITS_TARGET = 32
#: Micro-tiles a work unit of a kernel with loops has at least (when there are that many).
MIN_TILES = 4


def _even_split(n: int, most: int) -> int:
    """Micro-tile height for ``n`` rows, at most ``most``: as even as the fewest tiles allow (10 rows by at most
    6 make two tiles of 5, not one of 6 and four single rows)."""
    if n <= most:
        return max(1, n)
    return math.ceil(n / math.ceil(n / most))


def _block(n: int, r: int, other_blocks: int) -> int:
    """Rows per work unit (a multiple of the tile height ``r``) of ``n`` rows, when the other dimension makes
    ``other_blocks`` blocks: about BLOCK_TARGET rows, fewer where there would be under UNITS_TARGET units, but
    at least MIN_TILES tiles (the packed panel must be worth its copy)."""
    tiles = math.ceil(n / r)
    want_blocks = max(1, math.ceil(UNITS_TARGET / max(1, other_blocks)))
    per_block = min(math.ceil(tiles / want_blocks), max(1, math.ceil(BLOCK_TARGET / r)))
    return r * max(per_block, min(tiles, MIN_TILES))


#: Largest panel (bytes) a tile may copy to the stack for reuse across its row block.
PACK_LIMIT = 1 << 18


@dataclass
class Pack:
    """A load that every row of a tile repeats (a matmul's B): copied once per column gang into ``pk{index}``."""

    index: int
    dtype: DType
    elements: int  # loop trip count times the lanes
    source: list[UOp]  # the pack's own micro-ops (a kernel of loops that copies the panel)


class TileBuilder:
    """Replays a kernel's micro-ops as one micro-tile of ``rows`` rows (see the module docstring).

    With ``packs`` (the decisions of the widest tile, keyed by the original load) a load that is the same
    for every row, varies across lanes and sits in a loop reads the column gang's packed copy instead;
    ``find_packs`` makes those decisions.
    """

    def __init__(self, t: Tiling, rows: int, packs: dict[int, Pack] | None = None, find_packs: bool = False):
        self.t, self.rows = t, rows
        self.b = b = KernelBuilder()
        i32 = dtypes.int32
        if t.transposed:
            self.row0 = b.special("row0", t.full_rows - t.lanes + 1)
            self.col0 = b.special("col0", t.row_len - rows + 1)
            self.lane = b.special("lane", t.lanes)
            row = b.alu(Ops.ADD, self.row0, self.lane)
            self.coords = [(row, b.alu(Ops.ADD, self.col0, b.const(r, i32))) for r in range(rows)]
        else:
            self.row0 = b.special("row0", t.n_rows - rows + 1)
            self.col0 = b.special("col0", t.full_cols - t.lanes + 1)
            self.lane = b.special("lane", t.lanes)
            col = b.alu(Ops.ADD, self.col0, self.lane)
            self.coords = [(b.alu(Ops.ADD, self.row0, b.const(r, i32)), col) for r in range(rows)]
        self.packs: dict[int, Pack] = {} if packs is None else packs
        self.find_packs = find_packs
        self.pack_bufs: dict[int, UOp] = {}
        self.ranges: list[UOp] = []
        self.readonly: set[int] = set()
        self.loads: dict[tuple[int, ...], UOp] = {}
        self.load_scopes: list[list[tuple[int, ...]]] = [[]]

    def build(self, uops: list[UOp]) -> list[UOp]:
        b = self.b
        shared: dict[int, UOp] = {}
        per_row: list[dict[int, UOp]] = [{} for _ in range(self.rows)]
        for u in uops:
            if u.op is Ops.DEFINE_GLOBAL:
                assert isinstance(u.dtype, PtrDType)
                shared[id(u)] = new = b.define_global(u.arg[0], u.dtype.base, u.arg[2])
                if not u.arg[2]:
                    self.readonly.add(id(new))
            elif u.op is Ops.CONST:
                assert isinstance(u.dtype, DType)
                shared[id(u)] = b.const(u.arg, u.dtype)
            elif u.op is Ops.RANGE:
                shared[id(u)] = rng = b.range(u.src[0].arg, u.src[1].arg)
                self.ranges.append(rng)
                self.load_scopes.append([])
            elif u.op is Ops.ENDRANGE:
                b.end_range(shared[id(u.src[0])])
                self.ranges.pop()
                for key in self.load_scopes.pop():
                    self.loads.pop(key, None)
            else:
                for r in range(self.rows):
                    src = tuple(per_row[r][id(x)] if id(x) in per_row[r] else shared[id(x)] for x in u.src)
                    per_row[r][id(u)] = self._replay(u, src, *self.coords[r])
        return eliminate_dead(b.uops)  # drop what packing left behind

    def _replay(self, u: UOp, src: tuple[UOp, ...], row: UOp, col: UOp) -> UOp:
        b, t, i32 = self.b, self.t, dtypes.int32
        if u.op is Ops.SPECIAL:  # thread f = row * row_len + col of the tiling; the launch is gidx0 by gidx1
            flat = col if t.n_rows == 1 else b.alu(Ops.ADD, b.alu(Ops.MUL, row, b.const(t.row_len, i32)), col)
            if t.grid_cols == t.row_len * t.n_rows:  # a one-dimensional launch
                return flat
            if u.arg[0] == "gidx0":  # (simplified to col when rows are the launch's rows)
                return b.alu(Ops.MOD, flat, b.const(t.grid_cols, i32))
            return b.alu(Ops.IDIV, flat, b.const(t.grid_cols, i32))
        if u.op is Ops.DEFINE_ACC:
            assert isinstance(u.dtype, DType)
            return b.define_acc(u.arg, u.dtype)
        if u.op is Ops.ASSIGN:
            return b.assign(src[0], src[1])
        if u.op is Ops.LOAD:
            return self._load(u, src)
        if u.op is Ops.STORE:
            b.store(src[0], src[1], src[2], src[3] if len(src) > 3 else None)
            return src[2]
        if u.op is Ops.CAST:
            assert isinstance(u.dtype, DType)
            return b.cast(src[0], u.dtype)
        if u.op is Ops.BITCAST:
            assert isinstance(u.dtype, DType)
            return b.bitcast(src[0], u.dtype)
        if u.op is Ops.MULACC and self.ranges:
            src = (self._packed(u.src[0], src[0]), self._packed(u.src[1], src[1]), src[2])
        if u.op is Ops.ADD and (whole := _div_mod_sum(*src)) is not None:
            return whole
        assert isinstance(u.dtype, DType), u
        return b.alu(u.op, *src, dtype=u.dtype)

    def _load(self, u: UOp, src: tuple[UOp, ...]) -> UOp:
        key = tuple(id(x) for x in src)
        if key in self.loads:
            return self.loads[key]
        gate, alt = (src[2], src[3]) if len(src) > 2 else (None, None)
        new = self.b.load(src[0], src[1], u.dtype, gate, alt)  # type: ignore[arg-type]
        if id(src[0]) in self.readonly and new.op is Ops.LOAD:
            self.loads[key] = new
            self.load_scopes[-1].append(key)
        return new

    def _packed(self, orig: UOp, value: UOp) -> UOp:
        """``value``, an operand of an accumulation in a loop, or a load of its packed panel when it varies
        across lanes, is the same for every micro-tile of the unit and depends only on loads of inputs."""
        b, t = self.b, self.t
        dtype = value.dtype
        if not isinstance(dtype, DType):
            return value
        if id(orig) not in self.packs:
            if not self.find_packs or not self.ranges:
                return value
            deps = _dependencies(value)
            if any(x.op not in _PACKABLE or (x.op is Ops.DEFINE_GLOBAL and id(x) not in self.readonly)
                   for x in deps.values()):
                return value
            trips = math.prod(r.src[1].arg - r.src[0].arg for r in self.ranges)
            tile_coordinate = self.col0 if t.transposed else self.row0
            if id(self.lane) not in deps or id(tile_coordinate) in deps or \
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
            self.loads[key] = b.load(self.pack_bufs[pack.index], index, dtype)
            self.load_scopes[-1].append(key)
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
        pb.store(out, self._panel_index(pb, ranges, mapping[id(self.lane)]), _copy_expr(pb, value, mapping))
        for r in reversed(ranges):
            pb.end_range(r)
        return pb.uops


def _div_mod_sum(a: UOp, b: UOp) -> UOp | None:
    """``x`` when ``a + b`` is ``(x // k) * k + x % k`` (in either order), else None: an index that core
    unravelled by a row length and put back together, which the lanes would otherwise compute one by one."""
    for quotient, rest in ((a, b), (b, a)):
        if quotient.op is Ops.MUL and rest.op is Ops.MOD and rest.src[1].op is Ops.CONST and \
                isinstance(rest.dtype, DType) and rest.dtype.is_int and rest.src[1].arg != 0:  # x % 0 is 0
            x, k = rest.src
            for div, factor in (quotient.src, quotient.src[::-1]):
                if div.op is Ops.IDIV and div.src[0] is x and div.src[1] is k and factor is k:
                    return x
    return None


_PACKABLE = {Ops.CONST, Ops.SPECIAL, Ops.RANGE, Ops.CAST, Ops.BITCAST, Ops.LOAD, Ops.DEFINE_GLOBAL, *ALU}


def _dependencies(u: UOp) -> dict[int, UOp]:
    seen: dict[int, UOp] = {}
    stack = [u]
    while stack:
        x = stack.pop()
        if id(x) not in seen:
            seen[id(x)] = x
            stack.extend(x.src)
    return seen


def _copy_expr(b: KernelBuilder, u: UOp, mapping: dict[int, UOp]) -> UOp:
    """Rebuild the side-effect free expression ``u`` in builder ``b`` (leaves through ``mapping``).

    Operands are rebuilt before the ops that use them, left to right, from an explicit stack."""
    stack: list[tuple[UOp, bool]] = [(u, False)]
    while stack:
        x, operands_done = stack.pop()
        if id(x) in mapping:
            continue
        if x.src and not operands_done:
            stack.append((x, True))
            stack.extend((s, False) for s in reversed(x.src))
            continue
        src = [mapping[id(s)] for s in x.src]
        if x.op is Ops.DEFINE_GLOBAL:
            assert isinstance(x.dtype, PtrDType)
            new = b.define_global(x.arg[0], x.dtype.base, False)
        elif x.op is Ops.CONST:
            assert isinstance(x.dtype, DType)
            new = b.const(x.arg, x.dtype)
        elif x.op is Ops.LOAD:
            new = b.load(src[0], src[1], x.dtype, *src[2:])  # type: ignore[arg-type]
        elif x.op is Ops.CAST:
            assert isinstance(x.dtype, DType)
            new = b.cast(src[0], x.dtype)
        elif x.op is Ops.BITCAST:
            assert isinstance(x.dtype, DType)
            new = b.bitcast(src[0], x.dtype)
        else:
            assert isinstance(x.dtype, DType) and x.op in ALU, x
            new = b.alu(x.op, *src, dtype=x.dtype)
        mapping[id(x)] = new
    return mapping[id(u)]


def tile_cost(renderer: LaneRenderer, uops: list[UOp], outputs: int) -> float:
    """Estimated instructions per output of a rendered micro-tile: loop bodies weighted by their trip counts,
    a SIMD operation as G/8 instructions (a division G/2), a gather at a constant stride or a lane-by-lane
    operation as G, any other gather as 2G, a scalar one as 1."""
    lanes, total, trips = renderer.lanes, 0.0, [1]
    for u in uops:
        if u.op is Ops.RANGE:
            trips.append(trips[-1] * max(1, u.src[1].arg - u.src[0].arg))
        elif u.op is Ops.ENDRANGE:
            trips.pop()
        elif u.op in (Ops.CONST, Ops.SPECIAL, Ops.DEFINE_GLOBAL, Ops.DEFINE_ACC):
            continue
        elif id(u) not in renderer.varying:
            # uniform int32 sums and products are indices: the compiler strength-reduces them out of the loops
            if not (u.dtype == dtypes.int32 and u.op in (Ops.ADD, Ops.SUB, Ops.MUL)):
                total += trips[-1]
        elif u.op in (Ops.LOAD, Ops.STORE) and renderer.strides.get(id(u.src[1])) != 1:
            # a gather at a constant stride reads each lane at a fixed offset; any other extracts its indices
            total += trips[-1] * lanes * (1 if id(u.src[1]) in renderer.strides else 2)
        elif u.op in (Ops.IDIV, Ops.MOD):  # no SIMD division: a multiply-high sequence per half register
            total += trips[-1] * lanes / 2
        else:
            total += trips[-1] * lanes / 8
    return total / outputs


#: Outputs of at least this many bytes are written with non-temporal stores by kernels without loops.
STREAM_BYTES = 8 << 20


def _streaming(uops: list[UOp], threads: int) -> bool:
    """Whether an elementwise kernel writes so much that its stores should bypass the caches."""
    if any(u.op is Ops.RANGE for u in uops):
        return False
    out = next((u for u in uops if u.op is Ops.DEFINE_GLOBAL and u.arg[0] == 0), None)
    if out is None or not isinstance(out.dtype, PtrDType):
        return False
    return bool(threads * out.dtype.base.itemsize >= STREAM_BYTES)


def _render_tiles(name: str, uops: list[UOp], t: Tiling, lanes: int) -> tuple[list[str], list[Pack], float, bool]:
    """The C functions of a tiling's micro-tiles (and packs), their estimated cost per output, and whether the
    tiles do anything lane by lane."""
    params = kernel_params(uops)
    sig = ", ".join(params)
    # packing pays when a column gang's panel is read by several micro-tiles
    wide = TileBuilder(t, t.rows, find_packs=(t.block_cols if t.transposed else t.block_rows) >= 2 * t.rows)
    tiles = [(t.rows, wide.build(uops))]
    if t.remainder > 1:
        tiles.append((t.remainder, TileBuilder(t, t.remainder, packs=wide.packs).build(uops)))
    if t.rows > 1:
        tiles.append((1, TileBuilder(t, 1, packs=wide.packs).build(uops)))
    packs = sorted(wide.packs.values(), key=lambda p: p.index)
    pk_params = "".join(f", const {storage_type(p.dtype)} *restrict pk{p.index}" for p in packs)
    out: list[str] = []
    gang = "row0" if t.transposed else "col0"
    for p in packs:
        body = LaneRenderer(p.source, lanes, {gang: gang}).render()
        out += [f"static void {name}_pack{p.index}({sig}, int32_t {gang}, {storage_type(p.dtype)} *restrict "
                f"pk{p.index}) {{", *body, "}"]
    cost, lane_by_lane = 0.0, False
    for rows_here, tile_uops in tiles:
        streaming = _streaming(uops, t.n_rows * t.row_len)
        renderer = LaneRenderer(tile_uops, lanes, {"row0": "row0", "col0": "col0"}, streaming)
        body = renderer.render()
        lane_by_lane = lane_by_lane or renderer.lane_by_lane
        if rows_here == t.rows:
            cost = tile_cost(renderer, tile_uops, rows_here * lanes)
        out += [f"static inline __attribute__((always_inline)) void {name}_tile{rows_here}({sig}, int32_t row0, "
                f"int32_t col0{pk_params}) {{", *body, "}"]
    return out, packs, cost, lane_by_lane


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


def _gang_loops(name: str, args: str, pk_args: str, packs: list[Pack], t: Tiling, lanes: int,
                gangs: tuple[str, str, str], tiles: tuple[str, str, str]) -> list[str]:
    """The loops of a work unit: gangs of lanes along ``gangs`` (variable, low, high), each packing its panels,
    then micro-tiles of ``t.rows`` (a smaller remainder tile, then single ones) along ``tiles``."""
    (gv, g_lo, g_hi), (tv, t_lo, t_hi) = gangs, tiles
    call = f"({args}, row0, col0{pk_args});"
    out = [f"    for (int32_t {gv} = {g_lo}; {gv} < {g_hi}; {gv} += {lanes}) {{"]
    out += [f"      {name}_pack{p.index}({args}, {gv}, pk{p.index});" for p in packs]
    out.append(f"      int32_t {tv} = {t_lo};")
    if t.rows > 1:
        out.append(f"      for (; {tv} + {t.rows} <= {t_hi}; {tv} += {t.rows}) {name}_tile{t.rows}{call}")
    if t.remainder > 1:
        out.append(f"      if ({tv} + {t.remainder} <= {t_hi}) {{ {name}_tile{t.remainder}{call[:-1]}; "
                   f"{tv} += {t.remainder}; }}")
    out += [f"      for (; {tv} < {t_hi}; {tv}++) {name}_tile1{call}", "    }"]
    return out


def render_tiled(kernel: LoweredKernel, lanes: int, rows: int) -> CKernel | None:
    """The whole C file of a tiled kernel, or None when no tiling applies (work groups, or a launch of more
    than the two dimensions tg-clang declares)."""
    name, uops, grid = kernel.name, kernel.uops, kernel.global_size
    if math.prod(kernel.local_size) > 1 or len(grid) > 2:
        return None
    t = choose_tiling(uops, grid, lanes, rows)
    while t is None and lanes >= 2 * MIN_LANES and math.prod(grid) < lanes:  # fewer threads than a gang: narrower
        lanes //= 2
        t = choose_tiling(uops, grid, lanes, rows)
    if t is None:
        return None
    gang = lanes
    functions, packs, cost, lane_by_lane = _render_tiles(name, uops, t, lanes)
    if t.rows * 2 <= rows and not lane_by_lane and any(u.op is Ops.RANGE for u in uops):
        # few rows per tile and all SIMD: wider gangs, whose registers accumulate side by side instead of in a chain
        widest = max(1, WIDE_GANG_BYTES // (lanes * _widest_item(uops)))
        factor = 1 << min(MAX_WIDEN, widest, rows // t.rows).bit_length() - 1
        while factor > 1:  # the widest gang that leaves no more columns to the scalar tail
            wide = choose_tiling(uops, grid, lanes * factor, rows)
            if wide is not None and wide.full_cols == t.full_cols and not wide.transposed:
                t, gang = wide, lanes * factor
                functions, packs, cost, _ = _render_tiles(name, uops, t, gang)
                break
            factor //= 2
    other = transposed_tiling(uops, grid, lanes, rows)
    if other is not None:
        other_functions, other_packs, other_cost, _ = _render_tiles(name, uops, other, lanes)
        if other_cost < 0.85 * cost:
            t, functions, packs, gang = other, other_functions, other_packs, lanes
    lanes = gang
    params = kernel_params(uops)
    args = ", ".join([p.rsplit(" ", 1)[1] for p in params])
    sig = ", ".join(params)
    strategy = f"tiled{'T' if t.transposed else ''}{t.rows}x{lanes}"
    cost = t.block_rows * t.block_cols * thread_cost(uops)
    out = [header(name, t.units, cost, strategy),
           PRELUDE, *vector_typedefs(lanes), *functions]
    row_tail = t.full_rows < t.n_rows
    col_tail = t.full_cols < t.row_len
    if row_tail or col_tail:
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
    out += ["  for (int32_t u = start; u < end; u++) {",
            f"    int32_t rb = u / {n_col_blocks}, cb = u % {n_col_blocks};",
            f"    int32_t r_lo = rb * {t.block_rows}, r_hi = r_lo + {t.block_rows} < {t.full_rows} ? "
            f"r_lo + {t.block_rows} : {t.full_rows};",
            f"    int32_t c_lo = cb * {t.block_cols}, c_hi = c_lo + {t.block_cols} < {t.full_cols} ? "
            f"c_lo + {t.block_cols} : {t.full_cols};"]
    if t.transposed:  # G rows by R columns: row gangs outside, columns inside
        out += _gang_loops(name, args, pk_args, packs, t, lanes, ("row0", "r_lo", "r_hi"), ("col0", "c_lo", "c_hi"))
        if row_tail:
            out += [f"    if (r_hi == {t.full_rows}) for (int32_t row = {t.full_rows}; row < {t.n_rows}; row++)",
                    f"      for (int32_t c = c_lo; c < c_hi; c++) {name}_thread({args}, row * {t.row_len} + c);"]
    else:  # R rows by G columns: column gangs outside (their packed panel stays in cache), rows inside
        out += _gang_loops(name, args, pk_args, packs, t, lanes, ("col0", "c_lo", "c_hi"), ("row0", "r_lo", "r_hi"))
    if col_tail:
        out += [f"    if (cb == {n_col_blocks - 1}) for (int32_t row = r_lo; row < r_hi; row++)",
                f"      for (int32_t c = {t.full_cols}; c < {t.row_len}; c++) {name}_thread({args}, row * "
                f"{t.row_len} + c);"]
    if _streaming(uops, math.prod(grid)):
        out += ["#if defined(__x86_64__) || defined(__i386__)",
                "    __builtin_ia32_sfence();  /* order the non-temporal stores before anyone reads them */", "#endif"]
    out += ["  }", "}", dynamic_entry(name, params), ""]
    return CKernel("\n".join(out), t.units, cost, strategy)
