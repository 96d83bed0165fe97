"""Host data for tensors: shape arguments, and Python numbers, nested lists and numpy arrays as arrays of a dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from tg.support.dtype import DType, dtypes


def shape_arg(shape: tuple[Any, ...]) -> tuple[int, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` both mean shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"shape must be non-negative integers, got {shape}")
    return tuple(int(s) for s in shape)


def to_numpy(data: Any, dtype: DType | None) -> np.ndarray:
    try:
        array = np.asarray(data)
    except ValueError as exc:
        raise ValueError(f"cannot make a tensor from {type(data).__name__}: {exc}") from None
    if array.dtype == object:
        raise TypeError(f"cannot make a tensor from {data!r}: nested lists must be rectangular numbers")
    if dtype is None:
        if array.dtype.kind == "f":
            dtype = dtypes.default_float if array.dtype != np.float16 and not isinstance(data, np.ndarray) else \
                dtypes.from_any(array.dtype)
        elif array.dtype.kind in "iu":
            dtype = dtypes.default_int if not isinstance(data, np.ndarray) else dtypes.from_any(array.dtype)
        elif array.dtype.kind == "b":
            dtype = dtypes.bool
        else:
            raise TypeError(f"unsupported numpy dtype {array.dtype}")
    return array.astype(dtype.np)
