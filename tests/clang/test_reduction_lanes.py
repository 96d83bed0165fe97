"""Reductions whose lanes walk the reduction loop (:mod:`tg_clang.reduction_lanes`): chosen where each output
reads a contiguous run, and right at awkward lengths (leftover iterations past the last whole gang), for every
dtype, for MAX with NaN, for sums that wrap, and through padded (gated) loads."""

from __future__ import annotations

import numpy as np
import pytest
from tg import Tensor

rng = np.random.default_rng(5)


def _strategies() -> dict[str, str]:
    from tg.engine.device import device_state

    return {p.name: p.strategy for p in device_state("clang").binaries.values()}


def _source(name_part: str) -> str:
    from tg.engine.device import device_state

    return next(src for (name, src), _ in device_state("clang").binaries.items() if name_part in name)


def test_a_row_sum_walks_its_rows_in_lanes(fresh_devices: None) -> None:
    x = rng.standard_normal((300, 1000)).astype(np.float32)
    got = Tensor(x, device="clang").sum(1).numpy()
    np.testing.assert_allclose(got, x.astype(np.float64).sum(1), rtol=1e-5, atol=1e-4)
    strategies = _strategies()
    assert any(s.startswith("reduce") for s in strategies.values()), strategies
    source = _source("r_add")
    assert "memcpy(&" in source and "] = data1[" not in source  # contiguous vector loads, no lane-by-lane gathers


def test_a_column_sum_keeps_lanes_across_outputs(fresh_devices: None) -> None:
    """Outputs side by side in memory read rows of neighbours: the lanes stay across outputs."""
    x = rng.standard_normal((1000, 300)).astype(np.float32)
    np.testing.assert_allclose(Tensor(x, device="clang").sum(0).numpy(), x.astype(np.float64).sum(0), rtol=1e-5,
                               atol=1e-4)
    assert not any(s.startswith("reduce") for s in _strategies().values()), _strategies()


@pytest.mark.parametrize("length", [32, 33, 63, 64, 65, 127, 1031, 4099])
def test_lengths_around_the_gang(length: int) -> None:
    x = rng.standard_normal((7, length)).astype(np.float32)
    t = Tensor(x, device="clang")
    np.testing.assert_allclose(t.sum(1).numpy(), x.astype(np.float64).sum(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(t.amax(1).numpy(), x.max(1))
    np.testing.assert_array_equal(t.amin(1).numpy(), x.min(1))


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "int8"])
def test_integer_sums_and_maxima_are_exact(dtype: str) -> None:
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, (5, 777), endpoint=True).astype(dtype)
    t = Tensor(x, device="clang")
    np.testing.assert_array_equal(t.amax(1).numpy(), x.max(1))
    if dtype in ("int32", "int64"):  # wraps alike in any order
        np.testing.assert_array_equal(t.sum(1).numpy(), x.sum(1, dtype=dtype))


def test_float64_and_bool_reductions() -> None:
    x = rng.standard_normal((3, 999))
    np.testing.assert_allclose(Tensor(x, device="clang").sum(1).numpy(), x.sum(1), rtol=1e-12)
    flags = np.zeros((4, 500), dtype=bool)
    flags[1, 7] = flags[2, 499] = flags[3, 130] = True
    t = Tensor(flags, device="clang")
    np.testing.assert_array_equal(t.any(1).numpy(), flags.any(1))
    np.testing.assert_array_equal(t.all(1).numpy(), flags.all(1))


@pytest.mark.parametrize("where", [0, 17, 64 * 3 + 5, 998])  # a lane, another lane, deep in the loop, leftover
def test_max_and_sum_see_a_nan_anywhere(where: int) -> None:
    x = rng.standard_normal((2, 999)).astype(np.float32)
    x[1, where] = np.nan
    t = Tensor(x, device="clang")
    assert np.isnan(t.amax(1).numpy()[1]) and not np.isnan(t.amax(1).numpy()[0])
    assert np.isnan(t.sum(1).numpy()[1])
    inf = np.where(np.isnan(x), np.inf, x)
    assert Tensor(inf, device="clang").amax(1).numpy()[1] == np.inf


def test_padded_rows_read_zeros_past_their_ends() -> None:
    x = rng.standard_normal((6, 300)).astype(np.float32)
    got = Tensor(x, device="clang").pad(((0, 0), (5, 40)), value=0.0).exp().sum(1).numpy()
    want = np.exp(np.pad(x, ((0, 0), (5, 40))).astype(np.float64)).sum(1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_softmax_and_logsumexp_rows() -> None:
    x = rng.standard_normal((129, 1024)).astype(np.float32) * 4
    t = Tensor(x, device="clang")
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(t.softmax(-1).numpy(), e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-7)
    want = np.log(np.exp(x.astype(np.float64)).sum(-1))
    np.testing.assert_allclose(t.logsumexp(-1).numpy(), want, rtol=1e-5)


def test_a_long_single_sum_of_ones_is_exact() -> None:
    """2**24 + 3 ones: one float32 accumulator would stop at 2**24; the lanes' partial sums stay exact."""
    n = (1 << 24) + 3
    assert Tensor(np.ones(n, np.float32), device="clang").sum().numpy() == n


def test_a_row_sum_of_a_scaled_input_takes_its_scale_at_launch(fresh_devices: None) -> None:
    """``(x * s).sum(1)`` and ``(x * s).softmax(-1)`` for several Python floats: kernels in lanes along the loop,
    compiled once, the launch variable shared by every lane, each scale's answer."""
    x = rng.standard_normal((300, 1000)).astype(np.float32)
    t = Tensor(x, device="clang")
    for scale in (0.5, -1.25, 3.0):
        z = x * np.float32(scale)
        np.testing.assert_allclose((t * scale).sum(1).numpy(), z.astype(np.float64).sum(1), rtol=1e-5, atol=2e-4)
        e = np.exp(z - z.max(-1, keepdims=True))
        np.testing.assert_allclose((t * scale).softmax(-1).numpy(), e / e.sum(-1, keepdims=True), rtol=1e-5,
                                   atol=1e-7)
    strategies = _strategies()
    assert len(strategies) == len(set(strategies)), strategies
    assert any(s.startswith(("reduce", "rows")) for s in strategies.values()), strategies  # the softmax: row passes
    assert "float p0" in _source("mul_r_add")
