"""tg-clang's kernels for every outermost size (see :mod:`tg.engine.symbolic`) whose rows are shorter than a gang:
tiled with a narrower gang that keeps the rows apart (their count follows ``n0``), where the exact kernels tile the
whole launch as one long row; each output's own loop is the same, so every size gets the exact kernel's bits."""

from __future__ import annotations

import numpy as np
from tg import Tensor


def test_ten_columns_take_a_gang_of_eight(fresh_devices: None) -> None:
    """(TG_SYMBOLIC=verify over the conformance kit checks the bits; here, the strategy and the rows' tails.)"""
    from tg.engine.device import device_state

    w = np.linspace(-1, 1, 24 * 10, dtype=np.float32).reshape(24, 10)
    for n in (2, 3, 17, 5):
        x = np.random.default_rng(n).standard_normal((n, 24)).astype(np.float32)
        np.testing.assert_allclose((Tensor(x, device="clang") @ Tensor(w, device="clang")).numpy(), x @ w,
                                   rtol=1e-5, atol=1e-5)
    symbolic = [p for (_, _), p in device_state("clang").binaries.items() if "_n_" in p.name]
    assert [p.strategy for p in symbolic] == ["tiled6x8"], [(p.name, p.strategy) for p in symbolic]
