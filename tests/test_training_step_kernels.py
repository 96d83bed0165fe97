"""The kernels of an eager training step (#14): work a step used to repeat or spread over kernels of its own.

- softmax, log_softmax and logsumexp shift by the row max only so that exp cannot overflow; no gradient flows
  through the shift (exactly 0 in real arithmetic), so the backward walks no ties at the max;
- the loss is computed with the first gradient barrier of its backward (they share the forward's intermediates),
  not later on its own;
- Adam's two per-step factors (the step size and sqrt(1 - beta2**t)) are one kernel, the step count another;
- cross entropy of (N, C) logits with class indices is one autograd node (tg.frontend.cross_entropy), and so are
  softmax and log_softmax (tg.frontend.softmax);
- a matmul by a 2-D weight, and nn.Linear's ``x @ weight.T + bias``, is one autograd node (tg.frontend.matmul), x's
  leading axes taken as rows, so the weight's gradient is one reduction over all of them;
- a gradient that a reduction computes and a permute reorders is computed in the permuted order
  (``LazyBuffer.permute_reduction``): the weight gradient comes out in the weight's layout (w of ``x @ w``, or
  nn.Linear's transposed one), so the optimizer reads it contiguously.
"""

from __future__ import annotations

import numpy as np
import pytest
import tg
from tg import Tensor, nn, optim
from tg.engine.device import device_state
from tg.frontend.cross_entropy import ClassIndexCrossEntropy
from tg.frontend.matmul import MatMul
from tg.frontend.softmax import LogSoftmax, Softmax
from tg.graph.lazy import LazyBuffer, LazyOp
from tg.support.dtype import dtypes
from tg.support.ops import Ops

rng = np.random.default_rng(14)


def _alu_ops(lb: LazyBuffer) -> set[Ops]:
    """The ALU ops of the unrealized graph under ``lb``."""
    seen: set[int] = set()
    ops: set[Ops] = set()
    stack = [lb.base]
    while stack:
        b = stack.pop()
        if id(b) in seen:
            continue
        seen.add(id(b))
        if b.op is LazyOp.ALU:
            ops.add(b.arg)
        stack.extend(s.base for s in b.srcs)
    return ops


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_the_softmax_family_takes_no_gradient_through_the_row_max(name: str) -> None:
    x0 = np.array([[1.0, 1.0, -2.0, 0.5], [3.0, -1.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0]])  # ties at every row's max
    g0 = rng.standard_normal(x0.shape)
    x = Tensor(x0, requires_grad=True)
    if name == "logsumexp":
        out, g0 = x.logsumexp(-1), g0[:, 0]
    else:
        out = getattr(x, name)(-1)
    (out * Tensor(g0)).sum().backward()
    assert x.grad is not None
    if name != "logsumexp":  # (logsumexp's forward compares, to replace an infinite max by 0)
        # a gradient through the max would compare the input with it (the max's backward picks its ties)
        assert Ops.CMPEQ not in _alu_ops(x.grad.lazydata), _alu_ops(x.grad.lazydata)
    s = np.exp(x0 - x0.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    if name == "softmax":
        expected = s * (g0 - (g0 * s).sum(-1, keepdims=True))
    elif name == "log_softmax":
        expected = g0 - s * g0.sum(-1, keepdims=True)
    else:
        expected = s * g0[:, None]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-15)


def _mlp_step(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss


def test_the_loss_is_computed_with_the_first_gradient_barrier() -> None:
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))  # a Linear's output is a gradient barrier
    x = Tensor(rng.standard_normal((4, 6)).astype(np.float32))
    y = Tensor(np.array([0, 2, 1, 2], dtype=np.int32))
    loss = _mlp_step(model, x, y)
    assert loss.lazydata.base.realized is not None  # computed by the backward, before anything read it
    logits = model(x).numpy().astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    np.testing.assert_allclose(loss.item(), -logp[np.arange(4), [0, 2, 1, 2]].mean(), rtol=1e-5)


