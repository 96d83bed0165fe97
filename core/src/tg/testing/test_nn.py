"""Linear algebra and NN functions against numpy: matmul on awkward shapes, conv2d, pooling, norms, losses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tg import Tensor
from tg.testing import assert_close, case_id, random_array, reference, require, tensor

# (M, K, N): 1, 3, 17, 65 and 257 in each position, with the other sizes small
MATMUL_SHAPES = [
    (1, 1, 1), (1, 3, 17), (3, 17, 1), (17, 65, 3), (65, 3, 17), (3, 1, 65), (1, 257, 3), (3, 257, 1), (257, 3, 1),
    (1, 3, 257), (17, 17, 17), (65, 17, 65), (2, 257, 17),
]


@pytest.mark.parametrize(("m", "k", "n"), MATMUL_SHAPES, ids=case_id)
def test_matmul_shapes(m: int, k: int, n: int, rng: np.random.Generator) -> None:
    a, b = random_array((m, k), "float32", rng), random_array((k, n), "float32", rng)
    want = a.astype(np.float64) @ b
    assert_close(tensor(a, "float32") @ tensor(b, "float32"), want, scale=np.sqrt(k))
    assert_close(tensor(a, "float32").matmul(tensor(b, "float32")), want, scale=np.sqrt(k))


@pytest.mark.parametrize(("sa", "sb"), [
    ((5,), (5, 3)), ((4, 5), (5,)), ((5,), (5,)), ((5,), (2, 5, 3)), ((2, 4, 5), (5,)), ((2, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 6)), ((1, 2, 3, 17), (3, 1, 17, 2)),
    ((3, 1, 1), (1, 2)),
], ids=case_id)
def test_matmul_batched_and_vectors(sa: tuple[int, ...], sb: tuple[int, ...], rng: np.random.Generator) -> None:
    """numpy's rules: 1-D operands gain and lose a dim, batch dims broadcast."""
    a, b = random_array(sa, "float32", rng), random_array(sb, "float32", rng)
    assert_close(tensor(a, "float32") @ tensor(b, "float32"), np.matmul(a.astype(np.float64), b), scale=3)


def test_matmul_of_views(rng: np.random.Generator) -> None:
    a, b = random_array((6, 5), "float32", rng), random_array((4, 6), "float32", rng)
    ta, tb = tensor(a, "float32"), tensor(b, "float32")
    assert_close(ta.transpose(0, 1) @ tb.transpose(0, 1), a.T.astype(np.float64) @ b.T, scale=3)
    assert_close(ta[::2, ::-1] @ tb[:, 1:6:2].flip(0)[:5].transpose(0, 1)[:, :3].pad(((0, 2), (0, 0))),
                 a[::2, ::-1].astype(np.float64) @ np.pad(b[:, 1:6:2][::-1][:5].T[:, :3], ((0, 2), (0, 0))),
                 scale=3)
    assert_close((ta @ ta.transpose(0, 1)).relu() + 1, np.maximum(a.astype(np.float64) @ a.T, 0) + 1, scale=3)


@pytest.mark.parametrize(("dtype", "m", "k", "n"), [
    ("float16", 17, 65, 3), ("float16", 3, 257, 1), ("float16", 8, 16, 8), ("float64", 17, 65, 3),
    ("float64", 3, 257, 2),
], ids=case_id)
def test_matmul_dtypes(dtype: str, m: int, k: int, n: int, rng: np.random.Generator) -> None:
    require(dtype)
    a, b = random_array((m, k), dtype, rng), random_array((k, n), dtype, rng)
    out = tensor(a, dtype) @ tensor(b, dtype)
    assert out.dtype.name == dtype
    assert_close(out, a.astype(np.float64) @ b.astype(np.float64), dtype, scale=np.sqrt(k))


