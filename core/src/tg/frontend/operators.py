"""Python's operators on a Tensor (``+ - * / // ** @``, comparisons, ``& | ^ ~``), each a method of the same name.

Arithmetic operators call the named methods (``x + 1`` is ``x.add(1)``, ``1 - x`` is ``x.sub(1, reverse)``);
comparisons return bool tensors with IEEE rules for NaN (``<=`` on floats is ``<`` or ``==``, never ``not >``);
``& | ^ ~`` take bool or integer tensors only (``~`` on bools is ``logical_not``).
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tg.frontend import function as F
from tg.support.dtype import dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor


class OperatorsMixin:
    """Python's operators, mixed into :class:`~tg.frontend.tensor.Tensor`."""

    __slots__ = ()

    def __hash__(self: Tensor) -> int:  # by identity: == makes a tensor, so tensors are dict keys as objects
        return id(self)

    def __add__(self: Tensor, o: Any) -> Tensor:
        return self.add(o)

    def __radd__(self: Tensor, o: Any) -> Tensor:
        return self.add(o, True)

    def __sub__(self: Tensor, o: Any) -> Tensor:
        return self.sub(o)

    def __rsub__(self: Tensor, o: Any) -> Tensor:
        return self.sub(o, True)

    def __mul__(self: Tensor, o: Any) -> Tensor:
        return self.mul(o)

    def __rmul__(self: Tensor, o: Any) -> Tensor:
        return self.mul(o, True)

    def __truediv__(self: Tensor, o: Any) -> Tensor:
        return self.div(o)

    def __rtruediv__(self: Tensor, o: Any) -> Tensor:
        return self.div(o, True)

    def __floordiv__(self: Tensor, o: Any) -> Tensor:
        return self.floordiv(o)

    def __rfloordiv__(self: Tensor, o: Any) -> Tensor:
        return self.floordiv(o, True)

    def __pow__(self: Tensor, o: Any) -> Tensor:
        return self.pow(o)

    def __rpow__(self: Tensor, o: Any) -> Tensor:
        return self.pow(o, True)

    def __matmul__(self: Tensor, o: Tensor) -> Tensor:
        return self.matmul(o)

    def __rmatmul__(self: Tensor, o: Tensor) -> Tensor:
        return type(self)(o).matmul(self) if not isinstance(o, type(self)) else o.matmul(self)

    def __neg__(self: Tensor) -> Tensor:
        return self.neg()

    def __lt__(self: Tensor, o: Any) -> Tensor:
        return F.Less.apply(*self._broadcasted(o, op="lt"))

    def __gt__(self: Tensor, o: Any) -> Tensor:
        return F.Less.apply(*self._broadcasted(o, True, op="gt"))

    def __le__(self: Tensor, o: Any) -> Tensor:
        x, y = self._broadcasted(o, op="le")
        if x.dtype.is_float:  # not (x > y) would be True for NaN
            return F.Less.apply(x, y) | F.Equal.apply(x, y)
        return F.Less.apply(y, x).logical_not()

    def __ge__(self: Tensor, o: Any) -> Tensor:
        x, y = self._broadcasted(o, op="ge")
        if x.dtype.is_float:
            return F.Less.apply(y, x) | F.Equal.apply(x, y)
        return F.Less.apply(x, y).logical_not()

    def __eq__(self: Tensor, o: Any) -> Tensor:  # type: ignore[override]
        return F.Equal.apply(*self._broadcasted(o, op="eq"))

    def __ne__(self: Tensor, o: Any) -> Tensor:  # type: ignore[override]
        return F.NotEqual.apply(*self._broadcasted(o, op="ne"))

    def _bool_op(self: Tensor, o: Any, fn: type[F.Function], name: str) -> Tensor:
        x, y = self._broadcasted(o, op=name)
        if x.dtype.is_float:
            raise TypeError(f"{name} needs bool or integer tensors, got {x.dtype.name}")
        return fn.apply(x, y)

    def __and__(self: Tensor, o: Any) -> Tensor:
        return self._bool_op(o, F.And, "&")

    def __or__(self: Tensor, o: Any) -> Tensor:
        return self._bool_op(o, F.Or, "|")

    def __xor__(self: Tensor, o: Any) -> Tensor:
        return self._bool_op(o, F.Xor, "^")

    def __rand__(self: Tensor, o: Any) -> Tensor:
        return self._bool_op(o, F.And, "&")

    def __ror__(self: Tensor, o: Any) -> Tensor:
        return self._bool_op(o, F.Or, "|")

    def __invert__(self: Tensor) -> Tensor:
        if self.dtype == dtypes.bool:
            return self.logical_not()
        if self.dtype.is_int:  # flip every bit: xor with all ones (-1, or the unsigned maximum)
            return self ^ (-1 if self.dtype.kind == "i" else (1 << (8 * self.dtype.itemsize)) - 1)
        raise TypeError(f"~ needs a bool or integer tensor, got {self.dtype.name}")

    def logical_not(self: Tensor) -> Tensor:
        return F.NotEqual.apply(*self.cast(dtypes.bool)._broadcasted(True))
