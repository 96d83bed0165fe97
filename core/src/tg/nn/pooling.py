"""Pooling layers: MaxPool2d, AvgPool2d and AdaptiveAvgPool2d over the last two dims."""

from __future__ import annotations

from typing import Any

from tg.frontend.tensor import Tensor
from tg.nn import functional as F
from tg.nn.conv import pair
from tg.nn.module import Module


class MaxPool2d(Module):
    """Max over (kernel) windows of the last two dims; stride defaults to the kernel size.

    Non-overlapping windows without padding (the usual case) are a reshape and a max, whose gradient is
    cheap; other settings use ``Tensor.max_pool2d``.
    """

    def __init__(self, kernel_size: Any = 2, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        if return_indices or ceil_mode:
            raise NotImplementedError(f"MaxPool2d: {'return_indices' if return_indices else 'ceil_mode'}=True is not "
                                      "implemented in tg; leave it at its default")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride if stride is not None else kernel_size, "stride")
        self.padding, self.dilation = pair(padding, "padding"), pair(dilation, "dilation")

    def forward(self, x: Tensor) -> Tensor:
        (kh, kw), (h, w) = self.kernel_size, x.shape[-2:]
        if self.stride != self.kernel_size or self.padding != (0, 0) or self.dilation != (1, 1) or h < kh or w < kw:
            return x.max_pool2d(self.kernel_size, self.stride, self.padding, self.dilation)
        oh, ow = h // kh, w // kw
        if (oh * kh, ow * kw) != (h, w):
            x = x[..., :oh * kh, :ow * kw]
        return x.reshape(x.shape[:-2] + (oh, kh, ow, kw)).amax((-3, -1))

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


class AvgPool2d(Module):
    """Mean of each window (see :func:`tg.nn.functional.avg_pool2d`); stride defaults to the kernel size."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None):
        if ceil_mode:
            raise NotImplementedError("AvgPool2d: ceil_mode=True is not implemented in tg; leave it at its default")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, False, self.count_include_pad,
                            self.divisor_override)

    def __repr__(self) -> str:
        return f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed spatial size ``output_size`` (an int, a pair, None keeps that input size)."""

    def __init__(self, output_size: Any):
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def __repr__(self) -> str:
        return f"AdaptiveAvgPool2d(output_size={self.output_size})"
