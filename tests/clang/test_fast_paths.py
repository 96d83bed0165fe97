"""The clang backend's faster paths give the bits of the plain ones.

Each graph here is shaped to take one path: a remainder micro-tile below the last whole one, a gang narrower
than configured (fewer threads than lanes), a wider gang (a reduction with one row of outputs), lanes down the
rows of an elementwise kernel with short rows, gathers at a constant stride, loop indices added in 64 bits, and
launches split over the native thread pool (and over Python threads where there is none, and in a forked child).
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from tg import Tensor

rng = np.random.default_rng(11)


def floats(*shape: int, dtype: str = "float32") -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def run(graph, arrays: list[np.ndarray]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return graph([Tensor(a, device="clang") for a in arrays]).numpy()


def _programs() -> dict[str, object]:
    from tg.engine.device import device_state

    return {p.name: (key[1], p) for key, p in device_state("clang").binaries.items()}


GRAPHS = [
    # 50 rows by tiles of 6: a two-row remainder tile; the sum over 50 rows of 256 outputs: a 64-lane gang
    (lambda t: (t[0] @ t[1]).relu().sum(0), [floats(50, 60), floats(60, 256)]),
    # ten outputs: an 8-lane gang and two scalar threads
    (lambda t: t[0].sum(0) * 2.0, [floats(300, 10)]),
    # rows of ten with a transposed operand: lanes down the rows, gathers at a stride of ten
    (lambda t: t[0] - t[1].T * 0.01, [floats(256, 10), floats(10, 256)]),
    (lambda t: t[0].amax(1) + (t[0] * 3.0).sum(1), [floats(200, 10)]),
    # a gradient-shaped matmul (reduction over the batch) and a matmul with a short output row
    (lambda t: t[0].T @ t[1], [floats(64, 90), floats(64, 40)]),
    (lambda t: t[0] @ t[1] + 1.0, [floats(70, 40), floats(40, 10)]),
    (lambda t: (t[0] // 3) * 3 - t[0].T.reshape(20, 7), [rng.integers(-50, 50, (20, 7)).astype(np.int32)]),
]


def test_fast_paths_match_the_scalar_renderer(monkeypatch: pytest.MonkeyPatch, fresh_devices: None) -> None:
    from tg.engine.device import reset_devices

    tiled = [run(g, arrays) for g, arrays in GRAPHS]
    strategies = {p.strategy for _, p in _programs().values()}  # type: ignore[attr-defined]
    sources = "\n".join(s for s, _ in _programs().values())  # type: ignore[misc]
    monkeypatch.setenv("TG_CLANG_SPMD", "0")
    reset_devices()
    scalar = [run(g, arrays) for g, arrays in GRAPHS]
    for got, want in zip(tiled, scalar):
        np.testing.assert_array_equal(got, want)
    assert any(s.endswith("x64") for s in strategies), strategies  # widened
    assert any(s.endswith("x8") for s in strategies), strategies  # narrowed
    assert "tiledT1x16" in strategies, strategies  # elementwise, lanes down short rows
    assert "_tile2(" in sources  # the remainder below the last tile of six
    assert "(int64_t)" in sources and "+ l * 10]" in sources  # 64-bit loop indices, constant-stride gathers


def test_an_mlp_step_matches_numpy() -> None:
    """The shapes of the MNIST MLP that the fast paths were tuned on, forward and backward."""
    x, w1, w2 = floats(256, 784), floats(784, 256) * 0.05, floats(256, 10) * 0.05
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]
    results = {}
    for device in ("numpy", "clang"):
        tx, ty = Tensor(x, device=device), Tensor(y, device=device)
        p1, p2 = Tensor(w1, device=device, requires_grad=True), Tensor(w2, device=device, requires_grad=True)
        loss = -((tx @ p1).relu() @ p2).log_softmax(-1).mul(ty).sum() * (1.0 / 256)
        loss.backward()
        assert p1.grad is not None and p2.grad is not None
        results[device] = [loss.numpy(), p1.grad.numpy(), p2.grad.numpy(), (p1 - p1.grad * 0.01).numpy()]
    for got, want in zip(results["clang"], results["numpy"]):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)


def _matmul_and_exp() -> tuple[np.ndarray, np.ndarray]:
    a, b = np.random.default_rng(3).standard_normal((2, 150, 150)).astype(np.float32)
    x = np.random.default_rng(4).standard_normal(300_000).astype(np.float32)
    return run(lambda t: t[0] @ t[1], [a, b]), run(lambda t: (t[0] * 3).exp(), [x])


def test_native_pool_splits_give_the_same_bits(monkeypatch: pytest.MonkeyPatch, fresh_devices: None) -> None:
    import tg_clang.pool as native
    import tg_clang.runtime as rt

    monkeypatch.delenv("TG_CLANG_NATIVE_POOL", raising=False)
    monkeypatch.setattr(native, "_loaded", [])  # load it here even if the session said not to
    monkeypatch.setattr(rt, "SPLIT_THRESHOLD", 1 << 62)
    single = _matmul_and_exp()
    monkeypatch.setattr(rt, "SPLIT_THRESHOLD", 0)
    monkeypatch.setattr(rt, "CHUNKS_PER_THREAD", 50)
    monkeypatch.setenv("TG_CLANG_THREADS", "3")
    pool = native.native_pool()
    assert pool is not None
    native = _matmul_and_exp()
    assert pool.workers() >= 2
    monkeypatch.setattr(rt, "native_pool", lambda wait=True: None)  # no native pool: Python threads
    python = _matmul_and_exp()
    for s, n, p in zip(single, native, python):
        np.testing.assert_array_equal(s, n)
        np.testing.assert_array_equal(s, p)


def _child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import tg_clang.runtime as rt

    rt.SPLIT_THRESHOLD = 0
    queue.put([r.tobytes() for r in _matmul_and_exp()])


def test_native_pool_works_in_a_forked_child(monkeypatch: pytest.MonkeyPatch) -> None:
    import tg_clang.runtime as rt

    monkeypatch.setattr(rt, "SPLIT_THRESHOLD", 0)
    monkeypatch.setenv("TG_CLANG_THREADS", "2")
    parent = [r.tobytes() for r in _matmul_and_exp()]  # the parent's workers exist before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    got = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert got == parent
