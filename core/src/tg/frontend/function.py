"""The differentiable primitives: each has a forward on LazyBuffers and a backward giving their gradients.

Everything else in :class:`~tg.frontend.tensor.Tensor` is composed from these, except a few ops that an eager step
runs so often that they are one node each, with their closed-form gradients: :mod:`tg.frontend.matmul`,
:mod:`tg.frontend.softmax` and :mod:`tg.frontend.cross_entropy`.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any

from tg.frontend.grad_mode import _disabled
from tg.graph.lazy import LazyBuffer
from tg.support.dtype import dtypes
from tg.support.ops import Ops

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor


class Function:
    """A node of the autograd graph: remembers its parents and whatever backward needs."""

    differentiable = True
    #: The output is what PyTorch makes a view of the first input (sharing its storage); tg's is a tensor of its
    #: own, so an in-place update of it is refused rather than silently not reaching the input.
    view = False

    def __init__(self, *tensors: Tensor):
        # (one and two inputs spelt out: a list comprehension is a function call before Python 3.12)
        needs = self.needs_input_grad = [bool(tensors[0].requires_grad)] if len(tensors) == 1 else \
            [bool(tensors[0].requires_grad), bool(tensors[1].requires_grad)] if len(tensors) == 2 else \
            [bool(t.requires_grad) for t in tensors]
        self.requires_grad = self.differentiable and True in needs and not _disabled.get()  # (grad_enabled())
        self.parents: tuple[Tensor, ...]
        if not self.requires_grad:
            self.parents = ()
            return
        self.parents = tensors
        for t in tensors:
            if t._ctx is not None:  # an inner node: an in-place update of it re-points this use (inplace.py)
                if t._uses is None:
                    t._uses = []
                t._uses.append(weakref.ref(self))

    def forward(self, *args: Any, **kwargs: Any) -> LazyBuffer:
        raise NotImplementedError

    def backward(self, grad: LazyBuffer) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *tensors: Tensor, **kwargs: Any) -> Tensor:
        ctx = cls(*tensors)
        n = len(tensors)
        data = ctx.forward(tensors[0].lazydata, **kwargs) if n == 1 else \
            ctx.forward(tensors[0].lazydata, tensors[1].lazydata, **kwargs) if n == 2 else \
            ctx.forward(*[t.lazydata for t in tensors], **kwargs)
        grad = ctx.requires_grad and data.dtype.kind == "f"  # no gradient through integers or bools (PyTorch's rule)
        out = type(tensors[0])(data, requires_grad=grad)
        if grad:
            out._ctx = ctx
        if cls.view:
            out._view = True
        return out


class _Freed(Function):
    """Stands where a graph node was, once a backward() without ``retain_graph`` has freed it."""

    def __init__(self) -> None:
        self.parents = ()

    def backward(self, grad: LazyBuffer) -> Any:
        raise RuntimeError("backward() through a graph that an earlier backward() already freed (the same loss twice, "
                           "or two losses that share part of their graph): call backward(retain_graph=True) the first "
                           "time, or add the losses and call backward() once")


FREED = _Freed()


def const_like(x: LazyBuffer, value: Any) -> LazyBuffer:
    """The constant ``value`` in ``x``'s dtype, device and shape (a broadcast view, no buffer)."""
    return LazyBuffer.const(value, x.dtype, x.device, x.shape)


# -- unary ---------------------------------------------------------------------------------------------


class Cast(Function):
    def forward(self, x: LazyBuffer, dtype: Any = None, bitcast: bool = False) -> LazyBuffer:
        self.input_dtype, self.bitcast = x.dtype, bitcast
        return x.cast(dtype, bitcast)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        assert not self.bitcast, "bitcast has no gradient"
        return grad.cast(self.input_dtype)


class Neg(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.NEG)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad.alu(Ops.NEG)


