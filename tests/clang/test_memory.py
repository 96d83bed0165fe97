"""The clang runtime's host buffers: aligned, and freed ones reused by size within a byte limit.

Reuse must never hand one buffer to two live owners (that would be two tensors sharing memory: a silent wrong
answer), and a training step must not grow the cache past what one step frees.
"""

from __future__ import annotations

import gc

import numpy as np
from tg import Tensor
from tg_clang.memory import ALIGNMENT, BufferCache, new_buffer
from tg_clang.runtime import ClangRuntime


def test_new_buffer_is_aligned() -> None:
    for n in (8, 100, 4096, 1 << 20):
        buf = new_buffer(n)
        assert buf.ptr % ALIGNMENT == 0 and buf.array.nbytes == n and buf.arg.value == buf.ptr


def test_freed_buffer_is_reused_for_the_same_size_only() -> None:
    runtime = ClangRuntime()
    a = runtime.alloc(4096)
    ptr = a.ptr
    runtime.free(a)
    assert runtime.alloc(1024).ptr != ptr  # another size: a fresh buffer
    again = runtime.alloc(4096)
    assert again.ptr == ptr
    assert runtime.alloc(4096).ptr != ptr  # taken: not handed out twice


def test_cache_limit_drops_the_sizes_freed_first() -> None:
    cache = BufferCache(limit=3000)
    old, mid, new = new_buffer(1000), new_buffer(1500), new_buffer(1200)
    cache.give(old)
    cache.give(mid)
    assert cache.cached == 2500
    cache.give(new)  # 3700 > 3000: the 1000-byte size, freed first, goes
    assert cache.cached == 2700
    assert cache.take(1000) is None
    assert cache.take(1500) is mid and cache.take(1200) is new and cache.cached == 0
    cache.give(new_buffer(4000))  # larger than the whole limit: not kept
    assert cache.cached == 0


def test_training_steps_reuse_buffers_and_stay_correct() -> None:
    from tg import optim
    from tg.engine.device import device_state

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((32, 20)).astype(np.float32), rng.integers(0, 5, 32).astype(np.int32)
    expect = rng.standard_normal((20, 5)).astype(np.float32) * 0.1
    w = Tensor(expect.copy(), device="clang", requires_grad=True)
    opt = optim.SGD([w], lr=0.5)
    runtime = device_state("clang").backend.runtime
    cached = -1
    for step in range(5):
        opt.zero_grad()
        (Tensor(x, device="clang") @ w).cross_entropy(Tensor(y, device="clang")).backward()
        opt.step()
        logits = x @ expect
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(32), y] -= 1
        expect -= 0.5 * (x.T @ p) / 32
        np.testing.assert_allclose(w.numpy(), expect, rtol=1e-4, atol=1e-5)
        gc.collect()
        if step == 2:
            cached = runtime.freed.cached
    assert runtime.freed.cached == cached  # each step takes back what the last one freed