# float16 contractions in the sizes a tensor core's tiles divide (16x8x16 and multiples), and beside them
@pytest.mark.parametrize(("sa", "sb"), [
    ((16, 16), (16, 8)), ((32, 48), (48, 16)), ((64, 32), (32, 40)), ((48, 64), (64, 24)),
    ((2, 32, 16), (2, 16, 24)), ((3, 16, 32), (32, 8)), ((64, 64), (64, 64)), ((2, 128, 32), (32, 64)),
    ((16, 16), (16, 12)), ((24, 16), (16, 8)), ((16, 20), (20, 8)),
], ids=case_id)
def test_matmul_float16_tiles(sa: tuple[int, ...], sb: tuple[int, ...], rng: np.random.Generator) -> None:
    require("float16")
    a, b = random_array(sa, "float16", rng), random_array(sb, "float16", rng)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert_close(tensor(a, "float16") @ tensor(b, "float16"), want, "float16", scale=np.sqrt(sa[-1]))
    # the same product through views: a transposed operand, and K padded with zeros
    at = tensor(np.ascontiguousarray(np.swapaxes(a, -1, -2)), "float16").transpose(-1, -2)
    assert_close(at @ tensor(b, "float16"), want, "float16", scale=np.sqrt(sa[-1]))
    short = a[..., : sa[-1] - 4]
    padded = tensor(short, "float16").pad(((0, 0),) * (len(sa) - 1) + ((0, 4),))
    want = np.matmul(np.pad(short, ((0, 0),) * (len(sa) - 1) + ((0, 4),)).astype(np.float64), b.astype(np.float64))
    assert_close(padded @ tensor(b, "float16"), want, "float16", scale=np.sqrt(sa[-1]))


def test_conv2d_float16_tiles(rng: np.random.Generator) -> None:
    """A convolution whose batch*height*width, output channels and channels*kernel a 16x8x16 tile divides."""
    require("float16")
    x, w = random_array((2, 16, 6, 6), "float16", rng), random_array((8, 16, 3, 3), "float16", rng)
    want = reference.conv2d(x.astype(np.float64), w.astype(np.float64), None)
    got = tensor(x, "float16").conv2d(tensor(w, "float16"))
    assert_close(got, want, "float16", scale=12)


def test_dot(rng: np.random.Generator) -> None:
    a, b = random_array((17,), "float32", rng), random_array((17,), "float32", rng)
    out = tensor(a, "float32").dot(tensor(b, "float32"))
    assert out.shape == ()
    assert_close(out, np.dot(a.astype(np.float64), b), scale=4)


@pytest.mark.parametrize("x_shape", [(4, 5), (2, 4, 5), (5,)], ids=case_id)
@pytest.mark.parametrize("bias", [False, True])
def test_linear(x_shape: tuple[int, ...], bias: bool, rng: np.random.Generator) -> None:
    """``x.linear(w, b)`` is ``x @ w.T + b`` with ``w`` shaped (out, in), like PyTorch."""
    x, w = random_array(x_shape, "float32", rng), random_array((3, 5), "float32", rng)
    b = random_array((3,), "float32", rng)
    want = x.astype(np.float64) @ w.T + (b if bias else 0)
    got = tensor(x, "float32").linear(tensor(w, "float32"), tensor(b, "float32") if bias else None)
    assert_close(got, want, scale=3)


