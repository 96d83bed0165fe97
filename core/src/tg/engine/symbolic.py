"""Symbolic outermost dimension: one compiled kernel for every batch size or sequence length.

The symbolic dimension is the output's outermost dimension whose size is not 1 (a batch of one sequence of
``N`` tokens, ``(1, N, C)``, varies in ``N``).  A kernel qualifies when that dimension has ``N >= 2`` rows (a
size-1 dimension has stride 0, so a kernel traced at ``N = 1`` looks like a broadcast), neither it nor a dimension
outside it is reduced (by the kernel or by a reduction fused into its rows), and every load and constant reads
through a view whose size there is ``N``, unmasked, with a stride of at least 0; a second view under it (a bias
broadcast, then reshaped: ``(N, C)`` strides ``(0, 1)`` under ``(N, K, C)``) qualifies when its first dimension is
``N``, with a stride of at least 0, and neither it nor the view over it has a mask: unravelling a flat index into
a view never reads its first size (a masked view's index may be clamped into its mask before another view unravels
it, and that clamp would read ``N``).  Its *symbolic key* is its kernel key with every such size written
``"n"``; strides, offsets, inner sizes, masks, constants and dtypes stay literal.  Two kernels with equal symbolic
keys then compute the same function of each row and differ only in how
many rows they compute (a stride that depends on ``N``, such as a transposed input's, differs between the two, so
their keys differ), and a kernel lowered with ``N`` as the int32 launch variable ``n0`` serves both: core launches
that binary with ``n0 = N``.

``TG_SYMBOLIC=0`` turns this off; ``TG_SYMBOLIC=verify`` also runs the kernel built for the exact size after each
launch of a reused one and raises :class:`~tg.support.errors.BackendError` if a bit of the output differs.
"""

from __future__ import annotations

from typing import Any

from tg.codegen.lower import rows_under
from tg.schedule.scheduler import Kernel, symbolic_axis
from tg.support.helpers import getenv

MODES = ("0", "1", "verify")


def symbolic_mode() -> str:
    """TG_SYMBOLIC: ``"1"`` (default), ``"0"`` or ``"verify"``."""
    mode = getenv("TG_SYMBOLIC", "1").strip().lower()
    if mode not in MODES:
        raise ValueError(f"TG_SYMBOLIC={mode!r}: use 1 (default: reuse kernels across outermost sizes), 0 (off) or "
                         "verify (reuse, and check each reuse against the kernel built for the exact size)")
    return mode


def symbolic_key(kernel: Kernel, key: tuple[object, ...]) -> tuple[object, ...] | None:
    """``kernel``'s key (``key``, from :func:`tg.engine.realize.kernel_key`) with its outermost size written
    ``"n"``, or None when the kernel does not qualify (see the module docstring)."""
    shape = kernel.output.shape
    axis = symbolic_axis(shape)
    if axis < 0 or shape[axis] < 2:
        return None
    n, ndim = shape[axis], len(shape)
    ast = kernel.ast
    if ast.op == "REDUCE" and min(ast.arg[1], default=ndim) <= axis:
        return None
    entries: list[tuple[Any, ...]] = []
    for entry in kernel.structure:
        op, dtype, arg, srcs = entry
        if op == "CONST" and all(view[3] is None for view in views_of(arg)):
            vshape = arg[1][-1][0]  # a constant without a mask reads nothing: only its shape matters
            if len(vshape) != ndim or vshape[axis] != n:
                return None
            entries.append((op, dtype, (arg[0], (*vshape[:axis], "n", *vshape[axis + 1:])), srcs))
        elif op in ("LOAD", "CONST"):
            value, views = arg
            *under, (vshape, strides, offset, mask) = views
            if len(vshape) != ndim or vshape[axis] != n or strides[axis] < 0:
                return None
            if mask is not None:
                if mask[axis] != (0, n):
                    return None
                mask = (*mask[:axis], "n", *mask[axis + 1:])
            if under and not rows_under(views, n):
                return None
            inner = [(("n", *ushape[1:]), ustrides, uoffset, None) for ushape, ustrides, uoffset, _ in under]
            entries.append((op, dtype, (value, (*inner, ((*vshape[:axis], "n", *vshape[axis + 1:]), strides, offset,
                                                          mask))), srcs))
        elif op == "REDUCE" and min(arg[1], default=ndim) <= axis:
            return None  # a reduction fused into the rows that sums across them
        else:
            entries.append(entry)
    return ("symbolic", tuple(entries), shape[:axis], shape[axis + 1:], *key[2:])


def views_of(arg: tuple[Any, Any]) -> tuple[tuple[Any, ...], ...]:
    """The views (``ShapeTracker.key``) in a structure entry's arg of a load or a constant."""
    views: tuple[tuple[Any, ...], ...] = arg[1]
    return views