def test_a_backward_without_a_barrier_leaves_its_root_lazy() -> None:
    w = Tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    assert loss.lazydata.base.realized is None and w.grad is not None
    np.testing.assert_allclose(w.grad.numpy(), 2 * w.numpy(), rtol=1e-6)


def test_a_barrier_computes_only_the_backward_that_runs_it() -> None:
    tg.manual_seed(0)
    layer = nn.Linear(3, 2)
    x = Tensor(rng.standard_normal((4, 3)).astype(np.float32))
    first, second = layer(x).sum(), (layer(x) * 2).sum()
    first.backward()
    assert first.lazydata.base.realized is not None
    assert second.lazydata.base.realized is None  # a tensor of no running backward is left alone
    second.backward()
    assert second.lazydata.base.realized is not None
    np.testing.assert_allclose(second.item(), 2 * first.item(), rtol=1e-5)
    out = layer(x)
    out.backward(gradient=Tensor.ones(*out.shape))
    assert out.lazydata.base.realized is None  # not a scalar: nobody may read it, it is not computed


@pytest.mark.parametrize("amsgrad", [False, True])
def test_an_adam_step_computes_its_two_factors_in_one_kernel(amsgrad: bool) -> None:
    w = Tensor(rng.standard_normal(8).astype(np.float32), requires_grad=True)
    opt = optim.Adam([w], lr=0.1, amsgrad=amsgrad)
    state = device_state(w.device)
    counts = []
    for _ in range(3):
        w.grad = Tensor(rng.standard_normal(8).astype(np.float32))
        before = state.kernel_count
        opt.step()
        counts.append(state.kernel_count - before)
    # the step count, both factors (one kernel), exp_avg, exp_avg_sq (amsgrad: and its max), the parameters
    assert counts[1:] == [5 + amsgrad] * 2, counts


@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"reduction": "none", "ignore_index": 1}])
def test_cross_entropy_of_class_indices_is_one_autograd_node(options: dict[str, object]) -> None:
    """The fused node gives the general path's values and gradients (the general path taken here with a weight of
    ones), and Tensor.cross_entropy takes it too."""
    a = rng.standard_normal((7, 5)).astype(np.float32)
    target = Tensor(np.array([0, 1, 4, 1, 3, 2, 1], dtype=np.int32))
    answers = []
    for weight in (None, Tensor.ones(5)):
        x = Tensor(a, requires_grad=True)
        loss = nn.functional.cross_entropy(x, target, weight=weight, **options)  # type: ignore[arg-type]
        assert isinstance(loss._ctx, ClassIndexCrossEntropy) == (weight is None)
        (loss * Tensor(np.linspace(0.5, 1.5, loss.numel(), dtype=np.float32).reshape(loss.shape))).sum().backward()
        assert x.grad is not None
        answers.append((loss.numpy(), x.grad.numpy()))
    np.testing.assert_allclose(answers[0][0], answers[1][0], rtol=1e-6)
    np.testing.assert_allclose(answers[0][1], answers[1][1], rtol=1e-5, atol=1e-7)
    if not options:
        method = Tensor(a, requires_grad=True).cross_entropy(target)
        assert isinstance(method._ctx, ClassIndexCrossEntropy)
        np.testing.assert_allclose(method.numpy(), answers[0][0], rtol=1e-6)


