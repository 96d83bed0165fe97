"""Data types: the names backends declare, their numpy equivalents, and the promotion rules.

Promotion follows numpy's "category, then size" idea on this small set:
bool < integers < floats as categories; within a category the larger size wins; an unsigned and a
signed integer of the same size promote to the next larger signed size; a Python float scalar
never widens a float tensor, a Python int never widens an integer tensor, and a Python float with an
integer or bool tensor gives float32 (the default float).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from tg.support.helpers import getenv

_F32 = struct.Struct("f")


@dataclass(frozen=True, eq=True)
class DType:
    """One element type: ``name`` is what a backend's capabilities list, ``np`` its numpy dtype."""

    name: str
    itemsize: int
    kind: str  # "b" bool, "i" signed int, "u" unsigned int, "f" float
    priority: int  # rank within all dtypes, for promotion

    @property
    def np(self) -> np.dtype[Any]:
        return np.dtype(self.name if self.name != "bool" else np.bool_)

    @property
    def is_float(self) -> bool:
        return self.kind == "f"

    @property
    def is_int(self) -> bool:
        return self.kind in "iu"

    def __repr__(self) -> str:
        return f"dtypes.{self.name}"

    def __eq__(self, other: object) -> bool:
        # the dtypes are singletons in practice: identity answers at once (the generated __eq__ builds two tuples)
        if self is other:
            return True
        if not isinstance(other, DType):
            return NotImplemented
        return self.name == other.name and self.itemsize == other.itemsize and self.kind == other.kind and \
            self.priority == other.priority  # (the names differ at once for most unequal pairs)

    def __hash__(self) -> int:  # (equal dtypes have equal names; a str caches its hash)
        return hash(self.name)


class dtypes:  # noqa: N801 - a namespace spelt like the module users expect (tg.dtypes.float32)
    """The dtypes tg knows, as attributes: ``dtypes.float32``..."""

    bool = DType("bool", 1, "b", 0)
    uint8 = DType("uint8", 1, "u", 1)
    int8 = DType("int8", 1, "i", 2)
    int32 = DType("int32", 4, "i", 3)
    int64 = DType("int64", 8, "i", 4)
    float16 = DType("float16", 2, "f", 5)
    float32 = DType("float32", 4, "f", 6)
    float64 = DType("float64", 8, "f", 7)

    default_float = float32
    default_int = int32

    @staticmethod
    def all() -> tuple[DType, ...]:
        return ALL

    @staticmethod
    def from_any(x: Any) -> DType:
        """A DType from a DType, a name ("float32"), a numpy dtype or a numpy/Python type."""
        if isinstance(x, DType):
            return x
        if isinstance(x, str) and x in BY_NAME:
            return BY_NAME[x]
        try:
            name = np.dtype(x).name
        except TypeError:
            name = ""
        if name in BY_NAME:
            return BY_NAME[name]
        raise TypeError(f"unsupported dtype {x!r}: tg supports {', '.join(BY_NAME)}")


ALL: tuple[DType, ...] = (dtypes.bool, dtypes.uint8, dtypes.int8, dtypes.int32, dtypes.int64, dtypes.float16,
                          dtypes.float32, dtypes.float64)
BY_NAME = {d.name: d for d in ALL}


#: Indices are int32: no buffer, and no reduction, may reach 2**31 elements.
INDEX_LIMIT = (1 << 31) - 1


def check_numel(count: int, what: str) -> None:
    """Refuse a tensor of more elements than 32-bit indices reach, before anything is allocated."""
    if count > INDEX_LIMIT:
        raise ValueError(f"{what}: {count:,} elements, and tg indexes with 32-bit integers (at most "
                         f"{INDEX_LIMIT:,}): split the data into smaller tensors")


