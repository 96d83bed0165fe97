"""Loss functions of :mod:`tg.nn.functional`, with PyTorch's signatures and semantics.

``cross_entropy`` and ``nll_loss`` take (C,), (N, C) or (N, C, d1, ...) inputs with class-index targets of the
same shape less the class dim; ``ignore_index`` positions add nothing and do not count, ``weight`` rescales
each class, and ``reduction="mean"`` divides by the total weight of the counted targets (PyTorch's rule).
``cross_entropy`` also takes class probabilities as the target (same shape as the input).
"""

from __future__ import annotations

from tg.frontend.cross_entropy import class_index_cross_entropy
from tg.frontend.tensor import Tensor
from tg.support.dtype import dtypes

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "l1_loss", "mse_loss",
           "nll_loss"]


def _reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """PyTorch's deprecated ``size_average``/``reduce`` flags, when given, decide the reduction as they do there."""
    if size_average is not None or reduce is not None:
        if reduce is False:
            return "none"
        return "sum" if size_average is False else "mean"
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def _class_last(x: Tensor, what: str) -> Tensor:
    """(N, C, d1, ...) -> (N, d1, ..., C); (N, C) and (C,) as they are."""
    if x.ndim == 0:
        raise ValueError(f"{what}: the input needs a class dim, got a 0-d tensor")
    return x if x.ndim <= 2 else x.permute(0, *range(2, x.ndim), 1)


def _check_target(input: Tensor, target: Tensor, what: str) -> None:
    expected = input.shape[:1] + input.shape[2:] if input.ndim >= 2 else ()
    if target.shape != expected:
        raise ValueError(f"{what}: a target of class indices for an input of shape {input.shape} must have shape "
                         f"{expected} (the input's shape less its class dim 1), got {target.shape}")
    if target.dtype.is_float or target.dtype.name == "bool":
        raise TypeError(f"{what}: the target must hold integer class indices, got {target.dtype.name}"
                        + (" (for class probabilities give a target of the input's shape)"
                           if what == "cross_entropy" else ""))


def _target_losses(logp: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Each target's loss ``-weight[t] * logp[t]`` and weight ``weight[t]`` (both 0 where ``t`` is ignored), the
    classes along the last dim of ``logp``.  The log-probability is picked, not summed against a one-hot: a -inf of
    another class (a masked logit), or an ignored row's NaN, stays out of the loss (PyTorch's answers)."""
    valid = target != ignore_index
    hot = valid.where(target, 0).one_hot(logp.shape[-1]).cast(dtypes.bool)
    if weight is not None and weight.shape != (logp.shape[-1],):
        raise ValueError(f"weight must have one value per class, shape ({logp.shape[-1]},), got {weight.shape}")
    onehot = hot.cast(logp.dtype)
    w = valid.where((onehot * weight).sum(-1) if weight is not None else onehot.sum(-1), 0.0)
    return valid.where(-hot.where(logp, 0.0).sum(-1) * w, 0.0), w


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """The negative log likelihood of the target classes, given log-probabilities ``input`` (class dim 1)."""
    reduction = _reduction(size_average, reduce, reduction)
    _check_target(input, target, "nll_loss")
    logp = _class_last(input, "nll_loss")
    losses, w = _target_losses(logp, target, weight, ignore_index)
    if reduction == "mean":
        return losses.sum() / w.sum()
    return losses.sum() if reduction == "sum" else losses


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of unnormalized ``input`` logits (class dim 1) with class indices or class probabilities.

    With ``label_smoothing`` e the target is mixed with the uniform distribution: (1 - e) * one-hot + e / C."""
    reduction = _reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if not target.dtype.is_float and weight is None and not label_smoothing:
        _check_target(input, target, "cross_entropy")
        fused = class_index_cross_entropy(input, target, ignore_index, reduction)  # (N, C) logits: one node
        if fused is not None:
            return fused
    class_dim = 0 if input.ndim == 1 else 1
    logp = _class_last(input.log_softmax(class_dim), "cross_entropy")
    classes = logp.shape[-1]
    if target.dtype.is_float:  # class probabilities
        if target.shape != input.shape:
            raise ValueError(f"cross_entropy: a target of class probabilities must have the input's shape "
                             f"{input.shape}, got {target.shape}")
        probs = _class_last(target, "cross_entropy")
        if label_smoothing:
            probs = probs * (1 - label_smoothing) + label_smoothing / classes
        if weight is not None:
            probs = probs * weight
        return _reduce(-(logp * probs).sum(-1), reduction)  # "mean" divides by the count of distributions
    _check_target(input, target, "cross_entropy")
    losses, w = _target_losses(logp, target, weight, ignore_index)
    if label_smoothing:
        spread = (target != ignore_index).where(-((logp * weight) if weight is not None else logp).sum(-1), 0.0)
        losses = (1 - label_smoothing) * losses + (label_smoothing / classes) * spread
    if reduction == "mean":
        return losses.sum() / w.sum()
    return losses.sum() if reduction == "sum" else losses


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean") -> Tensor:
    diff = input - target
    return _reduce(diff * diff, _reduction(size_average, reduce, reduction))


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean") -> Tensor:
    return _reduce((input - target).abs(), _reduction(size_average, reduce, reduction))


def _same_shape(input: Tensor, target: Tensor, what: str) -> None:
    if input.shape != target.shape:
        raise ValueError(f"{what}: target shape {target.shape} must equal the input's {input.shape}")


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> Tensor:
    """BCE of probabilities ``input``; each log is clamped at -100, as in PyTorch (so p = 0 or 1 stays finite)."""
    reduction = _reduction(size_average, reduce, reduction)
    _same_shape(input, target, "binary_cross_entropy")
    p = input._float()
    loss = -(target * p.log().maximum(-100.0) + (1 - target) * (1 - p).log().maximum(-100.0))
    return _reduce(loss * weight if weight is not None else loss, reduction)


def _softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)) without overflow."""
    return x.relu() + (1 + (-x.abs()).exp()).log()


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """BCE of sigmoid(``input``), computed from the logits stably; ``pos_weight`` scales the positive term."""
    reduction = _reduction(size_average, reduce, reduction)
    _same_shape(input, target, "binary_cross_entropy_with_logits")
    x = input._float()
    positive = target * _softplus(-x)  # -log(sigmoid(x)) = softplus(-x)
    if pos_weight is not None:
        positive = positive * pos_weight
    loss = positive + (1 - target) * _softplus(x)  # -log(1 - sigmoid(x)) = softplus(x)
    return _reduce(loss * weight if weight is not None else loss, reduction)
