"""Differential tests of the clang backend against the numpy backend, aimed at the lane renderer's tiles.

Shapes are chosen so that every path runs: full micro-tiles, the one-row tiles at the bottom, the scalar
columns past the last gang, padded (gated) loads, packed panels, and tiny kernels that stay scalar.  Without
transcendental functions the lane renderer must give the very same bits as the scalar renderer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tg import Tensor

Graph = Callable[[list[Tensor]], Tensor]


def run(graph: Graph, arrays: list[np.ndarray], device: str) -> np.ndarray:
    return graph([Tensor(a, device=device) for a in arrays]).numpy()


def check(graph: Graph, arrays: list[np.ndarray], exact: bool = True, rtol: float = 1e-5) -> None:
    """clang against numpy: integers and bools bit for bit; floats within ``rtol`` (with ``exact``, 1e-6: clang
    fuses ``a*b+c`` into one rounding where numpy rounds twice)."""
    want = run(graph, arrays, "numpy")
    got = run(graph, arrays, "clang")
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
    else:
        tol = (1e-6 if got.dtype != np.float16 else 1e-3) if exact else rtol
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


rng = np.random.default_rng(7)


def cast_to(dtype: str) -> Graph:
    return lambda t: t[0].cast(dtype)


def floats(*shape: int, dtype: str = "float32") -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 7), (16, 16, 16), (37, 29, 53), (64, 48, 96), (13, 100, 17),
                                   (128, 64, 10), (8, 300, 33)])
def test_matmul_shapes(m: int, k: int, n: int) -> None:
    check(lambda t: t[0] @ t[1], [floats(m, k), floats(k, n)], exact=False, rtol=1e-5)


def test_matmul_transposed_and_batched() -> None:
    check(lambda t: t[0] @ t[1].T, [floats(40, 24), floats(36, 24)], exact=False)
    check(lambda t: t[0] @ t[1], [floats(3, 20, 17), floats(3, 17, 32)], exact=False)


@pytest.mark.parametrize("shape", [(5,), (16,), (1000,), (33, 17), (4, 64, 3), (2, 3, 4, 80)])
def test_elementwise_chain_is_bit_exact(shape: tuple[int, ...]) -> None:
    check(lambda t: ((t[0] * t[1] + t[2]).relu() * 0.5 - t[0] / (t[1] * t[1] + 1.0)).maximum(t[2]),
          [floats(*shape) for _ in range(3)])


@pytest.mark.parametrize("shape", [(1000,), (40, 48)])
def test_transcendentals(shape: tuple[int, ...]) -> None:
    x = floats(*shape)
    check(lambda t: t[0].exp() + t[0].abs().log() + t[0].sin() + t[0].abs().sqrt(), [x], exact=False, rtol=2e-6)
    check(lambda t: t[0].exp2() + t[0].sin(), [x.astype(np.float64)], exact=False, rtol=1e-12)


def test_special_values() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 1e-38, 3e38, -1.0, 200.0, -200.0, 88.0] * 4, np.float32)
    check(lambda t: t[0].maximum(0.0), [x])
    check(lambda t: t[0].exp2(), [x], exact=False, rtol=1e-6)
    check(lambda t: (t[0] != t[0]).where(1.0, t[0] * 2.0), [x])


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64"])
def test_integer_semantics(dtype: str) -> None:
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, size=(20, 24), dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, size=(20, 24), dtype=dtype, endpoint=True)
    b[b == 0] = 3
    check(lambda t: t[0] + t[1] * t[0] - t[1], [a, b])  # wraps
    check(lambda t: t[0] // t[1], [a, b])
    check(lambda t: t[0] - (t[0] // t[1]) * t[1], [a, b])
    check(lambda t: t[0].maximum(t[1]) + (t[0] < t[1]).cast(dtype), [a, b])
    check(lambda t: (t[0] & t[1]) ^ (t[0] | 5), [a, b])


def test_casts() -> None:
    x = (floats(48, 20) * 300).astype(np.float32)
    for dtype in ("int8", "uint8", "int32", "int64", "bool", "float64", "float16"):
        check(cast_to(dtype), [x])
    i = rng.integers(-2**31, 2**31 - 1, size=(48, 20), dtype=np.int64)
    for dtype in ("int8", "uint8", "int32", "float32", "float64", "bool"):
        check(cast_to(dtype), [i])
    check(lambda t: t[0].cast("bool").cast("float32") + t[0].cast("bool").cast("int32").cast("float32"), [x])


def test_bool_logic_and_where() -> None:
    a, b = floats(40, 32), floats(40, 32)
    check(lambda t: ((t[0] < t[1]) & (t[0] > 0)) | ~(t[1] < -1.0), [a, b])
    check(lambda t: (t[0] < t[1]).where(t[0], t[1] * 2), [a, b])
    check(lambda t: (t[0] < 0).where(1, 2) + (t[1] == t[1]).cast("int32"), [a, b])


def test_reductions() -> None:
    x = floats(33, 70)
    check(lambda t: t[0].sum(1), [x], exact=False)
    check(lambda t: t[0].sum(0), [x], exact=False)
    check(lambda t: t[0].amax(1) + t[0].amax(0).sum(), [x], exact=False)
    check(lambda t: t[0].softmax(-1), [floats(64, 100)], exact=False)
    check(lambda t: (t[0] > 0).sum(1), [x])
    check(lambda t: t[0].sum(), [floats(100_000)], exact=False, rtol=1e-4)


def test_padding_and_views() -> None:
    x = floats(2, 3, 20, 36)
    w = floats(4, 3, 3, 3)
    check(lambda t: t[0].conv2d(t[1], padding=1), [x, w], exact=False)
    check(lambda t: t[0].conv2d(t[1], padding=2, stride=2), [x, w], exact=False)
    check(lambda t: t[0][:, :, 1:-1, ::2] * 2 + t[0].flip(3)[:, :, 1:-1, ::2], [x])
    check(lambda t: t[0].pad(((0, 0), (0, 0), (1, 2), (3, 4))) + 1, [x])
    check(lambda t: t[0].permute(0, 2, 3, 1).reshape(2, -1) + 0.5, [x])


def test_float64_and_float16() -> None:
    d = floats(50, 20, dtype="float64")
    check(lambda t: t[0] * t[0] + t[0] / 3.0, [d])
    check(lambda t: t[0] @ t[0].T, [d], exact=False, rtol=1e-12)
    h = floats(50, 20, dtype="float16")
    check(lambda t: t[0] * t[0] + t[0] / 3.0, [h])
    check(lambda t: (t[0] * 100).sqrt() - t[0], [np.abs(h)])
    check(lambda t: t[0].sum(1), [h], exact=False, rtol=1e-2)


def test_lane_renderer_matches_scalar_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same kernels rendered without the lane renderer (TG_CLANG_SPMD=0) give the same bits."""
    from tg.engine.device import reset_devices

    a, b, c = floats(37, 53), floats(53, 40), floats(37, 40)

    x = floats(2, 3, 20, 36)
    i = rng.integers(-1000, 1000, size=(37, 40), dtype=np.int32)
    graphs: list[tuple[Graph, list[np.ndarray]]] = [
        (lambda t: (t[0] @ t[1] + t[2]).relu() * (t[2] > 0).where(t[2], -1.0), [a, b, c]),
        (lambda t: t[0].conv2d(t[0][:2, :, :3, :3], padding=1), [x]),
        (lambda t: ((t[0] * t[1] + t[2]).relu() * 0.5).maximum(t[2]) / (t[1] * t[1] + 1.0), [c, c * 2, c * 3]),
        (lambda t: (t[0] // 7) * 5 - t[0] // -3 + (t[0] < 3).cast("int32") * t[0], [i]),
        (lambda t: t[0].softmax(-1) + t[0].sum(0), [c]),
    ]
    tiled = [run(g, arrays, "clang") for g, arrays in graphs]
    monkeypatch.setenv("TG_CLANG_SPMD", "0")
    reset_devices()
    try:
        scalar = [run(g, arrays, "clang") for g, arrays in graphs]
    finally:
        monkeypatch.delenv("TG_CLANG_SPMD")
        reset_devices()
    for got, want in zip(tiled, scalar):
        if got.dtype.kind == "f" and graphs[-1][1][0] is c and got is tiled[-1]:
            # the row sums of the fused softmax in lanes, in another order (exp gives the same bits in both)
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(got, want)


def test_multicore_split_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A launch split across threads in any chunking gives the bits of a single-threaded one."""
    import tg_clang.runtime as rt

    a, b = floats(300, 200), floats(200, 260)
    x = floats(1 << 20)
    split = run(lambda t: t[0] @ t[1], [a, b], "clang"), run(lambda t: (t[0] * 3).exp(), [x], "clang")
    monkeypatch.setattr(rt, "SPLIT_THRESHOLD", 1 << 62)
    single = run(lambda t: t[0] @ t[1], [a, b], "clang"), run(lambda t: (t[0] * 3).exp(), [x], "clang")
    monkeypatch.setattr(rt, "SPLIT_THRESHOLD", 0)
    monkeypatch.setattr(rt, "CHUNKS_PER_THREAD", 1000)
    tiny_chunks = run(lambda t: t[0] @ t[1], [a, b], "clang"), run(lambda t: (t[0] * 3).exp(), [x], "clang")
    for s, o, t in zip(split, single, tiny_chunks):
        np.testing.assert_array_equal(s, o)
        np.testing.assert_array_equal(s, t)


def test_thread_pool_uses_every_thread_and_reports_errors() -> None:
    import threading

    from tg_clang.runtime import ThreadPool

    pool = ThreadPool(3)
    seen: set[str] = set()
    lock = threading.Lock()

    def work() -> None:
        with lock:
            seen.add(threading.current_thread().name)

    pool.run(work, ())
    assert len(seen) == 3

    def fail() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        pool.run(fail, ())
    pool.run(work, ())  # still usable


def _strategies() -> set[str]:
    from tg.engine.device import device_state

    return {p.strategy for p in device_state("clang").binaries.values()}


def test_both_tile_orientations_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """An MLP's backward pass: grad_w = x.T @ (relu'(h) * g) wants lanes down the rows (``tiledT``) where the gangs
    stay 16 lanes wide (Zen 4's rule, pinned: on Intel's AVX-512 the 6x32 tile of the other orientation wins)."""
    from tg_clang import cpu_shapes

    monkeypatch.setattr(cpu_shapes, "wide_gang_panel", lambda: cpu_shapes.L1_PANEL)
    x, h, g = floats(64, 100), floats(64, 48), floats(64, 48)
    check(lambda t: t[0].T @ ((t[1] > 0).where(t[2], 0.0)), [x, h, g], exact=False)  # (100, 48): lanes on 48
    check(lambda t: ((t[1] > 0).where(t[2], 0.0)).T @ t[0], [x, h, g], exact=False)  # (48, 100)
    check(lambda t: (t[0] @ t[1].T).relu(), [floats(70, 33), floats(37, 33)], exact=False)
    strategies = _strategies()
    assert any(s.startswith("tiledT") for s in strategies), strategies
    assert any(s.startswith("tiled6") for s in strategies), strategies


def test_streaming_stores_and_masked_loads() -> None:
    """Big elementwise outputs bypass the cache; padded loads use AVX2 masked loads (float32 and float64)."""
    x = floats((1 << 21) + 37)
    check(lambda t: (t[0] * 2.0 + 1.0).relu(), [x])
    check(lambda t: t[0].pad(((0, 0), (0, 0), (2, 2), (1, 3))) * 3.0, [floats(2, 3, 5, 40, dtype="float64")])
    check(lambda t: t[0].conv2d(t[1], padding=1), [floats(2, 3, 10, 32, dtype="float64"),
                                                   floats(4, 3, 3, 3, dtype="float64")], exact=False, rtol=1e-12)
    i = rng.integers(-100, 100, size=(2, 3, 10, 32), dtype=np.int32)
    check(lambda t: t[0].pad(((0, 0), (0, 0), (1, 1), (1, 1))) + 1, [i])


@pytest.mark.parametrize(("x_shape", "w_shape", "stride", "padding", "groups", "dtype"), [
    ((2, 16, 32, 32), (32, 16, 3, 3), 1, 1, 1, "float32"),  # the benchmark's shape: tiles of 8 channels
    ((2, 3, 17, 17), (5, 3, 3, 3), 1, 1, 1, "float32"),  # a prime channel count: one tile of 5
    ((2, 4, 33, 33), (8, 4, 3, 3), 2, 1, 1, "float32"),
    ((3, 6, 20, 20), (6, 3, 3, 3), 1, 1, 2, "float32"),  # groups: 3 channels a group
    ((1, 5, 19, 40), (12, 5, 3, 3), 1, 0, 1, "float64"),  # columns past the last gang
    ((2, 4, 16, 48), (14, 4, 5, 5), 1, 2, 1, "float16"),
    ((2, 4, 16, 16), (7, 4, 3, 3), 1, 1, 1, "int32"),
])
def test_conv2d_tiles_of_output_channels(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: int,
                                         padding: int, groups: int, dtype: str) -> None:
    """A convolution's register tiles run neighbouring output channels (``tiledA``: tiles aligned to the channel
    count, sharing the image row), at awkward channel counts, strides, padding and groups."""
    if dtype == "int32":
        x, w = rng.integers(-4, 4, x_shape).astype(dtype), rng.integers(-3, 3, w_shape).astype(dtype)
    else:
        x, w = floats(*x_shape, dtype=dtype), floats(*w_shape, dtype=dtype)
    from tg.engine.device import device_state

    before = {key for key, _ in device_state("clang").binaries.items()}
    check(lambda t: t[0].conv2d(t[1], stride=stride, padding=padding, groups=groups), [x, w], exact=False,
          rtol=1e-5 if dtype != "float16" else 1e-2)
    new = {p.name: p.strategy for key, p in device_state("clang").binaries.items() if key not in before}
    if dtype != "float16":  # (float16 kernels run the scalar rendering)
        assert any(s.startswith("tiledA") for name, s in new.items() if "_r_" in name), new
