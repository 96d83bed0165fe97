"""In-place arithmetic of a Tensor (``x += y`` and its kin), under PyTorch's rules.

``x op= y`` updates ``x`` itself (the same Python object; every view of it later reads the new value), so that
``with no_grad(): p -= lr * p.grad`` steps a parameter instead of rebinding the name.  It keeps ``x``'s shape
and dtype: a result that would broadcast to another shape, or a float result for an integer tensor, is refused.
While gradients are recorded, a tensor that requires grad cannot change in place (PyTorch refuses it for a
leaf; tg also for an inner node, whose earlier uses would otherwise see the new value): write ``x = x + y``.
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor


class InPlaceMixin:
    """Tensor's in-place operators (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def _update(self: Tensor, op: str, compute: Callable[[Tensor, Any], Tensor], other: Any) -> Tensor:
        if self.requires_grad and not type(self).no_grad:
            raise RuntimeError(f"x {op}= y on a tensor that requires grad, while gradients are recorded: do it under "
                               f"`with tg.no_grad():` (as an optimizer step does), or write x = x {op} y")
        result = compute(self, other)
        if result.shape != self.shape:
            raise ValueError(f"x {op}= y cannot change x's shape {self.shape} to {result.shape}: broadcast y to x's "
                             f"shape, or write x = x {op} y")
        if result.dtype.is_float and not self.dtype.is_float:
            raise TypeError(f"x {op}= y would make x ({self.dtype.name}) {result.dtype.name}: cast x first, or write "
                            f"x = x {op} y")
        return self.assign(result)

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
