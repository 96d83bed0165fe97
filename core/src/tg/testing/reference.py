"""Numpy reference implementations (the oracle) of the NN functions the kit checks tg against.

Written for clarity, not speed, and meant to be called on float64 arrays.  Conventions follow PyTorch:
NCHW images, (out, in/groups, kh, kw) conv weights, pooling without ceil mode, average pooling that
counts padded zeros (``count_include_pad=True``), tanh-approximated GELU.
"""

from __future__ import annotations

import math

import numpy as np

IntPair = int | tuple[int, int]


def pair(v: IntPair) -> tuple[int, int]:
    """``3 -> (3, 3)``; a pair stays a pair."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x: np.ndarray) -> np.ndarray:
    return x * sigmoid(x)


def leaky_relu(x: np.ndarray, neg_slope: float = 0.01) -> np.ndarray:
    return np.where(x > 0, x, x * neg_slope)


def logsumexp(x: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x - logsumexp(x, axis=axis, keepdims=True)


def layernorm(x: np.ndarray, axis: int | tuple[int, ...] = -1, eps: float = 1e-5) -> np.ndarray:
    mean = np.mean(x, axis=axis, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axis, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def batchnorm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, mean: np.ndarray,
              invstd: np.ndarray) -> np.ndarray:
    """``(x - mean) * weight * invstd + bias``, the (C,) parameters broadcast over channel dim 1."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return ((x - mean.reshape(shape)) * weight.reshape(shape) * invstd.reshape(shape) + bias.reshape(shape))


def cross_entropy(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean over the batch of -log_softmax(logits)[i, target[i]]; logits (N, C), integer target (N,)."""
    lsm = log_softmax(logits, axis=1)
    return -np.mean(lsm[np.arange(logits.shape[0]), target.astype(np.int64)])


def binary_cross_entropy(p: np.ndarray, target: np.ndarray) -> np.ndarray:
    return -np.mean(target * np.log(p) + (1.0 - target) * np.log(1.0 - p))


def one_hot(idx: np.ndarray, num_classes: int) -> np.ndarray:
    return (idx.astype(np.int64)[..., None] == np.arange(num_classes)).astype(np.int64)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1, groups: int = 1) -> np.ndarray:
    """2-D cross-correlation like ``torch.nn.functional.conv2d``: x (N, C, H, W), w (O, C/groups, KH, KW)."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n, c, h, wid = x.shape
    o, cg, kh, kw = w.shape
    assert c == cg * groups and o % groups == 0, "channels do not match groups"
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wid + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, o, oh, ow), dtype=np.result_type(x, w))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _windows(x: np.ndarray, kernel: IntPair, stride: IntPair | None, padding: IntPair,
             fill: float) -> np.ndarray:
    (kh, kw) = pair(kernel)
    (sh, sw) = pair(kernel if stride is None else stride)
    (ph, pw) = pair(padding)
    xp = np.pad(x, ((0, 0),) * (x.ndim - 2) + ((ph, ph), (pw, pw)), constant_values=fill)
    oh = (xp.shape[-2] - kh) // sh + 1
    ow = (xp.shape[-1] - kw) // sw + 1
    views = [xp[..., i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] for i in range(kh) for j in range(kw)]
    return np.stack(views, axis=-1)


def max_pool2d(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> np.ndarray:
    """Max pooling over the last two dims; padding is -inf (never chosen); stride defaults to the kernel."""
    return _windows(x, kernel_size, stride, padding, -np.inf).max(axis=-1)


def avg_pool2d(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> np.ndarray:
    """Average pooling over the last two dims; padded zeros count in the average (PyTorch's default)."""
    return _windows(x, kernel_size, stride, padding, 0.0).mean(axis=-1)
