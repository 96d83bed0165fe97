"""MaxPool2d: the largest value of each window of the last two dims."""

from __future__ import annotations

from typing import Any

from tg.frontend.tensor import Tensor
from tg.nn.conv import pair
from tg.nn.module import Module


class MaxPool2d(Module):
    """Max over (kernel) windows of the last two dims; stride defaults to the kernel size.

    Non-overlapping windows without padding (the usual case) are a reshape and a max, whose gradient is
    cheap; other settings use ``Tensor.max_pool2d``.
    """

    def __init__(self, kernel_size: Any = 2, stride: Any = None, padding: Any = 0):
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride if stride is not None else kernel_size, "stride")
        self.padding = pair(padding, "padding")

    def forward(self, x: Tensor) -> Tensor:
        (kh, kw), (h, w) = self.kernel_size, x.shape[-2:]
        if self.stride != self.kernel_size or self.padding != (0, 0) or h < kh or w < kw:
            return x.max_pool2d(self.kernel_size, self.stride, self.padding)
        oh, ow = h // kh, w // kw
        if (oh * kh, ow * kw) != (h, w):
            x = x[..., :oh * kh, :ow * kw]
        return x.reshape(x.shape[:-2] + (oh, kh, ow, kw)).amax((-3, -1))

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"

