"""Windowed operations built from movement ops only: sliding windows, conv2d and 2-D pooling.

``pool`` gives every window of the last k dims as extra axes without copying: the input is repeated,
cropped and reshaped so that row j of the repeated data starts d*j elements further in (dilation), then
every s-th column is kept (stride).  Gradients come for free from the movement ops' own.
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tg.frontend import deferred_checks
from tg.frontend.cross_entropy import class_index_cross_entropy
from tg.frontend.grad_mode import grad_enabled
from tg.frontend.matmul import MatMul
from tg.frontend.shapes import broadcast_shape
from tg.support.dtype import dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor
    from tg.graph.shapetracker import ShapeTracker


def _fuses(x: Tensor, other: Tensor) -> bool:
    """Whether ``other`` joins ``x`` in a fused matmul node: the same float dtype, the same device, no empty axis."""
    return x.dtype == other.dtype and x.dtype.is_float and x.device == other.device and 0 not in x.shape and \
        0 not in other.shape


def _pair(v: Any, name: str) -> tuple[int, int]:
    """``v`` (an int or a pair of ints) as a pair; strides, dilations and kernel sizes must be positive, paddings
    not negative (PyTorch's rules), each refused by name otherwise."""
    if isinstance(v, int) and not isinstance(v, bool):
        pair = (v, v)
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                              for x in v):
        pair = (int(v[0]), int(v[1]))
    else:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    lowest = 0 if name == "padding" else 1
    if min(pair) < lowest:
        raise ValueError(f"{name} must be {'non-negative' if lowest == 0 else 'positive'}, got {v!r}")
    return pair


