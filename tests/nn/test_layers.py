"""tg.nn layers against numpy: output shapes and values, gradients, initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tg import Tensor, nn, no_grad

RTOL, ATOL = 1e-4, 1e-5


def conv2d_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, padding: int,
               dilation: int) -> np.ndarray:
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, :, i * dilation:i * dilation + stride * (oh - 1) + 1:stride,
                     j * dilation:j * dilation + stride * (ow - 1) + 1:stride]
            out += np.einsum("nchw,oc->nohw", tap, w[:, :, i, j])
    return out + (b.reshape(1, -1, 1, 1) if b is not None else 0)


def conv2d_grads_ref(x: np.ndarray, w: np.ndarray, r: np.ndarray, stride: int, padding: int,
                     dilation: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of sum(conv2d(x, w, b) * r) with respect to x, w and b."""
    _, _, kh, kw = w.shape
    oh, ow = r.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dilation, i * dilation + stride * (oh - 1) + 1, stride)
            cols = slice(j * dilation, j * dilation + stride * (ow - 1) + 1, stride)
            dw[:, :, i, j] = np.einsum("nchw,nohw->oc", xp[:, :, rows, cols], r)
            dxp[:, :, rows, cols] += np.einsum("nohw,oc->nchw", r, w[:, :, i, j])
    dx = dxp[:, :, padding:padding + x.shape[2], padding:padding + x.shape[3]]
    return dx, dw, r.sum((0, 2, 3))


def test_linear_matches_numpy_and_pytorch_init_bounds() -> None:
    Tensor.manual_seed(0)
    layer = nn.Linear(20, 7)
    w, b = layer.weight.numpy(), layer.bias.numpy() if layer.bias is not None else None
    assert w.shape == (7, 20) and b is not None and b.shape == (7,)
    bound = 1 / math.sqrt(20)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.8 * bound  # uniform over the whole range, not a narrower one
    x = np.random.default_rng(1).standard_normal((5, 20)).astype(np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), x @ w.T + b, rtol=RTOL, atol=ATOL)
    assert layer(Tensor(x).reshape(5, 1, 20)).shape == (5, 1, 7)
    with pytest.raises(ValueError, match="last dimension must be 20"):
        layer(Tensor.zeros(3, 19))
    assert nn.Linear(4, 2, bias=False).bias is None


def test_manual_seed_makes_initialisation_reproducible() -> None:
    Tensor.manual_seed(42)
    a = [p.numpy() for p in nn.Conv2d(3, 4, 3).parameters()]
    Tensor.manual_seed(42)
    b = [p.numpy() for p in nn.Conv2d(3, 4, 3).parameters()]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(("stride", "padding", "dilation", "batch"),
                         [(1, 1, 1, 2), (2, 0, 1, 2), (1, 2, 2, 2), (2, 1, 1, 2), (2, 1, 1, 6), (1, 1, 1, 9)])
def test_conv2d_forward_and_gradients_match_numpy(stride: int, padding: int, dilation: int, batch: int) -> None:
    """Batches 6 and 9 reduce the weight's gradient by groups of images (2 of 3, 3 of 3), batch 2 by flat rows."""
    Tensor.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=padding, dilation=dilation)
    bound = 1 / math.sqrt(3 * 3 * 3)
    assert conv.weight.shape == (4, 3, 3, 3) and np.abs(conv.weight.numpy()).max() <= bound
    rng = np.random.default_rng(2)
    x_np = rng.standard_normal((batch, 3, 7, 6)).astype(np.float32)
    w_np = conv.weight.numpy()
    assert conv.bias is not None
    b_np = conv.bias.numpy()
    x = Tensor(x_np, requires_grad=True)
    out = conv(x)
    expected = conv2d_ref(x_np, w_np, b_np, stride, padding, dilation)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=RTOL, atol=ATOL)
    r = rng.standard_normal(expected.shape).astype(np.float32)
    (out * Tensor(r)).sum().backward()
    dx, dw, db = conv2d_grads_ref(x_np, w_np, r, stride, padding, dilation)
    assert x.grad is not None and conv.weight.grad is not None and conv.bias.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(conv.weight.grad.numpy(), dw, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(conv.bias.grad.numpy(), db, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("batch", [2, 6])
def test_float16_conv2d_accumulates_like_float32(batch: int) -> None:
    """A float16 convolution's products and gradients (their sums accumulated in float32, the weight's in two
    stages) match float64 numpy on the float16 values within float16 rounding."""
    Tensor.manual_seed(3)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype="float16")
    rng = np.random.default_rng(4)
    x_np = rng.standard_normal((batch, 3, 7, 6)).astype(np.float16)
    assert conv.bias is not None
    w_np, b_np = conv.weight.numpy(), conv.bias.numpy()
    x = Tensor(x_np, requires_grad=True)
    out = conv(x)
    expected = conv2d_ref(x_np.astype(np.float64), w_np.astype(np.float64), b_np.astype(np.float64), 2, 1, 1)
    assert out.dtype == x.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out.numpy().astype(np.float64), expected, rtol=1e-2, atol=1e-2)
    r = rng.standard_normal(expected.shape).astype(np.float16)
    (out * Tensor(r)).sum().backward()
    dx, dw, _ = conv2d_grads_ref(x_np.astype(np.float64), w_np.astype(np.float64), r.astype(np.float64), 2, 1, 1)
    assert x.grad is not None and conv.weight.grad is not None and conv.weight.grad.dtype == x.dtype
    np.testing.assert_allclose(x.grad.numpy().astype(np.float64), dx, rtol=1e-2, atol=2e-2)
    np.testing.assert_allclose(conv.weight.grad.numpy().astype(np.float64), dw, rtol=1e-2, atol=5e-2)


