"""Cross entropy of (N, C) logits with class-index targets as one autograd node (PyTorch fuses it too).

Written with tensor ops, the loss is a log-softmax, a one-hot, a product, two sums and a division: about 30 autograd
nodes whose backward walk rebuilds the softmax's gradient piece by piece, and whose graph costs an eager step more
Python than its two matmuls.  Here the forward is built on the lazy buffers directly and the backward is the known
closed form: ``grad * weight_i * (softmax - one_hot)``, scaled by ``1 / total weight`` for the mean.

The values are those of the general path (the same log-softmax ops, the same sums): a row's loss is its target's
log-probability, picked (not summed against a one-hot), so a -inf logit of another class (a masked logit) leaves
the loss finite and an ignored row adds 0 whatever its logits hold, as in PyTorch; an ignored row's gradient is 0
(PyTorch's is NaN where that row's logits hold a NaN).  :func:`class_index_cross_entropy` takes the common case
(float32/float64 logits of shape (N, C), N and C > 0, integer targets (N,), no class weights, no label smoothing)
and answers None for the rest, which the general path computes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tg.frontend import deferred_checks
from tg.frontend.function import Function, const_like, natural_log
from tg.frontend.softmax import shifted_exp
from tg.graph.lazy import LazyBuffer
from tg.support.dtype import dtypes
from tg.support.ops import Ops

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor

class ClassIndexCrossEntropy(Function):
    """Forward: the loss of ``x`` (N, C) against ``classes`` (N, C), the target's class index broadcast along C, and
    ``columns`` (N, C), each column's class number; ``valid`` (N,) marks the rows that count."""

    def forward(self, x: LazyBuffer, classes: LazyBuffer, columns: LazyBuffer, valid: LazyBuffer | None = None,
                reduction: str = "mean") -> LazyBuffer:
        n, c = x.shape
        shifted, e, total = shifted_exp(x, (1,))  # (the max shifts: no gradient flows there)
        logp = shifted.alu(Ops.SUB, natural_log(total).expand((n, c)))
        self.hot = classes.alu(Ops.CMPEQ, columns)
        self.softmax = e.alu(Ops.DIV, total.expand((n, c)))
        self.reduction, self.valid, self.shape = reduction, valid, (n, c)
        picked = self.hot.alu(Ops.WHERE, logp, const_like(logp, 0.0)).reduce(Ops.ADD, (1,)).reshape((n,))
        losses = picked.alu(Ops.NEG)
        if valid is not None:
            losses = valid.alu(Ops.WHERE, losses, const_like(losses, 0.0))
        if reduction == "none":
            return losses
        summed = losses.reduce(Ops.ADD, (0,)).reshape(())
        if reduction == "sum":
            return summed
        if valid is None:
            self.scale: LazyBuffer | float = 1 / n
            return summed.alu(Ops.MUL, const_like(summed, 1 / n))
        weight = valid.cast(x.dtype).reduce(Ops.ADD, (0,)).reshape(())
        self.scale = weight
        return summed.alu(Ops.DIV, weight)

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer, None, None, None]:
        n, c = self.shape
        if self.reduction == "none":
            per_row = grad
        else:
            if self.reduction == "mean":
                scale = self.scale
                grad = grad.alu(Ops.DIV, scale) if isinstance(scale, LazyBuffer) else \
                    grad.alu(Ops.MUL, const_like(grad, scale))
            per_row = grad.reshape((1,)).expand((n,))
        coefficient = per_row.reshape((n, 1)).expand((n, c))
        onehot = self.hot.cast(self.softmax.dtype)
        gx = self.softmax.alu(Ops.SUB, onehot).alu(Ops.MUL, coefficient)
        if self.valid is not None:
            gx = self.valid.reshape((n, 1)).expand((n, c)).alu(Ops.WHERE, gx, const_like(gx, 0.0))
        return gx, None, None, None


def class_index_cross_entropy(input: Tensor, target: Tensor, ignore_index: int | None, reduction: str
                              ) -> Tensor | None:
    """The cross entropy of logits ``input`` (N, C) with class indices ``target`` (N,) as one autograd node, rows
    whose target is ``ignore_index`` left out (None: every row counts); None where the general path must answer
    (other shapes or dtypes).  A target out of range raises IndexError at the next read, as one_hot's does."""
    if input.ndim != 2 or target.ndim != 1 or input.dtype not in (dtypes.float32, dtypes.float64) or \
            not target.dtype.is_int or target.shape[0] != input.shape[0] or 0 in input.shape:
        return None
    n, c = input.shape
    tensor = type(input)
    t = target.lazydata
    if target.dtype in (dtypes.int32, dtypes.int64) and \
            (ignore_index is None or (type(ignore_index) is int and -(1 << 31) <= ignore_index < 1 << 31)):
        # the masks built on the buffers (comparisons take no gradient), where every constant is an int the target's
        # dtype holds
        valid_lb = t.alu(Ops.CMPNE, const_like(t, ignore_index)) if ignore_index is not None else None
        bad_lb = t.alu(Ops.CMPLT, const_like(t, 0)).alu(Ops.OR, const_like(t, c - 1).alu(Ops.CMPLT, t))
        valid = tensor(valid_lb) if valid_lb is not None else None
        bad = tensor(bad_lb if valid_lb is None else valid_lb.alu(Ops.AND, bad_lb))
    else:
        valid = target != ignore_index if ignore_index is not None else None
        bad = (target < 0) | (target >= c)
        bad = bad if valid is None else valid & bad
    deferred_checks.defer_class_check(bad, c)
    columns = tensor.arange(c, dtype=target.dtype, device=input.device).lazydata.reshape((1, c)).expand((n, c))
    classes = t.reshape((n, 1)).expand((n, c))
    parts = (input, tensor(classes), tensor(columns)) + ((valid,) if valid is not None else ())
    return ClassIndexCrossEntropy.apply(*parts, reduction=reduction)
