"""The clang backend's masked last gang: the columns of a row past its last full gang of lanes run as one more
gang whose lanes past the row neither load (where the address depends on the lane) nor store.  Each case compares
with numpy exactly or closely and checks that the kernel took the masked gang; the shapes are the ones that put
the most at risk: gathers through padded and strided views, loops with packed panels and a remainder tile, a
broadcast load (the same address for every lane) at the end of its buffer, integer and boolean outputs, and a
flat launch of one long row.  Loops over the lanes (gathers, scatters, masked loads and stores) are unrolled."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from clang_helpers import matches_numpy, new_kernels
from tg import Tensor

rng = np.random.default_rng(5)


def _masked_sources(fn: Callable[[], None]) -> list[str]:
    """The C sources of the kernels ``fn`` compiles that run a masked last gang."""
    return [source for _, _, source in new_kernels(fn) if "_tileM" in source]


CASES: dict[str, tuple[Callable[[list[Tensor]], Tensor], list[tuple[int, ...]], str]] = {
    # a matmul of 23 columns: 6-row tiles, a remainder tile of 5 rows (905 = 6*150 + 5), packed panels
    "matmul": (lambda t: t[0] @ t[1], [(905, 61), (61, 23)], "float32"),
    # a padded, strided window gathered per row: lanes read at a constant stride, masks per row
    "padded gather": (lambda t: t[0].pad(((0, 0), (2, 3))).reshape(37, 3, 7)[:, :, ::2].permute(0, 2, 1)
                      .reshape(37, 12) + 1, [(37, 16)], "float32"),
    # the same element of a small buffer for every lane, the last row's included (its tail reads the last element)
    "broadcast": (lambda t: t[0] * t[1].reshape(-1, 1), [(29, 21), (29,)], "float32"),
    "int32": (lambda t: t[0] * 3 - t[1].reshape(1, -1), [(13, 19), (19,)], "int32"),
    "bool": (lambda t: t[0] < t[1].reshape(-1, 1), [(17, 27), (17,)], "float32"),
    # one long row (a flat launch of 7 * 11 elements)
    "flat": (lambda t: (t[0] * 2).exp2(), [(77,)], "float32"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_masked_last_gang_matches_numpy(case: str) -> None:
    graph, shapes, dtype = CASES[case]
    arrays = [(rng.standard_normal(s) * 4).astype(dtype) for s in shapes]
    sources = _masked_sources(lambda: matches_numpy(graph, arrays))
    assert sources, f"{case}: no kernel took a masked last gang"


#: A loop over a gang's lanes (a gather, a scatter, a masked load or store), with the pragma that unrolls it.
_LANE_LOOP = re.compile(r"(_Pragma\(\"clang loop unroll\(full\)\"\) )?for \(int l = 0; l < \d+; l\+\+\)")

#: Graphs of shapes no other test compiles (the sources are read from the kernels a case compiles afresh).
UNROLL_CASES: dict[str, tuple[Callable[[list[Tensor]], Tensor], list[tuple[int, ...]], bool]] = {
    # a masked gather at a stride
    "padded gather": (lambda t: t[0].pad(((0, 0), (2, 3))).reshape(41, 3, 7)[:, :, ::2].permute(0, 2, 1)
                      .reshape(41, 12) - 1, [(41, 16)], True),
    # a transposing read (lanes at a stride of 25) into rows of 19: a convolution's output, channels first, biased
    "transposed": (lambda t: (t[0].reshape(100, 19, 25).permute(0, 2, 1) + t[1].reshape(1, 25, 1)).relu(),
                   [(1900, 25), (25,)], True),
    # the same into rows of 9, launched flat: gathers and scatters, no mask
    "transposed, flat": (lambda t: (t[0].reshape(100, 9, 25).permute(0, 2, 1) + t[1].reshape(1, 25, 1)).relu(),
                         [(900, 25), (25,)], False),
}


@pytest.mark.parametrize("case", list(UNROLL_CASES))
def test_lane_loops_are_unrolled(case: str) -> None:
    """A gather, a scatter and a masked load or store go lane by lane; the loop is fully unrolled, so the lanes are
    constants and the mask and values stay in registers (a loop that indexes vectors by its counter made clang keep
    them in memory and reload them lane by lane: the transposed case's kernel in the MNIST-1D CNN took 13x as long,
    the flat one 3x)."""
    graph, shapes, masked = UNROLL_CASES[case]
    arrays = [(rng.standard_normal(s) * 4).astype(np.float32) for s in shapes]
    if masked:
        sources = _masked_sources(lambda: matches_numpy(graph, arrays))
    else:
        sources = [source for _, _, source in new_kernels(lambda: matches_numpy(graph, arrays))]
    kernel_lines = [line for source in sources for line in source.splitlines() if not line.startswith("TG_INLINE")]
    loops = [m for line in kernel_lines for m in _LANE_LOOP.finditer(line)]
    assert loops, f"{case}: no lane loop in {len(sources)} kernels"
    assert all(m.group(1) for m in loops), f"{case}: a lane loop is not unrolled: {loops[0].group(0)}"