def test_cross_entropy_still_refuses_a_class_index_out_of_range() -> None:
    logits = Tensor(rng.standard_normal((3, 4)).astype(np.float32))
    loss = nn.functional.cross_entropy(logits, Tensor(np.array([0, 4, -100], dtype=np.int32)))
    with pytest.raises(IndexError, match="out of range for 4 classes"):
        loss.item()
    ok = nn.functional.cross_entropy(logits, Tensor(np.array([0, 3, -100], dtype=np.int32)))  # -100: ignored
    assert np.isfinite(ok.item())
    with pytest.raises(IndexError, match="out of range for 4 classes"):
        logits.cross_entropy(Tensor(np.array([0, -1, 2], dtype=np.int32))).item()
    # the masks of int32/int64 targets are built on buffers, those of other integer targets with tensor comparisons
    for dtype in (np.int64, np.int8):
        with pytest.raises(IndexError, match="out of range for 4 classes"):
            nn.functional.cross_entropy(logits, Tensor(np.array([0, 4, 1], dtype=dtype))).item()
    a = logits.numpy()
    logp = a - a.max(1, keepdims=True) - np.log(np.exp(a - a.max(1, keepdims=True)).sum(1, keepdims=True))
    for dtype in (np.int64, np.uint8):
        loss = nn.functional.cross_entropy(logits, Tensor(np.array([3, 156, 1], dtype=dtype)), ignore_index=156)
        np.testing.assert_allclose(loss.item(), -(logp[0, 3] + logp[2, 1]) / 2, rtol=1e-6)
    with pytest.raises(IndexError, match="out of range for 4 classes"):
        nn.functional.cross_entropy(logits, Tensor(np.array([3, 156, 1], dtype=np.int64)), ignore_index=3).item()


def test_the_weight_gradient_of_x_at_w_comes_out_in_ws_layout() -> None:
    """``x @ w`` reduces with w seen as (out, in); its gradient is computed as (in, out), not transposed after."""
    x0, w0, g0 = rng.standard_normal((6, 5)), rng.standard_normal((5, 3)), rng.standard_normal((6, 3))
    x, w = Tensor(x0), Tensor(w0, requires_grad=True)
    (x @ w).backward(Tensor(g0))
    assert w.grad is not None
    grad = w.grad.lazydata
    assert grad.base.op is LazyOp.REDUCE and grad.st.is_contiguous, grad.st
    np.testing.assert_allclose(w.grad.numpy(), x0.T @ g0, rtol=1e-12)
    # the update reads it in order: one contiguous load of the gradient in the update's kernel
    with tg.no_grad():
        update = (w.detach() - w.grad * 0.5).lazydata
    assert all(src.st.is_contiguous for src in update.base.srcs if src.base is grad.base)


@pytest.mark.parametrize("op", [Ops.ADD, Ops.MAX])
@pytest.mark.parametrize(("axes", "view", "order"), [
    ((1,), (4, 6, 5), (2, 0, 1)),      # (4, 1, 6, 5) seen as (4, 6, 5), its axes in another order
    ((0, 2), (3, 5), (1, 0)),          # reduced twice, seen without its axes of size 1, transposed
    ((3,), None, (0, 2, 1, 3)),        # (4, 3, 6, 1): an axis of size 1 moves too
    ((1,), None, (3, 1, 2, 0)),        # (4, 1, 6, 5) as it is
    ((1,), None, (0, 1, 2, 3)),        # the identity: the reduction itself
])
def test_permuting_a_reduction_reduces_in_the_permuted_order(op: Ops, axes: tuple[int, ...],
                                                            view: tuple[int, ...] | None,
                                                            order: tuple[int, ...]) -> None:
    """``permute_reduction`` gives ``permute``'s values; for a reduction seen as it is (or reshaped by axes of size 1)
    it is a new reduction whose output is contiguous in the permuted order."""
    a = rng.standard_normal((4, 3, 6, 5))
    src = Tensor(a).lazydata
    reduced = src.reduce(op, axes)
    seen = reduced.reshape(view) if view is not None else reduced
    expected = np.transpose((np.sum if op is Ops.ADD else np.max)(a, axis=axes, keepdims=True)
                            .reshape(seen.shape), order)
    out = seen.permute_reduction(order)
    np.testing.assert_allclose(Tensor(out).numpy(), expected, rtol=1e-12)
    if order == tuple(range(len(order))):
        assert out is seen
    else:
        assert out.base is not reduced and out.base.op is LazyOp.REDUCE and out.st.is_contiguous


