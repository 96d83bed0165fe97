"""The functions the numpy backend's fast-path kernels call (see :mod:`tg.backends.numpy_fast`).

Values are arrays of one common number of dimensions (numpy scalars where a value is constant); an axis of size 1
means the value does not vary along it.  Reductions keep their axes (size 1), so a result broadcasts like any
other value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tg.backends.numpy_interpreter import _gated_load


def axis_values(lo: int, hi: int, axis: int, ndim: int) -> np.ndarray:
    """``lo .. hi-1`` as int32 along ``axis`` of an ``ndim``-dimensional array (size 1 along the others)."""
    shape = [1] * ndim
    shape[axis] = max(0, hi - lo)
    return np.arange(lo, hi, dtype=np.int32).reshape(shape)


#: How far past its ends a gated affine load may reach (in elements beyond the buffer's own size) and still be read
#: through a zero-padded copy instead of gathered.
PAD_LIMIT = 1 << 16


def _affine_view(buf: np.ndarray, const: int, terms: tuple[tuple[np.ndarray, int, int], ...], ndim: int
                 ) -> tuple[list[int], list[int], int, int, int]:
    """The strided view of ``buf`` an affine index walks over this chunk's axes: its shape, its byte strides, the
    index of its first element, and the lowest and highest index it reaches."""
    shape, strides = [1] * ndim, [0] * ndim
    start, low, high = const, 0, 0
    for values, axis, coeff in terms:
        n = shape[axis] = values.shape[axis]
        strides[axis] = coeff * buf.itemsize
        start += coeff * int(values.reshape(-1)[0]) if n else 0
        low, high = low + min(0, coeff * (n - 1)), high + max(0, coeff * (n - 1))
    return shape, strides, start, start + low, start + high


def load_affine(buf: np.ndarray, const: int, terms: tuple[tuple[np.ndarray, int, int], ...], ndim: int,
                gate: Any = True, alt: Any = 0) -> Any:
    """``buf[const + sum(coefficient * axis value)]`` over this chunk's axes (``terms``: each axis' values, the axis,
    its coefficient), where ``gate``, else ``alt``: a strided view of ``buf``, no index array and no gather.

    Where a gated lane's index points outside the buffer (padding), the view is of a zero-padded copy, so nothing
    outside the buffer is read; an index range too far out is gathered, as the interpreter does."""
    shape, strides, start, low, high = _affine_view(buf, const, terms, ndim)
    if 0 in shape:
        return np.zeros(shape, buf.dtype)
    before, after = max(0, -low), max(0, high + 1 - buf.size)
    if not before and not after:
        view = np.lib.stride_tricks.as_strided(buf[start:], shape, strides, writeable=False)
    elif gate is not True and before + after <= buf.size + PAD_LIMIT:
        padded = np.zeros(before + buf.size + after, buf.dtype)
        padded[before:before + buf.size] = buf
        view = np.lib.stride_tricks.as_strided(padded[before + start:], shape, strides, writeable=False)
    else:  # the interpreter's gather, with the same (int32) index
        index = sum((values.astype(np.int64) * coeff for values, _, coeff in terms), np.int64(const)).astype(np.int32)
        return buf[index] if gate is True else _gated_load(buf, index, gate, alt)
    return view if gate is True else np.where(gate, view, alt)


def store_affine(buf: np.ndarray, const: int, terms: tuple[tuple[np.ndarray, int, int], ...], ndim: int,
                 value: Any, gate: Any) -> None:
    """``buf[const + sum(coefficient * axis value)] = value`` over this chunk's axes, where ``gate``: a store through a
    strided view of ``buf``.  The caller proved each point has an element of its own; one out of the buffer raises,
    as the interpreter's store would."""
    shape, strides, start, low, high = _affine_view(buf, const, terms, ndim)
    if 0 in shape:
        return
    if low < 0 or high >= buf.size:
        raise IndexError(f"store at {low}..{high} into a buffer of {buf.size}")
    view = np.lib.stride_tricks.as_strided(buf[start:], shape, strides)
    if gate is True:
        np.copyto(view, value, casting="unsafe")
    else:
        np.copyto(view, value, casting="unsafe", where=np.asarray(gate, dtype=bool))


def _full_ndim(x: Any, ndim: int) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape((1,) * (ndim - x.ndim) + x.shape) if x.ndim < ndim else x


def _loop_shape(x: np.ndarray, axes: tuple[int, ...], ranges: tuple[np.ndarray, ...]) -> list[int]:
    """``x``'s shape with each loop axis at its loop's length (a value constant along a loop counts once per
    iteration)."""
    shape = list(x.shape)
    for ax, r in zip(axes, ranges):
        shape[ax] = r.shape[ax]
    return shape


