"""tg.nn.functional: PyTorch's functional API (``import tg.nn.functional as F``), same names, signatures, defaults.

Most functions are thin wrappers over Tensor methods; the losses live in :mod:`tg.nn.losses` and are re-exported
here.  Options PyTorch has that tg does not implement (``ceil_mode``, ``return_indices``, ``max_norm``, padding
modes other than ``"constant"``...) raise NotImplementedError naming the option, never silently differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tg.frontend.grad_mode import no_grad
from tg.frontend.tensor import Tensor
from tg.nn.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
)

__all__ = ["adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "conv2d", "cross_entropy", "dropout", "embedding", "gelu", "group_norm",
           "l1_loss", "layer_norm", "linear", "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "normalize",
           "one_hot", "pad", "relu", "scaled_dot_product_attention", "sigmoid", "silu", "softmax", "tanh"]


def _unsupported(what: str, option: str) -> NotImplementedError:
    return NotImplementedError(f"{what}: {option} is not implemented in tg; leave it at its default")


def _inplace(input: Tensor, fn: Callable[[Tensor], Tensor], inplace: bool, what: str) -> Tensor:
    """``fn(input)``; with ``inplace=True`` written into ``input`` (same object), under the rules of ``x op= y``
    (refused for a leaf that requires grad while gradients are recorded)."""
    if not inplace:
        return fn(input)
    return input._update("", lambda x, _: fn(x), None, f"{what}_", instead="pass inplace=False")


# -- activations --------------------------------------------------------------------------------------------------

def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return _inplace(input, Tensor.relu, inplace, "relu")


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) with the exact normal CDF (``approximate="none"``) or PyTorch's tanh approximation."""
    if approximate == "tanh":
        return input.gelu()
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = input._float()
    return 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf())


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    return _inplace(input, Tensor.silu, inplace, "silu")


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def _softmax_dim(dim: int | None, what: str) -> int:
    if dim is None:
        raise TypeError(f"{what}() needs dim= (PyTorch's implicit choice of dim is deprecated): e.g. "
                        f"{what}(x, dim=-1)")
    return dim


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    return input.softmax(_softmax_dim(dim, "softmax"), dtype=dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    return input.log_softmax(_softmax_dim(dim, "log_softmax"), dtype=dtype)


# -- layers ---------------------------------------------------------------------------------------------------------

def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias, with weight (out_features, in_features)."""
    return input.linear(weight, bias)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) of (N, C, H, W); ``padding`` may also be ``"valid"`` or ``"same"``."""
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if stride not in (1, (1, 1), [1, 1]):
            raise ValueError("conv2d: padding='same' needs stride 1, as in PyTorch")
        dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
        th, tw = dh * (weight.shape[2] - 1), dw * (weight.shape[3] - 1)  # total padding; the odd one goes after
        input = input.pad((tw // 2, tw - tw // 2, th // 2, th - th // 2))
        padding = 0
    return input.conv2d(weight, bias, stride, padding, dilation, groups)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    if ceil_mode:
        raise _unsupported("max_pool2d", "ceil_mode=True")
    if return_indices:
        raise _unsupported("max_pool2d", "return_indices=True")
    return input.max_pool2d(kernel_size, stride, padding, dilation)


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean of each window; padding counts as zeros unless ``count_include_pad=False``."""
    if ceil_mode:
        raise _unsupported("avg_pool2d", "ceil_mode=True")
    if divisor_override is None and (count_include_pad or padding in (0, (0, 0))):
        return input.avg_pool2d(kernel_size, stride, padding)
    x = input._float()
    sums = _window_sum(x, kernel_size, stride, padding)
    if divisor_override is not None:
        return sums / divisor_override
    counts = _window_sum(Tensor.ones(*x.shape[-2:], device=x.device), kernel_size, stride, padding)
    return sums / counts


def _window_sum(x: Tensor, kernel_size: Any, stride: Any, padding: Any) -> Tensor:
    k = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size, kernel_size)
    return x.avg_pool2d(kernel_size, stride, padding) * (k[0] * k[1])


def _bins(size: int, out: int) -> np.ndarray:
    """(out, size) averaging matrix of adaptive pooling: row i averages [floor(i*size/out), ceil((i+1)*size/out))."""
    m = np.zeros((out, size), dtype=np.float32)
    for i in range(out):
        lo, hi = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_avg_pool2d(input: Tensor, output_size: int | Sequence[int | None]) -> Tensor:
    """Average over the bins PyTorch uses, giving spatial size ``output_size`` (None keeps that input size)."""
    if input.ndim not in (3, 4):
        raise ValueError(f"adaptive_avg_pool2d: input must be (N, C, H, W) or (C, H, W), got {input.shape}")
    h, w = input.shape[-2:]
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    oh, ow = oh if oh is not None else h, ow if ow is not None else w
    x = input._float()
    if h % oh == 0 and w % ow == 0:  # equal bins: a reshape and a mean
        return x.reshape(x.shape[:-2] + (oh, h // oh, ow, w // ow)).mean((-3, -1))
    rows = Tensor(_bins(h, oh), dtype=x.dtype, device=x.device)
    cols = Tensor(_bins(w, ow).T, dtype=x.dtype, device=x.device)
    return rows @ x @ cols


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each value with probability ``p`` and scale the rest by 1/(1-p), when ``training`` (default True)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    return _inplace(input, (lambda x: x * 0) if p == 1 else (lambda x: x._dropout(p)), inplace, "dropout")


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` picked by the integer ids ``input``; the ``padding_idx`` row gets no gradient."""
    if max_norm is not None:
        raise _unsupported("embedding", "max_norm")
    if scale_grad_by_freq or sparse:
        raise _unsupported("embedding", "scale_grad_by_freq" if scale_grad_by_freq else "sparse")
    if input.dtype.is_float or input.dtype.name == "bool":
        raise TypeError(f"embedding needs integer ids, got {input.dtype.name}")
    rows = weight[input]
    if padding_idx is None:
        return rows
    return (input != padding_idx).unsqueeze(-1).where(rows, weight.detach()[input])


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """(..., num_classes) int32 one-hot rows (PyTorch gives int64); ``num_classes=-1`` takes max + 1 (reads data)."""
    if num_classes == -1:
        num_classes = int(tensor.max().item()) + 1 if tensor.numel() else 0
    return tensor.one_hot(num_classes)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """PyTorch's flat padding ``(last_before, last_after, second_last_before, ...)``; negative amounts crop."""
    if mode != "constant":
        raise _unsupported("pad", f"mode={mode!r} (only 'constant')")
    return input.pad(tuple(pad), value=0.0 if value is None else value)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """``input / max(||input||_p over dim, eps)``."""
    x = input._float()
    norm = (x * x).sum(dim, keepdim=True).sqrt() if p == 2 else (x.abs() ** p).sum(dim, keepdim=True) ** (1 / p)
    return x / norm.clamp(min=eps)


# -- normalization --------------------------------------------------------------------------------------------------

def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    if weight is not None:
        y = y * weight.reshape(shape)
    return y + bias.reshape(shape) if bias is not None else y


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize over the last ``len(normalized_shape)`` dims, then scale by ``weight`` and shift by ``bias``."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if input.shape[input.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: the input's last dims must be {shape}, got shape {input.shape}")
    x = input._float()
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    centered = x - x.mean(dims, keepdim=True)
    y = centered * ((centered * centered).mean(dims, keepdim=True) + eps).rsqrt()
    return _affine(y, weight, bias, shape)


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Normalize each channel (dim 1) of (N, C, ...): by the batch's statistics when ``training`` (and update the
    running ones in place, with the unbiased variance, as PyTorch does), else by ``running_mean``/``running_var``."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, ...), got shape {input.shape}")
    x = input._float()
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: training=False needs running_mean and running_var")
        y = (x - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
        return _affine(y, weight, bias, shape)
    dims = (0, *range(2, x.ndim))
    count = x.numel() // x.shape[1]
    if count < 2:
        raise ValueError(f"batch_norm: training needs more than one value per channel, got shape {input.shape}")
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dims, keepdim=True)
    with no_grad():
        if running_mean is not None:
            running_mean.assign((1 - momentum) * running_mean + momentum * mean.detach().reshape(-1)).realize()
        if running_var is not None:
            unbiased = var.detach().reshape(-1) * (count / (count - 1))
            running_var.assign((1 - momentum) * running_var + momentum * unbiased).realize()
    return _affine(centered * (var + eps).rsqrt(), weight, bias, shape)


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalize each group of ``C / num_groups`` channels of (N, C, ...) over its channels and positions."""
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise ValueError(f"group_norm: input (N, C, ...) needs C divisible by num_groups={num_groups}, "
                         f"got shape {input.shape}")
    x = input._float()
    grouped = x.reshape(x.shape[0], num_groups, -1)
    centered = grouped - grouped.mean(-1, keepdim=True)
    y = (centered * ((centered * centered).mean(-1, keepdim=True) + eps).rsqrt()).reshape(x.shape)
    return _affine(y, weight, bias, (1, -1) + (1,) * (x.ndim - 2))


# -- attention ------------------------------------------------------------------------------------------------------

def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(q @ k^T * scale + mask) @ v over (..., L, E) queries and (..., S, E) keys.

    ``attn_mask`` is a bool mask (True: may attend) or a float one (added to the scores), broadcast to (..., L, S);
    ``is_causal`` lets query i attend to keys 0..i (a mask aligned at the top left, as in PyTorch).  A query that
    may attend to nothing gives NaN, as in PyTorch.  ``enable_gqa`` lets several query heads share one key head."""
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal, not both")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        heads, kv_heads = query.shape[-3], key.shape[-3]
        if heads % kv_heads:
            raise ValueError(f"scaled_dot_product_attention: {heads} query heads cannot share {kv_heads} key heads")
        key, value = (_repeat_heads(t, heads // kv_heads) for t in (key, value))
    length, source = query.shape[-2], key.shape[-2]
    scores = (query @ key.transpose(-2, -1)) * (scale if scale is not None else 1 / math.sqrt(query.shape[-1]))
    if is_causal:
        attn_mask = Tensor(np.tril(np.ones((length, source), dtype=np.bool_)), device=query.device)
    if attn_mask is not None:
        scores = attn_mask.where(scores, float("-inf")) if attn_mask.dtype.name == "bool" else scores + attn_mask
    weights = scores.softmax(-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    return weights @ value


def _repeat_heads(t: Tensor, times: int) -> Tensor:
    """(..., H, S, E) -> (..., H * times, S, E), each head repeated ``times`` times in a row."""
    lead, (h, s, e) = t.shape[:-3], t.shape[-3:]
    return t.unsqueeze(-3).expand(*lead, h, times, s, e).reshape(*lead, h * times, s, e)