def test_conv2d_promotes_a_float16_input_against_float32_weights() -> None:
    """A float16 input through a float32 Conv2d computes in float32 (as ``x * w`` promotes), the same values as the
    input cast first: the product node multiplies LazyBuffers, which do not promote by themselves."""
    Tensor.manual_seed(5)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = np.random.default_rng(6).random((2, 2, 5, 5)).astype(np.float16)
    out = conv(Tensor(x))
    assert out.dtype == conv.weight.dtype
    np.testing.assert_allclose(out.numpy(), conv(Tensor(x.astype(np.float32))).numpy(), rtol=1e-6, atol=1e-6)


def test_grouped_conv2d_and_errors() -> None:
    conv = nn.Conv2d(4, 6, (3, 1), padding=(1, 0), groups=2, bias=False)
    assert conv.weight.shape == (6, 2, 3, 1)
    x = np.random.default_rng(3).standard_normal((1, 4, 5, 5)).astype(np.float32)
    w = conv.weight.numpy()
    out = conv(Tensor(x)).numpy()
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    ref = np.zeros((1, 6, 5, 5))
    for o in range(6):
        g = o // 3
        for c in range(2):
            for i in range(3):
                ref[0, o] += w[o, c, i, 0] * xp[0, g * 2 + c, i:i + 5, :]
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        conv(Tensor.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="does not fit"):
        nn.Conv2d(1, 1, 5)(Tensor.zeros(1, 1, 3, 3))


def test_maxpool2d_matches_numpy_with_gradient() -> None:
    x_np = np.random.default_rng(4).standard_normal((2, 3, 5, 6)).astype(np.float32)
    x = Tensor(x_np, requires_grad=True)
    out = nn.MaxPool2d(2)(x)
    windows = x_np[:, :, :4, :6].reshape(2, 3, 2, 2, 3, 2)
    np.testing.assert_allclose(out.numpy(), windows.max((3, 5)))
    out.sum().backward()
    assert x.grad is not None
    grad = x.grad.numpy()
    assert grad.sum() == out.numel() and grad[:, :, 4, :].sum() == 0  # one per window; the cropped row gets none
    overlapping = nn.MaxPool2d(3, stride=1, padding=1)(Tensor(x_np))  # falls back to Tensor.max_pool2d
    assert overlapping.shape == (2, 3, 5, 6)


def test_batchnorm2d_train_uses_batch_statistics_and_updates_running_ones() -> None:
    bn = nn.BatchNorm2d(3, momentum=0.1)
    x_np = (np.random.default_rng(5).standard_normal((4, 3, 2, 5)) * 2 + 1).astype(np.float32)
    assert bn.weight is not None
    bn.weight.assign(Tensor(np.array([1.0, 2.0, 0.5], dtype=np.float32)))
    out = bn(Tensor(x_np)).numpy()
    mean, var = x_np.mean((0, 2, 3)), x_np.var((0, 2, 3))
    expected = (x_np - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    expected = expected * np.array([1.0, 2.0, 0.5])[None, :, None, None]
    np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)
    assert bn.running_mean is not None and bn.running_var is not None and bn.num_batches_tracked is not None
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=RTOL, atol=ATOL)
    unbiased = x_np.var((0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * unbiased, rtol=RTOL, atol=ATOL)
    assert bn.num_batches_tracked.item() == 1
    bn(Tensor(x_np))
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.19 * mean, rtol=RTOL, atol=ATOL)
    assert bn.num_batches_tracked.item() == 2


