"""The eager fast paths (#14) give the answers of the general paths they skip.

Each fast path here avoids a Python call or an object per op: a tracker made once per shape, dtype equality by
identity first, a reshape of plain sizes, an input's buffer slot by dict.  A fast path that answered differently
would be a silent wrong answer, so each is checked against the general path.
"""

from __future__ import annotations

import numpy as np
import pytest
from tg import Tensor, no_grad
from tg.graph.shapetracker import ShapeTracker, View
from tg.schedule.scheduler import Kernel, create_schedule
from tg.support.dtype import DType, dtypes


def test_contiguous_trackers_are_shared_and_equal_to_fresh_ones() -> None:
    shared = ShapeTracker.contiguous((2, 3))
    assert ShapeTracker.contiguous([2, 3]) is shared
    fresh = ShapeTracker((View.create((2, 3)),))
    assert shared == fresh and shared.key == fresh.key and hash(shared) == hash(fresh)
    moved = shared.permute((1, 0))  # a movement op makes a new tracker and leaves the shared one as it was
    assert moved.shape == (3, 2) and shared.shape == (2, 3) and shared.is_contiguous


def test_views_hash_and_compare_by_value() -> None:
    a = View.create((4, 1, 3), (3, 7, 1), 2, ((0, 4), (0, 1), (1, 3)))
    b = View.create((4, 1, 3), (3, 0, 1), 2, ((0, 4), (0, 1), (1, 3)))
    assert a == b and hash(a) == hash(b) and a.strides == (3, 0, 1)
    assert View.create((2, 2), None, 0, ((0, 2), (0, 2))).mask is None
    assert View.create((2, 2), None, 0, ((1, 1), (0, 2))) == View((2, 2), (0, 0), 0, ((0, 0), (0, 0)))


def test_dtype_equality_is_by_value_too() -> None:
    copy = DType("float32", 4, "f", 6)
    assert copy is not dtypes.float32
    assert copy == dtypes.float32 and hash(copy) == hash(dtypes.float32)
    assert copy != dtypes.float16 and dtypes.float32 != "float32"
    assert {copy: 1}[dtypes.float32] == 1
    t = Tensor(np.arange(4, dtype=np.float32))
    assert t.cast(copy) is t and t.cast("float32") is t and t.cast(dtypes.int32).dtype == dtypes.int32


def test_reshape_fast_path_keeps_the_checks() -> None:
    t = Tensor(np.arange(12, dtype=np.float32))
    assert t.reshape(3, 4).shape == (3, 4) and t.reshape((3, 4)).shape == (3, 4) and t.reshape([2, -1]).shape == (2, 6)
    assert t.reshape(12) is t
    np.testing.assert_array_equal(t.reshape(2, 2, 3).numpy(), np.arange(12).reshape(2, 2, 3))
    with pytest.raises(ValueError):
        t.reshape(5, 3)
    with pytest.raises(TypeError):
        t.reshape(True, 12)
    with pytest.raises(ValueError):
        t.reshape(-1, -1)


def test_input_slots_follow_first_use() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    a, b = Tensor(x).realize(), Tensor(y).realize()
    out = b * a + b - a * 3.0
    (kernel,) = [k for k in create_schedule([out.lazydata]) if isinstance(k, Kernel)]
    assert kernel.inputs == [b.lazydata.base, a.lazydata.base]
    np.testing.assert_allclose(out.numpy(), y * x + y - x * 3.0, rtol=1e-6)


def test_grad_recording_follows_the_inputs_and_grad_mode() -> None:
    w = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    c = Tensor(np.ones(3, dtype=np.float32))
    assert (w * c)._ctx is not None and (c * c)._ctx is None
    with no_grad():
        assert (w * c)._ctx is None
    assert (w > 0)._ctx is None  # no gradient through bools
