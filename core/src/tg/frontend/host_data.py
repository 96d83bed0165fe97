"""Host data for tensors: shape arguments, and Python numbers, nested lists and numpy arrays as arrays of a dtype."""

from __future__ import annotations

from typing import Any

import numpy as np

from tg.support.dtype import DType, check_numel, dtypes


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
        huge = [v for v in array.reshape(-1) if isinstance(v, int) and not -(1 << 63) <= v < (1 << 64)][:1]
        if huge:
            raise OverflowError(f"cannot make a tensor from {huge[0]}: the integer is too large for int64 (and every "
                                f"tg dtype); use a float, e.g. float({huge[0]})")
        raise TypeError(f"cannot make a tensor from {data!r}: nested lists must be rectangular numbers")
    python_ints = array.dtype.kind in "iu" and not isinstance(data, np.ndarray)
    if dtype is None:
        if array.dtype.kind == "f":
            dtype = dtypes.default_float if array.dtype != np.float16 and not isinstance(data, np.ndarray) else \
                dtypes.from_any(array.dtype)
        elif python_ints:  # the default int, or int64 for values it cannot hold (PyTorch's default is int64)
            dtype = dtypes.default_int if _fits(array, dtypes.default_int) else dtypes.int64
        elif array.dtype.kind in "iu":
            dtype = dtypes.from_any(array.dtype)
        elif array.dtype.kind == "b":
            dtype = dtypes.bool
        else:
            raise TypeError(f"unsupported numpy dtype {array.dtype}")
    if python_ints and dtype.is_int and not _fits(array, dtype):
        bad = array.reshape(-1)[0 if array.size == 0 else int(np.argmax((array < np.iinfo(dtype.np).min) |
                                                                         (array > np.iinfo(dtype.np).max)))]
        raise OverflowError(f"Python integer {bad} is out of range for {dtype.name}: choose a wider dtype (int64) "
                            "or a float one")
    check_numel(array.size, "a tensor from host data")
    return array.astype(dtype.np)


def _fits(array: np.ndarray, dtype: DType) -> bool:
    info = np.iinfo(dtype.np)
    return array.size == 0 or bool(array.min() >= info.min and array.max() <= info.max)
