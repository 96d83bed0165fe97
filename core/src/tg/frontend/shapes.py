"""Shape arithmetic of the front end: axis normalization and broadcasting rules (PyTorch's)."""

from __future__ import annotations

import numpy as np


def normalize_axis(axis: int, ndim: int, op: str) -> int:
    if not isinstance(axis, (int, np.integer)) or not -max(ndim, 1) <= axis < max(ndim, 1):
        raise IndexError(f"{op}: axis {axis} is out of range for a tensor of rank {ndim}")
    return int(axis) % max(ndim, 1)


def broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    if len(shapes) == 2 and len(shapes[0]) == len(shapes[1]):  # the common case, without a set per dimension
        a, b = shapes
        if a == b:
            return a
        out = []
        for x, y in zip(a, b):
            if x == y or y == 1:
                out.append(x)
            elif x == 1:
                out.append(y)
            else:
                break
        else:
            return tuple(out)
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + s for s in shapes]
    out = []
    for dims in zip(*padded):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ValueError(f"{op}: shapes {' and '.join(str(s) for s in shapes)} cannot be broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)
