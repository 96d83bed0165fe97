"""Integer powers, exact: ``x ** n`` by repeated squaring instead of through float (which is wrong above 2**24)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tg.frontend import function as F
from tg.support.dtype import dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor


def integer_pow(x: Tensor, y: Tensor, exponent: int | None) -> Tensor:
    """``x ** y`` for integers, exact (wrapping like the dtype's multiplication, as numpy's does), by squaring:
    over the bits of ``exponent`` when it is a known Python int, else over the bits of every element of ``y``.  A
    negative exponent gives what integer division of 1 by ``x ** -y`` would: 1 for x == 1, +-1 for x == -1, and
    0 otherwise (0 ** -n included)."""
    if exponent is not None and exponent >= 0:
        result: Tensor | None = None
        base = x
        while exponent:
            if exponent & 1:
                result = base if result is None else result * base
            exponent >>= 1
            if exponent:
                base = base * base
        return result if result is not None else type(x).ones_like(x)
    result, base = type(x).ones_like(x), x
    for bit in range(8 * y.dtype.itemsize - 1):
        set_ = (F.IntDiv.apply(*y._broadcasted(1 << bit)) & 1).cast(dtypes.bool)  # y >= 0 here: // truncates
        result = set_.where(result * base, result)
        base = base * base
    if x.dtype.kind == "u":  # no negative exponents
        return result
    small = (x == 1) | ((x == -1) & ((y & 1) == 0))
    return (y < 0).where(small.where(1, (x == -1).where(-1, 0)).cast(x.dtype), result)
