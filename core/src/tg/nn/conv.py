"""Conv2d, computed as one matrix product over image patches (im2col), laid out for fast gradients.

The patches of every output position are gathered into a buffer of shape (N*OH*OW, KH*KW*C), tap-major: each
row is KH*KW runs of the C channels, so that the gather's innermost dim is long (C) and the padding masks depend
only on the row and the tap (a channel-minor layout made a CPU gather divide every element's index by KH*KW);
the output is that matrix times the weight flattened in the same order.  The patches are one autograd node
(``_Patches``): a copy of ``Tensor._pool``'s movement-only window view going forward, the sum of the taps'
spread-out gradients going back (kh*kw slices and a stack built ~140 nodes per layer; measured against
``Tensor.conv2d``'s single reduction, this path is faster on clang and numpy for the MNIST-1D and digits CNNs).
The product is one autograd node too (``_PatchProduct``): the weight's gradient is a sum over all N*OH*OW
positions, split into two reductions (a group of images, then the groups), because a backend that loops over a
reduction serially (numpy, emulators) would otherwise walk thousands of terms for each of a few outputs.
Grouped convolutions use ``Tensor.conv2d``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from tg.frontend.function import Function, sum_accumulated
from tg.frontend.tensor import Tensor
from tg.graph.lazy import LazyBuffer
from tg.graph.shapetracker import ShapeTracker
from tg.nn import init
from tg.nn.grad import materialize_grad
from tg.nn.module import Module
from tg.support.dtype import promote
from tg.support.ops import Ops


def pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return (int(v[0]), int(v[1]))
    raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")


def _split(n: int) -> int:
    """The largest divisor of ``n`` that is at most sqrt(n)."""
    return max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)


def _unstride(g: LazyBuffer, axis: int, stride: int, offset: int, length: int) -> LazyBuffer:
    """Spread ``g``'s ``axis`` (length o) to positions offset, offset + stride, ... of a zero axis of ``length``."""
    shape = g.shape
    o = shape[axis]
    none = ((0, 0),) * axis
    if stride > 1:
        g = g.reshape(shape[:axis] + (o, 1) + shape[axis + 1:])
        g = g.pad(none + ((0, 0), (0, stride - 1)) + ((0, 0),) * (len(shape) - axis - 1))
        g = g.reshape(shape[:axis] + (o * stride,) + shape[axis + 1:])
        g = g.shrink(tuple((0, s) for s in shape[:axis]) + ((0, stride * (o - 1) + 1),)
                     + tuple((0, s) for s in shape[axis + 1:]))
    span = stride * (o - 1) + 1
    return g.pad(none + ((offset, length - offset - span),) + ((0, 0),) * (len(shape) - axis - 1))


class _Patches(Function):
    """(N, C, H, W) -> (N, OH, OW, KH*KW, C), one autograd node: forward copies a movement-only window view
    (``Tensor._pool``) of the zero-padded input; backward adds each tap's gradient, spread back to the input
    positions it was read from (one fused elementwise kernel, as the gradient of kh*kw slices would be)."""

    def forward(self, x: LazyBuffer, kernel: tuple[int, int] = (1, 1), stride: tuple[int, int] = (1, 1),
                padding: tuple[int, int] = (0, 0), dilation: tuple[int, int] = (1, 1),
                out: tuple[int, int] = (1, 1)) -> LazyBuffer:
        (kh, kw), (ph, pw), (oh, ow) = kernel, padding, out
        n, c, h, w = self.in_shape = x.shape
        self.args = (kernel, stride, padding, dilation, out)
        xp = Tensor(x)  # no gradient: this node's backward is written below
        if ph or pw:
            xp = xp.pad(((0, 0), (0, 0), (ph, ph), (pw, pw)))
        windows = xp._pool(kernel, stride, dilation)  # (N, C, OH, OW, KH, KW), a view
        return windows.permute(0, 2, 3, 4, 5, 1).reshape(n, oh, ow, kh * kw, c).lazydata.contiguous()

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        (kh, kw), _, (ph, pw), _, _ = self.args
        n, c, h, w = self.in_shape
        total: LazyBuffer | None = None
        for i in range(kh):
            for j in range(kw):
                # a tap is a view of grad: its tracker is remembered on grad's, so later steps make one view
                st = grad.st.derived(("patches tap", self.args, self.in_shape, i, j), partial(self._tap, grad, i, j))
                tap = grad._view(st)
                total = tap if total is None else total.alu(Ops.ADD, tap)
        assert total is not None
        return total.shrink(((0, n), (0, c), (ph, ph + h), (pw, pw + w))) if ph or pw else total

    def _tap(self, grad: LazyBuffer, i: int, j: int) -> ShapeTracker:
        """The view of ``grad`` that is tap (i, j)'s gradient spread back to the (padded) input positions it was read
        from (movement ops only: a tracker over grad's base)."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = self.args
        n, c, h, w = self.in_shape
        t = i * kw + j
        tap = grad.shrink(((0, n), (0, oh), (0, ow), (t, t + 1), (0, c))).reshape((n, oh, ow, c))
        return _unstride(_unstride(tap.permute((0, 3, 1, 2)), 2, sh, i * dh, h + 2 * ph), 3, sw, j * dw,
                         w + 2 * pw).st


def patches(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
            dilation: tuple[int, int]) -> Tensor:
    """(N, C, H, W) -> (N, OH, OW, KH*KW, C): the input window of every output position, tap by tap."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    h, w = x.shape[2:]
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"Conv2d: kernel {kernel} (dilation {dilation}, padding {padding}) does not fit in an "
                         f"input of spatial size {(h, w)}")
    return _Patches.apply(x, kernel=kernel, stride=stride, padding=padding, dilation=dilation, out=(oh, ow))


