"""Gradients of every differentiable op, against float64 finite differences or analytic numpy gradients.

Each check builds ``loss = (f(inputs) * w).sum()`` with fixed random weights ``w`` (see
:func:`tg.testing.check_grad`), so a gradient that is right only for an all-ones upstream fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tg import Tensor, dtypes, no_grad
from tg.testing import assert_close, case_id, check_grad, random_array, reference, tensor

Fn = Callable[..., Any]

# name: (tg function, float64 numpy function, low, high); inputs uniform in [low, high)
UNARY: dict[str, tuple[Fn, Fn, float, float]] = {
    "neg": (lambda t: -t, np.negative, -2, 2),
    "exp": (lambda t: t.exp(), np.exp, -2, 2),
    "log": (lambda t: t.log(), np.log, 0.2, 3),
    "exp2": (lambda t: t.exp2(), np.exp2, -2, 2),
    "log2": (lambda t: t.log2(), np.log2, 0.2, 3),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, 0.2, 3),
    "rsqrt": (lambda t: t.rsqrt(), lambda x: 1 / np.sqrt(x), 0.2, 3),
    "sin": (lambda t: t.sin(), np.sin, -4, 4),
    "cos": (lambda t: t.cos(), np.cos, -4, 4),
    "tanh": (lambda t: t.tanh(), np.tanh, -2, 2),
    "sigmoid": (lambda t: t.sigmoid(), reference.sigmoid, -4, 4),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0), -2, 2),
    "leaky_relu": (lambda t: t.leaky_relu(neg_slope=0.1), lambda x: reference.leaky_relu(x, 0.1), -2, 2),
    "gelu": (lambda t: t.gelu(), reference.gelu, -3, 3),
    "silu": (lambda t: t.silu(), reference.silu, -3, 3),
    "abs": (lambda t: t.abs(), np.abs, -2, 2),
    "reciprocal": (lambda t: t.reciprocal(), np.reciprocal, 0.3, 3),
    "square": (lambda t: t.square(), np.square, -2, 2),
    "clip": (lambda t: t.clip(-0.5, 0.75), lambda x: np.clip(x, -0.5, 0.75), -2, 2),
    "x**3": (lambda t: t ** 3, lambda x: x ** 3, -2, 2),
    "x**0.5": (lambda t: t ** 0.5, lambda x: x ** 0.5, 0.2, 3),
    "2**x": (lambda t: 2 ** t, lambda x: 2.0 ** x, -2, 2),
    "3-x/4": (lambda t: 3 - t / 4, lambda x: 3 - x / 4, -2, 2),
    "4/x": (lambda t: 4 / t, lambda x: 4 / x, 0.5, 3),
}


@pytest.mark.parametrize("op", UNARY)
def test_grad_unary(op: str, rng: np.random.Generator) -> None:
    tg_fn, np_fn, low, high = UNARY[op]
    x = random_array((3, 5), "float32", rng, low, high)
    # the reference GELU is the tanh approximation; an exact (erf) GELU's derivative differs by < 1e-3
    check_grad(tg_fn, np_fn, [x], rng, atol=2e-3 if op == "gelu" else 2e-4)


def test_grad_of_piecewise_constant_ops_is_zero(rng: np.random.Generator) -> None:
    x = random_array((4, 3), "float32", rng, -3, 3)
    check_grad(lambda t: t.floor() + t.ceil() + t.trunc() + t.sign() + t * t, lambda v: np.floor(v) + np.ceil(v)
               + np.trunc(v) + np.sign(v) + v * v, [x], rng)


BINARY: dict[str, tuple[Fn, Fn]] = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a ** b, np.power),
    "maximum": (lambda a, b: a.maximum(b), np.maximum),
    "minimum": (lambda a, b: a.minimum(b), np.minimum),
}


@pytest.mark.parametrize("op", BINARY)
def test_grad_binary_broadcast(op: str, rng: np.random.Generator) -> None:
    """Gradients of broadcast operands are summed over the broadcast dims."""
    tg_fn, np_fn = BINARY[op]
    low = 0.3 if op in ("div", "pow") else -2.0
    a, b = random_array((3, 1, 4), "float32", rng, low, 2), random_array((5, 4), "float32", rng, low, 2)
    check_grad(tg_fn, np_fn, [a, b], rng)


def test_grad_where(rng: np.random.Generator) -> None:
    c = random_array((3, 1), "bool", rng)
    x, y = random_array((1, 4), "float32", rng), random_array((3, 4), "float32", rng)
    check_grad(lambda a, b: tensor(c, "bool").where(a, b), lambda a, b: np.where(c, a, b), [x, y], rng)
    check_grad(lambda a: (a > 0).where(a * 2, a.exp()), lambda a: np.where(a > 0, a * 2, np.exp(a)), [y], rng)


REDUCE_GRAD: dict[str, tuple[Fn, Fn]] = {
    "sum": (lambda t: t.sum(), np.sum),
    "sum1": (lambda t: t.sum(axis=1), lambda x: np.sum(x, axis=1)),
    "sum02keep": (lambda t: t.sum(axis=(0, 2), keepdim=True), lambda x: np.sum(x, axis=(0, 2), keepdims=True)),
    "mean": (lambda t: t.mean(), np.mean),
    "mean-1": (lambda t: t.mean(axis=-1), lambda x: np.mean(x, axis=-1)),
    "max": (lambda t: t.max(), np.max),
    "max0": (lambda t: t.max(axis=0), lambda x: np.max(x, axis=0)),
    "max2keep": (lambda t: t.max(axis=2, keepdim=True), lambda x: np.max(x, axis=2, keepdims=True)),
    "min1": (lambda t: t.min(axis=1), lambda x: np.min(x, axis=1)),
    "std": (lambda t: t.std(), lambda x: np.std(x, ddof=1)),
    "var12": (lambda t: t.var(axis=(1, 2)), lambda x: np.var(x, axis=(1, 2), ddof=1)),
    "var0c0": (lambda t: t.var(axis=0, correction=0), lambda x: np.var(x, axis=0)),
    "logsumexp1": (lambda t: t.logsumexp(axis=1), lambda x: reference.logsumexp(x, axis=1)),
    "softmax": (lambda t: t.softmax(), reference.softmax),
    "softmax1": (lambda t: t.softmax(axis=1), lambda x: reference.softmax(x, axis=1)),
    "log_softmax": (lambda t: t.log_softmax(), reference.log_softmax),
    "log_softmax0": (lambda t: t.log_softmax(axis=0), lambda x: reference.log_softmax(x, axis=0)),
}


@pytest.mark.parametrize("op", REDUCE_GRAD)
def test_grad_reduce(op: str, rng: np.random.Generator) -> None:
    tg_fn, np_fn = REDUCE_GRAD[op]
    check_grad(tg_fn, np_fn, [random_array((3, 4, 5), "float32", rng, -2, 2)], rng)


MOVEMENT_GRAD: dict[str, tuple[Fn, Fn]] = {
    "reshape": (lambda t: t.reshape(6, 10), lambda x: x.reshape(6, 10)),
    "permute": (lambda t: t.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1)),
    "transpose": (lambda t: t.transpose(0, 2), lambda x: x.swapaxes(0, 2)),
    "expand": (lambda t: t[:, :1].expand(3, 6, 5), lambda x: np.broadcast_to(x[:, :1], (3, 6, 5))),
    "flatten": (lambda t: t.flatten(1), lambda x: x.reshape(3, 20)),
    "squeeze_unsqueeze": (lambda t: t.unsqueeze(1).squeeze(1).unsqueeze(-1), lambda x: x[..., None]),
    "pad": (lambda t: t.pad(((1, 0), (0, 2), (1, 1)), value=0.5), lambda x: np.pad(x, ((1, 0), (0, 2), (1, 1)),
                                                                                     constant_values=0.5)),
    "shrink": (lambda t: t.shrink(((1, 3), (0, 2), (2, 5))), lambda x: x[1:3, 0:2, 2:5]),
    "flip": (lambda t: t.flip((0, 2)), lambda x: x[::-1, :, ::-1]),
    "repeat": (lambda t: t.repeat(2, 1, 2), lambda x: np.tile(x, (2, 1, 2))),
    "getitem": (lambda t: t[1:, ::-2, None, 1::3], lambda x: x[1:, ::-2, None, 1::3]),
    "getitem_int": (lambda t: t[-1, 2], lambda x: x[-1, 2]),
    "index_tensor": (lambda t: t[tensor(np.array([2, 0, 2, 2]), "int32")], lambda x: x[[2, 0, 2, 2]]),
    "index_tensor_dim1": (lambda t: t[:, tensor(np.array([3, 3, 1]), "int32")], lambda x: x[:, [3, 3, 1]]),
    "cat": (lambda t: Tensor.cat(t, t[:, :2] * 2, dim=1), lambda x: np.concatenate([x, x[:, :2] * 2], axis=1)),
    "stack": (lambda t: Tensor.stack(t, t.flip(0), dim=1), lambda x: np.stack([x, x[::-1]], axis=1)),
    "split": (lambda t: Tensor.cat(*(p * (i + 1) for i, p in enumerate(t.split(2, dim=1))), dim=1),
              lambda x: np.concatenate([x[:, 0:2], x[:, 2:4] * 2], axis=1)),
    "chunk": (lambda t: Tensor.cat(*(p * (i + 1) for i, p in enumerate(t.chunk(2, dim=2))), dim=2),
              lambda x: np.concatenate([x[..., 0:3], x[..., 3:5] * 2], axis=2)),
}


@pytest.mark.parametrize("op", MOVEMENT_GRAD)
def test_grad_movement(op: str, rng: np.random.Generator) -> None:
    tg_fn, np_fn = MOVEMENT_GRAD[op]
    check_grad(tg_fn, np_fn, [random_array((3, 4, 5), "float32", rng)], rng)


def test_grad_views_of_views(rng: np.random.Generator) -> None:
    x = random_array((4, 5, 6), "float32", rng)
    check_grad(lambda t: (t.permute(2, 0, 1)[1:5, ::-1, 1::2].reshape(4, 8).flip(0) * 2).exp(),
               lambda v: np.exp(v.transpose(2, 0, 1)[1:5, ::-1, 1::2].reshape(4, 8)[::-1] * 2), [x], rng)


@pytest.mark.parametrize(("sa", "sb"), [
    ((3, 4), (4, 5)), ((1, 257), (257, 2)), ((5,), (5, 3)), ((4, 5), (5,)), ((2, 3, 4), (4, 2)),
    ((2, 1, 3, 4), (3, 4, 2)),
], ids=case_id)
def test_grad_matmul(sa: tuple[int, ...], sb: tuple[int, ...], rng: np.random.Generator) -> None:
    a, b = random_array(sa, "float32", rng), random_array(sb, "float32", rng)
    if len(sa) == 2 and len(sb) == 2:  # analytic: dA = W @ B.T, dB = A.T @ W
        check_grad(lambda x, y: x @ y, np.matmul, [a, b], rng, analytic=lambda w, x, y: [w @ y.T, x.T @ w])
    else:
        check_grad(lambda x, y: x @ y, np.matmul, [a, b], rng)


def test_grad_linear(rng: np.random.Generator) -> None:
    x, w = random_array((4, 5), "float32", rng), random_array((3, 5), "float32", rng)
    b = random_array((3,), "float32", rng)
    check_grad(lambda x_, w_, b_: x_.linear(w_, b_), lambda x_, w_, b_: x_ @ w_.T + b_, [x, w, b], rng)


CONV_GRAD_CASES: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((1, 2, 6, 6), (3, 2, 3, 3), {}),
    ((2, 2, 6, 5), (2, 2, 3, 2), {"stride": 2, "padding": 1}),
    ((1, 4, 7, 7), (4, 2, 3, 3), {"groups": 2, "dilation": 2, "padding": (1, 2)}),
]


@pytest.mark.parametrize(("x_shape", "w_shape", "kw"), CONV_GRAD_CASES, ids=["basic", "stride-pad", "groups-dilation"])
def test_grad_conv2d(x_shape: tuple[int, ...], w_shape: tuple[int, ...], kw: dict[str, Any],
                     rng: np.random.Generator) -> None:
    x, w = random_array(x_shape, "float32", rng), random_array(w_shape, "float32", rng)
    b = random_array((w_shape[0],), "float32", rng)
    check_grad(lambda x_, w_, b_: x_.conv2d(w_, b_, **kw), lambda x_, w_, b_: reference.conv2d(x_, w_, b_, **kw),
               [x, w, b], rng)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, None, 0), (3, 2, 1), ((2, 3), 1, 0)], ids=case_id)
@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_grad_pool2d(op: str, kernel: Any, stride: Any, padding: int, rng: np.random.Generator) -> None:
    x = random_array((1, 2, 6, 6), "float32", rng)
    check_grad(lambda t: getattr(t, op)(kernel, stride=stride, padding=padding),
               lambda v: getattr(reference, op)(v, kernel, stride, padding), [x], rng)


def test_grad_layernorm(rng: np.random.Generator) -> None:
    x = random_array((3, 6), "float32", rng, -2, 2)
    check_grad(lambda t: t.layernorm(), reference.layernorm, [x], rng)
    y = random_array((2, 3, 4), "float32", rng, -2, 2)
    check_grad(lambda t: t.layernorm(axis=1, eps=1e-3), lambda v: reference.layernorm(v, 1, 1e-3), [y], rng)


def test_grad_batchnorm(rng: np.random.Generator) -> None:
    x = random_array((2, 3, 2, 2), "float32", rng)
    w, b, m = (random_array((3,), "float32", rng) for _ in range(3))
    invstd = random_array((3,), "float32", rng, 0.5, 2)
    check_grad(lambda *ts: ts[0].batchnorm(*ts[1:]), reference.batchnorm, [x, w, b, m, invstd], rng)


def test_grad_cross_entropy(rng: np.random.Generator) -> None:
    logits = random_array((5, 4), "float32", rng, -2, 2)
    target = random_array((5,), "int32", rng, 0, 4)
    check_grad(lambda t: t.cross_entropy(tensor(target, "int32")), lambda v: reference.cross_entropy(v, target),
               [logits], rng)


def test_grad_binary_cross_entropy(rng: np.random.Generator) -> None:
    p = random_array((3, 4), "float32", rng, 0.1, 0.9)
    t = random_array((3, 4), "float32", rng, 0, 1)
    check_grad(lambda p_: p_.binary_cross_entropy(tensor(t, "float32")),
               lambda p_: reference.binary_cross_entropy(p_, t.astype(np.float64)), [p], rng)


def test_grad_dropout_uses_the_forward_mask(rng: np.random.Generator) -> None:
    Tensor.training = True
    x = random_array((16, 16), "float32", rng, 1, 2)
    t = tensor(x, "float32", requires_grad=True)
    out = t.dropout(0.25)
    out.sum().backward()
    assert t.grad is not None
    kept = out.numpy() != 0
    np.testing.assert_allclose(t.grad.numpy(), np.where(kept, 1 / 0.75, 0.0), rtol=1e-5)


# ---------------------------------------------------------------------------------------------- mechanics


def test_grad_is_none_before_backward() -> None:
    t = Tensor([1.0, 2.0], requires_grad=True)
    assert t.grad is None
    assert t.requires_grad


def test_requires_grad_propagates(rng: np.random.Generator) -> None:
    x = tensor(random_array((3,), "float32", rng), "float32", requires_grad=True)
    c = tensor(random_array((3,), "float32", rng), "float32")
    assert not c.requires_grad
    assert (x * c).requires_grad
    assert not (c * 2).requires_grad


def test_grad_tensor_shape_and_dtype(rng: np.random.Generator) -> None:
    x = tensor(random_array((2, 3), "float32", rng), "float32", requires_grad=True)
    (x * 3).sum().backward()
    assert isinstance(x.grad, Tensor)
    assert x.grad.shape == (2, 3)
    assert x.grad.dtype == dtypes.float32
    assert_close(x.grad, np.full((2, 3), 3.0))


def test_grad_accumulates_over_backward_calls(rng: np.random.Generator) -> None:
    a = random_array((4,), "float32", rng)
    x = tensor(a, "float32", requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    assert x.grad is not None
    assert_close(x.grad, 2 * a.astype(np.float64) + 3)


def test_shared_subexpressions(rng: np.random.Generator) -> None:
    """A tensor used several times (a diamond) gets the sum of its paths' gradients."""
    a = random_array((3, 4), "float32", rng)
    def diamond(t: Tensor) -> Tensor:
        y = t.exp()
        return y * y + y.sin() + t

    check_grad(diamond, lambda v: np.exp(v) ** 2 + np.sin(np.exp(v)) + v, [a], rng)
    check_grad(lambda t: t @ t.transpose(0, 1) + t.sum(axis=1, keepdim=True),
               lambda v: v @ v.T + v.sum(axis=1, keepdims=True), [a], rng)


