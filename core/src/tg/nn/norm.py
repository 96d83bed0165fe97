"""Normalization layers: BatchNorm1d/2d (batch statistics, running averages for eval), LayerNorm and GroupNorm."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tg.frontend.tensor import Tensor
from tg.nn.functional import group_norm
from tg.nn.grad import materialize_grad
from tg.nn.module import Module


def _channel_mean(x: Tensor) -> Tensor:
    """Mean over N, H, W of (N, C, H, W), kept as (1, C, 1, 1): two short reductions, not one long one."""
    return x.mean((2, 3), keepdim=True).mean(0, keepdim=True)


def _per_channel(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """A per-channel tensor broadcast to (N, C, H, W) in two steps, so its gradient is two short reductions.

    A backend that loops over a reduction serially (numpy, emulators) would otherwise sum N*H*W terms in
    each of only C threads.
    """
    n, c, h, w = shape
    return t.reshape(1, c, 1, 1).expand(1, c, h, w).expand(n, c, h, w)


class BatchNorm2d(Module):
    """Normalizes each channel (dim 1) of (N, C, H, W) input, then scales by ``weight`` and shifts by ``bias``.

    In training mode it uses the batch's mean and (biased) variance and updates ``running_mean`` and
    ``running_var`` as PyTorch does: ``running = (1 - momentum) * running + momentum * batch`` with the
    unbiased batch variance, or a cumulative average when ``momentum`` is None.  In eval mode it uses the
    running statistics.  The running statistics and ``num_batches_tracked`` are buffers: in the state
    dict, not in ``parameters()``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: str | None = None, dtype: Any = None):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Tensor.ones(num_features, requires_grad=True) if affine else None
        self.bias = Tensor.zeros(num_features, requires_grad=True) if affine else None
        self.track_running_stats = track_running_stats
        self.running_mean: Tensor | None = None
        self.running_var: Tensor | None = None
        self.num_batches_tracked: Tensor | None = None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor.zeros(num_features, requires_grad=False))
            self.register_buffer("running_var", Tensor.ones(num_features, requires_grad=False))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int32)))
        self._place(device, dtype)

    expected = "(N, C, H, W)"

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): input must be "
                             f"{self.expected.replace('C', str(self.num_features))}, got shape {x.shape}")
        return self._normalize(x)

    def _normalize(self, x: Tensor) -> Tensor:
        if self.training or self.running_mean is None or self.running_var is None:
            mean, centered, var, count = self._statistics(x)
            if self.training:
                self._update_running(mean.detach().reshape(-1), var.detach().reshape(-1), count)
            y = centered * _per_channel((var + self.eps).rsqrt(), x.shape)
        else:
            y = x.batchnorm(None, None, self.running_mean, (self.running_var + self.eps).rsqrt())
        if self.weight is not None and self.bias is not None:
            y = y * _per_channel(self.weight, x.shape) + _per_channel(self.bias, x.shape)
        return materialize_grad(y)  # its gradient feeds four reductions here: compute it once

    def _statistics(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
        """The batch's per-channel mean, ``x`` minus it, the (biased) variance, and how many values each channel
        has; mean and variance shaped (1, C, 1, 1).  (SyncBatchNorm takes them over every rank's batch.)"""
        count = x.shape[0] * x.shape[2] * x.shape[3]
        if count < 2:
            raise ValueError(f"{type(self).__name__}: training needs more than one value per channel, got "
                             f"shape {x.shape}")
        mean = _channel_mean(x)
        centered = x - _per_channel(mean, x.shape)
        return mean, centered, _channel_mean(centered * centered), count

    def _update_running(self, mean: Tensor, var: Tensor, count: int) -> None:
        if self.running_mean is None or self.running_var is None or self.num_batches_tracked is None:
            return
        self.num_batches_tracked.assign(self.num_batches_tracked + 1).realize()
        if self.momentum is not None:
            m: float | Tensor = self.momentum
        else:  # a cumulative average: 1 / count, computed on the device (no value read back, so tg.jit replays it)
            m = 1.0 / self.num_batches_tracked.cast(mean.dtype)
        unbiased = var * (count / (count - 1))
        self.running_mean.assign((1 - m) * self.running_mean + m * mean).realize()
        self.running_var.assign((1 - m) * self.running_var + m * unbiased).realize()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_features}, eps={self.eps}, momentum={self.momentum})"


class BatchNorm1d(BatchNorm2d):
    """BatchNorm2d's rules for (N, C) or (N, C, L) input: statistics per channel over N (and L)."""

    expected = "(N, C) or (N, C, L)"

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d({self.num_features}): input must be (N, {self.num_features}) or "
                             f"(N, {self.num_features}, L), got shape {x.shape}")
        return self._normalize(x.reshape(x.shape[0], x.shape[1], -1, 1)).reshape(x.shape)


class GroupNorm(Module):
    """Normalizes each group of ``num_channels // num_groups`` channels of (N, C, ...) over its channels and
    positions, then applies the per-channel ``weight`` and ``bias``."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: str | None = None, dtype: Any = None):
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = Tensor.ones(num_channels, requires_grad=True) if affine else None
        self.bias = Tensor.zeros(num_channels, requires_grad=True) if affine else None
        self._place(device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): input must be "
                             f"(N, {self.num_channels}, ...), got shape {x.shape}")
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def __repr__(self) -> str:
        return f"GroupNorm({self.num_groups}, {self.num_channels}, eps={self.eps})"


class LayerNorm(Module):
    """Normalizes over the last ``len(normalized_shape)`` dims, then applies ``weight`` and ``bias``."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: str | None = None, dtype: Any = None):
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = Tensor.ones(*self.normalized_shape, requires_grad=True) if elementwise_affine else None
        self.bias = Tensor.zeros(*self.normalized_shape, requires_grad=True) if elementwise_affine and bias else None
        self._place(device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if x.shape[-k:] != self.normalized_shape:
            raise ValueError(f"LayerNorm{self.normalized_shape}: input's last dims must be {self.normalized_shape}, "
                             f"got shape {x.shape}")
        flat = x.reshape(x.shape[:-k] + (-1,)) if k > 1 else x
        y = flat.layernorm(-1, self.eps).reshape(x.shape)
        if self.weight is not None:
            y = y * self.weight
        return y + self.bias if self.bias is not None else y

    def __repr__(self) -> str:
        return f"LayerNorm({self.normalized_shape}, eps={self.eps})"
