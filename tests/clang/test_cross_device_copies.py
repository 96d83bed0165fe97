"""Copies between backends move a tensor's elements in its own order: views (a transpose, a slice, a padded view)
and broadcast constants included.  A transposed tensor moved to another backend came back in its base's order."""

from __future__ import annotations

import numpy as np
import pytest
from tg import Tensor

BASE = np.arange(12.0, dtype=np.float32).reshape(3, 4)
CASES = {
    "transpose": (lambda t: t.T, lambda a: a.T),
    "slice": (lambda t: t[:, 1], lambda a: a[:, 1]),
    "strided slice": (lambda t: t[::2, 1:3], lambda a: a[::2, 1:3]),
    "padded": (lambda t: t.pad(((1, 0), (0, 2))), lambda a: np.pad(a, ((1, 0), (0, 2)))),
    "expanded": (lambda t: t[:1].expand(5, 4), lambda a: np.broadcast_to(a[:1], (5, 4))),
    "constant": (lambda t: Tensor.ones(2, 3), lambda a: np.ones((2, 3), np.float32)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("source", "target"), [("numpy", "clang"), ("clang", "numpy")])
def test_a_view_moved_to_another_backend_keeps_its_order(case: str, source: str, target: str) -> None:
    make, reference = CASES[case]
    moved = make(Tensor(BASE, device=source)).to(target)
    assert moved.device == target
    np.testing.assert_array_equal(moved.numpy(), reference(BASE))