def test_no_grad(rng: np.random.Generator) -> None:
    a = random_array((3,), "float32", rng)
    x = tensor(a, "float32", requires_grad=True)
    with no_grad():
        y = x * 2
        assert not y.requires_grad
    assert_close(y, a * 2.0)
    (x * 5).sum().backward()  # gradients work again after the block
    assert x.grad is not None
    assert_close(x.grad, np.full(3, 5.0))


def test_no_grad_parameter_update(rng: np.random.Generator) -> None:
    """The SGD step pattern: compute a gradient, update under no_grad, compute again."""
    a = random_array((4,), "float32", rng)
    w = tensor(a, "float32", requires_grad=True)
    (w * w).sum().backward()
    assert w.grad is not None
    with no_grad():
        step = w - 0.1 * w.grad
        assert not step.requires_grad
    w2 = Tensor(step.numpy(), requires_grad=True)
    (w2 * w2).sum().backward()
    assert w2.grad is not None
    assert_close(w2.grad, 2 * (a.astype(np.float64) * 0.8))


def test_detach_blocks_gradient(rng: np.random.Generator) -> None:
    a = random_array((5,), "float32", rng)
    x = tensor(a, "float32", requires_grad=True)
    (x * x.detach()).sum().backward()
    assert x.grad is not None
    assert_close(x.grad, a.astype(np.float64))


