"""Register tiles and cache blocking over a lowered kernel's launch: a core pass for targets that run many of
tg's threads on one core (CPUs), where what neighbouring threads share is worth computing once.

The kernel is seen as a grid of rows: with a two-dimensional launch, ``gidx0`` is the column within a row of
``grid[0]`` threads and ``gidx1`` the row; a one-dimensional launch is one long row.  A :class:`Tiling` groups
the threads into *micro-tiles* of R rows by G consecutive columns (``row0``..``row0+R-1``, ``col0``..``col0+G-1``;
G threads run together as lanes), and the micro-tiles into *work units* of a block of rows by a block of columns
(cache blocking: a unit's tiles reuse what its first tile brought into the caches).  For kernels with loops there
is a second orientation, G rows (the lanes) by R columns, for loop bodies that depend on the row more than on
the column (a matmul whose output is transposed); kernels without loops whose rows are shorter than G may take it
too (one column per tile).  Rows shorter than G make the whole launch one long row.

:class:`TileReplay` rebuilds the micro-ops as one micro-tile: the kernel's ``gidx0``/``gidx1`` become
``col0 + lane`` and ``row0 + r`` (new ``SPECIAL`` micro-ops ``row0``, ``col0`` and ``lane``), once per row of the
tile, through :class:`~tg.codegen.builder.KernelBuilder`, so what the rows share — indices, constants, a load of
the same element of a read-only buffer in the same loop — is built once.  An *aligned* replay writes ``row0`` as
``R * row_tile`` (a ``SPECIAL`` ``row_tile``; the target promises that full micro-tiles start at multiples of R),
so the index builder sees that rows ``R*row_tile + r`` (r < R) have the same quotient by any multiple of R.
A target renders the result its own way (tg-clang: SIMD across ``lane``, scalar where a value is uniform) and may
substitute the operands of an accumulation in a loop (:meth:`TileReplay.loop_operand`; tg-clang copies panels
there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tg.codegen.builder import KernelBuilder
from tg.codegen.rewrites import eliminate_dead
from tg.codegen.uops import ALU, Ops, PtrDType, UOp
from tg.support.dtype import DType, dtypes

#: Operations per work unit (large enough to hide the cost of handing a unit to a core).
UNIT_OPS = 1 << 16
#: Rows (columns, transposed) of micro-tiles that a work unit of a kernel with loops aims at: what a unit's first
#: tile brings into the caches serves the rest, so a tall unit spreads that cost over many tiles.
BLOCK_TARGET = 128
#: Work units a kernel with loops aims at (at least), so that the cores can share the work out evenly.
UNITS_TARGET = 32
#: Micro-tiles a work unit of a kernel with loops has at least (when there are that many).
MIN_TILES = 4
#: Ops that cost about eight ordinary ones (for :func:`thread_cost`).
_EXPENSIVE = (Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.POW)


def thread_cost(uops: list[UOp]) -> int:
    """Rough operation count of one thread: ops weighted by the trip counts of their loops."""
    cost, trips = 0, [1]
    for u in uops:
        if u.op is Ops.RANGE:
            lo, hi = (s.arg if s.op is Ops.CONST else 0 for s in u.src)
            trips.append(trips[-1] * max(1, hi - lo))
        elif u.op is Ops.ENDRANGE:
            trips.pop()
        elif u.op not in (Ops.CONST, Ops.DEFINE_GLOBAL, Ops.SPECIAL, Ops.DEFINE_LOCAL, Ops.DEFINE_VAR):
            cost += trips[-1] * (8 if u.op in _EXPENSIVE else 1)
    return max(cost, 1)


def has_loops(uops: list[UOp]) -> bool:
    return any(u.op is Ops.RANGE for u in uops)


@dataclass(frozen=True)
class Tiling:
    """How a launch of ``n_rows`` rows of ``row_len`` threads is cut into micro-tiles and work units."""

    lanes: int  # G: threads per micro-tile row (run together as lanes)
    rows: int  # R: rows per micro-tile
    row_len: int  # T: threads per row
    n_rows: int
    full_cols: int  # columns covered by whole gangs of lanes (a multiple of G)
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
    """Micro-tiles of at most ``rows`` rows by ``lanes`` columns for the kernel launched as ``grid`` (``gidx0`` the
    columns, ``gidx1`` the rows), blocked into work units; None when the launch has fewer threads than lanes."""
    n = math.prod(grid)
    if n < lanes:
        return None
    row_len = grid[0]
    if row_len < lanes:  # rows shorter than a gang: one long row
        row_len = n
    n_rows = n // row_len
    full_cols = row_len - row_len % lanes
    cost = thread_cost(uops)
    if has_loops(uops):
        r = _even_split(n_rows, rows)
        block_rows = _block(n_rows, r, max(1, full_cols // lanes))
    else:
        r = 1
        block_rows = max(1, min(n_rows, UNIT_OPS // max(1, full_cols * cost)))
    gang_ops = block_rows * lanes * cost
    block_cols = lanes * max(1, min(full_cols // lanes, math.ceil(UNIT_OPS / gang_ops)))
    return Tiling(lanes, r, row_len, n_rows, full_cols, block_rows, block_cols, grid_cols=grid[0])


def transposed_tiling(uops: list[UOp], grid: tuple[int, ...], lanes: int, rows: int) -> Tiling | None:
    """The other orientation: micro-tiles of ``lanes`` rows by at most ``rows`` columns; None where it does not
    apply (fewer rows than lanes; a kernel without loops whose rows are a gang or longer)."""
    n, row_len = math.prod(grid), grid[0]
    n_rows = n // row_len
    if n_rows < lanes or row_len < 2:
        return None
    if not has_loops(uops):
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


def _even_split(n: int, most: int) -> int:
    """Micro-tile height for ``n`` rows, at most ``most``: as even as the fewest tiles allow (10 rows by at most
    6 make two tiles of 5, not one of 6 and four single rows)."""
    if n <= most:
        return max(1, n)
    return math.ceil(n / math.ceil(n / most))


def _block(n: int, r: int, other_blocks: int) -> int:
    """Rows per work unit (a multiple of the tile height ``r``) of ``n`` rows, when the other dimension makes
    ``other_blocks`` blocks: about BLOCK_TARGET rows, fewer where there would be under UNITS_TARGET units, but
    at least MIN_TILES tiles (what the first tile brings into the caches must be worth it)."""
    tiles = math.ceil(n / r)
    want_blocks = max(1, math.ceil(UNITS_TARGET / max(1, other_blocks)))
    per_block = min(math.ceil(tiles / want_blocks), max(1, math.ceil(BLOCK_TARGET / r)))
    return r * max(per_block, min(tiles, MIN_TILES))


class TileReplay:
    """Rebuilds a kernel's micro-ops as one micro-tile of ``rows`` rows of the tiling ``t`` (see the module
    docstring).  ``replay.b`` is the builder; ``row0``, ``col0`` and ``lane`` its new ``SPECIAL`` micro-ops;
    ``ranges`` the loops open at the op being replayed; ``readonly`` the ids of the read-only buffers."""

    def __init__(self, t: Tiling, rows: int, aligned: bool = False):
        self.t, self.rows = t, rows
        self.b = b = KernelBuilder()
        i32 = dtypes.int32
        self.row_tile: UOp | None = None
        if t.transposed:
            self.row0 = b.special("row0", t.full_rows - t.lanes + 1)
            self.col0 = b.special("col0", t.row_len - rows + 1)
            self.lane = b.special("lane", t.lanes)
            row = b.alu(Ops.ADD, self.row0, self.lane)
            self.coords = [(row, b.alu(Ops.ADD, self.col0, b.const(r, i32))) for r in range(rows)]
        elif aligned:  # row0 is a multiple of the tile height: row0 = R * row_tile, which index arithmetic can use
            assert rows == t.rows and t.n_rows % rows == 0 and t.block_rows % rows == 0, (t, rows)
            self.row_tile = b.special("row_tile", t.n_rows // rows)
            self.row0 = b.alu(Ops.MUL, self.row_tile, b.const(rows, i32))
            self.col0 = b.special("col0", t.full_cols - t.lanes + 1)
            self.lane = b.special("lane", t.lanes)
            col = b.alu(Ops.ADD, self.col0, self.lane)
            self.coords = [(b.alu(Ops.ADD, self.row0, b.const(r, i32)), col) for r in range(rows)]
        else:
            self.row0 = b.special("row0", t.n_rows - rows + 1)
            self.col0 = b.special("col0", t.full_cols - t.lanes + 1)
            self.lane = b.special("lane", t.lanes)
            col = b.alu(Ops.ADD, self.col0, self.lane)
            self.coords = [(b.alu(Ops.ADD, self.row0, b.const(r, i32)), col) for r in range(rows)]
        self.ranges: list[UOp] = []
        self.readonly: set[int] = set()
        self.loads: dict[tuple[int, ...], UOp] = {}
        self.load_scopes: list[list[tuple[int, ...]]] = [[]]

    def loop_operand(self, orig: UOp, value: UOp) -> UOp:
        """What an operand of a multiply-accumulate inside a loop becomes (``orig`` in the kernel, ``value`` as
        replayed for this row): ``value`` here; a subclass may read it from elsewhere."""
        return value

    def remember(self, key: tuple[int, ...], load: UOp) -> UOp:
        """Keep ``load`` (just built) under ``key`` until the innermost open loop ends: the rows of the tile that
        ask for ``key`` again (``key in replay.loads``) share it."""
        self.loads[key] = load
        self.load_scopes[-1].append(key)
        return load

    def build(self, uops: list[UOp]) -> list[UOp]:
        b = self.b
        shared: dict[int, UOp] = {}
        per_row: list[dict[int, UOp]] = [{} for _ in range(self.rows)]
        for u in uops:
            if u.op in SHARED_LEAVES:
                shared[id(u)] = new = shared_leaf(b, u)
                if u.op is Ops.DEFINE_GLOBAL and not u.arg[2]:
                    self.readonly.add(id(new))
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
        return eliminate_dead(b.uops)  # drop what a substituted operand left behind

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
            src = (self.loop_operand(u.src[0], src[0]), self.loop_operand(u.src[1], src[1]), src[2])
        if u.op is Ops.ADD and (whole := div_mod_sum(*src)) is not None:
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
            self.remember(key, new)
        return new


def div_mod_sum(a: UOp, b: UOp) -> UOp | None:
    """``x`` when ``a + b`` is ``(x // k) * k + x % k`` (in either order), else None: a thread index that the
    replay split by a row length (a one-long-row tiling of a two-dimensional launch) and a view put back
    together, which the lanes would otherwise compute one by one."""
    for quotient, rest in ((a, b), (b, a)):
        if quotient.op is Ops.MUL and rest.op is Ops.MOD and rest.src[1].op is Ops.CONST and \
                isinstance(rest.dtype, DType) and rest.dtype.is_int and rest.src[1].arg != 0:  # x % 0 is 0
            x, k = rest.src
            for div, factor in (quotient.src, quotient.src[::-1]):
                if div.op is Ops.IDIV and div.src[0] is x and div.src[1] is k and factor is k:
                    return x
    return None


#: The operand-free micro-ops every row (or lane) of a rebuilt kernel shares: buffers, constants, launch variables.
SHARED_LEAVES = (Ops.DEFINE_GLOBAL, Ops.CONST, Ops.DEFINE_VAR)


def shared_leaf(b: KernelBuilder, u: UOp) -> UOp:
    """``u`` (one of :data:`SHARED_LEAVES`) rebuilt in builder ``b``, once for every row that reads it."""
    if u.op is Ops.DEFINE_GLOBAL:
        assert isinstance(u.dtype, PtrDType)
        return b.define_global(u.arg[0], u.dtype.base, u.arg[2])
    assert isinstance(u.dtype, DType)
    return b.const(u.arg, u.dtype) if u.op is Ops.CONST else b.define_var(u.arg[0], u.dtype, *u.arg[1:])


#: What an expression :func:`copy_expr` rebuilds may hold.
COPYABLE = {Ops.CONST, Ops.SPECIAL, Ops.RANGE, Ops.CAST, Ops.BITCAST, Ops.LOAD, Ops.DEFINE_GLOBAL, *ALU}


def dependencies(u: UOp) -> dict[int, UOp]:
    """Every micro-op ``u`` depends on (itself included), by id."""
    seen: dict[int, UOp] = {}
    stack = [u]
    while stack:
        x = stack.pop()
        if id(x) not in seen:
            seen[id(x)] = x
            stack.extend(x.src)
    return seen


def copy_expr(b: KernelBuilder, u: UOp, mapping: dict[int, UOp]) -> UOp:
    """Rebuild the side-effect free expression ``u`` (of :data:`COPYABLE` ops) in builder ``b``; ``mapping`` gives
    the new leaves (``SPECIAL``s, ``RANGE``s) by the old ones' ids, and receives every op rebuilt.

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