class Reciprocal(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.ret = x.alu(Ops.RECIP)
        return self.ret

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad.alu(Ops.NEG).alu(Ops.MUL, self.ret).alu(Ops.MUL, self.ret)


class Sin(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.x = x
        return x.alu(Ops.SIN)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        cos = const_like(self.x, math.pi / 2).alu(Ops.SUB, self.x).alu(Ops.SIN)
        return cos.alu(Ops.MUL, grad)


class Relu(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.ret = x.alu(Ops.MAX, const_like(x, 0))
        return self.ret

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return const_like(self.ret, 0).alu(Ops.CMPLT, self.ret).cast(grad.dtype).alu(Ops.MUL, grad)


class Log2(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.x = x
        return x.alu(Ops.LOG2)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad.alu(Ops.DIV, self.x.alu(Ops.MUL, const_like(self.x, math.log(2))))


class Exp2(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.ret = x.alu(Ops.EXP2)
        return self.ret

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return self.ret.alu(Ops.MUL, const_like(self.ret, math.log(2))).alu(Ops.MUL, grad)


class Sqrt(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.ret = x.alu(Ops.SQRT)
        return self.ret

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad.alu(Ops.DIV, self.ret.alu(Ops.MUL, const_like(self.ret, 2)))


class Sign(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        zero = const_like(x, 0)
        sign = zero.alu(Ops.CMPLT, x).cast(x.dtype).alu(Ops.SUB, x.alu(Ops.CMPLT, zero).cast(x.dtype))
        return x.alu(Ops.CMPNE, x).alu(Ops.WHERE, x, sign) if x.dtype.is_float else sign  # nan stays nan

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return const_like(grad, 0)


class Trunc(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.TRUNC)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return const_like(grad, 0)


# -- binary and ternary -----------------------------------------------------------------------------------


class Less(Function):
    differentiable = False

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.CMPLT, y)


class Equal(Function):
    differentiable = False

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.CMPEQ, y)


class NotEqual(Function):
    differentiable = False

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.CMPNE, y)


class Xor(Function):
    differentiable = False

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.XOR, y)


class And(Function):
    differentiable = False

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.AND, y)


class Or(Function):
    differentiable = False

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.OR, y)


class IntDiv(Function):
    differentiable = False

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.IDIV, y)


class Mod(Function):
    differentiable = False

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.MOD, y)


class Add(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.ADD, y)

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, LazyBuffer | None]:
        return (grad if self.needs_input_grad[0] else None, grad if self.needs_input_grad[1] else None)


class Sub(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.alu(Ops.SUB, y)

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, LazyBuffer | None]:
        return (grad if self.needs_input_grad[0] else None, grad.alu(Ops.NEG) if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.x, self.y = x, y
        return x.alu(Ops.MUL, y)

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, LazyBuffer | None]:
        return (self.y.alu(Ops.MUL, grad) if self.needs_input_grad[0] else None,
                self.x.alu(Ops.MUL, grad) if self.needs_input_grad[1] else None)


class Div(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.x, self.y = x, y
        return x.alu(Ops.DIV, y)

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, LazyBuffer | None]:
        gx = grad.alu(Ops.DIV, self.y) if self.needs_input_grad[0] else None
        gy = None
        if self.needs_input_grad[1]:
            gy = grad.alu(Ops.NEG).alu(Ops.MUL, self.x).alu(Ops.DIV, self.y.alu(Ops.MUL, self.y))
        return gx, gy


class Pow(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.x, self.y = x, y
        self.ret = x.alu(Ops.POW, y)
        return self.ret

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, LazyBuffer | None]:
        gx = gy = None
        if self.needs_input_grad[0]:  # y * x**(y-1)
            ym1 = self.y.alu(Ops.SUB, const_like(self.y, 1))
            gx = self.y.alu(Ops.MUL, self.x.alu(Ops.POW, ym1)).alu(Ops.MUL, grad)
        if self.needs_input_grad[1]:  # x**y * ln(x)
            gy = self.ret.alu(Ops.MUL, natural_log(self.x)).alu(Ops.MUL, grad)
        return gx, gy


class Maximum(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.x, self.y = x, y
        return x.alu(Ops.MAX, y)

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer | None, LazyBuffer | None]:
        # ties share the gradient equally, so sum of the two gradients is always grad
        x_wins = self.y.alu(Ops.CMPLT, self.x).cast(grad.dtype)
        tie = self.x.alu(Ops.CMPEQ, self.y).cast(grad.dtype).alu(Ops.MUL, const_like(grad, 0.5))
        gx = x_wins.alu(Ops.ADD, tie).alu(Ops.MUL, grad)
        gy = const_like(grad, 1).alu(Ops.SUB, x_wins.alu(Ops.ADD, tie)).alu(Ops.MUL, grad)
        return (gx if self.needs_input_grad[0] else None, gy if self.needs_input_grad[1] else None)


