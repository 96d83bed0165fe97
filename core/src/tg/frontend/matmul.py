"""A matrix product by a 2-D weight as one autograd node: ``x (..., m, k) @ w (k, n)``, the commonest op of training.

Written with tensor ops, a matmul is seven autograd nodes (a reshape and a broadcast of each operand, a transpose,
the product, the sum), each a Function, a Tensor and lazy buffers made going forward and walked going back.  Here
the forward builds the same lazy graph directly, x's leading axes taken together as rows: ``(rows, 1, k) *
(1, n, k)``, summed over k (float16 accumulated in float32, as ``Tensor.sum`` does).  The backward is the two
contractions of the gradient:

- ``dx = sum over n of w * g``, reshaped back to x's shape;
- ``dw = sum over rows of x * g``, built to come out in w's (k, n) layout (not as (n, k), transposed after), with
  every row of x (all of its leading axes at once) in one reduction.

Other operands (a 1-D or batched weight, mixed dtypes, integers) take the general path of ``Tensor.matmul``.
"""

from __future__ import annotations

import math

from tg.frontend.function import Function, sum_accumulated
from tg.graph.lazy import LazyBuffer
from tg.support.ops import Ops


class MatMul(Function):
    def forward(self, x: LazyBuffer, w: LazyBuffer) -> LazyBuffer:
        k, n = w.shape
        rows = math.prod(x.shape[:-1])
        self.x_shape = x.shape
        self.xb = x.reshape((rows, 1, k)).expand((rows, n, k))
        self.wb = w.permute((1, 0)).reshape((1, n, k)).expand((rows, n, k))
        return sum_accumulated(self.xb.alu(Ops.MUL, self.wb), (2,)).reshape((*x.shape[:-1], n))

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, LazyBuffer | None]:
        rows, n, k = self.xb.shape
        g = grad.reshape((rows, n, 1)).expand((rows, n, k))
        gx = sum_accumulated(self.wb.alu(Ops.MUL, g), (1,)).reshape(self.x_shape) if self.needs_input_grad[0] else None
        gw = None
        if self.needs_input_grad[1]:
            gw = sum_accumulated(self.xb.alu(Ops.MUL, g).permute((0, 2, 1)), (0,)).reshape((k, n))
        return gx, gw