# (input shape, weight shape, keyword arguments)
CONV_CASES: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((2, 4, 9, 9), (3, 4, 3, 3), {}),
    ((2, 4, 9, 9), (3, 4, 3, 3), {"bias": True}),
    ((2, 4, 9, 9), (3, 4, 3, 3), {"stride": 2}),
    ((2, 4, 9, 9), (3, 4, 3, 3), {"padding": 1}),
    ((2, 4, 9, 9), (3, 4, 3, 3), {"dilation": 2}),
    ((2, 4, 9, 9), (4, 2, 3, 3), {"groups": 2}),
    ((2, 4, 9, 9), (8, 1, 3, 3), {"groups": 4, "bias": True}),
    ((2, 4, 9, 9), (3, 4, 3, 3), {"stride": (2, 1), "padding": (1, 2)}),
    ((2, 4, 9, 9), (3, 4, 3, 3), {"dilation": (1, 2), "padding": 2}),
    ((2, 4, 9, 9), (5, 4, 1, 1), {}),
    ((2, 4, 9, 9), (3, 4, 2, 3), {"stride": 2, "padding": 1, "dilation": 2}),
    ((2, 4, 9, 9), (6, 2, 3, 3), {"groups": 2, "stride": 2, "padding": 1, "dilation": 2, "bias": True}),
    ((1, 1, 5, 7), (1, 1, 3, 3), {"padding": (0, 1)}),
    ((2, 4, 3, 3), (2, 4, 3, 3), {}),
    ((2, 3, 8, 6), (4, 3, 5, 2), {"stride": (1, 3), "padding": (2, 0)}),
]
CONV_IDS = [f"{x}-{w}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for x, w, kw in CONV_CASES]


def _conv_args(w_shape: tuple[int, ...], kw: dict[str, Any], rng: np.random.Generator,
               dtype: str = "float32") -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    w = random_array(w_shape, dtype, rng)
    b = random_array((w_shape[0],), dtype, rng) if kw.get("bias") else None
    return w, b, {k: v for k, v in kw.items() if k != "bias"}


@pytest.mark.parametrize(("x_shape", "w_shape", "kw"), CONV_CASES, ids=CONV_IDS)
def test_conv2d(x_shape: tuple[int, ...], w_shape: tuple[int, ...], kw: dict[str, Any],
                rng: np.random.Generator) -> None:
    x = random_array(x_shape, "float32", rng)
    w, b, kwargs = _conv_args(w_shape, kw, rng)
    want = reference.conv2d(x.astype(np.float64), w.astype(np.float64), b, **kwargs)
    got = tensor(x, "float32").conv2d(tensor(w, "float32"), None if b is None else tensor(b, "float32"), **kwargs)
    assert_close(got, want, scale=np.sqrt(np.prod(w_shape[1:])))


@pytest.mark.parametrize("case", [0, 5, 11])
def test_conv2d_float16(case: int, rng: np.random.Generator) -> None:
    require("float16")
    x_shape, w_shape, kw = CONV_CASES[case]
    x = random_array(x_shape, "float16", rng)
    w, b, kwargs = _conv_args(w_shape, kw, rng, "float16")
    want = reference.conv2d(x.astype(np.float64), w.astype(np.float64), None if b is None else b.astype(np.float64),
                            **kwargs)
    got = tensor(x, "float16").conv2d(tensor(w, "float16"), None if b is None else tensor(b, "float16"), **kwargs)
    assert got.dtype.name == "float16"
    assert_close(got, want, "float16", scale=np.sqrt(np.prod(w_shape[1:])))


POOL_CASES: list[tuple[tuple[int, ...], Any, Any, Any]] = [
    ((2, 3, 8, 8), 2, None, 0), ((2, 3, 8, 8), 3, 1, 0), ((2, 3, 9, 7), 3, 2, 0), ((2, 3, 8, 8), (2, 3), None, 0),
    ((2, 3, 9, 7), 3, 2, 1), ((2, 3, 8, 8), 2, 1, 1), ((2, 3, 9, 7), (3, 2), (1, 2), 0), ((1, 2, 5, 5), 5, None, 0),
]
POOL_IDS = [f"{s}-k{k}-s{st}-p{p}".replace(" ", "") for s, k, st, p in POOL_CASES]


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), POOL_CASES, ids=POOL_IDS)
@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pool2d(op: str, shape: tuple[int, ...], kernel: Any, stride: Any, padding: Any,
                rng: np.random.Generator) -> None:
    """Pooling windows like PyTorch (no ceil mode); average pooling counts padded zeros."""
    x = random_array(shape, "float32", rng)
    want = getattr(reference, op)(x.astype(np.float64), kernel, stride, padding)
    got = getattr(tensor(x, "float32"), op)(kernel, stride=stride, padding=padding)
    assert_close(got, want)
    if stride is None and padding == 0:
        assert_close(getattr(tensor(x, "float32"), op)(kernel), want, msg="default stride and padding")


def test_max_pool2d_negative_inputs(rng: np.random.Generator) -> None:
    """Padding never wins a max, even when every input is negative."""
    x = random_array((1, 2, 5, 5), "float32", rng, -5, -1)
    assert_close(tensor(x, "float32").max_pool2d(3, stride=2, padding=1), reference.max_pool2d(x, 3, 2, 1))


def test_pool2d_float16(rng: np.random.Generator) -> None:
    require("float16")
    x = random_array((2, 3, 8, 8), "float16", rng)
    assert_close(tensor(x, "float16").max_pool2d(2), reference.max_pool2d(x.astype(np.float64), 2), "float16")
    assert_close(tensor(x, "float16").avg_pool2d(3, stride=2, padding=1),
                 reference.avg_pool2d(x.astype(np.float64), 3, 2, 1), "float16")


@pytest.mark.parametrize(("shape", "axis", "eps"), [
    ((4, 6), -1, 1e-5), ((2, 3, 5), -1, 1e-5), ((2, 3, 5), 1, 1e-5), ((3, 8), -1, 1e-2), ((1, 1), -1, 1e-5),
], ids=case_id)
def test_layernorm(shape: tuple[int, ...], axis: int, eps: float, rng: np.random.Generator) -> None:
    x = random_array(shape, "float32", rng, -2, 3)
    want = reference.layernorm(x.astype(np.float64), axis=axis, eps=eps)
    assert_close(tensor(x, "float32").layernorm(axis=axis, eps=eps), want, rtol=1e-4, atol=1e-4)
    if axis == -1 and eps == 1e-5:
        assert_close(tensor(x, "float32").layernorm(), want, rtol=1e-4, atol=1e-4, msg="defaults")