def test_small_training_loop(rng: np.random.Generator) -> None:
    """Plain gradient descent on a least-squares problem: the loss falls steadily."""
    xs = random_array((16, 3), "float32", rng)
    true_w = np.array([[1.5], [-2.0], [0.5]], np.float32)
    ys = xs @ true_w
    w = Tensor(np.zeros((3, 1), np.float32), requires_grad=True)
    x_t, y_t = tensor(xs, "float32"), tensor(ys, "float32")
    losses = []
    for _ in range(15):
        loss = ((x_t @ w - y_t) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        assert w.grad is not None
        with no_grad():
            w = Tensor((w - 0.5 * w.grad).numpy(), requires_grad=True)
    assert losses[-1] < 0.2 * losses[0], f"loss went {losses[0]:.4f} -> {losses[-1]:.4f}"
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:])), losses


def test_a_second_backward_through_a_freed_graph_raises() -> None:
    """The same loss twice, or two losses sharing part of a graph, used to give wrong gradients silently."""
    w = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()
    w.grad = None
    h = w * 3
    first, second = h.sum(), (h * h).sum()
    first.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        second.backward()


def test_retain_graph_keeps_it_for_a_second_loss() -> None:
    w = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    h = w * 3
    h.sum().backward(retain_graph=True)
    (h * h).sum().backward()
    assert w.grad is not None
    np.testing.assert_allclose(w.grad.numpy(), 3 + 18 * np.array([1.0, 2.0]), rtol=1e-6)


