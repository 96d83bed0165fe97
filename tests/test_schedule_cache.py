"""The schedule cache (#14, tg.schedule.cache) gives the answers of scheduling afresh, and never a stale one.

A hit reuses kernels scheduled for an earlier graph of the same structure; each test here builds a second graph
that would give a wrong answer if the hit kept something of the first one (a constant, a parameter's value, a
view's offset, a dtype, a device, which buffers were realized), and checks the values against numpy.  The last
tests pin whole programs run with the cache to the same programs run without it, bit for bit, and check that
they did hit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from tg import Tensor, nn, no_grad, optim
from tg.graph.lazy import LazyBuffer
from tg.schedule import cache, scheduler
from tg.support.dtype import dtypes

rng = np.random.default_rng(21)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(cache, "enabled", True)
    cache.clear()
    yield
    cache.clear()


def _hits() -> int:
    return cache.stats["hits"]


def _arr(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def test_a_hit_rebinds_the_buffers() -> None:
    a, b, c, d = _arr(5), _arr(5), _arr(5), _arr(5)
    first = (Tensor(a) * Tensor(b) + 1).realize()  # (realize, not numpy: a read also realizes pending index checks)
    before = _hits()
    second = (Tensor(c) * Tensor(d) + 1).realize()
    assert _hits() > before  # the second graph has the first one's structure: it hit
    np.testing.assert_allclose(first.numpy(), a * b + 1, rtol=1e-6)
    np.testing.assert_allclose(second.numpy(), c * d + 1, rtol=1e-6)


def test_a_hit_never_keeps_an_old_compiled_constant() -> None:
    a = _arr(6)
    first = (Tensor(a) + Tensor.full((6,), 2.0)).numpy()
    second = (Tensor(a) + Tensor.full((6,), 3.0)).numpy()
    np.testing.assert_allclose(first, a + 2, rtol=1e-6)
    np.testing.assert_allclose(second, a + 3, rtol=1e-6)
    negative_zero = (Tensor(np.zeros(2, np.float32)) * Tensor.full((2,), -0.0)).numpy()
    assert np.signbit(negative_zero).all()  # -0.0 is not 0.0 to the key


def test_a_hit_takes_the_current_parameter_values() -> None:
    a = _arr(7)
    for lr in (0.5, 0.25, -3.0):
        np.testing.assert_allclose((Tensor(a) * lr + lr).numpy(), a * np.float32(lr) + np.float32(lr), rtol=1e-6)


def test_parameters_past_max_params_are_never_reused_stale() -> None:
    a = _arr(4)
    hit = []
    for shift in (0.0, 1.0, 1.0):
        values = [0.5 + i + shift for i in range(scheduler.MAX_PARAMS + 3)]
        t, want = Tensor(a), a.copy()
        for v in values:  # one kernel of more Python floats than it takes as parameters
            t, want = t + v, want + np.float32(v)
        hits = _hits()
        t.realize()
        hit.append(_hits() > hits)
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-5)
    assert hit == [False, False, True]  # new values compiled in miss; the same ones again hit (as GELU's do)


def test_a_parameter_constant_realized_alone_is_not_reused_stale() -> None:
    for value in (1.5, 2.5):
        lb = LazyBuffer.const(value, dtypes.float32, Tensor([0.0]).device, (3,), param=True).contiguous()
        np.testing.assert_array_equal(Tensor(lb).numpy(), np.full(3, value, np.float32))
        raw = LazyBuffer.const(value, dtypes.float32, Tensor([0.0]).device, param=True)
        assert Tensor(raw).item() == value


def test_a_hit_never_keeps_an_old_view() -> None:
    a, b = _arr(8), _arr(2)
    for start in (1, 3, 5):
        np.testing.assert_allclose((Tensor(a)[start:start + 2] + Tensor(b)).numpy(), a[start:start + 2] + b,
                                   rtol=1e-6)
    m = _arr(3, 4)
    np.testing.assert_allclose((Tensor(m) + 1).numpy(), m + 1, rtol=1e-6)
    np.testing.assert_allclose((Tensor(m).T.contiguous() + 1).numpy(), m.T + 1, rtol=1e-6)
    np.testing.assert_allclose(Tensor(m).pad(((0, 0), (1, 0))).numpy(), np.pad(m, ((0, 0), (1, 0))))
    np.testing.assert_allclose(Tensor(m).pad(((0, 0), (0, 1))).numpy(), np.pad(m, ((0, 0), (0, 1))))


def test_a_hit_never_keeps_an_old_dtype() -> None:
    a = np.arange(6)
    for dt in (np.float32, np.int32, np.float16):
        got = (Tensor(a.astype(dt)) * Tensor(a.astype(dt))).numpy()
        assert got.dtype == dt
        np.testing.assert_array_equal(got, (a * a).astype(dt))


def test_a_hit_never_keeps_an_old_device() -> None:
    """The scheduler's choices do not depend on the device, but a hit must still run each kernel on its own."""
    a = _arr(5)
    default = Tensor([0.0]).device
    for device in ("numpy", default, "numpy"):
        out = Tensor(a, device=device) * 2 + 1
        assert out.device == device
        np.testing.assert_allclose(out.numpy(), a * 2 + 1, rtol=1e-6)


