"""Products and running totals: ``prod``, ``cumsum`` and ``cumprod``, composed from tg's primitives.

tg's reductions are sums and maxima, so a product is a tree: the axis is padded with ones to a power of two and
halved ``log2(n)`` times, each step multiplying one half by the other (elementwise ops on views, which the
scheduler fuses into a few kernels).  A running total works in blocks of ``BLOCK`` elements: inside a block,
output i is the sum (product) of the block's elements masked to positions <= i (O(BLOCK) work per element, one
reduction); the blocks' totals are scanned the same way, recursively, and added (multiplied) back.  So a scan of
length n costs O(n * BLOCK) work in about ``log_BLOCK(n)`` rounds of kernels.  Integers stay exact (no float round
trip); gradients come from the elementwise ops' own, exact even where an element is 0.
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tg.frontend.reductions import pick_dim
from tg.frontend.shapes import normalize_axis
from tg.support.dtype import DType, dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor

BLOCK = 32
HALVINGS_PER_KERNEL = 5  # a kernel multiplies 32 inputs per output: small kernels, quick to compile


def _accumulator(x: Tensor, dtype: DType | str | None) -> tuple[Tensor, DType]:
    """The input cast to the dtype the work is done in, and the result's dtype (sum's rules: bools and small
    integers accumulate in int32; float16 in float32 and is cast back)."""
    if dtype is not None:
        x = x.cast(dtype)
    elif x.dtype == dtypes.bool or (x.dtype.is_int and x.dtype.itemsize < 4):
        x = x.cast(dtypes.int32)
    out_dtype = x.dtype
    return (x.float() if x.dtype == dtypes.float16 else x), out_dtype


def _last(x: Tensor, d: int) -> Tensor:
    return x if d == x.ndim - 1 else x.transpose(d, -1)


def _pad_last(x: Tensor, to: int, value: float) -> Tensor:
    n = x.shape[-1]
    return x if to == n else x.pad([(0, 0)] * (x.ndim - 1) + [(0, to - n)], value=value)


def _halve(x: Tensor) -> Tensor:
    """The product of the two halves of the last axis (whose length is even)."""
    half = x.shape[-1] // 2
    keep: list[Any] = [None] * (x.ndim - 1)
    return x.shrink([*keep, (0, half)]) * x.shrink([*keep, (half, 2 * half)])


def prod_last(x: Tensor) -> Tensor:
    """The product over the last axis (a tree of multiplies)."""
    n = x.shape[-1]
    if n == 0:
        return type(x).ones(x.shape[:-1], dtype=x.dtype, device=x.device)
    x = _pad_last(x, 1 << (n - 1).bit_length(), 1)
    level = 0
    while x.shape[-1] > 1:
        x = _halve(x)
        level += 1
        if level % HALVINGS_PER_KERNEL == 0 and x.shape[-1] > 1:
            x = x.unsqueeze(-1).contiguous().squeeze(-1)  # a kernel boundary (contiguous() of a view)
    return x.reshape(x.shape[:-1])


def _block_scan(x: Tensor, multiply: bool) -> Tensor:
    """Inclusive scan of the last axis (length <= BLOCK) by masking: out[i] = op over x[j] for j <= i."""
    n = x.shape[-1]
    i = type(x).arange(n, device=x.device).reshape(n, 1)
    j = type(x).arange(n, device=x.device).reshape(1, n)
    masked = (j <= i).where(x.unsqueeze(-2), 1 if multiply else 0).cast(x.dtype)  # (..., i, j)
    if not multiply:
        return masked.sum(-1).cast(x.dtype)
    # a buffer of its own (n times x's size): the product tree then reads it through plain strided views, which
    # lower quickly; inlined, every leaf's index would go through the mask's and the padding's views
    return prod_last(masked.unsqueeze(-1).contiguous().squeeze(-1))


def scan_last(x: Tensor, multiply: bool) -> Tensor:
    """Inclusive cumulative sum (or product) over the last axis, blockwise (see the module docstring)."""
    n = x.shape[-1]
    if n <= BLOCK:
        return _block_scan(x, multiply) if n else x
    blocks = math.ceil(n / BLOCK)
    y = _pad_last(x, blocks * BLOCK, 1 if multiply else 0).reshape(x.shape[:-1] + (blocks, BLOCK))
    inner = _block_scan(y, multiply)  # (..., blocks, BLOCK)
    keep: list[Any] = [None] * (x.ndim - 1)
    totals = inner.shrink([*keep, None, (BLOCK - 1, BLOCK)]).reshape(x.shape[:-1] + (blocks,))
    before = scan_last(totals.shrink([*keep, (0, blocks - 1)]), multiply)  # of the blocks before each block
    carry = before.pad([(0, 0)] * (x.ndim - 1) + [(1, 0)], value=1 if multiply else 0).unsqueeze(-1)
    out = inner * carry if multiply else inner + carry
    return out.reshape(x.shape[:-1] + (blocks * BLOCK,)).shrink([*keep, (0, n)])


class ScanMixin:
    """Tensor's products and cumulative ops (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def prod(self: Tensor, dim: int | None = None, keepdim: bool = False, dtype: DType | str | None = None, *,
             axis: int | None = None) -> Tensor:
        """The product over ``dim`` (all elements when None).  Bools and small integers multiply in int32 (like
        ``sum``); integer overflow wraps around."""
        d = pick_dim(dim, axis, "prod")
        x, out_dtype = _accumulator(self, dtype)
        if d is None:
            out = prod_last(x.flatten())
            return (out.reshape((1,) * self.ndim) if keepdim else out).cast(out_dtype)
        if not isinstance(d, int):
            raise TypeError(f"prod: dim must be one int (or None for all elements), got {d!r}")
        ax = normalize_axis(d, self.ndim, "prod")
        if self.ndim == 0:
            return x.cast(out_dtype)
        out = _last(prod_last(_last(x, ax)).unsqueeze(-1), ax)
        return (out if keepdim else out.squeeze(ax)).cast(out_dtype)

    def _scan(self: Tensor, dim: int, dtype: DType | str | None, multiply: bool, op: str) -> Tensor:
        x, out_dtype = _accumulator(self, dtype)
        if self.ndim == 0:
            normalize_axis(dim, 0, op)
            return x.cast(out_dtype)
        ax = normalize_axis(dim, self.ndim, op)
        return _last(scan_last(_last(x, ax), multiply), ax).cast(out_dtype)

    def cumsum(self: Tensor, dim: int | None = None, dtype: DType | str | None = None, *,
               axis: int | None = None) -> Tensor:
        """Running sums along ``dim``: ``out[i] = x[0] + ... + x[i]`` (blockwise, see :mod:`tg.frontend.scans`)."""
        d = pick_dim(dim, axis, "cumsum")
        if d is None:
            raise TypeError("cumsum() needs a dim, e.g. x.cumsum(0) (flatten first for the whole tensor)")
        return self._scan(d, dtype, False, "cumsum")

    def cumprod(self: Tensor, dim: int | None = None, dtype: DType | str | None = None, *,
                axis: int | None = None) -> Tensor:
        """Running products along ``dim``: ``out[i] = x[0] * ... * x[i]``."""
        d = pick_dim(dim, axis, "cumprod")
        if d is None:
            raise TypeError("cumprod() needs a dim, e.g. x.cumprod(0) (flatten first for the whole tensor)")
        return self._scan(d, dtype, True, "cumprod")