def pool(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> Tensor:
    if x.requires_grad and grad_enabled():
        return _pool_ops(x, kernel, stride, dilation)
    # No autograd graph to record: the movement ops below make one view of x's base, whose tracker depends on x's
    # alone; it is remembered on x's tracker, and later calls make that one view (a Conv2d's patches, every step).
    lb = x.lazydata
    args = (tuple(kernel), tuple(stride), tuple(dilation))
    made: list[Tensor] = []

    def make() -> ShapeTracker:
        made.append(_pool_ops(x, *args))
        return made[0].lazydata.st

    st = lb.st.derived(("pool", *args), make)
    if made:
        return made[0]
    out = type(x)(lb._view(st), requires_grad=False)
    out._view = True  # as the permute that ends the ops makes it
    return out


def _pool_ops(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> Tensor:
    nd = len(kernel)
    prefix, spatial = x.shape[:-nd], x.shape[-nd:]
    keep = [(0, s) for s in prefix]
    outs = [(i - d * (k - 1) - 1) // s + 1 for i, k, s, d in zip(spatial, kernel, stride, dilation)]
    if any(o <= 0 for o in outs):
        raise ValueError(f"window {kernel} (dilation {dilation}) does not fit in the input's spatial size {spatial}")
    reps = [math.ceil(k * (i + d) / i) for k, i, d in zip(kernel, spatial, dilation)]
    xs = x.repeat([1] * len(prefix) + reps)
    xs = xs.shrink(keep + [(0, k * (i + d)) for k, i, d in zip(kernel, spatial, dilation)])
    xs = xs.reshape(prefix + tuple(v for k, i, d in zip(kernel, spatial, dilation) for v in (k, i + d)))
    pads = [(0, 0)] * len(prefix)
    for i, d, o, s in zip(spatial, dilation, outs, stride):
        pads += [(0, 0), (0, o * s - (i + d))]  # crop (or pad, never read) each row to o*s
    xs = xs.pad(pads)
    xs = xs.reshape(prefix + tuple(v for k, o, s in zip(kernel, outs, stride) for v in (k, o, s)))
    xs = xs.shrink(keep + [r for k, o in zip(kernel, outs) for r in ((0, k), (0, o), (0, 1))])
    xs = xs.reshape(prefix + tuple(v for k, o in zip(kernel, outs) for v in (k, o)))
    n = len(prefix)
    order = list(range(n)) + [n + 2 * i + 1 for i in range(nd)] + [n + 2 * i for i in range(nd)]
    return xs.permute(order)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, dilation: Any,
           groups: int) -> Tensor:
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d: input must be (N, C, H, W) and weight (O, C/groups, kH, kW), got {x.shape} "
                         f"and {weight.shape}")
    n, cin, _, _ = x.shape
    cout, cin_g, kh, kw = weight.shape
    if cin % groups or cout % groups or cin // groups != cin_g:
        raise ValueError(f"conv2d: input {x.shape} and weight {weight.shape} do not match with groups={groups} "
                         f"(need C = groups * weight.shape[1] and O divisible by groups)")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    xp = x.pad(((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = xp._pool((kh, kw), (sh, sw), (dh, dw))  # (N, C, oh, ow, kh, kw)
    oh, ow = windows.shape[2], windows.shape[3]
    g, og = groups, cout // groups
    windows = windows.reshape(n, g, 1, cin_g, oh, ow, kh, kw)
    w = weight.reshape(1, g, og, cin_g, 1, 1, kh, kw)
    out = (windows * w).sum((3, 6, 7)).reshape(n, cout, oh, ow)
    return out + bias.reshape(1, -1, 1, 1) if bias is not None else out


def _pool2d_windows(x: Tensor, kernel_size: Any, stride: Any, padding: Any, fill: float, dilation: Any = 1) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"2-D pooling needs at least 2 dimensions, got {x.shape}")
    k = _pair(kernel_size, "kernel_size")
    s = _pair(stride if stride is not None else kernel_size, "stride")
    p = _pair(padding, "padding")
    pads = [(0, 0)] * (x.ndim - 2) + [(p[0], p[0]), (p[1], p[1])]
    return x.pad(pads, value=fill)._pool(k, s, _pair(dilation, "dilation"))


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> Tensor:
    return _pool2d_windows(x, kernel_size, stride, padding, float("-inf"), dilation).amax((-2, -1))


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any, padding: Any) -> Tensor:
    return _pool2d_windows(x._float(), kernel_size, stride, padding, 0.0).mean((-2, -1))


class NNMixin:
    """Tensor's linear algebra and neural-network methods (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def dot(self: Tensor, w: Tensor) -> Tensor:
        return self.matmul(w)

    def matmul(self: Tensor, w: Tensor) -> Tensor:
        if not isinstance(w, type(self)):
            w = type(self)(w, device=self.device)
        if self.ndim == 0 or w.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got {self.shape} and {w.shape}")
        x = self.unsqueeze(0) if self.ndim == 1 else self
        y = w.unsqueeze(-1) if w.ndim == 1 else w
        if x.shape[-1] != y.shape[-2]:
            raise ValueError(f"matmul: shapes {self.shape} and {w.shape} are not aligned "
                             f"({x.shape[-1]} != {y.shape[-2]})")
        if w.ndim == 2 and self.ndim >= 2 and _fuses(self, w):
            return MatMul.apply(self, w)  # (one autograd node: tg.frontend.matmul)
        try:
            batch = broadcast_shape("matmul", x.shape[:-2], y.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: the batch dimensions of {self.shape} and {w.shape} cannot be broadcast "
                             "together") from None
        m, k, n = x.shape[-2], x.shape[-1], y.shape[-1]
        xb = x._expand_to(batch + (m, k)).reshape(batch + (m, 1, k))
        yb = y._expand_to(batch + (k, n)).transpose(-1, -2).reshape(batch + (1, n, k))
        xb, yb = xb._broadcasted(yb, op="matmul")
        out = (xb * yb).sum(-1)
        if self.ndim == 1:
            out = out.squeeze(-2)
        if w.ndim == 1:
            out = out.squeeze(-1)
        return out

    def linear(self: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        if isinstance(weight, type(self)) and weight.ndim == 2 and self.ndim >= 2 and \
                self.shape[-1] == weight.shape[1] and _fuses(self, weight) and \
                (bias is None or (isinstance(bias, type(self)) and bias.shape == weight.shape[:1] and
                                  _fuses(self, bias))):
            parts = (self, weight) if bias is None else (self, weight, bias)
            return MatMul.apply(*parts, transposed=True)  # (one autograd node: tg.frontend.matmul)
        out = self @ weight.T
        return out + bias if bias is not None else out

    def _pool(self: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> Tensor:
        """Sliding windows over the last len(kernel) dims: (..., out_1..out_k, k_1..k_k), without copies."""
        return pool(self, kernel, stride, dilation)

    def conv2d(self: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, groups: int = 1) -> Tensor:
        return conv2d(self, weight, bias, stride, padding, dilation, groups)

    def max_pool2d(self: Tensor, kernel_size: Any = 2, stride: Any = None, padding: Any = 0,
                   dilation: Any = 1) -> Tensor:
        return max_pool2d(self, kernel_size, stride, padding, dilation)

    def avg_pool2d(self: Tensor, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> Tensor:
        return avg_pool2d(self, kernel_size, stride, padding)

    def layernorm(self: Tensor, axis: int = -1, eps: float = 1e-5) -> Tensor:
        x = self._float()
        centered = x - x.mean(axis, keepdim=True)
        return centered * ((centered * centered).mean(axis, keepdim=True) + eps).rsqrt()

    def batchnorm(self: Tensor, weight: Tensor | None, bias: Tensor | None, mean: Tensor, invstd: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (self.ndim - 2)
        x = self - mean.reshape(shape)
        if weight is not None:
            x = x * weight.reshape(shape)
        x = x * invstd.reshape(shape)
        return x + bias.reshape(shape) if bias is not None else x

    def dropout(self: Tensor, p: float = 0.5) -> Tensor:
        if not 0 <= p < 1:
            raise ValueError(f"dropout: p must be in [0, 1), got {p}")
        if not type(self).training or p == 0:
            return self
        return self._dropout(p)

    def _dropout(self: Tensor, p: float) -> Tensor:
        """Dropout whatever ``Tensor.training`` says (nn.Dropout decides by its own flag)."""
        keep = type(self).rand(*self.shape, device=self.device) >= p
        return keep.where(self * (1 / (1 - p)), 0.0)

    def one_hot(self: Tensor, num_classes: int) -> Tensor:
        if self.dtype.is_float:
            raise TypeError(f"one_hot needs integer class indices, got {self.dtype.name}")
        deferred_checks.defer_class_check((self < 0) | (self >= num_classes), num_classes)
        classes = type(self).arange(num_classes, device=self.device)
        return (self.unsqueeze(-1) == classes).cast(dtypes.int32)

    def cross_entropy(self: Tensor, target: Tensor, label_smoothing: float = 0.0) -> Tensor:
        if self.ndim != 2 or target.ndim != 1 or target.shape[0] != self.shape[0]:
            raise ValueError(f"cross_entropy: logits must be (N, C) and targets (N,), got {self.shape} "
                             f"and {target.shape}")
        if not label_smoothing and not target.dtype.is_float:
            fused = class_index_cross_entropy(self, target, None, "mean")
            if fused is not None:
                return fused
        logp = self.log_softmax(-1)
        onehot = target.one_hot(self.shape[1]).cast(logp.dtype)
        if label_smoothing:
            onehot = onehot * (1 - label_smoothing) + label_smoothing / self.shape[1]
        return -(logp * onehot).sum(-1).mean()

    def binary_cross_entropy(self: Tensor, target: Tensor) -> Tensor:
        p = self._float()
        log_p = p.log().maximum(-100.0)
        log_1mp = (1 - p).log().maximum(-100.0)
        return -(target * log_p + (1 - target) * log_1mp).mean()
