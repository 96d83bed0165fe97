"""The losses of tg.nn.functional against numpy references written here: cross_entropy (class indices with
(N, C, d...) inputs, ignore_index, weight, label_smoothing, reductions; class probabilities), nll_loss, mse_loss,
l1_loss, binary_cross_entropy(_with_logits).  Gradients by finite differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tg.nn.functional as F
from tg import Tensor
from tg.testing import assert_close, check_grad, random_array, tensor


def _np_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    m = x - x.max(axis=axis, keepdims=True)
    return m - np.log(np.exp(m).sum(axis=axis, keepdims=True))


def _np_nll(logp: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, ignore_index: int = -100,
            reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    """PyTorch's cross entropy on log-probabilities (class dim 1), written out per target."""
    lp = np.moveaxis(logp, 1, -1) if logp.ndim > 1 else logp[None]
    t = target if logp.ndim > 1 else target[None]
    classes = lp.shape[-1]
    w = np.ones(classes) if weight is None else weight
    losses, weights = np.zeros(t.shape), np.zeros(t.shape)
    for idx in np.ndindex(t.shape):
        c = int(t[idx])
        if c == ignore_index:
            continue
        weights[idx] = w[c]
        smooth = -(lp[idx] * w).sum()
        losses[idx] = (1 - label_smoothing) * -lp[idx][c] * w[c] + label_smoothing / classes * smooth
    if reduction == "mean":
        return losses.sum() / weights.sum()
    if reduction == "sum":
        return losses.sum()
    return losses if logp.ndim > 1 else losses[0]


CE_CASES: list[tuple[tuple[int, ...], dict[str, Any]]] = [  # (input shape, options)
    ((5, 4), {}),
    ((5, 4), {"reduction": "sum"}),
    ((5, 4), {"reduction": "none", "label_smoothing": 0.2}),
    ((6, 5), {"ignore_index": 2}),
    ((6, 5), {"reduction": "none", "ignore_index": 0}),
    ((6, 5), {"reduction": "sum", "ignore_index": 4}),
    ((3, 4, 2, 3), {"ignore_index": 1}),
    ((3, 4, 2), {"weighted": True, "ignore_index": 2, "label_smoothing": 0.1}),
    ((4,), {"reduction": "none"}),
]


@pytest.mark.parametrize(("shape", "options"), CE_CASES, ids=[f"{s}-{sorted(o)}".replace(" ", "")
                                                               for s, o in CE_CASES])
def test_cross_entropy_with_class_indices(shape: tuple[int, ...], options: dict[str, Any],
                                          rng: np.random.Generator) -> None:
    opts = dict(options)
    weight = random_array((shape[0] if len(shape) == 1 else shape[1],), rng=rng, low=0.5, high=2) \
        if opts.pop("weighted", False) else None
    a = random_array(shape, rng=rng, low=-2, high=2)
    classes = shape[0] if len(shape) == 1 else shape[1]
    target = rng.integers(0, classes, size=shape[:1] + shape[2:] if len(shape) > 1 else ())
    logp = _np_log_softmax(a.astype(np.float64), 0 if len(shape) == 1 else 1)
    want = _np_nll(logp, target, weight, **opts)
    w = tensor(weight) if weight is not None else None
    got = F.cross_entropy(tensor(a), Tensor(np.asarray(target, dtype=np.int32)), weight=w, **opts)
    assert_close(got, want, msg=str(options))
    if len(shape) > 1 and (len(shape) > 2 or "ignore_index" in options):  # gradients (with options)
        tt = Tensor(np.asarray(target, dtype=np.int32))
        check_grad(lambda x: F.cross_entropy(x, tt, weight=w, **opts),
                   lambda x: _np_nll(_np_log_softmax(x, 1), target, weight, **opts), [a], rng)


def test_cross_entropy_reads_the_targets_log_probability(rng: np.random.Generator) -> None:
    """A row's loss is -logp[target] (PyTorch's), not a sum of logp * one_hot: a -inf logit of another class (a masked
    class) leaves the loss and its gradient finite, and an ignored row adds nothing whatever its logits hold."""
    a = random_array((4, 5), rng=rng)
    a[0, 1] = a[2, 4] = -np.inf
    a[3] = np.nan  # an ignored row
    target = np.array([0, 3, 1, 2])
    logp = _np_log_softmax(a[:3].astype(np.float64), 1)
    rows = np.append(-logp[np.arange(3), target[:3]], 0.0)
    t = Tensor(target.astype(np.int32))
    for weight in (None, Tensor.ones(5)):  # (a weight takes the general path: a product of ops, not one node)
        x = Tensor(a, requires_grad=True)
        for reduction, want in (("mean", rows.sum() / 3), ("sum", rows.sum()), ("none", rows)):
            loss = F.cross_entropy(x, t, weight=weight, ignore_index=2, reduction=reduction)
            assert_close(loss, want, msg=f"{reduction}, weight {weight is not None}")
        F.cross_entropy(x, t, weight=weight, ignore_index=2).backward()
        assert x.grad is not None
        grad = x.grad.numpy()
        np.testing.assert_allclose(grad[:3], (np.exp(logp) - np.eye(5)[target[:3]]) / 3, rtol=1e-4, atol=1e-6)
        assert grad[0, 1] == 0 and grad[2, 4] == 0
        if weight is None:  # (the general path's ignored row takes log_softmax's gradient of NaN logits: NaN)
            assert (grad[3] == 0).all()
    logp_masked = np.log(np.array([[0.5, 0.5, 1.0], [0.2, 1.0, 0.8]], np.float32))
    logp_masked[0, 2] = logp_masked[1, 1] = -np.inf  # log-probabilities of 0 for other classes than the target
    assert_close(F.nll_loss(Tensor(logp_masked), Tensor(np.array([1, 2], np.int32))), -(np.log(0.5) + np.log(0.8)) / 2)