def test_a_buffer_realized_in_between_changes_the_schedule() -> None:
    a, b = _arr(5), _arr(5)
    x = Tensor(a) + Tensor(b)
    np.testing.assert_allclose((x * 2).numpy(), (a + b) * 2, rtol=1e-6)  # x computed inside the kernel
    y = Tensor(a) + Tensor(b)
    y.realize()  # now y is an input of the next kernel, not part of it
    y.lazydata.base.realized.copyin(np.full(5, 10, np.float32))  # so its buffer's contents are what count
    np.testing.assert_allclose((y * 2).numpy(), np.full(5, 20, np.float32))
    # a constant, then a realized constant whose buffer was overwritten: a leaf either way, realized or not
    np.testing.assert_allclose((Tensor(a) + Tensor.full((5,), 2.0)).numpy(), a + 2, rtol=1e-6)
    c = Tensor.full((5,), 2.0).realize()  # its base, a constant of shape (), now has a buffer of one element
    assert c.lazydata.base.op is not None and c.lazydata.base.realized is not None
    c.lazydata.base.realized.copyin(np.full(1, 7, np.float32))
    np.testing.assert_allclose((Tensor(a) + c).numpy(), a + 7, rtol=1e-6)


def test_shared_and_separate_nodes_are_different_structures() -> None:
    a, b = _arr(4), _arr(4)
    ta, tb = Tensor(a), Tensor(b)
    s = ta + tb
    np.testing.assert_allclose((s * s).numpy(), (a + b) ** 2, rtol=1e-5)
    np.testing.assert_allclose(((ta + tb) * (ta - tb)).numpy(), (a + b) * (a - b), rtol=1e-5)
    np.testing.assert_allclose(((ta + tb) * (ta + tb)).numpy(), (a + b) ** 2, rtol=1e-5)


def test_the_scheduler_constants_are_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _arr(3)

    def chain() -> Tensor:
        t = Tensor(a)
        for _ in range(6):
            t = t.exp2().log2()
        return t

    from tg.engine.device import device_state

    state = device_state(Tensor([0.0]).device)
    chain().realize()
    before = state.kernel_count
    chain().realize()
    one = state.kernel_count - before
    monkeypatch.setattr(scheduler, "MAX_FUSED_OPS", 4)
    before = state.kernel_count
    np.testing.assert_allclose(chain().numpy(), a, rtol=1e-4, atol=1e-5)
    assert state.kernel_count - before > one  # the smaller cap split the chain: the old schedule was not reused


def _mnist_like_step() -> Callable[[], list[np.ndarray]]:
    Tensor.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 4, (1, 3), stride=(1, 2), padding=(0, 1)), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 5, 3))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    data = np.random.default_rng(5)  # the same data for every call
    x = Tensor(data.standard_normal((6, 1, 1, 10)).astype(np.float32))
    y = Tensor(data.integers(0, 3, 6).astype(np.int32))

    def step() -> list[np.ndarray]:
        loss = model(x).cross_entropy(y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return [loss.numpy(), *(p.numpy() for p in model.parameters())]

    return step


def _sgd_step() -> Callable[[], list[np.ndarray]]:
    w = Tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), requires_grad=True)
    x = Tensor(np.linspace(0, 1, 8, dtype=np.float32).reshape(2, 4))

    def step() -> list[np.ndarray]:
        loss = (x @ w).relu().sum()
        loss.backward()
        with no_grad():
            assert w.grad is not None
            w.assign(w.detach() - w.grad * 0.1)
            w.grad = None
        return [loss.numpy(), w.numpy()]

    return step


@pytest.mark.parametrize("make", [_mnist_like_step, _sgd_step])
def test_programs_give_the_same_bits_with_and_without_the_cache(monkeypatch: pytest.MonkeyPatch,
                                                                 make: Callable[[], Callable[[], list[np.ndarray]]]
                                                                 ) -> None:
    runs = []
    for enabled in (False, True):
        monkeypatch.setattr(cache, "enabled", enabled)
        step = make()
        hits = _hits()
        runs.append([step() for _ in range(4)])
        assert (_hits() > hits) == enabled  # with the cache on, the later steps hit
    for off, on in zip(*runs):
        for x, y in zip(off, on):
            np.testing.assert_array_equal(x, y)


def test_row_fusion_switch_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """TG_FUSE_ROWS is read while scheduling: a schedule made with it on is not reused with it off."""
    from tg.engine.device import device_state

    m = _arr(4, 8)
    state = device_state(Tensor([0.0]).device)
    counts = []
    for setting in ("1", "1", "0"):
        monkeypatch.setenv("TG_FUSE_ROWS", setting)
        before = state.kernel_count
        want = np.exp(m - m.max(-1, keepdims=True))
        np.testing.assert_allclose(Tensor(m).softmax(-1).numpy(), want / want.sum(-1, keepdims=True), rtol=1e-5)
        counts.append(state.kernel_count - before)
    assert counts[0] == counts[1] < counts[2]  # off: the row's max and sum are kernels of their own again