def as_value(value: Any, dtype: DType) -> bool | int | float:
    """``value`` as a Python scalar of ``dtype``, exactly as the device holds it: integers wrap around like the
    hardware's, floats are rounded to the dtype once (float16 65520 -> inf), and a float given for an integer
    dtype converts like a cast does (truncated toward zero, saturated to the dtype's range, NaN -> 0)."""
    if dtype is dtypes.int32 and value.__class__ is int and -0x80000000 <= value <= 0x7FFFFFFF:
        return value  # (index arithmetic: most calls)
    if dtype == dtypes.bool:
        return bool(value)
    if dtype.is_int:
        bits = dtype.itemsize * 8
        if isinstance(value, (float, np.floating)):
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dtype.kind == "i" else (0, (1 << bits) - 1)
            x = float(value)
            return 0 if math.isnan(x) else hi if x >= hi else lo if x <= lo else math.trunc(x)
        wrapped = int(value) & ((1 << bits) - 1)
        return wrapped - (1 << bits) if dtype.kind == "i" and wrapped >= 1 << (bits - 1) else wrapped
    if dtype.itemsize == 8:
        return float(value)
    if dtype.itemsize == 4:
        try:  # C's double -> float conversion, as numpy's cast rounds; ~10x cheaper than a numpy scalar
            return float(_F32.unpack(_F32.pack(value))[0])
        except (OverflowError, struct.error):  # past float32's range (numpy's cast gives inf), or not a float
            pass
    with np.errstate(over="ignore"):
        return float(np.asarray(value, dtype.np))


def exact_key(value: Any) -> Any:
    """A hashable key for a constant (or a tuple holding some) that tells -0.0 from 0.0 and NaN from NaN."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, tuple):
        return tuple(exact_key(v) for v in value)
    return value


def promote(a: DType, b: DType) -> DType:
    """The dtype of a binary op between tensors of dtypes ``a`` and ``b``."""
    if a == b:
        return a
    cat = {"b": 0, "u": 1, "i": 1, "f": 2}
    if cat[a.kind] != cat[b.kind]:
        return a if cat[a.kind] > cat[b.kind] else b
    if a.kind != b.kind:  # signed and unsigned integers
        signed, unsigned = (a, b) if a.kind == "i" else (b, a)
        if signed.itemsize > unsigned.itemsize:
            return signed
        return {1: dtypes.int32, 4: dtypes.int64}.get(unsigned.itemsize, dtypes.int64)
    return a if a.itemsize >= b.itemsize else b


def check_scalar_fits(value: Any, dtype: DType) -> None:
    """Refuse a Python int that an integer dtype cannot hold (numpy's and PyTorch's rule), instead of wrapping it."""
    if isinstance(value, int) and not isinstance(value, bool) and dtype.is_int:
        bits = dtype.itemsize * 8
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dtype.kind == "i" else (0, (1 << bits) - 1)
        if not lo <= value <= hi:
            wider = "int64" if dtype.itemsize < 8 and -(1 << 63) <= value < (1 << 63) else "float64"
            raise OverflowError(f"Python integer {value} is out of range for a tensor of {dtype.name} ({lo} to {hi}): "
                                f"cast the tensor first, e.g. x.cast('{wider}')")


def scalar_param(value: Any, dtype: DType) -> bool:
    """Whether a Python scalar of the user's arithmetic becomes a kernel parameter rather than a constant: a float
    (never an int or a bool, which index math and integer rules read) in a float32 or float16 expression.  Decided
    by the scalar's type alone, never its value (a schedule starting at 0.0 must not compile another kernel for step
    0); ``TG_SCALAR_PARAMS=0`` makes every scalar a constant."""
    return isinstance(value, float) and dtype in (dtypes.float32, dtypes.float16) and getenv("TG_SCALAR_PARAMS", True)


def scalar_dtype(x: Any, other: DType) -> DType:
    """The dtype a Python scalar takes when combined with a tensor of dtype ``other``."""
    if isinstance(x, bool):
        return other
    if isinstance(x, int):
        return other if other.kind != "b" else dtypes.default_int
    if isinstance(x, float):
        return other if other.is_float else dtypes.default_float
    raise TypeError(f"cannot combine a tensor with {type(x).__name__} {x!r}: use a number or a Tensor")
