"""Row fusion in the scheduler: which reductions fuse into the kernel that reads them back over their rows (a
softmax in one kernel where a row fits, three where it does not), TG_FUSE_ROWS=0, and the lowered shape: one
thread per row running one loop per pass."""

from __future__ import annotations

import numpy as np
import pytest
from tg import Tensor
from tg.codegen.capabilities import Capabilities
from tg.codegen.lower import lower
from tg.codegen.uops import Ops
from tg.schedule.scheduler import ROW_FUSE_BYTES, Kernel, create_schedule
from tg.support.dtype import dtypes


def kernels(*tensors: Tensor) -> list[Kernel]:
    return [k for k in create_schedule([t.lazydata for t in tensors]) if isinstance(k, Kernel)]


def realized(*shape: int, dtype: str = "float32") -> Tensor:
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(dtype)).realize()


def _reduces(k: Kernel) -> int:
    return sum(1 for e in k.structure if e[0] == "REDUCE")


@pytest.mark.parametrize("shape", [(4096, 1024), (5, 7), (2, 3, 1025), (512, ROW_FUSE_BYTES // 4)])
def test_softmax_is_one_kernel_where_a_row_fits(shape: tuple[int, ...]) -> None:
    x = realized(*shape)
    for y in (x.softmax(-1), x.log_softmax(-1), x.layernorm(-1)):
        ks = kernels(y)
        assert len(ks) == 1 and _reduces(ks[0]) == 2, [k.name for k in ks]


def test_rows_past_the_limit_keep_three_kernels() -> None:
    x = realized(512, ROW_FUSE_BYTES // 4 + 1)
    assert len(kernels(x.softmax(-1))) == 3
    assert len(kernels(realized(512, ROW_FUSE_BYTES // 8 + 1, dtype="float64").softmax(-1, dtype="float64"))) == 3


def test_the_limit_counts_bytes_of_the_source() -> None:
    """A row of the reduction's source: float64 rows are half as long; a float16 softmax sums in float32."""
    x = realized(512, ROW_FUSE_BYTES // 4, dtype="float16")
    assert len(kernels(x.softmax(-1, dtype="float16"))) == 1
    assert len(kernels(realized(512, ROW_FUSE_BYTES // 8, dtype="float64").softmax(-1, dtype="float64"))) == 1


def test_the_kill_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_FUSE_ROWS", "0")
    x = realized(8, 64)
    assert len(kernels(x.softmax(-1))) == 3
    assert len(kernels(x.layernorm(-1))) == 3


def test_a_reduction_over_other_axes_is_not_fused() -> None:
    x = realized(8, 64)
    y = x - x.amax(0, keepdim=True) + x.sum(1, keepdim=True)  # column max and row sum: different rows
    assert len(kernels(y)) == 2
    assert _reduces(kernels(x.softmax(0))[0]) == 2  # a softmax down the columns still fuses


def test_a_reduction_seen_through_another_view_is_not_fused() -> None:
    x = realized(8, 8)
    m = x.amax(1, keepdim=True)
    y = x - m.reshape(1, 8).expand(8, 8)  # the row max laid along the columns: not its own row's
    assert len(kernels(y)) == 2


def test_a_scheduled_reduction_is_loaded_not_recomputed() -> None:
    x = realized(8, 64)
    m = x.amax(1, keepdim=True)
    ks = kernels(m, x - m)
    assert len(ks) == 2 and _reduces(ks[1]) == 0


def test_a_reduction_of_fused_rows_fuses_them() -> None:
    """cross-entropy: the sum of log_softmax * one_hot reduces the same rows as the max and sum inside it."""
    logits = realized(16, 10)
    target = Tensor(np.arange(16, dtype=np.int32) % 10).realize()
    onehot = target.one_hot(10).cast(dtypes.float32)
    row_loss = (logits.log_softmax(-1) * onehot).sum(-1)
    ks = kernels(row_loss)
    assert len(ks) == 1 and _reduces(ks[0]) == 3, [k.name for k in ks]  # the one-hot is computed inline


def test_lowered_as_one_thread_per_row_with_a_loop_per_pass() -> None:
    x = realized(6, 40)
    (k,) = kernels(x.softmax(-1))
    lowered = lower(k, Capabilities(dtypes=frozenset({"float32", "int32", "bool"})))
    assert lowered.global_size == (6,)
    ops = [u.op for u in lowered.uops]
    assert ops.count(Ops.RANGE) == 3 and ops.count(Ops.DEFINE_ACC) == 2
    depth, stores_in_loop = 0, 0
    for op in ops:
        depth += (op is Ops.RANGE) - (op is Ops.ENDRANGE)
        assert depth in (0, 1)  # the loops one after another, none inside another
        stores_in_loop += op is Ops.STORE and depth == 1
    assert stores_in_loop == 1


@pytest.mark.parametrize("caps, launched", [("", 1), ("interpret", 1), ("group_size=8", 3)])
def test_the_engine_fuses_rows_only_where_the_backend_runs_no_work_groups(monkeypatch: pytest.MonkeyPatch,
                                                                           caps: str, launched: int) -> None:
    """A backend that reduces a row across a work group's lanes (a GPU: group_size > 1) keeps its three kernels, in
    which the lanes share each row; one that runs a row as one thread's loop anyway gets the fused kernel.  The
    schedule cache, cleared by ``reset_devices``, never hands one backend's choice to another."""
    from tg.backends.discovery import reset_registry
    from tg.engine.device import reset_devices
    from tg.engine.realize import RecordedKernel, recording

    monkeypatch.setenv("TG_BACKEND", "numpy")
    monkeypatch.setenv("TG_NUMPY_CAPS", caps)
    reset_registry()  # the numpy backend reads TG_NUMPY_CAPS when it is made
    reset_devices()
    try:
        x = realized(64, 256)
        y = x.softmax(-1)
        with recording() as recorder:
            y.realize()
        names = [item.kernel.program.name for item in recorder.items if isinstance(item, RecordedKernel)]
        got = y.numpy()
        e = np.exp(x.numpy() - x.numpy().max(axis=1, keepdims=True))
        np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
        assert len(names) == launched, names
    finally:
        monkeypatch.undo()
        reset_registry()
        reset_devices()
