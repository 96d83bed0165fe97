"""Softmax and log-softmax as one autograd node each, and the row arithmetic they share with the fused cross entropy.

Written with tensor ops, a log-softmax is six autograd nodes (the row max, a subtraction, exp, a sum, log, another
subtraction) and its backward rebuilds the gradient from their pieces.  Here the forward is built on the lazy
buffers directly, with the ops ``Tensor.exp``, ``Tensor.log`` and ``Tensor.sum`` use (so the values are the
composed path's), and the backward is the closed form:

- log-softmax: ``g - softmax * sum(g)``;
- softmax: ``s * (g - sum(g * s))``;

each sum over the normalised axis, float16 accumulated in float32 as ``Tensor.sum`` does.  The row max only keeps
exp from overflowing and takes no gradient (the result does not depend on it).
"""

from __future__ import annotations

import math

from tg.frontend.function import Function, const_like, natural_log, sum_accumulated
from tg.graph.lazy import LazyBuffer
from tg.support.ops import Ops

_LOG2_E = 1 / math.log(2)


def shifted_exp(x: LazyBuffer, axes: tuple[int, ...]) -> tuple[LazyBuffer, LazyBuffer, LazyBuffer]:
    """``x`` minus its max over ``axes``, the exp of that, and its sum over ``axes`` (kept as size 1); no axes (a 0-d
    tensor) leave every element its own row."""
    shifted = x.alu(Ops.SUB, x.reduce(Ops.MAX, axes).expand(x.shape))
    e = shifted.alu(Ops.MUL, const_like(shifted, _LOG2_E)).alu(Ops.EXP2)
    return shifted, e, sum_accumulated(e, axes)


class LogSoftmax(Function):
    def forward(self, x: LazyBuffer, axes: tuple[int, ...] = ()) -> LazyBuffer:
        shifted, e, total = shifted_exp(x, axes)
        self.axes, self.softmax = axes, e.alu(Ops.DIV, total.expand(x.shape))
        return shifted.alu(Ops.SUB, natural_log(total).expand(x.shape))

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        row = sum_accumulated(grad, self.axes).expand(grad.shape)
        return grad.alu(Ops.SUB, self.softmax.alu(Ops.MUL, row))


class Softmax(Function):
    def forward(self, x: LazyBuffer, axes: tuple[int, ...] = ()) -> LazyBuffer:
        _, e, total = shifted_exp(x, axes)
        self.axes = axes
        self.ret = e.alu(Ops.DIV, total.expand(x.shape))
        return self.ret

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        row = sum_accumulated(grad.alu(Ops.MUL, self.ret), self.axes).expand(grad.shape)
        return self.ret.alu(Ops.MUL, grad.alu(Ops.SUB, row))
