"""Core's register-tile and cache-blocking pass (tg.codegen.tiles): the geometry it chooses, and what a micro-tile's
replay shares between its rows."""

from __future__ import annotations

import math

import numpy as np
from tg import Tensor, dtypes
from tg.codegen.builder import KernelBuilder
from tg.codegen.capabilities import Capabilities
from tg.codegen.lower import lower
from tg.codegen.program import LoweredKernel
from tg.codegen.tiles import TileReplay, Tiling, choose_tiling, div_mod_sum, thread_cost, transposed_tiling
from tg.codegen.uops import Ops, UOp
from tg.schedule.scheduler import Kernel, create_schedule

TWO_D = Capabilities(launch_dims=2)


def lowered(t: Tensor) -> LoweredKernel:
    (kernel,) = [k for k in create_schedule([t.lazydata]) if isinstance(k, Kernel)]
    return lower(kernel, TWO_D)


def realized(*shape: int) -> Tensor:
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32)).realize()


def loads_of(uops: list[UOp], buffer: int) -> int:
    return sum(1 for u in uops if u.op is Ops.LOAD and u.src[0].op is Ops.DEFINE_GLOBAL and u.src[0].arg[0] == buffer)


def test_a_matmul_tiles_rows_by_lanes_and_blocks_units() -> None:
    k = lowered(realized(60, 32) @ realized(32, 48))
    assert k.global_size == (48, 60)  # gidx0: the 48 columns, gidx1: the 60 rows
    t = choose_tiling(k.uops, k.global_size, 16, 6)
    assert t is not None and (t.lanes, t.rows, t.row_len, t.n_rows, t.full_cols) == (16, 6, 48, 60, 48)
    assert t.block_rows % t.rows == 0 and t.block_cols % t.lanes == 0
    tiles_per_unit = (t.block_rows // t.rows) * (t.block_cols // t.lanes)
    assert t.units * tiles_per_unit >= (60 // 6) * (48 // 16)  # the units cover every micro-tile
    other = transposed_tiling(k.uops, k.global_size, 16, 6)
    assert other is not None and other.transposed and other.full_rows == 48 and other.rows == 6


def test_a_launch_with_fewer_threads_than_lanes_is_not_tiled() -> None:
    k = lowered(realized(2, 4) + 1)
    assert choose_tiling(k.uops, k.global_size, 16, 6) is None


def test_short_rows_make_one_long_row() -> None:
    k = lowered(realized(64, 3) * 2)
    t = choose_tiling(k.uops, k.global_size, 16, 6)
    assert t is not None and t.n_rows == 1 and t.row_len == 192 and t.rows == 1


def test_a_micro_tile_shares_what_its_rows_read_alike() -> None:
    """C[i, j] = sum_k A[i, k] B[k, j]: the rows of a tile read the same B[k, j] (shared), each its own A[i, k]."""
    k = lowered(realized(12, 8) @ realized(8, 32))
    t = choose_tiling(k.uops, k.global_size, 16, 4)
    assert t is not None and t.rows == 4
    tile = TileReplay(t, 4).build(k.uops)
    a_buf, b_buf = 1, 2
    assert loads_of(k.uops, a_buf) == loads_of(k.uops, b_buf) == 1
    assert loads_of(tile, a_buf) == 4 and loads_of(tile, b_buf) == 1
    assert sum(u.op is Ops.STORE for u in tile) == 4
    names = {u.arg[0] for u in tile if u.op is Ops.SPECIAL}
    assert names == {"row0", "col0", "lane"}  # the launch's gidx0/gidx1 are gone


def test_replaying_a_one_long_row_folds_the_unravelled_index_back() -> None:
    k = lowered(realized(64, 3) * 2)
    t = choose_tiling(k.uops, k.global_size, 16, 6)
    assert t is not None
    tile = TileReplay(t, 1).build(k.uops)
    assert not any(u.op in (Ops.IDIV, Ops.MOD) for u in tile)  # (f // 3) * 3 + f % 3 is f again


def test_thread_cost_weighs_loops_by_their_trips() -> None:
    small, big = lowered(realized(4, 8).sum(axis=1)), lowered(realized(4, 800).sum(axis=1))
    assert thread_cost(big.uops) > 50 * thread_cost(small.uops) / 2
    assert thread_cost(lowered(realized(16) + 1).uops) >= 1


def test_tiling_units_cover_the_launch() -> None:
    t = Tiling(lanes=8, rows=3, row_len=40, n_rows=10, full_cols=40, block_rows=6, block_cols=16)
    assert t.units == math.ceil(10 / 6) * math.ceil(40 / 16) and t.remainder == 10 % 3


def test_div_mod_sum_is_recognised() -> None:
    b = KernelBuilder()
    x = b.special("lane", 1000)
    ten, zero = b.const(10, dtypes.int32), b.const(0, dtypes.int32)
    div, mod = b.alu(Ops.IDIV, x, ten), b.alu(Ops.MOD, x, ten)
    assert div_mod_sum(b.alu(Ops.MUL, div, ten), mod) is x
    assert div_mod_sum(mod, b.alu(Ops.MUL, ten, div)) is x
    assert div_mod_sum(b.alu(Ops.MUL, div, b.const(9, dtypes.int32)), mod) is None
    assert div_mod_sum(b._add(Ops.MUL, dtypes.int32, (b._add(Ops.IDIV, dtypes.int32, (x, zero)), zero)),
                       b._add(Ops.MOD, dtypes.int32, (x, zero))) is None  # x % 0 is 0 here, not x


CUDA_LIKE = Capabilities(launch_dims=3, launch_limits=(2**31 - 1, 65535, 65535), group_size=128)


def test_a_launch_keeps_its_shape_within_the_targets_limits() -> None:
    transposed = realized(256, 50, 100).permute(2, 1, 0) * 2  # dims no buffer walks as one: they stay three
    (kernel,) = [k for k in create_schedule([transposed.lazydata]) if isinstance(k, Kernel)]
    k = lower(kernel, CUDA_LIKE)
    assert k.global_size == (2, 50, 100) and k.local_size == (128, 1, 1)
    assert {u.arg[0] for u in k.uops if u.op is Ops.SPECIAL} == {"gidx0", "gidx1", "gidx2", "lidx0"}


def test_a_launch_past_the_targets_limits_takes_fewer_dimensions() -> None:
    x = realized(40, 3, 70_000).permute(2, 1, 0)
    (kernel,) = [k for k in create_schedule([(x * 2).lazydata]) if isinstance(k, Kernel)]
    flat = lower(kernel, CUDA_LIKE)  # z would be 70,000 and y (folded) 210,000: past 65,535 both
    assert flat.global_size == (-(-70_000 * 3 * 40 // 128),)
    unlimited = lower(kernel, Capabilities(launch_dims=3, group_size=128))
    assert unlimited.global_size == (1, 3, 70_000)
