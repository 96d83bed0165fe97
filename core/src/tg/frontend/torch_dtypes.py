"""tg's dtypes under PyTorch's module-level names (``tg.float32``, ``tg.long``, ``tg.half``...), offered lazily by
:mod:`tg` (a module of their own: the names shadow Python's ``float``, ``int`` and ``bool``)."""

from __future__ import annotations

from tg.support.dtype import dtypes

float32 = float = dtypes.float32  # noqa: A001
float16 = half = dtypes.float16
float64 = double = dtypes.float64
int8, uint8, int32 = dtypes.int8, dtypes.uint8, dtypes.int32
int64 = long = dtypes.int64
int = dtypes.int32  # noqa: A001 - tg's default integer (PyTorch's torch.int is int32 too)
bool = dtypes.bool  # noqa: A001

NAMES = ("float32", "float", "float16", "half", "float64", "double", "int8", "uint8", "int32", "int64", "long", "int",
         "bool")