def test_layernorm_constant_rows() -> None:
    x = np.full((2, 5), 3.0, np.float32)
    assert_close(tensor(x, "float32").layernorm(), np.zeros((2, 5)))


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 3), (2, 3, 7)], ids=case_id)
def test_batchnorm(shape: tuple[int, ...], rng: np.random.Generator) -> None:
    """``(x - mean) * weight * invstd + bias`` over channel dim 1, parameters of shape (C,)."""
    x = random_array(shape, "float32", rng)
    w, b, m = (random_array((3,), "float32", rng) for _ in range(3))
    invstd = random_array((3,), "float32", rng, 0.5, 2)
    got = tensor(x, "float32").batchnorm(*(tensor(v, "float32") for v in (w, b, m, invstd)))
    want = reference.batchnorm(*(v.astype(np.float64) for v in (x, w, b, m, invstd)))
    assert_close(got, want)


def test_dropout_off_when_not_training(rng: np.random.Generator) -> None:
    x = random_array((8, 8), "float32", rng)
    Tensor.training = False
    assert_close(tensor(x, "float32").dropout(0.5), x)
    assert_close(tensor(x, "float32").dropout(), x)


@pytest.mark.parametrize("p", [0.5, 0.25, 0.0])
def test_dropout_training(p: float, rng: np.random.Generator) -> None:
    """In training, about ``p`` of the elements become 0 and the rest are scaled by 1 / (1 - p)."""
    x = random_array((64, 64), "float32", rng, 1, 2)
    Tensor.training = True
    out = tensor(x, "float32").dropout(p).numpy()
    dropped = out == 0
    assert abs(dropped.mean() - p) < 0.04, f"dropped {dropped.mean():.3f} of the elements, expected {p}"
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - p), rtol=1e-5)
    again = tensor(x, "float32").dropout(p).numpy()
    if p > 0:
        assert not np.array_equal(again == 0, dropped), "two dropouts drew the same mask"


@pytest.mark.parametrize("shape", [(5,), (2, 3)], ids=case_id)
def test_one_hot(shape: tuple[int, ...], rng: np.random.Generator) -> None:
    idx = random_array(shape, "int32", rng, 0, 4)
    out = tensor(idx, "int32").one_hot(4)
    assert out.shape == (*shape, 4)
    assert_close(out, reference.one_hot(idx, 4), "int64")


@pytest.mark.parametrize(("n", "c", "offset"), [(6, 5, 0.0), (1, 3, 0.0), (4, 10, 500.0), (3, 1, 0.0)], ids=case_id)
def test_cross_entropy(n: int, c: int, offset: float, rng: np.random.Generator) -> None:
    """Mean over the batch of the negative log-softmax at each integer target; stable for large logits."""
    logits = (random_array((n, c), "float32", rng, -3, 3) * (1 + offset / 100) + offset).astype(np.float32)
    target = random_array((n,), "int32", rng, 0, c)
    out = tensor(logits, "float32").cross_entropy(tensor(target, "int32"))
    assert out.shape == ()
    assert_close(out, reference.cross_entropy(logits.astype(np.float64), target), rtol=1e-4, atol=1e-4)


def test_binary_cross_entropy(rng: np.random.Generator) -> None:
    p = random_array((4, 5), "float32", rng, 0.05, 0.95)
    for t in (random_array((4, 5), "bool", rng).astype(np.float32), random_array((4, 5), "float32", rng, 0, 1)):
        out = tensor(p, "float32").binary_cross_entropy(tensor(t, "float32"))
        assert out.shape == ()
        assert_close(out, reference.binary_cross_entropy(p.astype(np.float64), t.astype(np.float64)))


def test_small_mlp_forward(rng: np.random.Generator) -> None:
    """A two-layer MLP with softmax cross-entropy, as a user would write it."""
    x = random_array((8, 12), "float32", rng)
    w1, b1 = random_array((16, 12), "float32", rng), random_array((16,), "float32", rng)
    w2, b2 = random_array((4, 16), "float32", rng), random_array((4,), "float32", rng)
    y = random_array((8,), "int32", rng, 0, 4)
    h = tensor(x).linear(tensor(w1), tensor(b1)).relu()
    loss = h.linear(tensor(w2), tensor(b2)).cross_entropy(tensor(y))
    h64 = np.maximum(x.astype(np.float64) @ w1.T + b1, 0)
    assert_close(loss, reference.cross_entropy(h64 @ w2.T + b2, y), rtol=1e-4, atol=1e-4)