class Where(Function):
    def forward(self, c: LazyBuffer, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.c = c
        return c.alu(Ops.WHERE, x, y)

    def backward(self, grad: LazyBuffer) -> tuple[None, LazyBuffer | None, LazyBuffer | None]:
        zero = const_like(grad, 0)
        return (None, self.c.alu(Ops.WHERE, grad, zero) if self.needs_input_grad[1] else None,
                self.c.alu(Ops.WHERE, zero, grad) if self.needs_input_grad[2] else None)


# -- reductions -----------------------------------------------------------------------------------------


class Sum(Function):
    def forward(self, x: LazyBuffer, axes: tuple[int, ...] = ()) -> LazyBuffer:
        self.input_shape = x.shape
        return x.reduce(Ops.ADD, axes)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad.expand(self.input_shape)


class Max(Function):
    def forward(self, x: LazyBuffer, axes: tuple[int, ...] = ()) -> LazyBuffer:
        self.x, self.axes = x, axes
        self.ret = x.reduce(Ops.MAX, axes)
        return self.ret

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        # the gradient is split among the elements equal to the max
        is_max = self.x.alu(Ops.CMPEQ, self.ret.expand(self.x.shape)).cast(grad.dtype)
        count = is_max.reduce(Ops.ADD, self.axes)
        share = grad.alu(Ops.DIV, count)
        return is_max.alu(Ops.MUL, share.expand(self.x.shape))


# -- movement -------------------------------------------------------------------------------------------


class Contiguous(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.contiguous()

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad


class Reshape(Function):
    view = True

    def forward(self, x: LazyBuffer, shape: tuple[int, ...] = ()) -> LazyBuffer:
        self.input_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad.reshape(self.input_shape)


class Expand(Function):
    view = True

    def forward(self, x: LazyBuffer, shape: tuple[int, ...] = ()) -> LazyBuffer:
        self.axes = tuple(i for i, (a, b) in enumerate(zip(x.shape, shape)) if a != b)
        return x.expand(shape)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return sum_accumulated(grad, self.axes)


class Broadcast(Function):
    """``Reshape`` to ``padded`` (ones in front) then ``Expand`` to ``shape``, as one node: the same views going
    forward and the same gradient (the sum over the expanded axes, then the reshape back), one Function fewer."""

    view = True

    def forward(self, x: LazyBuffer, padded: tuple[int, ...] = (), shape: tuple[int, ...] = ()) -> LazyBuffer:
        self.input_shape = x.shape
        self.axes = tuple(i for i, (a, b) in enumerate(zip(padded, shape)) if a != b)
        return x.reshape(padded).expand(shape)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return sum_accumulated(grad, self.axes).reshape(self.input_shape)


def natural_log(x: LazyBuffer) -> LazyBuffer:
    """ln(x), as ``Tensor.log`` computes it: log2, times ln 2."""
    return x.alu(Ops.LOG2).alu(Ops.MUL, const_like(x, math.log(2)))


def sum_accumulated(x: LazyBuffer, axes: tuple[int, ...]) -> LazyBuffer:
    """``x`` summed over ``axes``, float16 accumulated in float32 (as ``Tensor.sum`` does) and rounded back once."""
    if x.dtype == dtypes.float16:
        return x.cast(dtypes.float32).reduce(Ops.ADD, axes).cast(dtypes.float16)
    return x.reduce(Ops.ADD, axes)


class Permute(Function):
    view = True

    def forward(self, x: LazyBuffer, order: tuple[int, ...] = ()) -> LazyBuffer:
        self.order = order
        return x.permute(order)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        inverse = tuple(sorted(range(len(self.order)), key=lambda i: self.order[i]))
        return grad.permute_reduction(inverse)


class Pad(Function):
    def forward(self, x: LazyBuffer, arg: tuple[tuple[int, int], ...] = ()) -> LazyBuffer:
        self.region = tuple((b, b + s) for s, (b, _) in zip(x.shape, arg))
        return x.pad(arg)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad.shrink(self.region)


class Shrink(Function):
    view = True

    def forward(self, x: LazyBuffer, arg: tuple[tuple[int, int], ...] = ()) -> LazyBuffer:
        self.padding = tuple((lo, s - hi) for s, (lo, hi) in zip(x.shape, arg))
        return x.shrink(arg)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad.pad(self.padding)


class Flip(Function):
    def forward(self, x: LazyBuffer, axes: tuple[int, ...] = ()) -> LazyBuffer:
        self.axes = axes
        return x.flip(axes)

    def backward(self, grad: LazyBuffer) -> LazyBuffer:
        return grad.flip(self.axes)