def tree_sum(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The sum over ``axes`` (kept, size 1) by halving, each addition rounded in ``x``'s dtype: float16 sums round
    at every step as the micro-ops do (numpy's own float16 sum adds in float32)."""
    kept = [1 if i in axes else n for i, n in enumerate(x.shape)]
    x = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
    x = x.reshape(*x.shape[:x.ndim - len(axes)], -1)
    while x.shape[-1] > 1:
        n, h = x.shape[-1], x.shape[-1] // 2
        pairs = x[..., :h] + x[..., h:2 * h]
        x = pairs if n % 2 == 0 else np.concatenate([pairs, x[..., 2 * h:]], axis=-1)
    return x.reshape(kept)


def accumulate(ufunc: Any, acc: Any, value: Any, axes: tuple[int, ...], ranges: tuple[np.ndarray, ...]) -> Any:
    """``acc`` updated by ``ufunc`` (np.add or np.maximum) with ``value`` over every iteration of the loops
    ``ranges`` (their axes ``axes``), in the accumulator's dtype: integers wrap, NaN propagates."""
    dtype = np.asarray(acc).dtype
    x = _full_ndim(value, ranges[0].ndim)
    x = np.broadcast_to(x, _loop_shape(x, axes, ranges))
    if x.size == 0:
        return acc
    if ufunc is np.add and dtype == np.float16:
        part = tree_sum(x, axes)
    else:
        part = ufunc.reduce(x, axis=axes, keepdims=True, dtype=dtype)
    return np.asarray(ufunc(acc, part)).astype(dtype, copy=False)


def accumulate_product(acc: Any, p: Any, q: Any, axes: tuple[int, ...], ranges: tuple[np.ndarray, ...]) -> Any:
    """``acc + sum(p * q)`` over the loops' axes as one matrix product (BLAS): axes both factors vary along are a
    batch (kept) or contracted (loop axes); an axis only one factor varies along is an output row or column, or,
    when it is a loop's, summed in that factor first."""
    dtype = np.asarray(acc).dtype
    ndim = ranges[0].ndim
    p, q = _full_ndim(p, ndim), _full_ndim(q, ndim)
    loop = set(axes)
    counts = _loop_shape(np.empty((1,) * ndim), axes, ranges)
    if 0 in counts or 0 in p.shape or 0 in q.shape:
        return acc
    missing = [ax for ax in axes if p.shape[ax] == 1 and q.shape[ax] == 1 and counts[ax] > 1]
    if missing:  # constant along a loop: it is added once per iteration
        shape = list(p.shape)
        for ax in missing:
            shape[ax] = counts[ax]
        p = np.broadcast_to(p, shape)

    def varies(x: np.ndarray) -> set[int]:
        return {i for i, n in enumerate(x.shape) if n > 1}

    only_p, only_q = sorted((varies(p) - varies(q)) & loop), sorted((varies(q) - varies(p)) & loop)
    if only_p:
        p = np.add.reduce(p, axis=tuple(only_p), keepdims=True, dtype=dtype)
    if only_q:
        q = np.add.reduce(q, axis=tuple(only_q), keepdims=True, dtype=dtype)
    vp, vq = varies(p), varies(q)
    batch, k = sorted((vp & vq) - loop), sorted(vp & vq & loop)
    m, n = sorted(vp - vq), sorted(vq - vp)
    full = np.broadcast_shapes(p.shape, q.shape)

    def matrix(x: np.ndarray, order: list[int], *groups: list[int]) -> np.ndarray:
        rest = [i for i in range(ndim) if i not in order]
        return x.transpose(order + rest).reshape([math.prod(full[i] for i in g) for g in groups])

    out = blas_matmul(matrix(p, batch + m + k, batch, m, k), matrix(q, batch + k + n, batch, k, n))
    order = batch + m + n
    out = out.reshape([full[i] for i in order]).transpose(np.argsort(order))
    out = out.reshape([full[i] if i in order else 1 for i in range(ndim)])
    return np.asarray(acc + out).astype(dtype, copy=False)


#: Multiply-adds of one BLAS call below which OpenBLAS stays on the calling thread (its SMP threshold).
ONE_THREAD_MNK = 1 << 18
#: Products up to this many multiply-adds run as one-thread calls (blocks of at least 8 rows): spread over BLAS's
#: worker threads they gain little, and on a busy machine each call may wait milliseconds for a worker to be
#: scheduled.
SMALL_PRODUCT = 1 << 22


def blas_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for stacks of matrices (B, M, K) and (B, K, N); a small product in row blocks of one-thread calls."""
    batch, m, k = a.shape
    n = b.shape[2]
    rows = max(1, ONE_THREAD_MNK // max(1, n * k))
    if rows >= m or rows < 8 or batch * m * n * k > SMALL_PRODUCT:
        return np.matmul(a, b)
    out = np.empty((batch, m, n), dtype=np.result_type(a, b))
    for start in range(0, m, rows):
        np.matmul(a[:, start:start + rows], b, out=out[:, start:start + rows])
    return out


def store_run(buf: np.ndarray, start: int, value: Any, gate: Any, shape: tuple[int, ...]) -> None:
    """Store this chunk's threads' values to ``buf[start:start + threads]`` (the index is the thread's own), where
    ``gate``."""
    n = math.prod(shape)
    if start < 0 or start + n > buf.size:
        raise IndexError(f"store of {n} elements at {start} into a buffer of {buf.size}")
    dst = buf[start:start + n].reshape(shape)
    if gate is True:
        np.copyto(dst, value, casting="unsafe")
    else:
        np.copyto(dst, value, casting="unsafe", where=np.asarray(gate, dtype=bool))


def store_at(buf: np.ndarray, idx: Any, value: Any, gate: Any, shape: tuple[int, ...]) -> None:
    """Store each thread's value at its index, where ``gate`` (threads in order: a later one wins)."""
    idx, value, gate = (np.broadcast_to(x, shape) for x in (idx, value, gate))
    buf[idx[gate]] = value[gate]


PRELUDE = {"_axis": axis_values, "_load_affine": load_affine, "_accumulate": accumulate,
           "_accumulate_product": accumulate_product, "_store_run": store_run, "_store_at": store_at,
           "_store_affine": store_affine}
