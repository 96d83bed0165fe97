"""Tensor: the user-facing array with autograd, built lazily on the primitives of :mod:`tg.frontend.function`.

Nothing computes until ``realize()``, ``numpy()``, ``tolist()`` or ``item()``.  Names follow PyTorch so
programs and tests can rely on them.  Dtype promotion is documented in :mod:`tg.support.dtype`.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, ClassVar, TypeAlias

import numpy as np

from tg.engine.device import canonical_name
from tg.engine.realize import current_recorder, realize
from tg.frontend import deferred_checks
from tg.frontend import function as F
from tg.frontend.autograd import accumulate_grads, run_post_backward_hooks
from tg.frontend.grad_mode import GradModeMeta
from tg.frontend.host_data import shape_arg, to_numpy
from tg.frontend.inplace import InPlaceMixin
from tg.frontend.math_ops import MathMixin
from tg.frontend.movement import MovementMixin
from tg.frontend.nn_ops import NNMixin
from tg.frontend.operators import OperatorsMixin
from tg.frontend.powers import integer_pow
from tg.frontend.random import RandomMixin
from tg.frontend.reductions import ReductionMixin
from tg.frontend.scans import ScanMixin
from tg.frontend.scatter import ScatterMixin
from tg.frontend.scatter_reduce import ScatterReduceMixin
from tg.frontend.shapes import broadcast_shape, normalize_axis
from tg.frontend.sorting import SortMixin
from tg.frontend.tensor_hooks import Hook, TensorHooksMixin
from tg.frontend.torch_compat import TorchCompatMixin
from tg.graph.lazy import LazyBuffer, LazyOp
from tg.support.dtype import DType, check_numel, check_scalar_fits, dtypes, promote, scalar_dtype, scalar_param

Scalar = int | float | bool
# The lazy ops of a value that a kernel computes (not a constant, host data or a copy).
_COMPUTED = (LazyOp.ALU, LazyOp.CAST, LazyOp.REDUCE, LazyOp.CONTIGUOUS)
# The class's own int()/float()/bool() methods shadow the builtins inside its body: annotate with these.
Int: TypeAlias = int
Float: TypeAlias = float
Bool: TypeAlias = bool


class Tensor(OperatorsMixin, MovementMixin, ReductionMixin, NNMixin, InPlaceMixin, RandomMixin, MathMixin, ScanMixin,
             ScatterMixin, ScatterReduceMixin, SortMixin, TorchCompatMixin, TensorHooksMixin, metaclass=GradModeMeta):
    """An n-dimensional array on a backend, with gradients.

    ``Tensor.no_grad`` is the calling thread's grad mode (see :mod:`tg.frontend.grad_mode`); ``Tensor.training``
    is one flag for the process (modules in :mod:`tg.nn` follow their own ``training`` instead).
    """

    __slots__ = ("_ctx", "_data_of", "_grad", "_hooks", "_retains_grad", "_uses", "_view", "lazydata", "requires_grad")
    training: ClassVar[bool] = False

    def __init__(self, data: Any, dtype: DType | str | None = None, device: str | None = None,
                 requires_grad: Bool | None = None):
        self._ctx: F.Function | None = None
        self._data_of: Tensor | None = None  # the tensor whose .data this is (in-place updates reach it too)
        self._uses: list[weakref.ref[F.Function]] | None = None  # the Functions using this inner node (inplace.py)
        self._view = False  # made by a view op (slice, reshape, transpose, expand, detach): PyTorch shares storage
        self._grad: Tensor | None = None  # .grad, register_hook, retain_grad(): see tg.frontend.tensor_hooks
        self._hooks: dict[Int, Hook] | None = None
        self._retains_grad = False
        self.requires_grad: Bool | None = requires_grad
        dt = dtypes.from_any(dtype) if dtype is not None else None
        if isinstance(data, LazyBuffer):
            if dt is not None and dt != data.dtype:
                raise TypeError("cannot change the dtype of a LazyBuffer in the constructor; use .cast")
            self.lazydata: LazyBuffer = data if device is None else data.copy_to(canonical_name(device))
            return
        dev = canonical_name(device)
        if isinstance(data, Tensor):
            data = data.numpy()
        if isinstance(data, (bool, int, float)) and not isinstance(data, np.generic):
            dt = dt or (dtypes.bool if isinstance(data, bool) else
                        dtypes.default_int if isinstance(data, int) else dtypes.default_float)
            self.lazydata = LazyBuffer.const(data, dt, dev)
            return
        array = to_numpy(data, dt)
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

    def size(self, dim: Int | None = None) -> Any:
        """PyTorch's ``x.size()`` (the shape, a tuple) and ``x.size(i)`` (the length of dim ``i``, negative counts
        from the end)."""
        if dim is None:
            return self.shape
        if self.ndim == 0:
            raise IndexError(f"size({dim}): a 0-d tensor has no dimensions")
        return self.shape[normalize_axis(dim, self.ndim, "size")]

    def dim(self) -> Int:
        """The number of dimensions (PyTorch's name for ``ndim``)."""
        return self.ndim

    def __len__(self) -> Int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<Tensor {self.shape} {self.dtype.name} on {self.device}{' grad' if self.requires_grad else ''}>"

    def __bool__(self) -> Bool:
        if self.numel() != 1:
            raise ValueError(f"the truth value of a tensor with {self.numel()} elements is ambiguous; "
                             "use .any() or .all()")
        return bool(self.item())

    def __float__(self) -> Float:
        return float(self._one_value("float"))

    def __int__(self) -> Int:
        return int(self._one_value("int"))

    def _one_value(self, what: str) -> Scalar:
        if self.numel() != 1:
            raise ValueError(f"{what}() of a tensor needs exactly one element, this one has shape {self.shape} "
                             f"({self.numel()} elements): reduce it (e.g. .sum()) or index one element first")
        return self.item()

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
        deferred_checks.check([lb])  # realizes lb with the device-side checks waiting (bad indices raise here)
        return lb.base.realized.numpy().reshape(self.shape).copy()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def item(self) -> Scalar:
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        value: Scalar = self.numpy().reshape(-1)[0].item()
        return value

    def detach(self) -> Tensor:
        out = Tensor(self.lazydata, requires_grad=False)
        out._view = True  # PyTorch's detach shares storage: no in-place update of it may silently stay local
        return out

    def to(self, device: str) -> Tensor:
        """This tensor on backend ``device`` (a tg backend name, or PyTorch's ``"cpu"``/``"cuda"``: see
        :func:`tg.engine.device.canonical_name`); itself when it is there already."""
        name = canonical_name(device)
        if name == self.device:
            return self
        out = Tensor(self.lazydata.copy_to(name), requires_grad=False)
        return out

    def contiguous(self) -> Tensor:
        """This tensor's value in row-major order: itself when it is already (as PyTorch's, so an in-place update
        of the result updates this tensor), else a new tensor."""
        out = F.Contiguous.apply(self)
        return self if out.lazydata is self.lazydata else out

    def assign(self, other: Tensor | Any) -> Tensor:
        """Replace this tensor's value (same shape and dtype) in place, keeping the Python object."""
        other = other if isinstance(other, Tensor) else Tensor(other, dtype=self.dtype, device=self.device)
        if other.shape != self.shape:
            raise ValueError(f"assign: shape {other.shape} does not match {self.shape}")
        if self.lazydata.base.realized is None and self.lazydata.base.op in _COMPUTED:
            # an update of an update not run yet: run that one first, so a value updated every step (p.sub_(lr * g)
            # in a hand-written optimizer) stays one update deep, not a chain every later kernel recomputes
            realize([self.lazydata])
        recorder = current_recorder()
        if recorder is not None:  # tg.jit is tracing: this tensor is state
            recorder.note_assign(self, self.lazydata)
        self.lazydata = other.cast(self.dtype).lazydata
        if self._data_of is not None:
            self._data_of.assign(self)
        return self

    # -- creation --------------------------------------------------------------------------------------------

    @staticmethod
    def full(shape: Any, fill_value: Scalar, dtype: DType | str | None = None, device: str | None = None,
             requires_grad: Bool | None = None) -> Tensor:
        shape = shape_arg(shape if isinstance(shape, tuple) else (shape,))
        dt = dtypes.from_any(dtype) if dtype is not None else (
            dtypes.bool if isinstance(fill_value, bool) else
            dtypes.default_int if isinstance(fill_value, int) else dtypes.default_float)
        check_scalar_fits(fill_value, dt)
        return Tensor(LazyBuffer.const(fill_value, dt, canonical_name(device), shape), requires_grad=requires_grad)

    @staticmethod
    def zeros(*shape: Any, dtype: DType | str | None = None, device: str | None = None,
              requires_grad: Bool | None = None) -> Tensor:
        return Tensor.full(shape_arg(shape), 0.0, dtype, device, requires_grad)

    @staticmethod
    def ones(*shape: Any, dtype: DType | str | None = None, device: str | None = None,
             requires_grad: Bool | None = None) -> Tensor:
        return Tensor.full(shape_arg(shape), 1.0, dtype, device, requires_grad)

    @staticmethod
    def empty(*shape: Any, dtype: DType | str | None = None, device: str | None = None) -> Tensor:
        dt = dtypes.from_any(dtype) if dtype is not None else dtypes.default_float
        return Tensor(LazyBuffer.empty(shape_arg(shape), dt, canonical_name(device)))

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
        check_numel(max(0, math.ceil((stop - start) / step)), "arange")
        return Tensor(np.arange(start, stop, step).astype(dt.np), device=device)

    @staticmethod
    def eye(n: Int, m: Int | None = None, dtype: DType | str | None = None, device: str | None = None) -> Tensor:
        dt = dtypes.from_any(dtype) if dtype is not None else dtypes.default_float
        return Tensor(np.eye(n, m if m is not None else n, dtype=dt.np), device=device)

    # -- autograd ----------------------------------------------------------------------------------------------

    def backward(self, gradient: Tensor | None = None, retain_graph: Bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``; ``self`` must be a scalar (or pass ``gradient``).

        The graph is freed as it is walked, unless ``retain_graph``: a second backward through a freed part (the
        same loss twice, or two losses sharing a subgraph) raises, as in PyTorch."""
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
        accumulate_grads(self, gradient, retain_graph)
        run_post_backward_hooks()

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
            check_scalar_fits(other, dt)
            x = x.cast(dt)
            # a power's exponent stays a constant: it is rarely a per-step value, and integer powers read it; the
            # constant is made at x's shape at once (the views _broadcast_pair would give it, without two Functions)
            y = Tensor(LazyBuffer.const(other, dt, x.device, x.shape, param=op != "pow" and scalar_param(other, dt)))
            return (y, x) if reverse else (x, y)
        x, y = x.cast(dt), y.cast(dt)
        if reverse:
            x, y = y, x
        return _broadcast_pair(x, y, op)

    def add(self, other: Any, reverse: Bool = False) -> Tensor:
        return F.Add.apply(*self._broadcasted(other, reverse, op="add"))

    def sub(self, other: Any, reverse: Bool = False) -> Tensor:
        x, y = self._broadcasted(other, reverse, op="sub")
        if x.dtype == dtypes.bool:
            raise TypeError("subtracting bool tensors is not defined (numpy and PyTorch refuse it too): for a mask "
                            "difference use a ^ b or a & ~b, or cast to an integer dtype first")
        return F.Sub.apply(x, y)

    def mul(self, other: Any, reverse: Bool = False) -> Tensor:
        return F.Mul.apply(*self._broadcasted(other, reverse, op="mul"))

    def div(self, other: Any, reverse: Bool = False) -> Tensor:
        x, y = self._broadcasted(other, reverse, op="div")
        if not x.dtype.is_float:
            x, y = x.float(), y.float()
        return F.Div.apply(x, y)

    def floordiv(self, other: Any, reverse: Bool = False) -> Tensor:
        x, y = self._broadcasted(other, reverse, op="floordiv")
        if x.dtype == dtypes.bool:
            raise TypeError("// of bool tensors is not defined: cast to an integer dtype first, e.g. a.int() // b")
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
        if x.dtype == dtypes.bool:
            return x | ~y  # True ** anything and anything ** False are True
        if not reverse and isinstance(other, int) and other < 0:
            raise ValueError(f"integers to negative integer powers are not allowed (x ** {other} on {x.dtype.name}): "
                             "use a float tensor, e.g. x.float() ** n")
        known = other if not reverse and isinstance(other, int) and not isinstance(other, bool) else None
        return integer_pow(x, y, known)

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
        for scalar in (v for v, t in ((x, xt), (y, yt)) if t is None):
            check_scalar_fits(scalar, dt)
        if xt is None:
            xt = Tensor(LazyBuffer.const(x, dt, cond.device, param=scalar_param(x, dt)))
        if yt is None:
            yt = Tensor(LazyBuffer.const(y, dt, cond.device, param=scalar_param(y, dt)))
        xt, yt = xt.cast(dt), yt.cast(dt)
        shape = broadcast_shape("where", cond.shape, xt.shape, yt.shape)
        return F.Where.apply(cond._expand_to(shape), xt._expand_to(shape), yt._expand_to(shape))

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
        if self.dtype == dtypes.bool:  # a bool is its own absolute value and sign (numpy, PyTorch)
            return self
        return self.relu() + (-self).relu()

    def sign(self) -> Tensor:
        return self if self.dtype == dtypes.bool else F.Sign.apply(self)

    def square(self) -> Tensor:
        return self * self

    def clamp(self, min: Scalar | Tensor | None = None, max: Scalar | Tensor | None = None) -> Tensor:
        """Limit every value to ``[min, max]`` (either bound may be None, or a tensor that broadcasts), as in
        PyTorch; where min > max the result is max.  ``clip`` is the same (numpy's name)."""
        if min is None and max is None:
            raise TypeError("clamp() needs at least one of min and max")
        out = self
        if min is not None:
            out = out.maximum(min)
        if max is not None:
            out = out.minimum(max)
        return out

    clip = clamp

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
        if dtype is self.lazydata.dtype:
            return self
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


def _broadcast_pair(x: Tensor, y: Tensor, op: str = "broadcast") -> tuple[Tensor, Tensor]:
    if x.shape == y.shape:
        return x, y
    shape = broadcast_shape(op, x.shape, y.shape)
    return x._expand_to(shape), y._expand_to(shape)
