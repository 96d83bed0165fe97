"""Deep graphs: building, scheduling, lowering and autograd walk them without recursing once per node.

Each test runs with Python's recursion limit only a little above the depth it starts at, so a walk that
recursed per node (even over one fused kernel of MAX_FUSED_OPS ops) would raise RecursionError here
instead of passing by luck.  Long elementwise chains are split into kernels of at most MAX_FUSED_OPS ops.
They run on the numpy backend (tests/clang repeats the deepest ones on clang).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from tg import Tensor
from tg.engine.device import device_state, reset_devices
from tg.schedule.scheduler import MAX_FUSED_OPS, Kernel, KNode, create_schedule

#: Frames a test may use above its own for everything that does not walk the graph (pytest, numpy, plugins).
HEADROOM = 150


def stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


@pytest.fixture(autouse=True)
def shallow_stack() -> Iterator[None]:
    assert HEADROOM < MAX_FUSED_OPS, "a per-node recursion over one fused kernel must not fit"
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(stack_depth() + HEADROOM)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


DEVICE = "numpy"
START = np.array([0.0, 1.5, -7.0, 100.0], np.float32)


def chain(x: Tensor, n: int) -> Tensor:
    """``n`` elementwise ops that add 0.5 every four, exactly in float32: ``x*2 + 2, *0.5, -0.5``, ..."""
    for i in range(n):
        op = i % 4
        x = x * 2.0 if op == 0 else x + 2.0 if op == 1 else x * 0.5 if op == 2 else x - 0.5
    return x


def numpy_chain(x: np.ndarray, n: int) -> np.ndarray:
    two, half = np.float32(2.0), np.float32(0.5)
    for i in range(n):
        op = i % 4
        x = x * two if op == 0 else x + two if op == 1 else x * half if op == 2 else x - half
    return x


def test_a_chain_of_100000_ops_realizes_exactly() -> None:
    n = 100_000
    out = chain(Tensor(START, device=DEVICE), n).numpy()
    np.testing.assert_array_equal(out, numpy_chain(START, n))  # every op counted: exact in float32
    np.testing.assert_array_equal(out, START + n // 8)


def test_a_chain_of_20000_ops_has_the_gradient_of_every_op() -> None:
    n, c = 20_000, 1.001
    x = Tensor(START, device=DEVICE, requires_grad=True)
    y = x
    for i in range(n):
        y = y * c if i % 2 == 0 else y + 0.25
    y.sum().backward()
    assert x.grad is not None
    expected = np.ones_like(START)
    for _ in range(n // 2):  # the backward pass multiplies the incoming gradient by c, in float32, once per mul
        expected = np.float32(c) * expected
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), c ** (n // 2), rtol=1e-3)  # ~ e**10: one op more or less is 1e-3


def test_builtin_sum_of_2000_tensors_with_gradients() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(-50, 50, (2, 3)).astype(np.float32) for _ in range(2000)]
    tensors = [Tensor(a, device=DEVICE, requires_grad=True) for a in arrays]
    total = sum(tensors)
    assert isinstance(total, Tensor)
    np.testing.assert_array_equal(total.numpy(), np.sum(arrays, axis=0))  # small integers: exact in any order
    (total * Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device=DEVICE)).sum().backward()
    for t in tensors:
        assert t.grad is not None
        np.testing.assert_array_equal(t.grad.numpy(), np.arange(6, dtype=np.float32).reshape(2, 3))


def _fused_ops(node: KNode) -> int:
    seen: set[int] = set()
    stack, count = [node], 0
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen.add(id(n))
            count += n.op in ("ALU", "CAST")
            stack.extend(n.src)
    return count


@pytest.mark.parametrize("n", [MAX_FUSED_OPS, MAX_FUSED_OPS + 1, 1000])
def test_long_chains_split_into_kernels_of_at_most_max_fused_ops(n: int) -> None:
    x = Tensor(START, device=DEVICE).realize()
    kernels = [k for k in create_schedule([chain(x, n).lazydata]) if isinstance(k, Kernel)]
    assert [_fused_ops(k.ast) for k in kernels] == [n % MAX_FUSED_OPS or MAX_FUSED_OPS] + \
        [MAX_FUSED_OPS] * ((n - 1) // MAX_FUSED_OPS)  # cut from the output down: the first kernel has the rest


def test_a_1000_op_chain_runs_four_kernels() -> None:
    x = Tensor(START, device=DEVICE).realize()
    y = chain(x, 1000)
    state = device_state(x.device)
    before = state.kernel_count
    np.testing.assert_array_equal(y.numpy(), START + 125)
    assert state.kernel_count - before == math.ceil(1000 / MAX_FUSED_OPS) == 4


def test_the_split_chain_compiles_one_program_per_kernel_shape() -> None:
    reset_devices()  # a fresh compile cache
    try:
        x = Tensor(START, device=DEVICE).realize()
        state = device_state(x.device)
        n = 8 * MAX_FUSED_OPS + 12  # eight kernels of MAX_FUSED_OPS ops, all alike, and one of 12 below them
        before = state.kernel_count
        np.testing.assert_array_equal(chain(x, n).numpy(), numpy_chain(START, n))
        assert state.kernel_count - before == 9
        assert len(state.kernels) == 2
    finally:
        reset_devices()


def test_a_deep_chain_inside_a_reduction_and_a_shared_subexpression() -> None:
    x = Tensor(START, device=DEVICE).realize()
    y = chain(x, 3000)
    z = (y * y + y).sum()  # y is used three times: its ops count once towards the cap
    state = device_state(x.device)
    before = state.kernel_count
    expected = numpy_chain(START, 3000).astype(np.float64)
    assert z.item() == pytest.approx(float(np.sum(expected * expected + expected)), rel=1e-6)
    assert state.kernel_count - before == math.ceil((3000 + 2) / MAX_FUSED_OPS)
