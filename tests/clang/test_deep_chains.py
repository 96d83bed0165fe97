"""Deep graphs on the clang backend: a 100,000-op chain and a sum of 2,000 tensors, with no recursion per node.

Python's recursion limit is lowered to a little above each test's own depth, so any walk (scheduler, lowering,
tiler, emitter) that recursed once per node would fail here.  The chain splits into kernels of at most
MAX_FUSED_OPS ops, all but one of a single structure: two programs to compile.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tg import Tensor
from tg.engine.device import device_state, reset_devices
from tg.schedule.scheduler import MAX_FUSED_OPS

START = np.array([0.0, 1.5, -7.0, 100.0], np.float32)


@pytest.fixture(autouse=True)
def shallow_stack() -> Iterator[None]:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 150)  # less than one frame per op of a fused kernel
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


@pytest.fixture
def fresh_state(cache_dir: Path) -> Iterator[None]:
    reset_devices()  # no program compiled by another test
    yield
    reset_devices()


def chain(x: Tensor, expected: np.ndarray, n: int) -> tuple[Tensor, np.ndarray]:
    """``n`` ops on ``x`` and the same in numpy: x*2 + 2, *0.5, -0.5, ... (plus 0.5 every four, exact in float32)."""
    two, half = np.float32(2.0), np.float32(0.5)
    for i in range(n):
        op = i % 4
        x = x * 2.0 if op == 0 else x + 2.0 if op == 1 else x * 0.5 if op == 2 else x - 0.5
        expected = expected * two if op == 0 else expected + two if op == 1 else expected * half if op == 2 \
            else expected - half
    return x, expected


def test_a_chain_of_100000_ops_is_exact_and_compiles_two_programs(fresh_state: None) -> None:
    n = 100_000
    x, expected = chain(Tensor(START, device="clang"), START, n)
    state = device_state("clang")
    before = state.kernel_count
    np.testing.assert_array_equal(x.numpy(), expected)
    np.testing.assert_array_equal(expected, START + n // 8)
    assert state.kernel_count - before == -(-n // MAX_FUSED_OPS)
    assert len(state.kernels) == 2, "the full kernels share one structure; the last one has the remainder"


def test_builtin_sum_of_2000_tensors_with_gradients() -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.integers(-50, 50, (3, 5)).astype(np.float32) for _ in range(2000)]
    tensors = [Tensor(a, device="clang", requires_grad=True) for a in arrays]
    total = sum(tensors)
    assert isinstance(total, Tensor)
    np.testing.assert_array_equal(total.numpy(), np.sum(arrays, axis=0))  # small integers: exact in any order
    weights = np.arange(15, dtype=np.float32).reshape(3, 5)
    (total * Tensor(weights, device="clang")).sum().backward()
    for t in tensors:
        assert t.grad is not None
        np.testing.assert_array_equal(t.grad.numpy(), weights)


def test_a_matmul_with_a_chain_fused_into_its_packed_operand() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(-4, 4, (7, 128)).astype(np.float32)  # 7 rows: the chain is recomputed per row, not stored
    b = rng.integers(-4, 4, (128, 64)).astype(np.float32)
    y, expected = Tensor(b, device="clang"), b
    for _ in range(MAX_FUSED_OPS // 4 - 1):  # 252 ops (a multiply and a subtraction: no MULACC shortens them)
        y = (y * 2.0 - 1.0) * 0.5 - 0.25
        expected = (expected * np.float32(2.0) - np.float32(1.0)) * np.float32(0.5) - np.float32(0.25)
    np.testing.assert_array_equal(expected, b - 0.75 * (MAX_FUSED_OPS // 4 - 1))
    state = device_state("clang")
    before = state.kernel_count
    np.testing.assert_array_equal((Tensor(a, device="clang") @ y).numpy(), a @ expected)  # exact: multiples of 1/4
    assert state.kernel_count - before == 1, "one kernel: the chain is inlined where the tiler packs B's panel"
