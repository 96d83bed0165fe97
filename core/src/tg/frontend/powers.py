"""Integer powers, exact: never through float (which is wrong above 2**24).

A known Python exponent is a chain of squarings; a tensor of exponents is one POW micro-op, which a target renders
(tg-clang, numpy) or core decomposes into squarings over every bit of the exponent's dtype
(:mod:`tg.codegen.rewrites`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tg.frontend import function as F

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor


def integer_pow(x: Tensor, y: Tensor, exponent: int | None) -> Tensor:
    """``x ** y`` for integers, exact (wrapping like the dtype's multiplication, as numpy's does): squarings over the
    bits of ``exponent`` when it is a known Python int >= 0, else the POW micro-op, elementwise.  A negative exponent
    gives what integer division of 1 by ``x ** -y`` would: 1 for x == 1, +-1 for x == -1, and 0 otherwise (0 ** -n
    included)."""
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
    return F.Pow.apply(x, y)  # (integers take no gradient)
