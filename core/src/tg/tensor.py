"""Tensor: the user-facing array with autograd, built lazily on the primitives of :mod:`tg.function`.

Nothing computes until ``realize()``, ``numpy()``, ``tolist()`` or ``item()``.  Names follow PyTorch so
programs and tests can rely on them.  Dtype promotion is documented in :mod:`tg.dtype`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, TypeAlias

import numpy as np

from tg import function as F
from tg.device import canonical_name
from tg.dtype import DType, dtypes, promote, scalar_dtype
from tg.lazy import LazyBuffer
from tg.realize import current_recorder, realize

Scalar = int | float | bool
# The class's own int()/float()/bool() methods shadow the builtins inside its body: annotate with these.
Int: TypeAlias = int
Float: TypeAlias = float
Bool: TypeAlias = bool


def _shape_arg(shape: tuple[Any, ...]) -> tuple[int, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` both mean shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"shape must be non-negative integers, got {shape}")
    return tuple(int(s) for s in shape)


class Tensor:
    """An n-dimensional array on a backend, with gradients."""

    __slots__ = ("_ctx", "grad", "lazydata", "requires_grad")
    training: ClassVar[bool] = False
    no_grad: ClassVar[bool] = False
    _rng: ClassVar[np.random.Generator] = np.random.default_rng()

    def __init__(self, data: Any, dtype: DType | str | None = None, device: str | None = None,
                 requires_grad: Bool | None = None):
        self._ctx: F.Function | None = None
        self.grad: Tensor | None = None
        self.requires_grad = requires_grad
        dt = dtypes.from_any(dtype) if dtype is not None else None
        if isinstance(data, LazyBuffer):
            if dt is not None and dt != data.dtype:
                raise TypeError("cannot change the dtype of a LazyBuffer in the constructor; use .cast")
            self.lazydata = data if device is None else data.copy_to(canonical_name(device))
            return
        dev = canonical_name(device)
        if isinstance(data, Tensor):
            data = data.numpy()
        if isinstance(data, (bool, int, float)) and not isinstance(data, np.generic):
            dt = dt or (dtypes.bool if isinstance(data, bool) else
                        dtypes.default_int if isinstance(data, int) else dtypes.default_float)
            self.lazydata = LazyBuffer.const(data, dt, dev)
            return
        array = _to_numpy(data, dt)
        self.lazydata = LazyBuffer.from_numpy(array, dev)

    # -- properties ---------------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[Int, ...]:
        return self.lazydata.shape

    @property
    def dtype(self) -> DType:
        return self.lazydata.dtype

    @property
    def device(self) -> str:
        return self.lazydata.device

    @property
    def ndim(self) -> Int:
        return len(self.shape)

    def numel(self) -> Int:
        return math.prod(self.shape)

    def __len__(self) -> Int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<Tensor {self.shape} {self.dtype.name} on {self.device}{' grad' if self.requires_grad else ''}>"

    def __hash__(self) -> Int:
        return id(self)

    def __bool__(self) -> Bool:
        if self.numel() != 1:
            raise ValueError(f"the truth value of a tensor with {self.numel()} elements is ambiguous; "
                             "use .any() or .all()")
        return bool(self.item())

    # -- realizing -------------------------------------------------------------------------------------------

    def realize(self) -> Tensor:
        realize([self.lazydata])
        return self

    def numpy(self) -> np.ndarray:
        recorder = current_recorder()
        if recorder is not None:
            recorder.check_value_read()
        lb = self.lazydata
        if lb.is_view and not (lb.st.is_contiguous and math.prod(lb.base.shape) == lb.st.size()):
            lb = lb.contiguous()
        realize([lb])
        return lb.base.realized.numpy().reshape(self.shape).copy()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def item(self) -> Scalar:
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        value: Scalar = self.numpy().reshape(-1)[0].item()
        return value

    def detach(self) -> Tensor:
        return Tensor(self.lazydata, requires_grad=False)

    def to(self, device: str) -> Tensor:
        name = canonical_name(device)
        if name == self.device:
            return self
        out = Tensor(self.lazydata.copy_to(name), requires_grad=False)
        return out

    def contiguous(self) -> Tensor:
        return F.Contiguous.apply(self)

    def assign(self, other: Tensor | Any) -> Tensor:
        """Replace this tensor's value (same shape and dtype) in place, keeping the Python object."""
        other = other if isinstance(other, Tensor) else Tensor(other, dtype=self.dtype, device=self.device)
        if other.shape != self.shape:
            raise ValueError(f"assign: shape {other.shape} does not match {self.shape}")
        recorder = current_recorder()
        if recorder is not None:  # tg.jit is tracing: this tensor is state
            recorder.note_assign(self, self.lazydata)
        self.lazydata = other.cast(self.dtype).lazydata
        return self

    # -- creation --------------------------------------------------------------------------------------------

    @staticmethod
    def full(shape: Any, fill_value: Scalar, dtype: DType | str | None = None, device: str | None = None,
             requires_grad: Bool | None = None) -> Tensor:
        shape = _shape_arg(shape if isinstance(shape, tuple) else (shape,))
        dt = dtypes.from_any(dtype) if dtype is not None else (
            dtypes.bool if isinstance(fill_value, bool) else
            dtypes.default_int if isinstance(fill_value, int) else dtypes.default_float)
        return Tensor(LazyBuffer.const(fill_value, dt, canonical_name(device), shape), requires_grad=requires_grad)

    @staticmethod
    def zeros(*shape: Any, dtype: DType | str | None = None, device: str | None = None,
              requires_grad: Bool | None = None) -> Tensor:
        return Tensor.full(_shape_arg(shape), 0.0, dtype, device, requires_grad)

    @staticmethod
    def ones(*shape: Any, dtype: DType | str | None = None, device: str | None = None,
             requires_grad: Bool | None = None) -> Tensor:
        return Tensor.full(_shape_arg(shape), 1.0, dtype, device, requires_grad)

    @staticmethod
    def empty(*shape: Any, dtype: DType | str | None = None, device: str | None = None) -> Tensor:
        dt = dtypes.from_any(dtype) if dtype is not None else dtypes.default_float
        return Tensor(LazyBuffer.empty(_shape_arg(shape), dt, canonical_name(device)))

    @staticmethod
    def zeros_like(t: Tensor, **kwargs: Any) -> Tensor:
        return Tensor.full(t.shape, 0, kwargs.pop("dtype", t.dtype), kwargs.pop("device", t.device), **kwargs)

    @staticmethod
    def ones_like(t: Tensor, **kwargs: Any) -> Tensor:
        return Tensor.full(t.shape, 1, kwargs.pop("dtype", t.dtype), kwargs.pop("device", t.device), **kwargs)

    @staticmethod
    def arange(start: Scalar, stop: Scalar | None = None, step: Scalar = 1, dtype: DType | str | None = None,
               device: str | None = None) -> Tensor:
        if stop is None:
            start, stop = 0, start
        if step == 0:
            raise ValueError("arange: step must not be 0")
        dt = dtypes.from_any(dtype) if dtype is not None else (
            dtypes.default_int if all(isinstance(x, int) for x in (start, stop, step)) else dtypes.default_float)
        return Tensor(np.arange(start, stop, step).astype(dt.np), device=device)

    @staticmethod
    def eye(n: Int, m: Int | None = None, dtype: DType | str | None = None, device: str | None = None) -> Tensor:
        dt = dtypes.from_any(dtype) if dtype is not None else dtypes.default_float
        return Tensor(np.eye(n, m if m is not None else n, dtype=dt.np), device=device)

    @staticmethod
    def manual_seed(seed: Int) -> None:
        Tensor._rng = np.random.default_rng(seed)

    @staticmethod
    def rand(*shape: Any, dtype: DType | str | None = None, device: str | None = None,
             requires_grad: Bool | None = None) -> Tensor:
        return _random(lambda size: Tensor._rng.random(size), shape, dtype, device, requires_grad)

    @staticmethod
    def randn(*shape: Any, dtype: DType | str | None = None, device: str | None = None,
              requires_grad: Bool | None = None) -> Tensor:
        return _random(lambda size: Tensor._rng.standard_normal(size), shape, dtype, device, requires_grad)

    @staticmethod
    def uniform(*shape: Any, low: Float = 0.0, high: Float = 1.0, dtype: DType | str | None = None,
                device: str | None = None, requires_grad: Bool | None = None) -> Tensor:
        return _random(lambda size: Tensor._rng.uniform(low, high, size), shape, dtype, device, requires_grad)

    @staticmethod
    def randint(*shape: Any, low: Int = 0, high: Int = 10, device: str | None = None) -> Tensor:
        return _random(lambda size: Tensor._rng.integers(low, high, size), shape, dtypes.int32, device, None)

    # -- autograd ----------------------------------------------------------------------------------------------

    def _toposort(self) -> list[Tensor]:
        order: list[Tensor] = []
        seen: set[Int] = set()
        stack: list[tuple[Tensor, Bool]] = [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            if node._ctx is not None:
                stack.extend((p, False) for p in node._ctx.parents if id(p) not in seen)
        return order

    def backward(self, gradient: Tensor | None = None) -> Tensor:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``; ``self`` must be a scalar (or pass ``gradient``)."""
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError(f"backward() needs a scalar, this tensor has shape {self.shape}: reduce it first "
                                   "(e.g. loss.sum() or loss.mean()), or pass backward(gradient=...)")
            gradient = Tensor.ones(self.shape, dtype=self.dtype, device=self.device)
        elif gradient.shape != self.shape:
            raise ValueError(f"backward: gradient shape {gradient.shape} does not match {self.shape}")
        if self._ctx is None and not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad; create its inputs with "
                               "requires_grad=True (and not under no_grad())")
        grads: dict[Int, LazyBuffer] = {id(self): gradient.lazydata}
        for t in reversed(self._toposort()):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if t._ctx is None:
                if t.requires_grad:
                    t.grad = Tensor(g) if t.grad is None else Tensor(t.grad.lazydata.alu(_ADD, g))
                continue
            out = t._ctx.backward(g)
            outs = out if isinstance(out, tuple) else (out,)
            for parent, pg in zip(t._ctx.parents, outs):
                if pg is None or not parent.requires_grad:
                    continue
                assert pg.shape == parent.shape, f"grad shape {pg.shape} != {parent.shape} in {t._ctx}"
                grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)].alu(_ADD, pg)
            t._ctx = None  # free the graph as we go
        return self

    # -- broadcasting and binary ops ------------------------------------------------------------------------

    def _broadcasted(self, other: Any, reverse: Bool = False, op: str = "broadcast") -> tuple[Tensor, Tensor]:
        x: Tensor = self
        if isinstance(other, Tensor):
            y = other
            if y.device != x.device:
                raise ValueError(f"tensors on different backends ({x.device} and {y.device}); move one with .to()")
            dt = promote(x.dtype, y.dtype)
        else:
            dt = scalar_dtype(other, x.dtype)
            y = Tensor(LazyBuffer.const(other, dt, x.device))
        x, y = x.cast(dt), y.cast(dt)
        if reverse:
            x, y = y, x
        return _broadcast_pair(x, y, op)

    def add(self, other: Any, reverse: Bool = False) -> Tensor:
        return F.Add.apply(*self._broadcasted(other, reverse, op="add"))

    def sub(self, other: Any, reverse: Bool = False) -> Tensor:
        return F.Sub.apply(*self._broadcasted(other, reverse, op="sub"))

    def mul(self, other: Any, reverse: Bool = False) -> Tensor:
        return F.Mul.apply(*self._broadcasted(other, reverse, op="mul"))

    def div(self, other: Any, reverse: Bool = False) -> Tensor:
        x, y = self._broadcasted(other, reverse, op="div")
        if not x.dtype.is_float:
            x, y = x.float(), y.float()
        return F.Div.apply(x, y)

    def floordiv(self, other: Any, reverse: Bool = False) -> Tensor:
        x, y = self._broadcasted(other, reverse, op="floordiv")
        if x.dtype.is_float:
            return (x / y).floor()
        q = F.IntDiv.apply(x, y)  # truncating; fix toward floor like Python's //
        r = F.Mod.apply(x, y)
        adjust = (r != 0) & ((r < 0) != (y < 0))
        return q - adjust.cast(q.dtype)

    def pow(self, other: Any, reverse: Bool = False) -> Tensor:
        x, y = self._broadcasted(other, reverse, op="pow")
        if x.dtype.is_float:
            return F.Pow.apply(x, y)
        exact = F.Pow.apply(x.float(), y.float())  # integer powers stay integers, like numpy and PyTorch
        rounded = exact.sign() * (exact.abs() + 0.5).floor()
        return rounded.cast(x.dtype)

    def maximum(self, other: Any) -> Tensor:
        return F.Maximum.apply(*self._broadcasted(other, op="maximum"))

    def minimum(self, other: Any) -> Tensor:
        x, y = self._broadcasted(other, op="minimum")
        if x.dtype.is_float:
            return -F.Maximum.apply(-x, -y)
        return (x < y).where(x, y) if x.dtype != dtypes.bool else x & y

    def where(self, x: Any, y: Any) -> Tensor:
        """``cond.where(x, y)``: elements of x where self is true, else of y (broadcast together)."""
        cond = self if self.dtype == dtypes.bool else self != 0
        xt = x if isinstance(x, Tensor) else None
        yt = y if isinstance(y, Tensor) else None
        if xt is None and yt is None:
            dt = dtypes.default_float if isinstance(x, float) or isinstance(y, float) else dtypes.default_int
        elif xt is not None and yt is not None:
            dt = promote(xt.dtype, yt.dtype)
        else:
            known = xt if xt is not None else yt
            assert known is not None
            other = y if xt is not None else x
            dt = promote(known.dtype, scalar_dtype(other, known.dtype))
        xt = (xt if xt is not None else Tensor(LazyBuffer.const(x, dt, cond.device))).cast(dt)
        yt = (yt if yt is not None else Tensor(LazyBuffer.const(y, dt, cond.device))).cast(dt)
        shape = _broadcast_shape("where", cond.shape, xt.shape, yt.shape)
        return F.Where.apply(cond._expand_to(shape), xt._expand_to(shape), yt._expand_to(shape))

    def __add__(self, o: Any) -> Tensor:
        return self.add(o)

    def __radd__(self, o: Any) -> Tensor:
        return self.add(o, True)

    def __sub__(self, o: Any) -> Tensor:
        return self.sub(o)

    def __rsub__(self, o: Any) -> Tensor:
        return self.sub(o, True)

    def __mul__(self, o: Any) -> Tensor:
        return self.mul(o)

    def __rmul__(self, o: Any) -> Tensor:
        return self.mul(o, True)

    def __truediv__(self, o: Any) -> Tensor:
        return self.div(o)

    def __rtruediv__(self, o: Any) -> Tensor:
        return self.div(o, True)

    def __floordiv__(self, o: Any) -> Tensor:
        return self.floordiv(o)

    def __rfloordiv__(self, o: Any) -> Tensor:
        return self.floordiv(o, True)

    def __pow__(self, o: Any) -> Tensor:
        return self.pow(o)

    def __rpow__(self, o: Any) -> Tensor:
        return self.pow(o, True)

    def __matmul__(self, o: Tensor) -> Tensor:
        return self.matmul(o)

    def __rmatmul__(self, o: Tensor) -> Tensor:
        return Tensor(o).matmul(self) if not isinstance(o, Tensor) else o.matmul(self)

    def __neg__(self) -> Tensor:
        return self.neg()

    def __lt__(self, o: Any) -> Tensor:
        return F.Less.apply(*self._broadcasted(o, op="lt"))

    def __gt__(self, o: Any) -> Tensor:
        return F.Less.apply(*self._broadcasted(o, True, op="gt"))

    def __le__(self, o: Any) -> Tensor:
        return (self > o).logical_not()

    def __ge__(self, o: Any) -> Tensor:
        return (self < o).logical_not()

    def __eq__(self, o: Any) -> Tensor:  # type: ignore[override]
        return F.Equal.apply(*self._broadcasted(o, op="eq"))

    def __ne__(self, o: Any) -> Tensor:  # type: ignore[override]
        return F.NotEqual.apply(*self._broadcasted(o, op="ne"))

    def _bool_op(self, o: Any, fn: type[F.Function], name: str) -> Tensor:
        x, y = self._broadcasted(o, op=name)
        if x.dtype.is_float:
            raise TypeError(f"{name} needs bool or integer tensors, got {x.dtype.name}")
        return fn.apply(x, y)

    def __and__(self, o: Any) -> Tensor:
        return self._bool_op(o, F.And, "&")

    def __or__(self, o: Any) -> Tensor:
        return self._bool_op(o, F.Or, "|")

    def __xor__(self, o: Any) -> Tensor:
        return self._bool_op(o, F.Xor, "^")

    def __rand__(self, o: Any) -> Tensor:
        return self._bool_op(o, F.And, "&")

    def __ror__(self, o: Any) -> Tensor:
        return self._bool_op(o, F.Or, "|")

    def __invert__(self) -> Tensor:
        if self.dtype == dtypes.bool:
            return self.logical_not()
        if self.dtype.is_int:
            return self ^ -1
        raise TypeError(f"~ needs a bool or integer tensor, got {self.dtype.name}")

    def logical_not(self) -> Tensor:
        return F.NotEqual.apply(*self.cast(dtypes.bool)._broadcasted(True))

    # -- unary math ----------------------------------------------------------------------------------------------

    def _float(self) -> Tensor:
        return self if self.dtype.is_float else self.float()

    def neg(self) -> Tensor:
        if self.dtype == dtypes.bool:
            return self.logical_not()
        return F.Neg.apply(self)

    def exp(self) -> Tensor:
        return F.Exp2.apply(self._float() * (1 / math.log(2)))

    def exp2(self) -> Tensor:
        return F.Exp2.apply(self._float())

    def log(self) -> Tensor:
        return F.Log2.apply(self._float()) * math.log(2)

    def log2(self) -> Tensor:
        return F.Log2.apply(self._float())

    def sqrt(self) -> Tensor:
        return F.Sqrt.apply(self._float())

    def rsqrt(self) -> Tensor:
        return self.sqrt().reciprocal()

    def reciprocal(self) -> Tensor:
        return F.Reciprocal.apply(self._float())

    def sin(self) -> Tensor:
        return F.Sin.apply(self._float())

    def cos(self) -> Tensor:
        return ((math.pi / 2) - self._float()).sin()

    def tan(self) -> Tensor:
        return self.sin() / self.cos()

    def relu(self) -> Tensor:
        return F.Relu.apply(self)

    def sigmoid(self) -> Tensor:
        return 1 / (1 + (-self._float()).exp())

    def tanh(self) -> Tensor:
        return 2.0 * (2.0 * self._float()).sigmoid() - 1.0

    def leaky_relu(self, neg_slope: Float = 0.01) -> Tensor:
        return self.relu() - (-neg_slope * self).relu()

    def gelu(self) -> Tensor:
        x = self._float()
        return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)).tanh())

    def silu(self) -> Tensor:
        return self * self.sigmoid()

    def abs(self) -> Tensor:
        return self.relu() + (-self).relu()

    def sign(self) -> Tensor:
        return F.Sign.apply(self)

    def square(self) -> Tensor:
        return self * self

    def clip(self, min_: Scalar | None = None, max_: Scalar | None = None) -> Tensor:
        out = self
        if min_ is not None:
            out = out.maximum(min_)
        if max_ is not None:
            out = out.minimum(max_)
        return out

    clamp = clip

    def trunc(self) -> Tensor:
        return F.Trunc.apply(self) if self.dtype.is_float else self

    def floor(self) -> Tensor:
        t = self.trunc()
        return t - (t > self).cast(self.dtype) if self.dtype.is_float else self

    def ceil(self) -> Tensor:
        t = self.trunc()
        return t + (t < self).cast(self.dtype) if self.dtype.is_float else self

    # -- casts ----------------------------------------------------------------------------------------------------

    def cast(self, dtype: DType | str) -> Tensor:
        dt = dtypes.from_any(dtype)
        return self if dt == self.dtype else F.Cast.apply(self, dtype=dt)

    def bitcast(self, dtype: DType | str) -> Tensor:
        dt = dtypes.from_any(dtype)
        if dt.itemsize != self.dtype.itemsize:
            raise ValueError(f"bitcast from {self.dtype.name} to {dt.name} needs equal item sizes")
        return F.Cast.apply(self, dtype=dt, bitcast=True)

    def float(self) -> Tensor:
        return self.cast(dtypes.float32)

    def half(self) -> Tensor:
        return self.cast(dtypes.float16)

    def double(self) -> Tensor:
        return self.cast(dtypes.float64)

    def int(self) -> Tensor:
        return self.cast(dtypes.int32)

    def long(self) -> Tensor:
        return self.cast(dtypes.int64)

    def bool(self) -> Tensor:
        return self.cast(dtypes.bool)

    # -- reductions -------------------------------------------------------------------------------------------------

    def _axes(self, axis: Int | Sequence[Int] | None, op: str) -> tuple[Int, ...]:
        if axis is None:
            return tuple(range(self.ndim))
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        return tuple(sorted({_normalize_axis(a, self.ndim, op) for a in axes}))

    def _reduce(self, fn: type[F.Function], axis: Any, keepdim: Bool, op: str) -> Tensor:
        axes = self._axes(axis, op)
        out = fn.apply(self, axes=axes)
        if keepdim:
            return out
        return out.reshape(tuple(s for i, s in enumerate(self.shape) if i not in axes))

    def sum(self, axis: Any = None, keepdim: Bool = False, dtype: DType | str | None = None) -> Tensor:
        x = self
        if dtype is not None:
            x = x.cast(dtype)
        elif x.dtype == dtypes.bool or (x.dtype.is_int and x.dtype.itemsize < 4):
            x = x.cast(dtypes.int32)
        if x.dtype == dtypes.float16:  # accumulate in float32, like every serious framework
            return x.float()._reduce(F.Sum, axis, keepdim, "sum").half()
        if any(self.shape[a] == 0 for a in self._axes(axis, "sum")):
            shape = tuple(1 if i in self._axes(axis, "sum") else s for i, s in enumerate(self.shape))
            out = Tensor.zeros(*shape, dtype=x.dtype, device=x.device)
            return out if keepdim else out.reshape(tuple(s for i, s in enumerate(self.shape)
                                                          if i not in self._axes(axis, "sum")))
        return x._reduce(F.Sum, axis, keepdim, "sum")

    def max(self, axis: Any = None, keepdim: Bool = False) -> Tensor:
        for a in self._axes(axis, "max"):
            if self.shape[a] == 0:
                raise ValueError(f"max of an empty axis {a} (shape {self.shape}) has no identity")
        return self._reduce(F.Max, axis, keepdim, "max")

    def min(self, axis: Any = None, keepdim: Bool = False) -> Tensor:
        if self.dtype.is_float:
            return -((-self).max(axis, keepdim))
        return ~((~self).max(axis, keepdim))  # ~ reverses the order of ints and bools, without overflow

    def mean(self, axis: Any = None, keepdim: Bool = False) -> Tensor:
        x = self._float()
        count = math.prod(self.shape[a] for a in self._axes(axis, "mean"))
        return x.sum(axis, keepdim) * (1 / count if count else math.nan)

    def var(self, axis: Any = None, keepdim: Bool = False, correction: Int = 1) -> Tensor:
        x = self._float()
        count = math.prod(self.shape[a] for a in self._axes(axis, "var"))
        centered = x - x.mean(axis, keepdim=True)
        return (centered * centered).sum(axis, keepdim) / max(count - correction, 0)

    def std(self, axis: Any = None, keepdim: Bool = False, correction: Int = 1) -> Tensor:
        return self.var(axis, keepdim, correction).sqrt()

    def logsumexp(self, axis: Any = None, keepdim: Bool = False) -> Tensor:
        m = self._float().max(axis, keepdim=True)
        safe_m = m.where_finite()
        out = (self - safe_m).exp().sum(axis, keepdim=True).log() + safe_m
        return out if keepdim else out.reshape(tuple(s for i, s in enumerate(self.shape)
                                                     if i not in self._axes(axis, "logsumexp")))

    def where_finite(self) -> Tensor:
        """Replace +-inf (and nan) with 0: keeps max-subtraction tricks from producing nan."""
        return ((self - self) == 0).where(self, 0.0)

    def softmax(self, axis: Int = -1) -> Tensor:
        x = self._float()
        e = (x - x.max(axis, keepdim=True)).exp()
        return e / e.sum(axis, keepdim=True)

    def log_softmax(self, axis: Int = -1) -> Tensor:
        x = self._float()
        m = x - x.max(axis, keepdim=True)
        return m - m.exp().sum(axis, keepdim=True).log()

    def argmax(self, axis: Int | None = None, keepdim: Bool = False) -> Tensor:
        if axis is None:
            return self.flatten().argmax(0)
        ax = _normalize_axis(axis, self.ndim, "argmax")
        n = self.shape[ax]
        is_max = self == self.max(ax, keepdim=True)
        shape = [1] * self.ndim
        shape[ax] = n
        countdown = Tensor.arange(n, 0, -1, device=self.device).reshape(tuple(shape))
        first = (is_max.cast(dtypes.int32) * countdown).max(ax, keepdim=keepdim)
        return (n - first).cast(dtypes.int32)

    def argmin(self, axis: Int | None = None, keepdim: Bool = False) -> Tensor:
        return (-self if self.dtype.is_float else ~self).argmax(axis, keepdim)

    def any(self, axis: Any = None, keepdim: Bool = False) -> Tensor:
        return self.bool().max(axis, keepdim)

    def all(self, axis: Any = None, keepdim: Bool = False) -> Tensor:
        return self.bool().logical_not().any(axis, keepdim).logical_not()

    # -- movement ---------------------------------------------------------------------------------------------------

    def reshape(self, *shape: Any) -> Tensor:
        new = list(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else list(shape)
        if new.count(-1) > 1:
            raise ValueError(f"reshape: only one dimension can be -1, got {tuple(new)}")
        if -1 in new:
            known = math.prod(s for s in new if s != -1)
            if known == 0 or self.numel() % known:
                raise ValueError(f"reshape: cannot reshape {self.shape} into {tuple(new)}")
            new[new.index(-1)] = self.numel() // known
        target = tuple(int(s) for s in new)
        if math.prod(target) != self.numel() or any(s < 0 for s in target):
            raise ValueError(f"reshape: cannot reshape {self.shape} ({self.numel()} elements) into {target}")
        return self if target == self.shape else F.Reshape.apply(self, shape=target)

    view = reshape

    def permute(self, *order: Any) -> Tensor:
        perm = tuple(order[0]) if len(order) == 1 and isinstance(order[0], (tuple, list)) else tuple(order)
        perm = tuple(_normalize_axis(a, self.ndim, "permute") for a in perm)
        if sorted(perm) != list(range(self.ndim)):
            raise ValueError(f"permute: {perm} is not a permutation of the {self.ndim} axes of {self.shape}")
        return self if perm == tuple(range(self.ndim)) else F.Permute.apply(self, order=perm)

    def transpose(self, dim0: Int = 1, dim1: Int = 0) -> Tensor:
        order = list(range(self.ndim))
        a, b = _normalize_axis(dim0, self.ndim, "transpose"), _normalize_axis(dim1, self.ndim, "transpose")
        order[a], order[b] = order[b], order[a]
        return self.permute(order)

    @property
    def T(self) -> Tensor:  # noqa: N802 - the conventional name
        return self.permute(tuple(reversed(range(self.ndim))))

    def expand(self, *shape: Any) -> Tensor:
        new = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
        if len(new) < self.ndim:
            raise ValueError(f"expand: {new} has fewer dimensions than {self.shape}")
        new = tuple(s if s != -1 else (self.shape[i - (len(new) - self.ndim)]) for i, s in enumerate(new))
        return self._expand_to(tuple(int(s) for s in new), "expand")

    def _expand_to(self, shape: tuple[Int, ...], op: str = "broadcast") -> Tensor:
        if self.shape == shape:
            return self
        padded = (1,) * (len(shape) - self.ndim) + self.shape
        if any(a != b and a != 1 for a, b in zip(padded, shape)):
            raise ValueError(f"{op}: cannot expand shape {self.shape} to {shape}")
        x = self.reshape(padded)
        return x if padded == shape else F.Expand.apply(x, shape=shape)

    def flatten(self, start_dim: Int = 0, end_dim: Int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        s = _normalize_axis(start_dim, self.ndim, "flatten")
        e = _normalize_axis(end_dim, self.ndim, "flatten")
        return self.reshape(self.shape[:s] + (math.prod(self.shape[s:e + 1]),) + self.shape[e + 1:])

    def squeeze(self, dim: Int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        d = _normalize_axis(dim, self.ndim, "squeeze")
        return self if self.shape[d] != 1 else self.reshape(self.shape[:d] + self.shape[d + 1:])

    def unsqueeze(self, dim: Int) -> Tensor:
        d = _normalize_axis(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def pad(self, padding: Sequence[tuple[Int, Int]], value: Float = 0.0) -> Tensor:
        """Pad each dim by (before, after); negative amounts crop. ``padding`` has one pair per dim."""
        pads = [tuple(p) for p in padding]
        if len(pads) != self.ndim:
            raise ValueError(f"pad: {len(pads)} (before, after) pairs for a tensor of rank {self.ndim}")
        crop = tuple((max(0, -b), s - max(0, -a)) for s, (b, a) in zip(self.shape, pads))
        x = self.shrink(crop) if any(c != (0, s) for c, s in zip(crop, self.shape)) else self
        grow = tuple((max(0, b), max(0, a)) for b, a in pads)
        if all(g == (0, 0) for g in grow):
            return x
        out = F.Pad.apply(x, arg=grow)
        if value != 0:
            inside = Tensor(LazyBuffer.const(True, dtypes.bool, x.device, x.shape)).pad(grow)
            out = inside.where(out, value)
        return out

    def shrink(self, arg: Sequence[tuple[Int, Int] | None]) -> Tensor:
        region = tuple((0, s) if a is None else (int(a[0]), int(a[1])) for a, s in zip(arg, self.shape))
        for (lo, hi), s in zip(region, self.shape):
            if not 0 <= lo <= hi <= s:
                raise ValueError(f"shrink: {region} is outside the shape {self.shape}")
        return self if region == tuple((0, s) for s in self.shape) else F.Shrink.apply(self, arg=region)

    def flip(self, axis: Int | Sequence[Int]) -> Tensor:
        axes = self._axes(axis, "flip")
        return F.Flip.apply(self, axes=axes) if axes else self

    def repeat(self, *repeats: Any) -> Tensor:
        reps = tuple(repeats[0]) if len(repeats) == 1 and isinstance(repeats[0], (tuple, list)) else tuple(repeats)
        if len(reps) < self.ndim:
            raise ValueError(f"repeat: {len(reps)} repeats for a tensor of rank {self.ndim}")
        base = (1,) * (len(reps) - self.ndim) + self.shape
        x = self.reshape(base)
        inter = tuple(v for s in base for v in (1, s))
        expanded = tuple(v for r, s in zip(reps, base) for v in (r, s))
        return x.reshape(inter).expand(expanded).reshape(tuple(r * s for r, s in zip(reps, base)))

    @staticmethod
    def cat(*tensors: Tensor, dim: Int = 0) -> Tensor:
        ts = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
        first = ts[0]
        d = _normalize_axis(dim, first.ndim, "cat")
        for t in ts[1:]:
            if t.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != d):
                raise ValueError(f"cat: shapes {first.shape} and {t.shape} differ outside dim {d}")
        dt = first.dtype
        for t in ts[1:]:
            dt = promote(dt, t.dtype)
        total = sum(t.shape[d] for t in ts)
        out: Tensor | None = None
        offset = 0
        for t in ts:
            pads = [(0, 0)] * first.ndim
            pads[d] = (offset, total - offset - t.shape[d])
            piece = t.cast(dt).pad(pads)
            out = piece if out is None else out + piece
            offset += t.shape[d]
        assert out is not None
        return out

    @staticmethod
    def stack(*tensors: Tensor, dim: Int = 0) -> Tensor:
        ts = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
        d = _normalize_axis(dim, ts[0].ndim + 1, "stack")
        for t in ts[1:]:
            if t.shape != ts[0].shape:
                raise ValueError(f"stack: shapes {ts[0].shape} and {t.shape} differ")
        return Tensor.cat(*[t.unsqueeze(d) for t in ts], dim=d)

    def split(self, sizes: Int | Sequence[Int], dim: Int = 0) -> list[Tensor]:
        d = _normalize_axis(dim, self.ndim, "split")
        n = self.shape[d]
        if isinstance(sizes, int):
            if sizes <= 0:
                raise ValueError(f"split: size must be positive, got {sizes}")
            sizes = [min(sizes, n - i) for i in range(0, n, sizes)]
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {list(sizes)} do not add up to {n} (dim {d} of {self.shape})")
        out, start = [], 0
        for s in sizes:
            region: list[tuple[Int, Int] | None] = [None] * self.ndim
            region[d] = (start, start + s)
            out.append(self.shrink(region))
            start += s
        return out

    def chunk(self, chunks: Int, dim: Int = 0) -> list[Tensor]:
        n = self.shape[_normalize_axis(dim, self.ndim, "chunk")]
        return self.split(max(1, -(-n // chunks)), dim)

    def __getitem__(self, index: Any) -> Tensor:
        from tg.indexing import getitem

        return getitem(self, index)

    # -- linear algebra and nn ---------------------------------------------------------------------------------------

    def dot(self, w: Tensor) -> Tensor:
        return self.matmul(w)

    def matmul(self, w: Tensor) -> Tensor:
        if not isinstance(w, Tensor):
            w = Tensor(w, device=self.device)
        if self.ndim == 0 or w.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got {self.shape} and {w.shape}")
        x = self.unsqueeze(0) if self.ndim == 1 else self
        y = w.unsqueeze(-1) if w.ndim == 1 else w
        if x.shape[-1] != y.shape[-2]:
            raise ValueError(f"matmul: shapes {self.shape} and {w.shape} are not aligned "
                             f"({x.shape[-1]} != {y.shape[-2]})")
        try:
            batch = _broadcast_shape("matmul", x.shape[:-2], y.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: the batch dimensions of {self.shape} and {w.shape} cannot be broadcast "
                             "together") from None
        m, k, n = x.shape[-2], x.shape[-1], y.shape[-1]
        xb = x._expand_to(batch + (m, k)).reshape(batch + (m, 1, k))
        yb = y._expand_to(batch + (k, n)).transpose(-1, -2).reshape(batch + (1, n, k))
        xb, yb = xb._broadcasted(yb, op="matmul")
        out = (xb * yb).sum(-1)
        if self.ndim == 1:
            out = out.squeeze(-2)
        if w.ndim == 1:
            out = out.squeeze(-1)
        return out

    def linear(self, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        out = self @ weight.T
        return out + bias if bias is not None else out

    def _pool(self, kernel: tuple[Int, ...], stride: tuple[Int, ...], dilation: tuple[Int, ...]) -> Tensor:
        """Sliding windows over the last len(kernel) dims: (..., out_1..out_k, k_1..k_k), without copies."""
        from tg.nn_ops import pool

        return pool(self, kernel, stride, dilation)

    def conv2d(self, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
               dilation: Any = 1, groups: Int = 1) -> Tensor:
        from tg.nn_ops import conv2d

        return conv2d(self, weight, bias, stride, padding, dilation, groups)

    def max_pool2d(self, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> Tensor:
        from tg.nn_ops import max_pool2d

        return max_pool2d(self, kernel_size, stride, padding)

    def avg_pool2d(self, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> Tensor:
        from tg.nn_ops import avg_pool2d

        return avg_pool2d(self, kernel_size, stride, padding)

    def layernorm(self, axis: Int = -1, eps: Float = 1e-5) -> Tensor:
        x = self._float()
        centered = x - x.mean(axis, keepdim=True)
        return centered * ((centered * centered).mean(axis, keepdim=True) + eps).rsqrt()

    def batchnorm(self, weight: Tensor | None, bias: Tensor | None, mean: Tensor, invstd: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (self.ndim - 2)
        x = self - mean.reshape(shape)
        if weight is not None:
            x = x * weight.reshape(shape)
        x = x * invstd.reshape(shape)
        return x + bias.reshape(shape) if bias is not None else x

    def dropout(self, p: Float = 0.5) -> Tensor:
        if not 0 <= p < 1:
            raise ValueError(f"dropout: p must be in [0, 1), got {p}")
        if not Tensor.training or p == 0:
            return self
        keep = Tensor.rand(*self.shape, device=self.device) >= p
        return keep.where(self * (1 / (1 - p)), 0.0)

    def one_hot(self, num_classes: Int) -> Tensor:
        if self.dtype.is_float:
            raise TypeError(f"one_hot needs integer class indices, got {self.dtype.name}")
        classes = Tensor.arange(num_classes, device=self.device)
        return (self.unsqueeze(-1) == classes).cast(dtypes.int32)

    def cross_entropy(self, target: Tensor, label_smoothing: Float = 0.0) -> Tensor:
        if self.ndim != 2 or target.ndim != 1 or target.shape[0] != self.shape[0]:
            raise ValueError(f"cross_entropy: logits must be (N, C) and targets (N,), got {self.shape} "
                             f"and {target.shape}")
        logp = self.log_softmax(-1)
        onehot = target.one_hot(self.shape[1]).cast(logp.dtype)
        if label_smoothing:
            onehot = onehot * (1 - label_smoothing) + label_smoothing / self.shape[1]
        return -(logp * onehot).sum(-1).mean()

    def binary_cross_entropy(self, target: Tensor) -> Tensor:
        p = self._float()
        log_p = p.log().maximum(-100.0)
        log_1mp = (1 - p).log().maximum(-100.0)
        return -(target * log_p + (1 - target) * log_1mp).mean()



_ADD = F.Ops.ADD


def _normalize_axis(axis: int, ndim: int, op: str) -> int:
    if not isinstance(axis, (int, np.integer)) or not -max(ndim, 1) <= axis < max(ndim, 1):
        raise IndexError(f"{op}: axis {axis} is out of range for a tensor of rank {ndim}")
    return int(axis) % max(ndim, 1)


def _broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + s for s in shapes]
    out = []
    for dims in zip(*padded):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ValueError(f"{op}: shapes {' and '.join(str(s) for s in shapes)} cannot be broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _broadcast_pair(x: Tensor, y: Tensor, op: str = "broadcast") -> tuple[Tensor, Tensor]:
    if x.shape == y.shape:
        return x, y
    shape = _broadcast_shape(op, x.shape, y.shape)
    return x._expand_to(shape), y._expand_to(shape)


def _random(draw: Any, shape: tuple[Any, ...], dtype: DType | str | None, device: str | None,
            requires_grad: Bool | None) -> Tensor:
    """Host random numbers as a tensor; the buffer knows how to draw new ones (a jit replay redraws them)."""
    size, dt = _shape_arg(shape), dtypes.from_any(dtype) if dtype is not None else dtypes.default_float

    def redraw() -> np.ndarray:
        return np.asarray(draw(size)).astype(dt.np)

    return Tensor(LazyBuffer.from_numpy(redraw(), canonical_name(device), redraw), requires_grad=requires_grad)


def _to_numpy(data: Any, dtype: DType | None) -> np.ndarray:
    try:
        array = np.asarray(data)
    except ValueError as exc:
        raise ValueError(f"cannot make a tensor from {type(data).__name__}: {exc}") from None
    if array.dtype == object:
        raise TypeError(f"cannot make a tensor from {data!r}: nested lists must be rectangular numbers")
    if dtype is None:
        if array.dtype.kind == "f":
            dtype = dtypes.default_float if array.dtype != np.float16 and not isinstance(data, np.ndarray) else \
                dtypes.from_any(array.dtype)
        elif array.dtype.kind in "iu":
            dtype = dtypes.default_int if not isinstance(data, np.ndarray) else dtypes.from_any(array.dtype)
        elif array.dtype.kind == "b":
            dtype = dtypes.bool
        else:
            raise TypeError(f"unsupported numpy dtype {array.dtype}")
    return array.astype(dtype.np)


@contextmanager
def no_grad() -> Iterator[None]:
    """Within this block, operations record no autograd graph."""
    previous = Tensor.no_grad
    Tensor.no_grad = True
    try:
        yield
    finally:
        Tensor.no_grad = previous