def test_nll_loss(rng: np.random.Generator) -> None:
    a = random_array((6, 3), rng=rng)
    logp = _np_log_softmax(a.astype(np.float64), 1)
    target = np.array([0, 2, 1, -100, 2, 0])
    got = F.nll_loss(tensor(logp.astype(np.float32)), Tensor(target.astype(np.int32)))
    assert_close(got, _np_nll(logp, target))
    weight = np.array([0.5, 1.0, 2.0])
    got = F.nll_loss(tensor(logp.astype(np.float32)), Tensor(target.astype(np.int32)), weight=tensor(weight, "float32"),
                     reduction="none")
    assert_close(got, _np_nll(logp, target, weight, reduction="none"))
    assert float(F.nll_loss(Tensor([[-1.0, -2.0]]), Tensor([1]), reduce=False)[0]) == 2.0  # PyTorch's old flag


def test_cross_entropy_with_class_probabilities(rng: np.random.Generator) -> None:
    a = random_array((4, 3, 2), rng=rng)
    probs = rng.random((4, 3, 2))
    probs /= probs.sum(axis=1, keepdims=True)
    logp = _np_log_softmax(a.astype(np.float64), 1)
    smoothed = probs * 0.9 + 0.1 / 3
    assert_close(F.cross_entropy(tensor(a), tensor(probs.astype(np.float32))), -(logp * probs).sum(1).mean())
    assert_close(F.cross_entropy(tensor(a), tensor(probs.astype(np.float32)), label_smoothing=0.1, reduction="sum"),
                 -(logp * smoothed).sum())


def test_cross_entropy_errors() -> None:
    logits = Tensor.zeros(4, 3)
    with pytest.raises(ValueError, match=r"must have shape \(4,\)"):
        F.cross_entropy(logits, Tensor([0, 1]))
    with pytest.raises(ValueError, match="reduction must be"):
        F.cross_entropy(logits, Tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ValueError, match="one value per class"):
        F.cross_entropy(logits, Tensor([0, 1, 2, 0]), weight=Tensor([1.0, 2.0]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(reduction: str, rng: np.random.Generator) -> None:
    a, b = random_array((3, 4), rng=rng), random_array((3, 4), rng=rng)
    x, y = a.astype(np.float64), b.astype(np.float64)

    def reduce(v: np.ndarray) -> Any:
        return v.mean() if reduction == "mean" else v.sum() if reduction == "sum" else v

    assert_close(F.mse_loss(tensor(a), tensor(b), reduction=reduction), reduce((x - y) ** 2))
    assert_close(F.l1_loss(tensor(a), tensor(b), reduction=reduction), reduce(np.abs(x - y)))


def test_binary_cross_entropy(rng: np.random.Generator) -> None:
    p, y, w = (random_array((3, 4), rng=rng, low=0.05, high=0.95), (rng.random((3, 4)) < 0.5).astype(np.float32),
               random_array((3, 4), rng=rng, low=0.5, high=2))
    p64 = p.astype(np.float64)
    want = -(y * np.log(p64) + (1 - y) * np.log(1 - p64))
    assert_close(F.binary_cross_entropy(tensor(p), tensor(y)), want.mean())
    assert_close(F.binary_cross_entropy(tensor(p), tensor(y), weight=tensor(w), reduction="none"), want * w)
    assert_close(F.binary_cross_entropy(Tensor([0.0, 1.0]), Tensor([1.0, 0.0]), reduction="sum"), 200.0)  # clamped
    with pytest.raises(ValueError, match="target shape"):
        F.binary_cross_entropy(tensor(p), Tensor.zeros(4))


def test_binary_cross_entropy_with_logits(rng: np.random.Generator) -> None:
    a, y = random_array((3, 4), rng=rng, low=-4, high=4), (rng.random((3, 4)) < 0.5).astype(np.float32)
    pos = random_array((4,), rng=rng, low=0.5, high=3)

    def ref(x: np.ndarray) -> np.ndarray:
        s = 1 / (1 + np.exp(-x))
        return -(pos * y * np.log(s) + (1 - y) * np.log(1 - s))

    assert_close(F.binary_cross_entropy_with_logits(tensor(a), tensor(y), pos_weight=tensor(pos)),
                 ref(a.astype(np.float64)).mean())
    check_grad(lambda x: F.binary_cross_entropy_with_logits(x, tensor(y), pos_weight=tensor(pos), reduction="none"),
               ref, [a])
    big = F.binary_cross_entropy_with_logits(Tensor([100.0, -100.0]), Tensor([0.0, 1.0]), reduction="none")
    assert_close(big, [100.0, 100.0])  # no overflow: log(1 + exp(100)) is 100