def test_permuting_other_views_of_a_reduction_only_permutes() -> None:
    """A view that is not a plain permutation of the whole reduction (a broadcast, a slice, one from 0 too) or a
    realized reduction is permuted as a view, as ``permute`` does."""
    a = rng.standard_normal((4, 3, 5))
    summed = a.sum(1, keepdims=True)
    for view, expected in [
        (lambda r: r.expand((4, 2, 5)), np.broadcast_to(summed, (4, 2, 5)).transpose(2, 1, 0)),
        (lambda r: r.shrink(((1, 3), (0, 1), (0, 5))), summed[1:3].transpose(2, 1, 0)),
        (lambda r: r.shrink(((0, 2), (0, 1), (0, 5))), summed[0:2].transpose(2, 1, 0)),  # (the strides of the whole)
    ]:
        reduced = Tensor(a).lazydata.reduce(Ops.ADD, (1,))  # (4, 1, 5), not computed yet
        out = view(reduced).permute_reduction((2, 1, 0))
        assert out.base is reduced and reduced.realized is None
        np.testing.assert_allclose(Tensor(out).numpy(), expected, rtol=1e-12)
    reduced = Tensor(a).lazydata.reduce(Ops.ADD, (1,))
    Tensor(reduced).realize()
    out = reduced.permute_reduction((2, 1, 0))
    assert out.base is reduced.base and out.base.realized is not None
    np.testing.assert_allclose(Tensor(out).numpy(), a.sum(1, keepdims=True).transpose(2, 1, 0), rtol=1e-12)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax_are_one_autograd_node(name: str, dim: int) -> None:
    """One node, whose backward is the closed form (checked in float64, a -inf logit included: its softmax is 0)."""
    x0 = rng.standard_normal((4, 5))
    x0[1, 2] = -np.inf
    g0 = rng.standard_normal(x0.shape)
    x = Tensor(x0, requires_grad=True)
    out = getattr(x, name)(dim)
    assert isinstance(out._ctx, Softmax if name == "softmax" else LogSoftmax)
    (out * Tensor(g0)).sum().backward()
    assert x.grad is not None
    e = np.exp(x0 - x0.max(dim, keepdims=True))
    s = e / e.sum(dim, keepdims=True)
    if name == "softmax":
        expected, grad = s, s * (g0 - (g0 * s).sum(dim, keepdims=True))
    else:
        with np.errstate(divide="ignore"):  # (log 0 = -inf, the -inf logit's)
            expected = np.log(s)
        grad = g0 - s * g0.sum(dim, keepdims=True)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), grad, rtol=1e-12, atol=1e-15)


def test_softmax_of_float16_sums_in_float32_and_a_0d_tensor_is_its_own_row() -> None:
    x0 = (rng.standard_normal((3, 700)) * 4).astype(np.float16)
    x = Tensor(x0, requires_grad=True)
    out = x.softmax(-1)
    assert out.dtype == x.dtype
    out.sum().backward()  # the gradient of a sum of softmaxes is 0 (up to float16 rounding)
    assert x.grad is not None and x.grad.dtype == x.dtype
    e = np.exp(x0.astype(np.float64) - x0.max(-1, keepdims=True))
    np.testing.assert_allclose(out.numpy().astype(np.float64), e / e.sum(-1, keepdims=True), rtol=1e-2, atol=2e-6)
    assert np.abs(x.grad.numpy().astype(np.float64)).max() < 1e-3
    assert Tensor(2.0).softmax().item() == 1.0 and Tensor(2.0).log_softmax().item() == 0.0


