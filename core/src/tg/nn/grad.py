"""A gradient barrier: identity going forward, computes the incoming gradient into a buffer going back.

The scheduler fuses elementwise work into every reduction that consumes it, so a gradient built from a
long elementwise chain (ReLU, max-pool and softmax backward) is recomputed inside each reduction that
reads it: for a convolution, once per weight element.  Layers whose backward reads their output
gradient many times (Conv2d) put this barrier on their output, so the chain runs once.
"""

from __future__ import annotations

from tg.frontend.autograd import realize_gradient
from tg.frontend.function import Function
from tg.frontend.grad_mode import grad_enabled
from tg.frontend.tensor import Tensor
from tg.graph.lazy import LazyBuffer


class _Barrier(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return realize_gradient(grad)


def materialize_grad(x: Tensor) -> Tensor:
    """``x`` unchanged; its gradient is computed once, into a buffer, before layers below use it."""
    return _Barrier.apply(x) if x.requires_grad and grad_enabled() else x
