"""Tensor cores: the warp-wide matrix multiply-accumulate a target declares (``Capabilities.tensor_cores``).

A target declares what its matrix unit computes with :class:`TensorCore` (``Capabilities.tensor_cores``):
``D = A @ B + C`` for an ``M x K`` matrix ``A``, a ``K x N`` matrix ``B`` and ``M x N`` accumulators, spread over
the ``threads`` lanes of one work group, each lane holding a few elements of each matrix as a vector
(a :class:`Fragment` says which).  The micro-op is ``WMMA(a, b, c)`` with ``arg`` the :class:`TensorCore`: each
lane passes its fragment of ``A``, ``B`` and ``C`` and receives its fragment of ``D``.  Every lane of the work
group must execute it together (no gate).

The lowering of contractions onto them is :mod:`tg.codegen.contraction`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A coordinate's dependence on the lane id: the sum over terms ``(divisor, modulus, scale)`` of
#: ``lane // divisor % modulus * scale``.
LaneTerms = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Fragment:
    """The elements of a matrix one lane holds: element ``e`` of lane ``l`` is at
    ``(rows(l) + row_offsets[e], cols(l) + col_offsets[e])``."""

    rows: LaneTerms
    cols: LaneTerms
    row_offsets: tuple[int, ...]
    col_offsets: tuple[int, ...]

    @property
    def elements(self) -> int:
        return len(self.row_offsets)

    def table(self, threads: int) -> tuple[tuple[tuple[int, int], ...], ...]:
        """``table[lane][element] = (row, col)``: the whole layout, for backends that interpret it."""
        def at(terms: LaneTerms, lane: int) -> int:
            return sum(lane // d % m * s for d, m, s in terms)
        return tuple(tuple((at(self.rows, lane) + r, at(self.cols, lane) + c)
                           for r, c in zip(self.row_offsets, self.col_offsets)) for lane in range(threads))


@dataclass(frozen=True)
class TensorCore:
    """One matrix multiply-accumulate a target's work group of ``threads`` lanes performs together."""

    name: str
    dims: tuple[int, int, int]  # M, N, K
    dtype_in: str  # a dtype's name, as in ``Capabilities.dtypes``: "float16"
    dtype_acc: str
    threads: int
    a: Fragment  # M x K
    b: Fragment  # K x N
    c: Fragment  # M x N (C in, D out)

    def __post_init__(self) -> None:
        m, n, k = self.dims
        for what, frag, rows, cols in (("a", self.a, m, k), ("b", self.b, k, n), ("c", self.c, m, n)):
            cells = {cell for lane in frag.table(self.threads) for cell in lane}
            if len(cells) != rows * cols or len(cells) != self.threads * frag.elements or \
                    cells != {(r, c) for r in range(rows) for c in range(cols)}:
                raise ValueError(f"TensorCore {self.name}: fragment {what} does not hold each element of its "
                                 f"{rows}x{cols} matrix exactly once")


_GROUP, _IN_GROUP = ((4, 8, 1),), ((1, 4, 2),)  # lane // 4 and lane % 4 * 2
#: The layout of ``mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32`` (NVIDIA sm_80 and newer, as the PTX ISA
#: manual gives it): tg-ptx declares it, and ``TG_NUMPY_CAPS=tensor_cores`` proves the lowering with it.
MMA_16x8x16_F16_F32 = TensorCore(
    "mma_m16n8k16_f16_f32", (16, 8, 16), "float16", "float32", 32,
    a=Fragment(_GROUP, _IN_GROUP, (0, 0, 8, 8, 0, 0, 8, 8), (0, 1, 0, 1, 8, 9, 8, 9)),
    b=Fragment(_IN_GROUP, _GROUP, (0, 1, 8, 9), (0, 0, 0, 0)),
    c=Fragment(_GROUP, _IN_GROUP, (0, 0, 8, 8), (0, 1, 0, 1)),
)