class _PatchProduct(Function):
    """(N, OH, OW, K) patches times the (O, K) weight, transposed -> (N*OH*OW, O), one autograd node.

    Going back, the patches' gradient is the output gradient times the weight over flat rows, and the weight's is
    a sum over all rows in two stages split along the batch (``a`` groups of N/a images, see :func:`_split`): the
    first reduces a group's images and output positions as loops of their own, so that an output gradient laid out
    (N, O, OH, OW) is read without dividing a flat row index by OW at every step (a batch without such a divisor
    splits the flat rows instead)."""

    def forward(self, x: LazyBuffer, w: LazyBuffer) -> LazyBuffer:
        self.x, self.w = x, w
        n, oh, ow, k = x.shape
        m, o = n * oh * ow, w.shape[0]
        full = (m, o, k)
        return sum_accumulated(x.reshape((m, 1, k)).expand(full).alu(Ops.MUL, w.reshape((1, o, k)).expand(full)),
                    (2,)).reshape((m, o))

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, LazyBuffer | None]:
        x, w = self.x, self.w
        n, oh, ow, k = x.shape
        m, o = n * oh * ow, w.shape[0]
        dx = dw = None
        if self.needs_input_grad[0]:
            full = (m, o, k)
            dx = sum_accumulated(grad.reshape((m, o, 1)).expand(full).alu(Ops.MUL, w.reshape((1, o, k)).expand(full)),
                      (1,)).reshape(x.shape)
        if self.needs_input_grad[1]:
            a = _split(n)
            groups = (a, n // a, oh, ow) if a > 1 else (_split(m), m // _split(m))
            inner = tuple(range(1, len(groups)))
            if k >= o:  # the patches' columns innermost: what a row of the partial sums reads is contiguous
                full = (*groups, o, k)
                g = grad.reshape((*groups, o, 1)).expand(full)
                partial = sum_accumulated(g.alu(Ops.MUL, x.reshape((*groups, 1, k)).expand(full)), inner)
                dw = sum_accumulated(partial, (0,)).reshape((o, k))
            else:  # few columns (a first layer's C*KH*KW): the output channels innermost, as long rows
                full = (*groups, k, o)
                g = grad.reshape((*groups, 1, o)).expand(full)
                partial = sum_accumulated(g.alu(Ops.MUL, x.reshape((*groups, k, 1)).expand(full)), inner)
                dw = sum_accumulated(partial, (0,)).reshape((k, o)).permute((1, 0))
        return dx, dw


def matmul_patches(cols: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """(N, OH, OW, K) patches times the (O, K) weight, transposed, plus bias -> (N, OH, OW, O)."""
    n, oh, ow, _ = cols.shape
    o = weight.shape[0]
    if cols.dtype != weight.dtype:  # promoted as ``cols * weight`` would be (the node multiplies LazyBuffers)
        common = promote(cols.dtype, weight.dtype)
        cols, weight = cols.cast(common), weight.cast(common)
    out = _PatchProduct.apply(cols, weight)
    m = n * oh * ow
    if bias is not None:  # its gradient sums over a groups of m/a rows, then over the groups
        a = _split(m)
        out = (out.reshape(a, m // a, o) + bias.reshape(1, 1, o).expand(a, 1, o)).reshape(m, o)
    return materialize_grad(out).reshape(n, oh, ow, o)


class Conv2d(Module):
    """2-D convolution over (N, C, H, W): ``weight`` is (out_channels, in_channels // groups, KH, KW)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device: str | None = None, dtype: Any = None):
        if padding_mode != "zeros":
            raise NotImplementedError(f"Conv2d: padding_mode={padding_mode!r} is not implemented in tg (only 'zeros')")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                             f"divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride, self.dilation = pair(stride, "stride"), pair(dilation, "dilation")
        #: (top, bottom, left, right) zeros around the input; ``padding`` keeps what was given ("same" stays "same")
        self._pads = self._padding_amounts(padding)
        self.padding: Any = padding if isinstance(padding, str) else pair(padding, "padding")
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        self.weight = init.kaiming_uniform(out_channels, in_channels // groups, *self.kernel_size, fan_in=fan_in)
        self.bias = init.uniform(out_channels, bound=init.fan_in_bound(fan_in)) if bias else None
        self._place(device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d({self.in_channels}, {self.out_channels}): input must be "
                             f"(N, {self.in_channels}, H, W), got shape {x.shape}")
        top, bottom, left, right = self._pads
        if (top, left) != (bottom, right):  # padding="same" with an even kernel: the extra zero goes after
            x = x.pad((left, right, top, bottom))
            top = bottom = left = right = 0
        if self.groups != 1:
            return x.conv2d(self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        cols = patches(x, self.kernel_size, self.stride, (top, left), self.dilation)
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)  # (O, KH*KW*C), as the patches
        out = matmul_patches(cols.reshape(*cols.shape[:3], -1), weight, self.bias)
        return out.permute(0, 3, 1, 2)

    def _padding_amounts(self, padding: Any) -> tuple[int, int, int, int]:
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if self.stride != (1, 1):
                raise ValueError("Conv2d: padding='same' needs stride 1, as in PyTorch")
            (kh, kw), (dh, dw) = self.kernel_size, self.dilation
            th, tw = dh * (kh - 1), dw * (kw - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        if isinstance(padding, str):
            raise ValueError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
        ph, pw = pair(padding, "padding")
        return (ph, ph, pw, pw)

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")