@pytest.mark.parametrize("x_shape", [(6, 5), (2, 3, 5)])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_a_matmul_by_a_2d_weight_is_one_autograd_node(x_shape: tuple[int, ...], dtype: str) -> None:
    x0 = rng.standard_normal(x_shape).astype(dtype)
    w0 = rng.standard_normal((5, 4)).astype(dtype)
    g0 = rng.standard_normal((*x_shape[:-1], 4)).astype(dtype)
    x, w = Tensor(x0, requires_grad=True), Tensor(w0, requires_grad=True)
    out = x @ w
    assert isinstance(out._ctx, MatMul) and out.shape == (*x_shape[:-1], 4) and out.dtype == x.dtype
    out.backward(Tensor(g0))
    assert x.grad is not None and w.grad is not None
    x64, w64, g64 = x0.astype(np.float64), w0.astype(np.float64), g0.astype(np.float64)
    tol = {"float64": 1e-12, "float32": 1e-5, "float16": 2e-2}[dtype]
    np.testing.assert_allclose(out.numpy().astype(np.float64), x64 @ w64, rtol=tol, atol=tol)
    np.testing.assert_allclose(x.grad.numpy().astype(np.float64), g64 @ w64.T, rtol=tol, atol=tol)
    rows = x64.reshape(-1, 5)
    np.testing.assert_allclose(w.grad.numpy().astype(np.float64), rows.T @ g64.reshape(-1, 4), rtol=tol, atol=tol)
    # one input needing no gradient gets none; a batched or 1-D weight and mixed dtypes take the general path
    frozen = Tensor(x0) @ Tensor(w0, requires_grad=True)
    assert isinstance(frozen._ctx, MatMul) and frozen._ctx.needs_input_grad == [False, True]
    assert not isinstance((Tensor(x0) @ Tensor(w0[None], requires_grad=True))._ctx, MatMul)
    assert not isinstance((Tensor(x0) @ Tensor(w0[:, 0], requires_grad=True))._ctx, MatMul)
    other = "float32" if dtype == "float64" else "float64"
    mixed = Tensor(x0, requires_grad=True) @ Tensor(w0.astype(other))
    assert not isinstance(mixed._ctx, MatMul) and mixed.dtype == dtypes.float64


def test_a_linear_layers_weight_gradient_reduces_its_rows_in_front() -> None:
    """nn.Linear's weight gradient over 2 x 1024 rows: one reduction, rows first, out in the weight's (out, in)
    layout (the kernel the transposed layout had)."""
    lin = nn.Linear(64, 32)
    x0 = rng.standard_normal((2, 1024, 64)).astype(np.float32)
    out = lin(Tensor(x0))
    (out * out).sum().backward()
    assert lin.weight.grad is not None
    grad = lin.weight.grad.lazydata
    assert grad.base.op is LazyOp.REDUCE and grad.base.arg[1] == (0,) and grad.base.shape == (1, 32, 64), grad.base
    assert grad.st.is_contiguous
    expected = 2 * (x0.reshape(-1, 64) @ lin.weight.numpy().T + lin.bias.numpy()).T @ x0.reshape(-1, 64)
    np.testing.assert_allclose(lin.weight.grad.numpy(), expected, rtol=2e-4, atol=1e-2)


