"""In-place updates of a Tensor (``x += y``, ``x.add_(y)``, ``zero_``, ``copy_``, ``scatter_reduce_``...) under
PyTorch's rules.

``x op= y`` and ``x.op_(...)`` update ``x`` itself (the same Python object; every view of it taken later reads
the new value), so that ``with no_grad(): p -= lr * p.grad`` steps a parameter instead of rebinding the name.
They keep ``x``'s shape and dtype: a result that would broadcast to another shape, or a float result for an
integer tensor, is refused (``copy_`` and ``fill_`` convert, as PyTorch's do).

Gradients follow PyTorch's rules.  A leaf that requires grad (a parameter) cannot change in place while
gradients are recorded: do it under ``no_grad()``.  Any other tensor can (``out += identity`` in a residual
block): it becomes the result of the update in the autograd graph, and its earlier uses keep both the value and
the gradient path of the tensor before the update (the Functions that used it are re-pointed to a node standing
for that earlier version).  A tensor that did not require grad and is updated from one that does starts to
require grad, as in PyTorch.  Under ``no_grad()`` only the value changes.

``x.data`` is x's value as a tensor outside autograd; an in-place update of it updates x too (``p.data.mul_(0.5)``
scales the parameter), and ``x.data = t`` replaces x's value.  What PyTorch makes a view (``x[0]``, ``x.T``,
``x.reshape(...)``, ``x.expand(...)``, ``x.detach()``) is a tensor of its own in tg, so an in-place update of it
is refused: it would not reach the tensor it came from, as it does in PyTorch.
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tg.frontend.tensor_hooks import move_hooks
from tg.support.dtype import dtypes

if TYPE_CHECKING:
    import weakref

    from tg.frontend.function import Function
    from tg.frontend.tensor import Tensor


_NO_USES: list[weakref.ref[Function]] | None = None  # (typed: mypy reads assignments in mixins as declarations)
_OUT_OF_PLACE = {"fill_": "x = tg.full_like(x, value)", "copy_": "x = src.clone()"}


class InPlaceMixin:
    """Tensor's in-place operators and methods (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def _update(self: Tensor, op: str, compute: Callable[[Tensor, Any], Tensor], other: Any,
                method: str | None = None, convert: bool = False, instead: str | None = None) -> Tensor:
        """Replace this tensor's value by ``compute(self, other)``; ``op`` names the operator (``x op= y``), or
        ``method`` the method (``x.method(...)``); ``convert`` casts any result to this tensor's dtype."""
        what = f"x.{method}()" if method else f"x {op}= y"
        if instead is None:
            instead = "write " + (f"x = x {op} y" if not method else
                                  _OUT_OF_PLACE.get(method, f"x = x.{method.rstrip('_')}(...)"))
        if self._view:
            raise RuntimeError(f"{what} on a view of another tensor (a slice, reshape, transpose, expand or detach): "
                               f"in PyTorch it would change that tensor too, but tg's views do not share storage, so "
                               f"it would silently stay local. Fix: {instead} (a new tensor), or update the whole "
                               f"tensor the view came from")
        recording = not type(self).no_grad
        if recording and self.requires_grad and self._ctx is None:
            raise RuntimeError(f"{what} on a tensor that requires grad (a leaf, such as a parameter), while gradients "
                               f"are recorded: do it under `with tg.no_grad():` (as an optimizer step does), or "
                               f"{instead}")
        inner = recording and self._ctx is not None
        result = compute(self._earlier_version() if inner else self, other)
        if result.shape != self.shape:
            raise ValueError(f"{what} cannot change x's shape {self.shape} to {result.shape}: broadcast y to x's "
                             f"shape, or {instead}")
        if result.dtype.is_float and not self.dtype.is_float and not convert:
            raise TypeError(f"{what} would make x ({self.dtype.name}) {result.dtype.name}: cast x first, or "
                            f"{instead}")
        if inner:  # a value computed from others, not state that a tg.jit replay carries over: no assign()
            self.lazydata = result.cast(self.dtype).lazydata
        else:
            self.assign(result)
        if inner or (recording and result.requires_grad):
            self._ctx, self.requires_grad = result._ctx, result.requires_grad
        return self

    def _earlier_version(self: Tensor) -> Tensor:
        """A node standing for this inner tensor as it is now: the Functions that used it are re-pointed to it, so
        that an in-place update changes neither what they computed nor where their gradients go."""
        earlier = type(self)(self.lazydata, requires_grad=self.requires_grad)
        earlier._ctx = self._ctx
        move_hooks(self, earlier)  # the hooks registered so far see the gradient of the earlier value
        for use in self._uses or ():
            fn = use()
            if fn is not None:
                fn.parents = tuple(earlier if p is self else p for p in fn.parents)
        self._uses = _NO_USES
        return earlier

    def __iadd__(self: Tensor, other: Any) -> Tensor:
        return self._update("+", lambda x, y: x + y, other)

    def __isub__(self: Tensor, other: Any) -> Tensor:
        return self._update("-", lambda x, y: x - y, other)

    def __imul__(self: Tensor, other: Any) -> Tensor:
        return self._update("*", lambda x, y: x * y, other)

    def __itruediv__(self: Tensor, other: Any) -> Tensor:
        return self._update("/", lambda x, y: x / y, other)

    def __ifloordiv__(self: Tensor, other: Any) -> Tensor:
        return self._update("//", lambda x, y: x // y, other)

    def __ipow__(self: Tensor, other: Any) -> Tensor:
        return self._update("**", lambda x, y: x ** y, other)

    def __iand__(self: Tensor, other: Any) -> Tensor:
        return self._update("&", lambda x, y: x & y, other)

    def __ior__(self: Tensor, other: Any) -> Tensor:
        return self._update("|", lambda x, y: x | y, other)

    def __ixor__(self: Tensor, other: Any) -> Tensor:
        return self._update("^", lambda x, y: x ^ y, other)

    # -- PyTorch's named in-place methods --------------------------------------------------------------------------

    def add_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
        """``x += alpha * other``."""
        return self._update("+", lambda x, y: x + (y if alpha == 1 else y * alpha), other, "add_")

    def sub_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
        """``x -= alpha * other``."""
        return self._update("-", lambda x, y: x - (y if alpha == 1 else y * alpha), other, "sub_")

    def mul_(self: Tensor, other: Any) -> Tensor:
        return self._update("*", lambda x, y: x * y, other, "mul_")

    def div_(self: Tensor, other: Any) -> Tensor:
        return self._update("/", lambda x, y: x / y, other, "div_")

    def clamp_(self: Tensor, min: Any = None, max: Any = None) -> Tensor:
        return self._update("", lambda x, _: x.clamp(min, max), None, "clamp_")

    clip_ = clamp_

    def fill_(self: Tensor, value: Any) -> Tensor:
        """Set every element to ``value`` (a number or a one-element tensor), converted to this tensor's dtype."""
        if isinstance(value, type(self)):
            if value.numel() != 1:
                raise ValueError(f"fill_ takes a number or a one-element tensor, got shape {value.shape}")
            return self._update("", lambda x, v: v.reshape(()).cast(x.dtype).expand(x.shape), value, "fill_", True)
        if isinstance(value, float) and not self.dtype.is_float:
            value = bool(value) if self.dtype == dtypes.bool else int(value)  # PyTorch converts: toward zero
        return self._update("", lambda x, v: type(x).full(x.shape, v, x.dtype, x.device), value, "fill_", True)

    def zero_(self: Tensor) -> Tensor:
        return self.fill_(False if self.dtype == dtypes.bool else 0)

    def copy_(self: Tensor, src: Any) -> Tensor:
        """Copy ``src``'s values into this tensor: broadcast to its shape, converted to its dtype and device."""
        def compute(x: Tensor, s: Any) -> Tensor:
            s = s if isinstance(s, type(x)) else type(x)(s, device=x.device)
            return s.to(x.device).cast(x.dtype)._expand_to(x.shape, "copy_")  # the gradient flows to src
        return self._update("", compute, src, "copy_", True)

    def masked_fill_(self: Tensor, mask: Tensor, value: Any) -> Tensor:
        return self._update("", lambda x, _: x.masked_fill(mask, value), None, "masked_fill_")

    def scatter_(self: Tensor, dim: int, index: Tensor, src: Any = None, value: Any = None, *,
                 reduce: str | None = None) -> Tensor:
        return self._update("", lambda x, _: x.scatter(dim, index, src, value, reduce=reduce), None, "scatter_")

    def scatter_add_(self: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
        return self._update("", lambda x, _: x.scatter_add(dim, index, src), None, "scatter_add_")

    def scatter_reduce_(self: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                        include_self: bool = True) -> Tensor:
        return self._update("", lambda x, _: x.scatter_reduce(dim, index, src, reduce, include_self=include_self),
                            None, "scatter_reduce_")

    def requires_grad_(self: Tensor, requires_grad: bool = True) -> Tensor:
        """Start (or stop) recording this leaf tensor's gradient; returns the tensor."""
        if self._ctx is not None and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a tensor computed from others: only leaf tensors can change "
                               "the flag; use y = x.detach() for a value outside the graph")
        if requires_grad and not self.dtype.is_float:
            raise RuntimeError(f"only float tensors can require gradients, this one is {self.dtype.name}: cast it "
                               "first (x = x.float())")
        flag: bool | None = bool(requires_grad)
        self.requires_grad = flag
        return self

    def __getstate__(self: Tensor) -> tuple[None, dict[str, Any]]:
        """Pickle without the weak references to the Functions that used this tensor (they cannot be pickled), nor
        the gradient hooks (functions, often lambdas)."""
        slots = {name: getattr(self, name) for name in type(self).__slots__ if hasattr(self, name)}
        slots["_uses"] = slots["_hooks"] = None
        return None, slots

    @property
    def data(self: Tensor) -> Tensor:
        """This tensor's value outside autograd; in-place updates of it update this tensor."""
        out = type(self)(self.lazydata, requires_grad=False)
        out._data_of = self
        return out

    @data.setter
    def data(self: Tensor, value: Tensor) -> None:
        if not isinstance(value, type(self)):
            raise TypeError(f"x.data = value needs a tensor, got {type(value).__name__}")
        if value.shape == self.shape and value.dtype == self.dtype:
            self.assign(value.detach())
        else:  # PyTorch allows another shape or dtype here
            self.lazydata = value.lazydata
