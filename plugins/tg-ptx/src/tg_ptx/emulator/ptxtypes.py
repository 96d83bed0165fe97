"""PTX's fundamental types (``.s32``, ``.f16``, ``.pred``...) as numpy dtypes, and its immediate literals.

Register values are held as numpy arrays of the register's declared type.  An instruction reads a
register as its own instruction type: the same bits when the sizes agree; the low bits when the register
is wider (allowed for ``ld``, ``st``, ``cvt`` and friends); a narrower register is an error.  Writing a
narrower result into a wider register sign-extends signed types and zero-extends the rest.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from tg_ptx.emulator.errors import EmulatorError


@dataclass(frozen=True)
class PType:
    name: str  # "f32"
    kind: str  # "f" float, "s" signed, "u" unsigned, "b" untyped bits, "p" predicate
    size: int  # bytes
    np: np.dtype[Any]

    @property
    def is_float(self) -> bool:
        return self.kind == "f"

    @property
    def signed(self) -> bool:
        return self.kind == "s"


def _t(name: str, kind: str, size: int, dtype: Any) -> PType:
    return PType(name, kind, size, np.dtype(dtype))


TYPES: dict[str, PType] = {t.name: t for t in [
    _t("pred", "p", 1, np.bool_),
    _t("b8", "b", 1, np.uint8), _t("u8", "u", 1, np.uint8), _t("s8", "s", 1, np.int8),
    _t("b16", "b", 2, np.uint16), _t("u16", "u", 2, np.uint16), _t("s16", "s", 2, np.int16),
    _t("f16", "f", 2, np.float16),
    _t("b32", "b", 4, np.uint32), _t("u32", "u", 4, np.uint32), _t("s32", "s", 4, np.int32),
    _t("f32", "f", 4, np.float32),
    _t("b64", "b", 8, np.uint64), _t("u64", "u", 8, np.uint64), _t("s64", "s", 8, np.int64),
    _t("f64", "f", 8, np.float64),
]}

UNSIGNED: dict[int, np.dtype[Any]] = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32),
                                     8: np.dtype(np.uint64)}
SIGNED: dict[int, np.dtype[Any]] = {1: np.dtype(np.int8), 2: np.dtype(np.int16), 4: np.dtype(np.int32),
                                   8: np.dtype(np.int64)}


def ptype(name: str) -> PType:
    try:
        return TYPES[name]
    except KeyError:
        raise EmulatorError(f"unknown PTX type .{name}") from None


def compatible(reg: PType, t: PType, wider: bool) -> bool:
    """Whether a register declared ``reg`` may be an operand of type ``t`` (the ISA's type-checking rules).

    Equal types match; a ``.bN`` type matches any type of its size, and signed and unsigned integers of
    one size match each other; with ``wider`` (``ld``, ``st``, ``cvt``) an integer or bit register may be
    wider than an integer or bit instruction type.
    """
    if reg == t:
        return True
    if "p" in (reg.kind, t.kind):
        return False
    if reg.size == t.size:
        return "b" in (reg.kind, t.kind) or (reg.kind in "su" and t.kind in "su")
    return wider and reg.size > t.size and reg.kind in "bsu" and t.kind in "bsu"


def from_register(value: Any, t: PType) -> Any:
    """A register's array read as type ``t`` (reinterpreted, or truncated from a wider register)."""
    arr = np.asarray(value)
    if t.kind == "p":
        if arr.dtype != np.bool_:
            raise EmulatorError(f"a .{arr.dtype} register used as a predicate")
        return arr
    if arr.dtype == t.np:
        return arr
    if arr.dtype == np.bool_:
        raise EmulatorError(f"a predicate register used as .{t.name}")
    if arr.dtype.itemsize == t.size:
        return arr.view(t.np)
    if arr.dtype.itemsize > t.size:
        return arr.view(UNSIGNED[arr.dtype.itemsize]).astype(UNSIGNED[t.size]).view(t.np)
    raise EmulatorError(f"a {arr.dtype.itemsize * 8}-bit register used as .{t.name}")


def to_register(value: Any, t: PType, reg: np.dtype[Any]) -> Any:
    """A result of type ``t`` converted to a register of dtype ``reg`` (same bits, or extended)."""
    arr = np.asarray(value, dtype=t.np)
    if reg == t.np:
        return arr
    if t.kind == "p" or reg == np.bool_:
        raise EmulatorError(f"a .{t.name} value written to a {'predicate' if reg == np.bool_ else reg} register")
    if reg.itemsize == t.size:
        return arr.view(reg)
    if reg.itemsize > t.size:
        if t.signed:
            wide = arr.astype(SIGNED[reg.itemsize])
        else:
            wide = arr.view(UNSIGNED[t.size]).astype(UNSIGNED[reg.itemsize])
        return wide.view(reg)
    raise EmulatorError(f"a .{t.name} value written to a {reg.itemsize * 8}-bit register")


_HEX_FLOAT = re.compile(r"0([fFdD])([0-9a-fA-F]+)$")
_INT = re.compile(r"-?(0[xX][0-9a-fA-F]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)[uU]?$")
_FLOAT = re.compile(r"-?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?$")


def is_immediate(text: str) -> bool:
    return bool(_HEX_FLOAT.match(text) or _INT.match(text) or _FLOAT.match(text))


def immediate(text: str, t: PType) -> Any:
    """The literal ``text`` as a numpy scalar of type ``t`` (``0f3F800000``, ``-5``, ``0x3C00``, ``1.5``)."""
    m = _HEX_FLOAT.match(text)
    if m:
        if m.group(1) in "fF":
            bits, value = int(m.group(2), 16), struct.unpack("<f", struct.pack("<I", int(m.group(2), 16)))[0]
            width = 4
        else:
            bits, value = int(m.group(2), 16), struct.unpack("<d", struct.pack("<Q", int(m.group(2), 16)))[0]
            width = 8
        if t.is_float:
            return np.asarray(value).astype(t.np)[()]
        raw = np.asarray(bits & ((1 << (8 * width)) - 1), dtype=UNSIGNED[width])
        return raw.astype(UNSIGNED[t.size]).view(t.np)[()]
    if _INT.match(text):
        neg = text.startswith("-")
        body = text.lstrip("-").rstrip("uU")
        if body.lower().startswith("0x"):
            value = int(body, 16)
        elif body.lower().startswith("0b"):
            value = int(body[2:], 2)
        elif len(body) > 1 and body.startswith("0"):
            value = int(body, 8)
        else:
            value = int(body)
        value = -value if neg else value
        if t.kind == "p":
            return np.bool_(value != 0)
        if t.is_float:  # an integer literal in a float instruction is that value
            return np.asarray(float(value)).astype(t.np)[()]
        return np.asarray(value & ((1 << (8 * t.size)) - 1), dtype=UNSIGNED[t.size]).view(t.np)[()]
    if _FLOAT.match(text) and t.is_float:
        return np.asarray(float(text)).astype(t.np)[()]
    raise EmulatorError(f"{text!r} is not an immediate of type .{t.name}")