@pytest.mark.parametrize("x_shape", [(6, 5), (2, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_linear_is_one_autograd_node(x_shape: tuple[int, ...], bias: bool, dtype: str) -> None:
    x0 = rng.standard_normal(x_shape).astype(dtype)
    w0, b0 = rng.standard_normal((4, 5)).astype(dtype), rng.standard_normal(4).astype(dtype)
    g0 = rng.standard_normal((*x_shape[:-1], 4)).astype(dtype)
    x, w, b = Tensor(x0, requires_grad=True), Tensor(w0, requires_grad=True), Tensor(b0, requires_grad=True)
    out = nn.functional.linear(x, w, b if bias else None)
    assert isinstance(out._ctx, MatMul) and out.shape == (*x_shape[:-1], 4)
    out.backward(Tensor(g0))
    assert x.grad is not None and w.grad is not None and (b.grad is not None) == bias
    x64, w64, b64, g64 = (a.astype(np.float64) for a in (x0, w0, b0, g0))
    tol = {"float64": 1e-12, "float16": 2e-2}[dtype]
    np.testing.assert_allclose(out.numpy().astype(np.float64), x64 @ w64.T + (b64 if bias else 0), rtol=tol, atol=tol)
    np.testing.assert_allclose(x.grad.numpy().astype(np.float64), g64 @ w64, rtol=tol, atol=tol)
    rows, grows = x64.reshape(-1, 5), g64.reshape(-1, 4)
    np.testing.assert_allclose(w.grad.numpy().astype(np.float64), grows.T @ rows, rtol=tol, atol=tol)
    if bias:
        assert b.grad is not None
        np.testing.assert_allclose(b.grad.numpy().astype(np.float64), grows.sum(0), rtol=tol, atol=tol)
    # a bias of another dtype takes the general path (which promotes), one of another shape too (which broadcasts it)
    xg = Tensor(x0, requires_grad=True)
    mixed = xg.linear(Tensor(w0), Tensor(b0.astype(np.float32)))
    assert not isinstance(mixed._ctx, MatMul)
    assert mixed.dtype == (dtypes.float64 if dtype == "float64" else dtypes.float32)
    wide = xg.linear(Tensor(w0), Tensor(b0[:1]))
    assert not isinstance(wide._ctx, MatMul)
    np.testing.assert_allclose(wide.numpy().astype(np.float64), x64 @ w64.T + b64[0], rtol=tol, atol=tol)


def test_gradients_through_a_transpose_of_part_of_a_reduction() -> None:
    """cat and pad take part of their gradient (a shrink from 0 keeps the strides): it is permuted as a view, and an
    addition's gradient, shared by both inputs, is rebuilt once."""
    a0, b0, w0 = rng.standard_normal((3, 4)), rng.standard_normal((3, 2)), rng.standard_normal((3, 5))
    a, b = Tensor(a0, requires_grad=True), Tensor(b0, requires_grad=True)
    (tg.cat([a.T, b.T]) @ Tensor(w0)).sum().backward()
    g = np.ones((6, 5)) @ w0.T
    assert a.grad is not None and b.grad is not None
    np.testing.assert_allclose(a.grad.numpy(), g[:4].T, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), g[4:].T, rtol=1e-12)
    x = Tensor(a0, requires_grad=True)
    (x.T.pad(((0, 2), (0, 0))) @ Tensor(w0)).sum().backward()
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), g[:4].T, rtol=1e-12)
    a, b = Tensor(a0, requires_grad=True), Tensor(a0 * 2, requires_grad=True)
    ((a.T + b.T) @ Tensor(w0)).sum().backward()
    assert a.grad is not None and b.grad is not None and a.grad.lazydata.base is b.grad.lazydata.base
    np.testing.assert_allclose(a.grad.numpy(), g[:4].T, rtol=1e-12)


def test_softmax_refuses_an_integer_dtype_and_cross_entropy_a_fractional_ignore_index() -> None:
    x = Tensor([[1.5, 2.0, -1.0]])
    for dtype in ("int32", "bool"):
        with pytest.raises(TypeError, match="must be a float dtype"):
            x.softmax(-1, dtype=dtype)
        with pytest.raises(TypeError, match="must be a float dtype"):
            x.log_softmax(-1, dtype=dtype)
    assert x.softmax(-1, dtype="float64").dtype == dtypes.float64
    logits = Tensor(rng.standard_normal((4, 5)).astype(np.float32))
    target = Tensor(np.array([3, 1, 3, 0], dtype=np.int64))
    # 3.5 matches no target (the general path compares exactly): no row is left out, as with no ignore_index
    np.testing.assert_allclose(nn.functional.cross_entropy(logits, target, ignore_index=3.5).item(),  # type: ignore
                               nn.functional.cross_entropy(logits, target, ignore_index=None).item(), rtol=1e-6)
