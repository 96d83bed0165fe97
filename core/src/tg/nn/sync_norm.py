"""SyncBatchNorm: BatchNorm whose training statistics are those of the global batch, over every process.

In training, each rank computes its batch's per-channel mean, sum of squared deviations and count; one
allreduce gives every rank all of them (rank r fills row r of a zero table, the sum is the whole table), and
the global mean and variance are combined from them (Chan's parallel formula: no cancellation of E[x²] - E[x]²).
The allreduce is a differentiable step: its backward sums the incoming gradients over the ranks (a second
allreduce), so gradients reach every rank's input as if the global batch had been normalized in one process.
The running statistics follow the global mean and the global unbiased variance, so they stay equal on every
rank.  In eval mode, and in a world of one process (``tg.distributed`` not initialised, or ``mpiexec -n 1``),
it is a plain BatchNorm.

tg.nn sits below tg.distributed, so the allreduce comes from there: :func:`tg.distributed.init` registers it with
:func:`set_collectives`.  ``SyncBatchNorm.convert_sync_batchnorm(model)`` replaces every BatchNorm1d/2d of a model,
as in PyTorch.  The statistics are summed on the host by MPI, which a ``tg.jit`` replay cannot run: training on
several ranks inside a jitted function raises :class:`~tg.support.errors.JitError`, saying what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tg.engine.realize import current_recorder
from tg.frontend.function import Function
from tg.frontend.tensor import Tensor
from tg.graph.lazy import LazyBuffer
from tg.nn.module import Module
from tg.nn.norm import BatchNorm2d, _channel_mean, _per_channel
from tg.support.errors import JitError


@dataclass(frozen=True)
class Collectives:
    """What SyncBatchNorm needs of the process group: this process's rank, the world size, and a sum of an array
    over every rank (each rank calls it in the same order)."""

    rank: int
    world_size: int
    all_reduce_sum: Callable[[np.ndarray], np.ndarray]


_collectives: Collectives | None = None


def set_collectives(collectives: Collectives | None) -> None:
    """Make ``collectives`` the process group SyncBatchNorm reduces over (None: a world of one)."""
    global _collectives
    _collectives = collectives


def _summed(array: np.ndarray, collectives: Collectives) -> np.ndarray:
    wire = np.promote_types(array.dtype, np.float32)  # MPI has no 16-bit floats
    return collectives.all_reduce_sum(np.ascontiguousarray(array, dtype=wire))


class _AllReduceSum(Function):
    """``result`` (the sum over the ranks of the input, computed on the host) going forward; going back, the
    incoming gradient summed over the ranks (each rank's loss depends on every rank's input)."""

    def forward(self, x: LazyBuffer, result: np.ndarray, collectives: Collectives) -> LazyBuffer:
        self.collectives = collectives
        return Tensor(result.astype(x.dtype.np), device=x.device).lazydata

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        total = _summed(Tensor(grad).numpy(), self.collectives)
        return Tensor(total.astype(grad.dtype.np), device=grad.device).lazydata


class SyncBatchNorm(BatchNorm2d):
    """BatchNorm over (N, C, ...) input whose training statistics span every rank's batch (see
    :mod:`tg.nn.sync_norm`); PyTorch's ``SyncBatchNorm``.  ``process_group`` must be None (tg.distributed has one
    group: the world)."""

    expected = "(N, C, ...)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group: Any = None, device: str | None = None,
                 dtype: Any = None):
        _no_process_group(process_group)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm({self.num_features}): input must be (N, {self.num_features}, ...), got "
                             f"shape {x.shape}")
        if x.ndim == 4:
            return self._normalize(x)
        return self._normalize(x.reshape(x.shape[0], x.shape[1], -1, 1)).reshape(x.shape)

    def _statistics(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
        group = _collectives
        if not self.training or group is None or group.world_size == 1:
            return super()._statistics(x)
        if current_recorder() is not None:
            raise JitError(f"SyncBatchNorm: training on {group.world_size} processes cannot run inside a tg.jit "
                           "function: its batch statistics are summed over the ranks by MPI on the host, in the "
                           "forward and in the backward, and a replay runs kernels only. Fix: run the training step "
                           "without tg.jit, or use BatchNorm (statistics per rank; DistributedDataParallel broadcasts "
                           "rank 0's running statistics); in eval mode SyncBatchNorm jits as BatchNorm does")
        channels, local = x.shape[1], x.shape[0] * x.shape[2] * x.shape[3]
        mean = _channel_mean(x)
        centered = x - _per_channel(mean, x.shape)
        squares = _channel_mean(centered * centered) * local  # about this rank's mean: no cancellation
        count = Tensor(np.full((1, 1), local, dtype=x.dtype.np), device=x.device)
        row = Tensor.cat(mean.reshape(1, channels), squares.reshape(1, channels), count, dim=1)
        table = row.pad(((group.rank, group.world_size - group.rank - 1), (0, 0)))
        result = _summed(table.numpy(), group)
        total = int(round(float(result[:, -1].sum())))
        if total < 2:
            raise ValueError(f"SyncBatchNorm: training needs more than one value per channel over all ranks, got "
                             f"{total}")
        every = _AllReduceSum.apply(table, result=result, collectives=group)  # (ranks, 2C + 1)
        counts = Tensor(result[:, -1:].astype(x.dtype.np), device=x.device)
        means, spread = every[:, :channels], every[:, channels:2 * channels]
        mean_all = (counts * means).sum(0) / total
        apart = means - mean_all
        var = (spread.sum(0) + (counts * apart * apart).sum(0)) / total
        return (mean_all.reshape(1, channels, 1, 1), x - _per_channel(mean_all, x.shape),
                var.reshape(1, channels, 1, 1), total)

    @classmethod
    def convert_sync_batchnorm(cls, module: Any, process_group: Any = None) -> Any:
        """Replace every BatchNorm1d/BatchNorm2d inside ``module`` (in attributes, lists, dicts, Sequentials,
        ModuleLists, ModuleDicts) by a SyncBatchNorm holding the same parameters, running statistics and mode;
        returns ``module``, or the new layer when ``module`` itself is a BatchNorm (PyTorch's contract).  An
        optimizer made before keeps working: the parameters are the same tensors."""
        _no_process_group(process_group)
        done: dict[int, SyncBatchNorm] = {}

        def convert(value: Any) -> Any:
            if isinstance(value, BatchNorm2d) and not isinstance(value, SyncBatchNorm):
                if id(value) not in done:
                    sync = cls.__new__(cls)
                    sync.__dict__.update(value.__dict__)  # the same tensors and settings
                    if "_non_persistent_buffers" in value.__dict__:
                        sync.__dict__["_non_persistent_buffers"] = set(value.__dict__["_non_persistent_buffers"])
                    done[id(value)] = sync
                return done[id(value)]
            return value

        if convert(module) is not module:
            return convert(module)
        modules = list(module.modules()) if isinstance(module, Module) else []
        for m in modules:
            stack: list[Any] = [vars(m)]
            while stack:
                holder = stack.pop()
                keys = list(holder) if isinstance(holder, dict) else range(len(holder))
                for key in keys:
                    value = holder[key]
                    if isinstance(value, (list, dict)):
                        stack.append(value)
                    elif isinstance(value, tuple) and any(convert(v) is not v for v in value):
                        holder[key] = tuple(convert(v) for v in value)
                    elif convert(value) is not value:
                        holder[key] = convert(value)
        return module


def _no_process_group(process_group: Any) -> None:
    if process_group is not None:
        raise ValueError("SyncBatchNorm: tg.distributed has one process group, the world: pass process_group=None")
