"""tg.nn.SyncBatchNorm without MPI: a world of one is BatchNorm; convert_sync_batchnorm; and the cross-rank math
against BatchNorm over the concatenated batch, with a stand-in for the allreduce of two ranks that hold the same
data (tests/distributed runs it over real MPI processes)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tg
from tg import Tensor, nn
from tg.nn import sync_norm


@pytest.fixture
def two_twin_ranks() -> Iterator[None]:
    """Rank 0 of 2, the other rank holding the same batch: the sum over ranks of a table whose row r this rank
    fills (forward), or of the table's gradient (backward, symmetric ranks), is ``a + a[::-1]``."""
    sync_norm.set_collectives(sync_norm.Collectives(0, 2, lambda a: a + a[::-1]))
    yield
    sync_norm.set_collectives(None)


def _arrays(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 2 + 1


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (4, 3, 2, 2)])
def test_a_world_of_one_is_batchnorm(shape: tuple[int, ...]) -> None:
    plain = nn.BatchNorm1d(3) if len(shape) < 4 else nn.BatchNorm2d(3)
    sync = nn.SyncBatchNorm(3)
    x = _arrays(shape, 0)
    for _ in range(2):
        np.testing.assert_allclose(sync(Tensor(x)).numpy(), plain(Tensor(x)).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sync.running_var.numpy(), plain.running_var.numpy(), rtol=1e-6)
    sync.eval()
    plain.eval()
    np.testing.assert_allclose(sync(Tensor(x)).numpy(), plain(Tensor(x)).numpy(), rtol=1e-6, atol=1e-6)


def test_statistics_and_gradients_span_the_ranks(two_twin_ranks: None) -> None:
    """Rank 0's output, running statistics and parameter gradients are BatchNorm's over both ranks' batches; its
    input gradient is that of both ranks' losses (twice the concatenated batch's mean-of-both loss)."""
    x_np, r_np = _arrays((4, 3, 2, 2), 1), _arrays((4, 3, 2, 2), 2)
    sync, plain = nn.SyncBatchNorm(3), nn.BatchNorm2d(3)
    for bn in (sync, plain):
        bn.weight.assign(Tensor(np.array([0.5, 1.5, -1.0], dtype=np.float32))).realize()
    x = Tensor(x_np, requires_grad=True)
    y = sync(x)
    (y * Tensor(r_np)).sum().backward()
    first, second = Tensor(x_np, requires_grad=True), Tensor(x_np, requires_grad=True)
    y_ref = plain(Tensor.cat(first, second))
    ((y_ref * Tensor(np.concatenate([r_np, r_np]))).sum() / 2).backward()
    np.testing.assert_allclose(y.numpy(), y_ref.numpy()[:4], rtol=1e-5, atol=1e-5)
    for name in ("running_mean", "running_var"):  # the unbiased variance over 2 x 16 values per channel
        np.testing.assert_allclose(getattr(sync, name).numpy(), getattr(plain, name).numpy(), rtol=1e-5, atol=1e-6)
    for name in ("weight", "bias"):
        np.testing.assert_allclose(getattr(sync, name).grad.numpy(), getattr(plain, name).grad.numpy(), rtol=1e-4,
                                   atol=1e-5)
    assert x.grad is not None and first.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * first.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_training_on_several_ranks_inside_jit_is_refused(two_twin_ranks: None) -> None:
    bn = nn.SyncBatchNorm(3)

    @tg.jit
    def forward(x: Tensor) -> Tensor:
        return bn(x)

    with pytest.raises(tg.JitError, match="SyncBatchNorm: training on 2 processes cannot run inside a tg.jit"):
        forward(Tensor(_arrays((4, 3), 3)))
    bn.eval()  # the running statistics: no collective, so it jits and replays
    outs = [forward(Tensor(_arrays((4, 3), 3))).numpy() for _ in range(4)]
    assert forward.replays >= 1
    np.testing.assert_allclose(outs[-1], outs[0])


def test_convert_sync_batchnorm_keeps_the_tensors() -> None:
    inner = nn.BatchNorm1d(4)
    model = nn.Sequential(nn.Linear(2, 4), inner, nn.ModuleList([nn.BatchNorm2d(4), nn.ReLU()]),
                          nn.ModuleDict({"norm": nn.BatchNorm1d(4, momentum=None)}))
    model.eval()
    before = model.state_dict()
    weight = inner.weight
    assert nn.SyncBatchNorm.convert_sync_batchnorm(model) is model
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 3 and all(isinstance(m, nn.SyncBatchNorm) for m in norms)
    assert model[1].weight is weight and not model[1].training and model[3]["norm"].momentum is None
    after = model.state_dict()
    assert list(after) == list(before) and all(after[k] is before[k] for k in before)
    alone = nn.BatchNorm2d(2)
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(alone)
    assert isinstance(converted, nn.SyncBatchNorm) and converted.running_mean is alone.running_mean
    with pytest.raises(ValueError, match="process_group=None"):
        nn.SyncBatchNorm(2, process_group="group")
    with pytest.raises(ValueError, match=r"input must be \(N, 2, ...\)"):
        converted(Tensor(np.zeros((3,), dtype=np.float32)))
