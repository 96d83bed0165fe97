"""The eager step's Python shortcuts (#14) build the very graphs of the general paths they skip.

Each shortcut here makes fewer Python objects per op: trackers derived once per movement op and argument, a scalar
operand made at its final shape at once, the optimizer's flat vectors and per-parameter views made on LazyBuffers,
its hyperparameter views made once.  A shortcut that built a different graph would compile other kernels (or give a
wrong answer), so each is compared with the general path: trackers by value, graphs by the schedule cache's key
(equal keys are isomorphic graphs: the same kernels), values against numpy.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import numpy as np
import pytest
from tg import Tensor, no_grad, optim
from tg.graph.lazy import LazyBuffer
from tg.graph.shapetracker import MEMO_MAX, ShapeTracker, View
from tg.optim.optimizer import _flat, _slices
from tg.schedule.cache import graph_key
from tg.support.dtype import as_value, dtypes

rng = np.random.default_rng(14)


def _fresh(views: tuple[View, ...]) -> ShapeTracker:
    return ShapeTracker(tuple(View(v.shape, v.strides, v.offset, v.mask) for v in views))


def test_a_derived_tracker_is_remembered_and_equals_a_fresh_derivation() -> None:
    base = _fresh(ShapeTracker.contiguous((4, 6)).views)
    steps = [("reshape", (2, 2, 6)), ("permute", (2, 0, 1)), ("pad", ((1, 0), (0, 0), (0, 2))),
             ("shrink", ((1, 6), (0, 2), (1, 3))), ("expand", (5, 2, 2)), ("flip", (0, 2)), ("reshape", (10, 2))]
    st, fresh = base, _fresh(base.views)
    for op, arg in steps:
        derived = getattr(st, op)(arg)
        assert getattr(st, op)(arg) is derived  # the second time: the same tracker, from the memo
        fresh = getattr(_fresh(fresh.views), op)(arg)  # a tracker with an empty memo derives it afresh
        assert derived == fresh and derived.key == fresh.key and derived.shape == fresh.shape
        st = derived
    assert st.views[-1].shape == (10, 2) and len(st.views) == 2


def test_the_memo_keeps_different_arguments_apart_and_stays_bounded() -> None:
    st = _fresh(ShapeTracker.contiguous((6,)).views)
    assert st.reshape((2, 3)).shape == (2, 3) and st.reshape((3, 2)).shape == (3, 2)
    assert st.pad(((1, 0),)).views[-1].offset == -1 and st.pad(((0, 1),)).views[-1].offset == 0
    for k in range(MEMO_MAX + 10):
        assert st.shrink(((0, k % 6 + 1),)).shape == (k % 6 + 1,)
        assert st.pad(((k, 0),)).shape == (6 + k,)
    assert len(st.__dict__["_memo"]) <= MEMO_MAX


def test_a_pickled_tracker_leaves_its_memo_behind() -> None:
    st = ShapeTracker.contiguous((3, 4)).permute((1, 0))
    st.reshape((12,))
    copy = pickle.loads(pickle.dumps(st))
    assert copy == st and "_memo" not in copy.__dict__ and copy.reshape((12,)) == st.reshape((12,))


@pytest.mark.parametrize("value", [0.1, -0.0, 1e-46, 3.4028235e38, 3.4028236e38, 1e39, -1e39, float("inf"),
                                   float("nan"), 2.0 ** -149 * 1.5, 7, True, np.float64(1 / 3)])
def test_float32_constants_round_like_numpy(value: float) -> None:
    with np.errstate(over="ignore"):
        want = float(np.asarray(value, np.float32))
    got = as_value(value, dtypes.float32)
    assert struct.pack("<d", got) == struct.pack("<d", want) or (np.isnan(want) and np.isnan(got))


def test_a_scalar_operand_is_the_broadcast_constant_of_the_general_path() -> None:
    x = Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    for out, scalar_first in ((x * 2.5, False), (2.5 - x, True), (x.int() + 3, False)):
        const = out.lazydata.base.srcs[0 if scalar_first else 1]
        general = LazyBuffer.const(2.5, dtypes.float32, x.device).reshape((1, 1)).expand((2, 3))
        assert const.st == general.st and const.base.op is general.base.op and const.shape == (2, 3)
    (x * 2.5 + (1.0 - x)).sum().backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 1.5, np.float32))
    zero_d = Tensor(np.float32(2.0))
    assert (zero_d * 3.0).shape == () and (zero_d * 3.0).item() == 6.0


def _cat_flat(tensors: list[Tensor]) -> Tensor:
    pieces = [t.reshape(-1) for t in tensors]
    return pieces[0] if len(pieces) == 1 else Tensor.cat(*pieces)


def test_the_optimizers_flat_vector_is_the_graph_of_cat() -> None:
    shapes = [(3, 4), (4,), (2, 1, 3), (5,)]
    with no_grad():
        ts = [Tensor(rng.standard_normal(s).astype(np.float32)) * 2.0 for s in shapes]
        ours, general = _flat(ts), _cat_flat(ts)
        assert graph_key([ours.lazydata])[0] == graph_key([general.lazydata])[0]
        np.testing.assert_array_equal(ours.numpy(), np.concatenate([t.numpy().reshape(-1) for t in ts]))
        one = [Tensor(rng.standard_normal((2, 3)).astype(np.float32))]
        assert graph_key([_flat(one).lazydata])[0] == graph_key([_cat_flat(one).lazydata])[0]
        mixed = [Tensor(np.ones(2, np.float16)), Tensor(np.ones(3, np.float32))]
        assert _flat(mixed).dtype == dtypes.float32  # cat's promotion


def test_the_optimizers_slices_are_the_views_of_shrink_and_reshape() -> None:
    like = [Tensor(np.zeros(s, np.float32)) for s in [(3, 4), (4,), (2, 1, 3)]]
    flat = Tensor(np.arange(22, dtype=np.float32)).realize()
    offset = 0
    for view, t in zip(_slices(flat, like), like):
        general = flat.shrink(((offset, offset + t.numel()),)).reshape(t.shape)
        assert view.lazydata.st == general.lazydata.st and view.lazydata.base is flat.lazydata.base
        assert view._view and view.requires_grad is False and view.shape == t.shape
        np.testing.assert_array_equal(view.numpy(), np.arange(offset, offset + t.numel()).reshape(t.shape))
        offset += t.numel()
    whole = Tensor(np.zeros(22, np.float32))
    assert _slices(flat, [whole])[0] is flat  # the whole vector, as shrink and reshape return it


def test_adams_hyperparameter_views_are_made_once_and_read_the_current_values() -> None:
    w0 = rng.standard_normal(4).astype(np.float32)
    w = Tensor(w0.copy(), requires_grad=True)
    opt = optim.Adam([w], lr=0.1)

    def step() -> None:
        (w * w).sum().backward()
        opt.step()
        opt.zero_grad()

    step()
    views = dict(opt._hyper_views)
    step()
    assert all(opt._hyper_views[k][2]["lr"] is v[2]["lr"] for k, v in views.items())
    before = w.numpy()
    opt.param_groups[0]["lr"] = 0.0  # written into the vector the views read
    step()
    np.testing.assert_array_equal(w.numpy(), before)


def test_windows_without_autograd_are_the_view_of_the_movement_ops() -> None:
    from tg.frontend.nn_ops import _pool_ops, pool

    x = Tensor(rng.standard_normal((2, 3, 9, 8)).astype(np.float32))
    args = ((3, 2), (2, 1), (1, 2))
    general = _pool_ops(x, *args)
    for _ in range(2):  # made by the ops the first time, from the tracker's memo the second
        fast = pool(x, *args)
        assert fast.lazydata.st == general.lazydata.st and fast.lazydata.base is x.lazydata.base
        assert fast._view and fast.requires_grad is False and fast._ctx is None
        np.testing.assert_array_equal(fast.numpy(), general.numpy())
    w = Tensor(rng.standard_normal((1, 1, 5, 5)).astype(np.float32), requires_grad=True)
    windows = pool(w, (2, 2), (1, 1), (1, 1))
    assert windows._ctx is not None  # with autograd, the ops themselves (their gradients)
    windows.sum().backward()
    assert w.grad is not None
    np.testing.assert_array_equal(w.grad.numpy()[0, 0], np.outer([1, 2, 2, 2, 1], [1, 2, 2, 2, 1]).astype(np.float32))
    with no_grad():
        assert pool(w, (2, 2), (1, 1), (1, 1))._ctx is None


def test_tracker_numbers_tell_keys_apart_and_a_new_table_only_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    from tg.graph import shapetracker
    from tg.schedule import cache

    a = ShapeTracker.contiguous((4, 6)).permute((1, 0))
    same = _fresh(a.views)
    other = ShapeTracker.contiguous((6, 4))
    assert a.key_id == same.key_id and a.key_id != other.key_id
    x0, y0 = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32)
    monkeypatch.setattr(cache, "enabled", True)
    first = (Tensor(x0).permute(1, 0) + Tensor(y0)).numpy()
    monkeypatch.setattr(shapetracker, "KEY_IDS_MAX", 0)  # every new tracker starts the table again
    shapetracker._key_ids.clear()
    fresh = _fresh(a.views)
    assert fresh.key_id not in (a.key_id, other.key_id)  # an equal tracker's new number: never an old one
    second = (Tensor(y0).permute(1, 0) + Tensor(x0)).numpy()  # the transposed graph: a different structure
    np.testing.assert_array_equal(first, x0.T + y0)
    np.testing.assert_array_equal(second, y0.T + x0)


def test_a_thread_that_never_recorded_reads_no_recorder() -> None:
    import threading

    from tg.engine.realize import current_recorder, recording

    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(current_recorder()))
    with recording() as recorder:
        assert current_recorder() is recorder
        thread.start()
        thread.join()
    assert seen == [None] and current_recorder() is None


def _kernels_of(out: Tensor) -> list[Any]:
    from tg.engine import realize as engine
    from tg.schedule import cache
    from tg.schedule.scheduler import Kernel

    items, _ = cache.lookup([out.lazydata])
    assert items is not None, "expected a schedule-cache hit"
    engine.realize([out.lazydata])
    return [k for k in items if isinstance(k, Kernel)]


def test_a_hit_shares_its_templates_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    from tg.engine.device import device_state
    from tg.engine.realize import kernel_key
    from tg.schedule import cache

    monkeypatch.setattr(cache, "enabled", True)
    a = Tensor(rng.standard_normal(7).astype(np.float32)).realize()
    (a * 1.5 + 2.0).realize()
    (a * 1.5 + 2.0).realize()  # the template's programs are filled by this launch
    (kernel,) = _kernels_of(a * 0.25 + 3.0)  # a hit: a new kernel object on the same template
    state = device_state(a.device)
    assert kernel.ready is not None and kernel.ready[state] is state.kernels.get(kernel_key(kernel, not
                                                                                             state.scalar_params))
    np.testing.assert_array_equal((a * -4.0 + 0.5).numpy(), a.numpy() * np.float32(-4.0) + np.float32(0.5))


def test_a_backend_without_launch_variables_never_shares_a_program_across_values(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tg.backends.discovery import reset_registry
    from tg.engine.device import device_state, reset_devices
    from tg.schedule import cache

    monkeypatch.setattr(cache, "enabled", True)
    monkeypatch.setenv("TG_NUMPY_CAPS", "no_variables")  # floats compiled into kernels as constants
    reset_registry()
    reset_devices()
    try:
        assert not device_state("numpy").scalar_params
        x = rng.standard_normal(5).astype(np.float32)
        a = Tensor(x, device="numpy").realize()
        for v in (1.5, 1.5, -3.0, 0.75):  # one structure: hits, each value its own program
            np.testing.assert_array_equal((a * v).numpy(), x * np.float32(v))
        (kernel,) = _kernels_of(a * 9.0)
        assert kernel.ready == {}  # never filled: the program follows the value
    finally:
        monkeypatch.delenv("TG_NUMPY_CAPS")
        reset_registry()
        reset_devices()


def test_broadcasting_without_autograd_makes_the_views_of_reshape_and_expand() -> None:
    from tg.frontend.shapes import broadcast_shape

    assert broadcast_shape("op", (3, 1, 5), (1, 4, 5)) == (3, 4, 5) and broadcast_shape("op", (2,), (2,)) == (2,)
    assert broadcast_shape("op", (4,), (3, 1)) == (3, 4)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        broadcast_shape("add", (3, 2), (2, 3))
    b = Tensor(rng.standard_normal((4, 1)).astype(np.float32))
    out = b._expand_to((2, 4, 3))
    general = b.lazydata.reshape((1, 4, 1)).expand((2, 4, 3))
    assert out.lazydata.st == general.st and out._view and out.requires_grad is False and out._ctx is None
    w = Tensor(rng.standard_normal((4, 1)).astype(np.float32), requires_grad=True)
    grown = w._expand_to((2, 4, 3))
    assert grown._ctx is not None and grown.lazydata.st == general.st  # with autograd: the Functions, same view
    grown.sum().backward()
    assert w.grad is not None
    np.testing.assert_array_equal(w.grad.numpy(), np.full((4, 1), 6, np.float32))
    with pytest.raises(ValueError, match="cannot expand"):
        b._expand_to((3, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_broadcast_node_has_the_gradient_graph_of_reshape_then_expand(dtype: type) -> None:
    from tg.frontend import function as F

    data = rng.standard_normal((4, 1)).astype(dtype)
    c = Tensor(rng.standard_normal((2, 4, 3)).astype(dtype)).realize()
    w1, w2 = Tensor(data, requires_grad=True), Tensor(data, requires_grad=True)
    out1 = w1._expand_to((2, 4, 3))
    assert isinstance(out1._ctx, F.Broadcast)
    out2 = F.Expand.apply(F.Reshape.apply(w2, shape=(1, 4, 1)), shape=(2, 4, 3))
    (out1 * c).sum().backward()
    (out2 * c).sum().backward()
    assert w1.grad is not None and w2.grad is not None
    assert graph_key([w1.grad.lazydata])[0] == graph_key([w2.grad.lazydata])[0]
    np.testing.assert_array_equal(w1.grad.numpy(), w2.grad.numpy())


def test_patch_gradients_from_remembered_taps_are_the_graph_of_the_movement_ops() -> None:
    from tg.nn.conv import patches
    from tg.support.ops import Ops

    x = Tensor(rng.standard_normal((2, 3, 7, 9)).astype(np.float32), requires_grad=True)
    for _ in range(2):  # the taps' trackers made by the ops the first time, from grad's tracker's memo the second
        cols = patches(x, (2, 3), (2, 1), (1, 0), (1, 2))
        ctx = cols._ctx
        assert ctx is not None
        g = Tensor(rng.standard_normal(cols.shape).astype(np.float32)).realize().lazydata
        got = ctx.backward(g)
        fresh = LazyBuffer(g.device, _fresh(g.st.views), g.dtype, base=g.base)  # a tracker with an empty memo
        total = None
        for i in range(2):
            for j in range(3):
                tap = fresh._view(ctx._tap(fresh, i, j))
                total = tap if total is None else total.alu(Ops.ADD, tap)
        assert total is not None
        want = total.shrink(((0, 2), (0, 3), (1, 8), (0, 9)))
        assert got.shape == x.shape and graph_key([got])[0] == graph_key([want])[0]
        np.testing.assert_array_equal(Tensor(got).numpy(), Tensor(want).numpy())