def test_batchnorm2d_eval_uses_running_statistics_and_changes_nothing() -> None:
    bn = nn.BatchNorm2d(2)
    bn.load_state_dict({"running_mean": np.array([1.0, -1.0]), "running_var": np.array([4.0, 0.25]),
                        "weight": np.array([1.0, 3.0]), "bias": np.array([0.0, 1.0]),
                        "num_batches_tracked": np.array(7)})
    bn.eval()
    x_np = np.random.default_rng(6).standard_normal((3, 2, 2, 2)).astype(np.float32)
    out = bn(Tensor(x_np)).numpy()
    mean, var = np.array([1.0, -1.0])[None, :, None, None], np.array([4.0, 0.25])[None, :, None, None]
    expected = (x_np - mean) / np.sqrt(var + 1e-5) * np.array([1.0, 3.0])[None, :, None, None] \
        + np.array([0.0, 1.0])[None, :, None, None]
    np.testing.assert_allclose(out, expected, rtol=RTOL, atol=ATOL)
    assert bn.running_mean is not None and bn.num_batches_tracked is not None
    np.testing.assert_allclose(bn.running_mean.numpy(), [1.0, -1.0])
    assert bn.num_batches_tracked.item() == 7


def test_batchnorm2d_cumulative_average_and_gradient() -> None:
    bn = nn.BatchNorm2d(2, momentum=None)
    rng = np.random.default_rng(7)
    batches = [rng.standard_normal((2, 2, 3, 3)).astype(np.float32) for _ in range(3)]
    for b in batches:
        bn(Tensor(b))
    assert bn.running_mean is not None
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.mean((0, 2, 3)) for b in batches], 0),
                               rtol=RTOL, atol=ATOL)
    x = Tensor(batches[0], requires_grad=True)
    bn(x).sum().backward()  # the sum of a normalized batch does not depend on the input
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), 0, atol=1e-4)
    assert bn.weight is not None and bn.weight.grad is not None
    np.testing.assert_allclose(bn.weight.grad.numpy(), 0, atol=1e-4)
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(Tensor.zeros(1, 2, 1, 1))


def test_layernorm_matches_numpy() -> None:
    ln = nn.LayerNorm((3, 4))
    assert ln.weight is not None and ln.bias is not None
    ln.weight.assign(Tensor(np.linspace(0.5, 2, 12, dtype=np.float32).reshape(3, 4)))
    ln.bias.assign(Tensor(np.full((3, 4), 0.25, dtype=np.float32)))
    x = np.random.default_rng(8).standard_normal((2, 3, 4)).astype(np.float32)
    mean, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * ln.weight.numpy() + 0.25
    np.testing.assert_allclose(ln(Tensor(x)).numpy(), expected, rtol=RTOL, atol=ATOL)
    one = nn.LayerNorm(4, elementwise_affine=False)
    assert one.parameters() == []
    np.testing.assert_allclose(one(Tensor(x)).numpy(), (x - x.mean(-1, keepdims=True)) /
                               np.sqrt(x.var(-1, keepdims=True) + 1e-5), rtol=RTOL, atol=ATOL)


def test_embedding_lookup_and_gradient() -> None:
    emb = nn.Embedding(6, 3)
    table = emb.weight.numpy()
    ids = np.array([[0, 5, 2], [2, 2, 1]], dtype=np.int32)
    out = emb(Tensor(ids))
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(out.numpy(), table[ids])
    out.sum().backward()
    assert emb.weight.grad is not None
    counts = np.bincount(ids.ravel(), minlength=6)[:, None].repeat(3, 1)
    np.testing.assert_allclose(emb.weight.grad.numpy(), counts)
    with pytest.raises(TypeError, match="integer ids"):
        emb(Tensor([0.5]))


def test_dropout_follows_the_module_mode() -> None:
    Tensor.manual_seed(9)
    drop = nn.Dropout(0.25)
    x = Tensor.ones(200, 50)
    out = drop(x).numpy()
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.2 < (out == 0).mean() < 0.3
    assert Tensor.training is False  # the global flag is left alone
    Tensor.manual_seed(9)
    np.testing.assert_array_equal(drop(x).numpy(), out)  # reproducible
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        nn.Dropout(1.0)


def test_sequential_chains_layers_and_callables() -> None:
    model = nn.Sequential(nn.Linear(4, 3), Tensor.relu, nn.Flatten(), nn.ReLU())
    assert len(model) == 4 and isinstance(model[0], nn.Linear)
    x = np.random.default_rng(10).standard_normal((2, 4)).astype(np.float32)
    first = model[0]
    assert isinstance(first, nn.Linear) and first.bias is not None
    expected = np.maximum(x @ first.weight.numpy().T + first.bias.numpy(), 0)
    with no_grad():
        np.testing.assert_allclose(model(Tensor(x)).numpy(), expected, rtol=RTOL, atol=ATOL)
    assert "Linear(4, 3" in repr(model)