def test_no_gradient_flows_through_an_integer_cast() -> None:
    """PyTorch's rule: integer and bool results do not require grad (the cast's gradient used to flow on)."""
    x = Tensor(np.array([1.5, 2.5], np.float32), requires_grad=True)
    as_int = x.cast("int32")
    assert not as_int.requires_grad
    ((x * 2).sum() + as_int.float().sum()).backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_in_place_operators_update_the_tensor_itself() -> None:
    """``with no_grad(): p -= lr * p.grad`` steps the parameter (it used to rebind the name, so the model held by
    the optimizer never changed); while gradients are recorded it raises instead."""
    p = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    held = [p]
    (p * p).sum().backward()
    with no_grad():
        assert p.grad is not None
        p -= 0.25 * p.grad
    assert held[0] is p and p.requires_grad
    np.testing.assert_allclose(held[0].numpy(), [0.5, 1.0])
    with pytest.raises(RuntimeError, match=r"x \+= y on a tensor that requires grad"):
        p += 1
    x = Tensor(np.array([1, 2], np.int32))
    x *= 3
    x += 1
    np.testing.assert_array_equal(x.numpy(), [4, 7])
    with pytest.raises(TypeError, match="would make x \\(int32\\) float32"):
        x /= 2
    with pytest.raises(ValueError, match="cannot change x's shape"):
        y = Tensor(np.array([1.0], np.float32))
        y += Tensor(np.array([1.0, 2.0], np.float32))

