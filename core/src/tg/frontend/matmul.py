"""A matrix product by a 2-D weight as one autograd node: ``x (..., m, k) @ w (k, n)``, the commonest op of training.

Written with tensor ops, a matmul is seven autograd nodes (a reshape and a broadcast of each operand, a transpose,
the product, the sum), each a Function, a Tensor and lazy buffers made going forward and walked going back.  Here
the forward builds the same lazy graph directly, x's leading axes taken together as rows: ``(rows, 1, k) *
(1, n, k)``, summed over k (float16 accumulated in float32, as ``Tensor.sum`` does).  The backward is the two
contractions of the gradient:

- ``dx = sum over n of w * g``, reshaped back to x's shape;
- ``dw = sum over rows of x * g``, built to come out in w's (k, n) layout (not as (n, k), transposed after), with
  every row of x (all of its leading axes at once) in one reduction.

``Tensor.linear`` (nn.Linear's ``x @ weight.T + bias``) is the same node, with the weight as (n, k) and the bias
added: its gradient is the sum of ``g`` over the rows, and the weight's comes out in the weight's (n, k) layout.

Other operands (a 1-D or batched weight, mixed dtypes, integers) take the general path of ``Tensor.matmul``.
"""

from __future__ import annotations

import math

from tg.frontend.function import Function, sum_accumulated
from tg.graph.lazy import LazyBuffer
from tg.support.ops import Ops


class MatMul(Function):
    def forward(self, x: LazyBuffer, w: LazyBuffer, bias: LazyBuffer | None = None,
                transposed: bool = False) -> LazyBuffer:
        """``x @ w``; ``transposed``: ``x @ w.T`` (w as (n, k), nn.Linear's), plus ``bias`` (n,) when given."""
        n, k = w.shape if transposed else w.shape[::-1]
        rows = math.prod(x.shape[:-1])
        self.x_shape, self.transposed, self.has_bias = x.shape, transposed, bias is not None
        self.xb = x.reshape((rows, 1, k)).expand((rows, n, k))
        self.wb = (w if transposed else w.permute((1, 0))).reshape((1, n, k)).expand((rows, n, k))
        out = sum_accumulated(self.xb.alu(Ops.MUL, self.wb), (2,)).reshape((*x.shape[:-1], n))
        if bias is None:
            return out
        return out.alu(Ops.ADD, bias.reshape((1,) * (len(out.shape) - 1) + (n,)).expand(out.shape))

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, ...]:
        rows, n, k = self.xb.shape
        needs = self.needs_input_grad
        g = grad.reshape((rows, n, 1)).expand((rows, n, k))
        gx = sum_accumulated(self.wb.alu(Ops.MUL, g), (1,)).reshape(self.x_shape) if needs[0] else None
        gw = None
        if needs[1]:
            product = self.xb.alu(Ops.MUL, g)  # (rows, n, k), summed over the rows in the weight's layout
            gw = sum_accumulated(product, (0,)).reshape((n, k)) if self.transposed else \
                sum_accumulated(product.permute((0, 2, 1)), (0,)).reshape((k, n))
        if not self.has_bias:
            return gx, gw
        gb = sum_accumulated(grad.reshape((rows, n)), (0,)).reshape((n,)) if needs[2] else None
        return gx, gw, gb
