"""The cost model that chooses between tg-clang's renderings of a kernel: estimated instructions per output of a
micro-tile the lane renderer rendered (the tiled renderer and the reduction lanes both measure with it)."""

from __future__ import annotations

from tg.codegen.uops import Ops, UOp
from tg.support.dtype import dtypes

from tg_clang.spmd import LaneRenderer


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
        elif u.op in (Ops.CONST, Ops.DEFINE_VAR, Ops.SPECIAL, Ops.DEFINE_GLOBAL, Ops.DEFINE_ACC):
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
