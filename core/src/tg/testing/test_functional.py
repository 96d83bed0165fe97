"""tg.nn.functional against numpy: activations, layers, pooling, normalization and attention (losses are in
:mod:`tg.testing.test_losses`).  References are written in numpy here; gradients by finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tg.nn.functional as F
from tg import Tensor
from tg.testing import assert_close, check_grad, random_array, tensor

_erf = np.vectorize(math.erf)


def _np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_activations(rng: np.random.Generator) -> None:
    a = random_array((3, 5), rng=rng, low=-3, high=3)
    x, t = a.astype(np.float64), tensor(a)
    assert_close(F.relu(t), np.maximum(x, 0))
    assert_close(F.gelu(t), 0.5 * x * (1 + _erf(x / math.sqrt(2))))
    assert_close(F.gelu(t, approximate="tanh"), 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))))
    assert_close(F.silu(t), x / (1 + np.exp(-x)))
    assert_close(F.sigmoid(t), 1 / (1 + np.exp(-x)))
    assert_close(F.tanh(t), np.tanh(x))
    assert_close(F.softmax(t, dim=0), _np_softmax(x, 0))
    assert_close(F.log_softmax(t, dim=-1), np.log(_np_softmax(x, -1)))
    with pytest.raises(TypeError, match="needs dim="):
        F.softmax(t)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(t, approximate="fast")


def test_activation_gradients(rng: np.random.Generator) -> None:
    a = random_array((2, 4), rng=rng, low=-3, high=3)
    check_grad(F.gelu, lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), [a], rng)
    check_grad(F.silu, lambda x: x / (1 + np.exp(-x)), [a], rng)


def test_relu_inplace() -> None:
    t = Tensor([-1.0, 2.0])
    out = F.relu(t, inplace=True)
    assert out is t and t.numpy().tolist() == [0.0, 2.0]
    with pytest.raises(RuntimeError, match="inplace=False"):
        F.relu(Tensor([1.0], requires_grad=True), inplace=True)


def _np_conv2d(x: np.ndarray, w: np.ndarray, pads: tuple[int, int, int, int], dilation: int = 1) -> np.ndarray:
    """Cross-correlation with stride 1; pads = (top, bottom, left, right)."""
    x = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = h - dilation * (kh - 1), wd - dilation * (kw - 1)
    out = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i * dilation:i * dilation + oh, j * dilation:j * dilation + ow]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def test_linear_and_conv2d(rng: np.random.Generator) -> None:
    a, w, b = random_array((4, 3), rng=rng), random_array((2, 3), rng=rng), random_array((2,), rng=rng)
    assert_close(F.linear(tensor(a), tensor(w), tensor(b)), a.astype(np.float64) @ w.T + b)
    assert_close(F.linear(tensor(a), tensor(w)), a.astype(np.float64) @ w.T)
    x, k3, k2 = random_array((1, 2, 5, 6), rng=rng), random_array((3, 2, 3, 3), rng=rng), random_array((3, 2, 2, 2),
                                                                                                        rng=rng)
    x64 = x.astype(np.float64)
    assert_close(F.conv2d(tensor(x), tensor(k3), padding=1), _np_conv2d(x64, k3, (1, 1, 1, 1)), scale=4)
    assert_close(F.conv2d(tensor(x), tensor(k3), padding="same"), _np_conv2d(x64, k3, (1, 1, 1, 1)), scale=4)
    assert_close(F.conv2d(tensor(x), tensor(k2), padding="same"), _np_conv2d(x64, k2, (0, 1, 0, 1)), scale=4)
    assert_close(F.conv2d(tensor(x), tensor(k2), padding="same", dilation=2), _np_conv2d(x64, k2, (1, 1, 1, 1), 2),
                 scale=4)
    assert_close(F.conv2d(tensor(x), tensor(k3), padding="valid"), _np_conv2d(x64, k3, (0, 0, 0, 0)), scale=4)


def _np_windows(x: np.ndarray, k: int, s: int, p: int, d: int, fill: float) -> np.ndarray:
    """(..., oh, ow, k*k) windows of the last two dims."""
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)], constant_values=fill)
    h, w = xp.shape[-2:]
    oh, ow = (h - d * (k - 1) - 1) // s + 1, (w - d * (k - 1) - 1) // s + 1
    out = np.zeros(x.shape[:-2] + (oh, ow, k * k))
    for i in range(oh):
        for j in range(ow):
            win = xp[..., i * s:i * s + d * (k - 1) + 1:d, j * s:j * s + d * (k - 1) + 1:d]
            out[..., i, j, :] = win.reshape(win.shape[:-2] + (-1,))
    return out


def test_pooling(rng: np.random.Generator) -> None:
    a = random_array((1, 2, 6, 7), rng=rng)
    x, t = a.astype(np.float64), tensor(a)
    assert_close(F.max_pool2d(t, 2), _np_windows(x, 2, 2, 0, 1, -np.inf).max(-1))
    assert_close(F.max_pool2d(t, 3, stride=1, padding=1, dilation=2), _np_windows(x, 3, 1, 1, 2, -np.inf).max(-1))
    assert_close(F.avg_pool2d(t, 3, stride=2, padding=1), _np_windows(x, 3, 2, 1, 1, 0.0).mean(-1))
    counts = _np_windows(np.ones_like(x), 3, 2, 1, 1, 0.0).sum(-1)
    assert_close(F.avg_pool2d(t, 3, stride=2, padding=1, count_include_pad=False),
                 _np_windows(x, 3, 2, 1, 1, 0.0).sum(-1) / counts)
    assert_close(F.avg_pool2d(t, 2, divisor_override=3), _np_windows(x, 2, 2, 0, 1, 0.0).sum(-1) / 3)
    with pytest.raises(NotImplementedError, match="ceil_mode"):
        F.max_pool2d(t, 2, ceil_mode=True)


def _np_adaptive(x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, r1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
            c0, c1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            out[..., i, j] = x[..., r0:r1, c0:c1].mean(axis=(-2, -1))
    return out


def test_adaptive_avg_pool2d(rng: np.random.Generator) -> None:
    a = random_array((2, 3, 5, 7), rng=rng)
    x, t = a.astype(np.float64), tensor(a)
    assert_close(F.adaptive_avg_pool2d(t, (3, 2)), _np_adaptive(x, 3, 2))
    assert_close(F.adaptive_avg_pool2d(t, 1), x.mean(axis=(-2, -1), keepdims=True))
    assert_close(F.adaptive_avg_pool2d(t, (None, 4)), _np_adaptive(x, 5, 4))
    check_grad(lambda v: F.adaptive_avg_pool2d(v, (2, 3)), lambda v: _np_adaptive(v, 2, 3), [a[:1, :1]], rng)


def test_dropout() -> None:
    Tensor.manual_seed(0)
    t = Tensor.ones(2000)
    assert F.dropout(t, 0.5, training=False) is t
    out = F.dropout(t, 0.25).numpy()
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1 / 0.75, rtol=1e-6)
    assert 0.18 < (out == 0).mean() < 0.32
    assert F.dropout(t, 1.0).numpy().max() == 0.0
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        F.dropout(t, 1.5)


def test_embedding_one_hot_pad() -> None:
    weight = Tensor(np.arange(12, dtype=np.float32).reshape(4, 3), requires_grad=True)
    ids = Tensor([[0, 2], [2, 1]])
    out = F.embedding(ids, weight, padding_idx=2)
    np.testing.assert_array_equal(out.numpy(), np.arange(12).reshape(4, 3)[[[0, 2], [2, 1]]])
    out.sum().backward()
    assert weight.grad is not None
    np.testing.assert_array_equal(weight.grad.numpy(), [[1] * 3, [1] * 3, [0] * 3, [0] * 3])  # padding row: no grad
    np.testing.assert_array_equal(F.one_hot(Tensor([1, 3])).numpy(), np.eye(4)[[1, 3]])
    np.testing.assert_array_equal(F.one_hot(Tensor([1]), num_classes=3).numpy(), [[0, 1, 0]])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(F.pad(Tensor(x), (1, 0, 0, 2), value=-1).numpy(),
                                  np.pad(x, ((0, 2), (1, 0)), constant_values=-1))
    with pytest.raises(NotImplementedError, match="reflect"):
        F.pad(Tensor(x), (1, 1), mode="reflect")


def test_normalize(rng: np.random.Generator) -> None:
    a = random_array((3, 4), rng=rng)
    x = a.astype(np.float64)
    assert_close(F.normalize(tensor(a)), x / np.linalg.norm(x, axis=1, keepdims=True))
    assert_close(F.normalize(tensor(a), p=1, dim=0), x / np.abs(x).sum(axis=0, keepdims=True))
    assert_close(F.normalize(Tensor.zeros(2, 3)), np.zeros((2, 3)))  # eps keeps 0 / 0 away
    check_grad(F.normalize, lambda v: v / np.linalg.norm(v, axis=1, keepdims=True), [a], rng)


def _np_norm(x: np.ndarray, axes: tuple[int, ...], eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


def test_layer_and_group_norm(rng: np.random.Generator) -> None:
    a, w, b = random_array((2, 4, 3), rng=rng), random_array((4, 3), rng=rng), random_array((4, 3), rng=rng)
    x = a.astype(np.float64)
    assert_close(F.layer_norm(tensor(a), (4, 3), tensor(w), tensor(b)), _np_norm(x, (1, 2)) * w + b)
    assert_close(F.layer_norm(tensor(a), 3), _np_norm(x, (2,)))
    check_grad(lambda v, g, h: F.layer_norm(v, (3,), g, h), lambda v, g, h: _np_norm(v, (2,)) * g + h,
               [a, w[0], b[0]], rng)
    gw, gb = random_array((4,), rng=rng), random_array((4,), rng=rng)

    def np_group(v: np.ndarray, g: np.ndarray, h: np.ndarray) -> np.ndarray:
        y = _np_norm(v.reshape(2, 2, -1), (2,)).reshape(v.shape)
        return y * g[:, None] + h[:, None]

    assert_close(F.group_norm(tensor(a), 2, tensor(gw), tensor(gb)), np_group(x, gw, gb))
    check_grad(lambda v, g, h: F.group_norm(v, 2, g, h), np_group, [a, gw, gb], rng)
    with pytest.raises(ValueError, match="divisible by num_groups=3"):
        F.group_norm(tensor(a), 3)


def test_batch_norm(rng: np.random.Generator) -> None:
    a, w, b = random_array((4, 3, 2), rng=rng), random_array((3,), rng=rng), random_array((3,), rng=rng)
    x = a.astype(np.float64)
    mean, var = Tensor.zeros(3), Tensor.ones(3)
    out = F.batch_norm(tensor(a), mean, var, tensor(w), tensor(b), training=True, momentum=0.5)
    assert_close(out, _np_norm(x, (0, 2)) * w[:, None] + b[:, None])
    assert_close(mean, 0.5 * x.mean(axis=(0, 2)))
    assert_close(var, 0.5 + 0.5 * x.var(axis=(0, 2), ddof=1))
    rm, rv = random_array((3,), rng=rng), random_array((3,), rng=rng, low=0.5, high=2)
    want = (x - rm[:, None]) / np.sqrt(rv[:, None] + 1e-5)
    assert_close(F.batch_norm(tensor(a), tensor(rm), tensor(rv)), want)
    with pytest.raises(ValueError, match="more than one value per channel"):
        F.batch_norm(Tensor.ones(1, 3), None, None, training=True)


def _np_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + mask
    return _np_softmax(scores, -1) @ v


def test_scaled_dot_product_attention(rng: np.random.Generator) -> None:
    q, k, v = (random_array((2, 3, 4), rng=rng), random_array((2, 5, 4), rng=rng), random_array((2, 5, 2), rng=rng))
    q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
    tq, tk, tv = tensor(q), tensor(k), tensor(v)
    sdpa = F.scaled_dot_product_attention
    assert_close(sdpa(tq, tk, tv), _np_attention(q64, k64, v64))
    causal = np.tril(np.ones((3, 5), dtype=np.bool_))
    assert_close(sdpa(tq, tk, tv, is_causal=True), _np_attention(q64, k64, v64, causal))
    bool_mask = rng.random((3, 5)) < 0.7
    bool_mask[:, 0] = True
    assert_close(sdpa(tq, tk, tv, attn_mask=tensor(bool_mask)), _np_attention(q64, k64, v64, bool_mask))
    add_mask = random_array((3, 5), rng=rng)
    assert_close(sdpa(tq, tk, tv, attn_mask=tensor(add_mask)), _np_attention(q64, k64, v64, add_mask))
    assert_close(sdpa(tq, tk, tv, scale=0.3), _np_attention(q64 * 0.3 * 2, k64, v64))  # sqrt(4) = 2
    check_grad(lambda a, c, d: sdpa(a, c, d, is_causal=True), lambda a, c, d: _np_attention(a, c, d, causal),
               [q[:1], k[:1], v[:1]], rng)
    with pytest.raises(ValueError, match="not both"):
        sdpa(tq, tk, tv, attn_mask=tensor(bool_mask), is_causal=True)


def test_attention_with_grouped_heads(rng: np.random.Generator) -> None:
    q, k, v = random_array((4, 2, 3), rng=rng), random_array((2, 3, 3), rng=rng), random_array((2, 3, 3), rng=rng)
    want = _np_attention(q.astype(np.float64), np.repeat(k, 2, axis=0), np.repeat(v, 2, axis=0))
    assert_close(F.scaled_dot_product_attention(tensor(q), tensor(k), tensor(v), enable_gqa=True), want)
