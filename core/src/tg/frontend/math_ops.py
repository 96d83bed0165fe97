"""PyTorch's elementwise and small linear-algebra ops that tg composes from its primitives.

``log1p``, ``expm1`` and ``erf`` are accurate to a few ulp in float32 and float64 on every backend: near 0 they
use series of multiplies and adds only (never ``log(1 + x)``, whose rounding loses every digit of a tiny x), so
they do not depend on how accurately a backend's log2/exp2 behave near 1.  Their gradients are the analytic
ones (``1 / (1 + x)``, ``exp(x)``, ``2 / sqrt(pi) * exp(-x**2)``), not those of the series.  Also here: the NaN
and infinity tests, ``masked_fill``, ``tril``/``triu``, ``outer``, ``bmm``, ``roll``, ``norm`` and ``clone``.
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tg.frontend import function as F
from tg.frontend.shapes import normalize_axis
from tg.graph.lazy import LazyBuffer
from tg.support.dtype import dtypes
from tg.support.ops import Ops

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor


class WithDerivative(F.Function):
    """``value`` (computed from a detached ``x``) whose gradient with respect to ``x`` is ``grad * derivative``."""

    def forward(self, x: LazyBuffer, value: LazyBuffer, derivative: LazyBuffer) -> LazyBuffer:
        self.derivative = derivative
        return value

    def backward(self, grad: LazyBuffer) -> tuple[LazyBuffer, None, None]:
        return grad.alu(Ops.MUL, self.derivative), None, None


def with_derivative(x: Tensor, value: Tensor, derivative: Any) -> Tensor:
    """``value`` as a function of ``x`` with the given derivative (a callable, built only when x needs a gradient)."""
    if not x.requires_grad:
        return value
    return WithDerivative.apply(x, value.detach(), derivative().detach().cast(value.dtype))


def _horner(z: Tensor, coefficients: Sequence[float]) -> Tensor:
    """c0 + z * (c1 + z * (c2 + ...))."""
    out = z * coefficients[-1] + coefficients[-2]
    for c in reversed(coefficients[:-2]):
        out = out * z + c
    return out


def _wide(t: Tensor) -> Tensor:
    """Float input for a series: float16 is computed in float32 (and cast back by the caller)."""
    x = t._float()
    return x.float() if x.dtype == dtypes.float16 else x


def _log1p(x: Tensor) -> Tensor:
    # |x| < 0.5: log1p(x) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = x / (2 + x), |s| < 1/3
    terms = 17 if x.dtype == dtypes.float64 else 8
    s = x / (2 + x)
    series = 2 * s * _horner(s * s, [1 / (2 * k + 1) for k in range(terms)])
    small = x.abs() < 0.5
    return small.where(series, (1 + small.where(0.0, x)).log())


def _expm1(x: Tensor) -> Tensor:
    # |x| < 0.5: the Taylor series x + x^2/2! + ...; else exp(x) - 1 (no digits to lose there)
    terms = 18 if x.dtype == dtypes.float64 else 10
    series = x * _horner(x, [1 / math.factorial(k + 1) for k in range(terms)])
    small = x.abs() < 0.5
    return small.where(series, x.exp() - 1)


def _erf(x: Tensor) -> Tensor:
    # |x| < T: 2/sqrt(pi) x exp(-x^2) sum_n (2x^2)^n / (2n+1)!!  (positive terms: no cancellation);
    # |x| >= T: 1 - erfc(|x|), erfc by its continued fraction exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + ...)))
    wide = x.dtype == dtypes.float64
    limit, terms, depth = (3.0, 50, 25) if wide else (2.0, 18, 10)
    a = x.abs()
    near = a < limit
    an = near.where(a, 0.0)
    z = 2 * an * an
    s = z * (1 / (2 * terms + 1)) + 1
    for n in range(terms - 1, 0, -1):
        s = z * (1 / (2 * n + 1)) * s + 1
    inner = (2 / math.sqrt(math.pi)) * an * (-(an * an)).exp() * s
    af = near.where(limit, a)  # +inf gives erfc 0 (exp(-inf) / inf), nan stays nan
    t = af
    for k in range(depth, 0, -1):
        t = af + (k / 2) / t
    outer = 1 - (-(af * af)).exp() * (1 / math.sqrt(math.pi)) / t
    magnitude = near.where(inner, outer)
    return (x < 0).where(-magnitude, (x != x).where(x, magnitude))  # noqa: PLR0124 - x != x is the NaN test


def _unary(t: Tensor, formula: Any, derivative: Any) -> Tensor:
    x = _wide(t)
    out = formula(x.detach()).cast(t._float().dtype)
    return with_derivative(t, out, lambda: derivative(t._float().detach()))


class MathMixin:
    """Tensor's composed elementwise and small linear-algebra ops (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def log1p(self: Tensor) -> Tensor:
        """log(1 + x), accurate for tiny x."""
        return _unary(self, _log1p, lambda x: (1 + x).reciprocal())

    def expm1(self: Tensor) -> Tensor:
        """exp(x) - 1, accurate for tiny x."""
        return _unary(self, _expm1, lambda x: x.exp())

    def erf(self: Tensor) -> Tensor:
        """The error function (a series near 0, a continued fraction for large |x|; a few ulp in float32/64)."""
        return _unary(self, _erf, lambda x: (2 / math.sqrt(math.pi)) * (-(x * x)).exp())

    def isnan(self: Tensor) -> Tensor:
        return self != self  # noqa: PLR0124 - x != x is the NaN test

    def isinf(self: Tensor) -> Tensor:
        if not self.dtype.is_float:
            return self != self  # noqa: PLR0124 - integers are never infinite
        return (self == math.inf) | (self == -math.inf)

    def isfinite(self: Tensor) -> Tensor:
        if not self.dtype.is_float:
            return self == self  # noqa: PLR0124 - integers are always finite
        return (self - self) == 0  # inf - inf and nan - nan are nan

    def masked_fill(self: Tensor, mask: Tensor, value: Any) -> Tensor:
        """``value`` where the bool ``mask`` (broadcast to this tensor's shape) is true, else this tensor."""
        mask = mask if isinstance(mask, type(self)) else type(self)(mask, device=self.device)
        if mask.dtype != dtypes.bool:
            raise TypeError(f"masked_fill: the mask must be a bool tensor, got {mask.dtype.name} (compare first, "
                            "e.g. x.masked_fill(m != 0, v))")
        if isinstance(value, type(self)):
            if value.ndim != 0:
                raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
            fill = value.cast(self.dtype)
        else:
            if isinstance(value, float) and not self.dtype.is_float:  # PyTorch casts the value: toward zero
                if not math.isfinite(value):
                    raise ValueError(f"masked_fill: cannot fill a {self.dtype.name} tensor with {value}")
                value = int(value)
            if self.dtype == dtypes.bool:
                value = bool(value)
            fill = type(self)(value, dtype=self.dtype, device=self.device)
        out = mask.where(fill, self)
        if out.shape != self.shape:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the tensor's {self.shape}")
        return out

    def _triangle(self: Tensor, diagonal: int, lower: bool, op: str) -> Tensor:
        if self.ndim < 2:
            raise ValueError(f"{op} needs a tensor of at least 2 dims (a matrix or a batch of them), got {self.shape}")
        rows, cols = self.shape[-2:]
        i = type(self).arange(rows, device=self.device).reshape(rows, 1)
        j = type(self).arange(cols, device=self.device).reshape(1, cols)
        keep = (j - i <= diagonal) if lower else (j - i >= diagonal)
        return keep.where(self, False if self.dtype == dtypes.bool else 0).cast(self.dtype)

    def tril(self: Tensor, diagonal: int = 0) -> Tensor:
        """The lower triangle of the last two dims (from ``diagonal`` above the main one down), zeros elsewhere."""
        return self._triangle(diagonal, True, "tril")

    def triu(self: Tensor, diagonal: int = 0) -> Tensor:
        """The upper triangle of the last two dims (from ``diagonal`` above the main one up), zeros elsewhere."""
        return self._triangle(diagonal, False, "triu")

    def outer(self: Tensor, vec2: Tensor) -> Tensor:
        """The outer product of two 1-D tensors: ``out[i, j] = self[i] * vec2[j]``."""
        if self.ndim != 1 or vec2.ndim != 1:
            raise ValueError(f"outer needs two 1-D tensors, got shapes {self.shape} and {vec2.shape}")
        return self.reshape(-1, 1) * vec2.reshape(1, -1)

    ger = outer

    def bmm(self: Tensor, mat2: Tensor) -> Tensor:
        """Batched matrix product of (b, n, m) and (b, m, p) tensors (no broadcasting: use matmul for that)."""
        if self.ndim != 3 or mat2.ndim != 3:
            raise ValueError(f"bmm needs two 3-D tensors, got shapes {self.shape} and {mat2.shape}")
        if self.shape[0] != mat2.shape[0] or self.shape[2] != mat2.shape[1]:
            raise ValueError(f"bmm: shapes {self.shape} and {mat2.shape} do not match (need (b, n, m) and (b, m, p))")
        return self.matmul(mat2)

    def roll(self: Tensor, shifts: int | Sequence[int], dims: int | Sequence[int] | None = None) -> Tensor:
        """Rotate elements along ``dims`` by ``shifts`` (those leaving at the end come back at the start); without
        ``dims`` the flattened tensor is rolled and its shape restored."""
        if dims is None:
            if not isinstance(shifts, int):
                raise ValueError("roll: without dims, shifts must be one int (the flattened tensor is rolled)")
            return self.flatten().roll(shifts, 0).reshape(self.shape)
        shift_list = [shifts] if isinstance(shifts, int) else list(shifts)
        dim_list = [dims] if isinstance(dims, int) else list(dims)
        if len(shift_list) != len(dim_list):
            raise ValueError(f"roll: {len(shift_list)} shifts for {len(dim_list)} dims")
        out = self
        for shift, dim in zip(shift_list, dim_list):
            d = normalize_axis(dim, self.ndim, "roll")
            n = self.shape[d]
            s = shift % n if n else 0
            if s:
                head, tail = out.split([n - s, s], d)
                out = type(self).cat(tail, head, dim=d)
        return out

    def norm(self: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
        """The vector p-norm over ``dim`` (all elements by default): p = 2 (or ``"fro"``), 1, inf, -inf, 0 (the
        count of non-zeros) or any other number.  Matrix norms (``"nuc"``) are not supported."""
        x = self.cast(dtype) if dtype is not None else self._float()
        if p == "fro":
            p = 2
        if isinstance(p, str) or not isinstance(p, (int, float)):
            raise ValueError(f"norm: p={p!r} is not supported; use a number, inf or 'fro'")
        a = x.abs()
        if p == math.inf:
            return a.amax(dim, keepdim)
        if p == -math.inf:
            return a.amin(dim, keepdim)
        if p == 0:
            return (x != 0).cast(x.dtype).sum(dim, keepdim)
        if p == 1:
            return a.sum(dim, keepdim)
        total = (x * x if p == 2 else a ** p).sum(dim, keepdim)
        zero = total == 0  # the gradient at a zero vector is 0, as PyTorch's (not nan)
        root = zero.where(1.0, total).sqrt() if p == 2 else zero.where(1.0, total) ** (1 / p)
        return zero.where(0.0, root)

    def clone(self: Tensor) -> Tensor:
        """A new tensor with this one's value, and gradients flowing back to it (unlike detach()); in-place
        updates of either leave the other unchanged."""
        return F.Contiguous.apply(self)  # always a new tensor (contiguous() may return self)
