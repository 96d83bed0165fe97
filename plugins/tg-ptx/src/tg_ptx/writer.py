"""How tg dtypes live in PTX registers and memory, and a small writer that allocates registers and lines.

Every tg dtype has one register class, declared by type at the top of the kernel:

========  ==============  =====  ===============================================================
dtype     register        name   notes
========  ==============  =====  ===============================================================
bool      ``.pred``       %p     ``.u8`` 0/1 in memory
int8      ``.s16``        %rc    kept sign-extended; wrapped to 8 bits after arithmetic
uint8     ``.u16``        %ruc   kept zero-extended; wrapped to 8 bits after arithmetic
int32     ``.s32``        %r
int64     ``.s64``        %rl
float16   ``.b16``        %h     ``.f16`` arithmetic where PTX has it, else through ``.f32``
float32   ``.f32``        %f
float64   ``.f64``        %fd
========  ==============  =====  ===============================================================

plus ``.u64`` %rd for global addresses, ``.u32`` %rs for shared-memory addresses and ``.b32`` %rb for pairs
of float16 packed into one register (the fragments ``mma`` takes).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

from tg.support.dtype import DType, dtypes


@dataclass(frozen=True)
class RegClass:
    """One kind of register: its declaration type and name prefix."""

    decl: str  # ".f32"
    prefix: str  # "%f"


@dataclass(frozen=True)
class PtxType:
    """How one tg dtype is held: register class, the type suffix of arithmetic, the type in memory."""

    reg: RegClass
    arith: str  # "f32", "s16" (int8 arithmetic happens on 16 bits), "pred"
    mem: str  # "f32", "s8", "u8" (bool), "b16" (float16)
    size: int  # bytes in memory
    bits: str  # the untyped ("b") type of the register: "b16", "b32"... ("pred" for bool)


PRED = RegClass(".pred", "%p")
S16 = RegClass(".s16", "%rc")
U16 = RegClass(".u16", "%ruc")
S32 = RegClass(".s32", "%r")
S64 = RegClass(".s64", "%rl")
B16 = RegClass(".b16", "%h")
F32 = RegClass(".f32", "%f")
F64 = RegClass(".f64", "%fd")
B32 = RegClass(".b32", "%rb")  # two float16 packed together (tensor-core fragments)
ADDR = RegClass(".u64", "%rd")
SHARED_ADDR = RegClass(".u32", "%rs")
REG_CLASSES = (PRED, S16, U16, S32, S64, B16, F32, F64, B32, ADDR, SHARED_ADDR)

PTX_TYPES: dict[str, PtxType] = {
    "bool": PtxType(PRED, "pred", "u8", 1, "pred"),
    "int8": PtxType(S16, "s16", "s8", 1, "b16"),
    "uint8": PtxType(U16, "u16", "u8", 1, "b16"),
    "int32": PtxType(S32, "s32", "s32", 4, "b32"),
    "int64": PtxType(S64, "s64", "s64", 8, "b64"),
    "float16": PtxType(B16, "f16", "b16", 2, "b16"),
    "float32": PtxType(F32, "f32", "f32", 4, "b32"),
    "float64": PtxType(F64, "f64", "f64", 8, "b64"),
}


def ptx_type(dtype: DType) -> PtxType:
    try:
        return PTX_TYPES[dtype.name]
    except KeyError:
        raise NotImplementedError(f"tg-ptx has no PTX type for dtype {dtype.name}") from None


def f32_imm(value: float) -> str:
    """A float32 immediate in PTX's exact hex form: ``0f3F800000`` is 1.0."""
    return f"0f{struct.unpack('<I', struct.pack('<f', value))[0]:08X}"


def f64_imm(value: float) -> str:
    """A float64 immediate in PTX's exact hex form: ``0d3FF0000000000000`` is 1.0."""
    return f"0d{struct.unpack('<Q', struct.pack('<d', value))[0]:016X}"


def f16_bits(value: float) -> str:
    """The bits of a float16 as a hex immediate for ``mov.b16``."""
    return f"0x{struct.unpack('<H', struct.pack('<e', value))[0]:04X}"


def float_imm(value: float, arith: str) -> str:
    return f32_imm(value) if arith == "f32" else f64_imm(value)


class Writer:
    """Collects one kernel's instructions and hands out registers, counted per class for the declarations."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.counts: dict[RegClass, int] = {}
        self.labels = 0

    def reg(self, cls: RegClass) -> str:
        n = self.counts.get(cls, 0)
        self.counts[cls] = n + 1
        return f"{cls.prefix}{n}"

    def op(self, text: str, guard: str | None = None) -> None:
        """One instruction; ``guard`` is a predicate register (``%p1`` or ``!%p1``) that masks it."""
        self.lines.append(f"\t{'@' + guard + ' ' if guard else ''}{text};")

    def comment(self, text: str) -> None:
        self.lines.append(f"\t// {text}")

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")

    def new_label(self, stem: str) -> str:
        self.labels += 1
        return f"$L_{stem}{self.labels}"

    def declarations(self) -> list[str]:
        return [f"\t.reg {cls.decl} {cls.prefix}<{self.counts[cls]}>;" for cls in REG_CLASSES if self.counts.get(cls)]


@dataclass(frozen=True)
class Const:
    """A constant not (yet) in a register: rendered as an immediate where PTX allows one."""

    value: Any
    dtype: DType


def immediate(v: Const) -> str:
    dt = v.dtype
    if dt == dtypes.float32:
        return f32_imm(v.value)
    if dt == dtypes.float64:
        return f64_imm(v.value)
    if dt == dtypes.float16:
        return f16_bits(v.value)
    if dt == dtypes.bool:
        return "1" if v.value else "0"
    return str(int(v.value))


_DEFINES = re.compile(r"\t([a-z][\w.]*) (%\w+), (.*);$")
_MOVES = re.compile(r"\tmov\.\w+ (%\w+), (%\w+);$")


def _reg_class(reg: str) -> str:
    return reg.rstrip("0123456789")  # "%fd12" -> "%fd"


def fold_moves(lines: list[str]) -> list[str]:
    """``op %t, ...; mov %acc, %t;`` -> ``op %acc, ...;`` where %t is used nowhere else (an ASSIGN's value).

    Only between registers of one class: a ``mov`` between classes is a bitcast and stays.
    """
    uses: dict[str, int] = {}
    for line in lines:
        for reg in re.findall(r"%\w+", line):
            uses[reg] = uses.get(reg, 0) + 1
    out: list[str] = []
    for line in lines:
        move = _MOVES.match(line)
        prev = _DEFINES.match(out[-1]) if out and move else None
        if move and prev and prev.group(2) == move.group(2) and uses.get(move.group(2)) == 2 \
                and _reg_class(move.group(1)) == _reg_class(move.group(2)):
            out[-1] = f"\t{prev.group(1)} {move.group(1)}, {prev.group(3)};"
            continue
        out.append(line)
    return out


def offset_text(offset: int) -> str:
    return f"+{offset}" if offset else ""


def pieces(count: int, size: int) -> list[tuple[int, int]]:
    """Split ``count`` lanes of ``size`` bytes into (first lane, lanes) accesses of at most 16 bytes each;
    only power-of-two counts are vectorized (their start is aligned to the whole vector)."""
    if count == 1 or count & (count - 1):
        return [(i, 1) for i in range(count)]
    per = max(1, min(count, 4, 16 // size))
    if per == 1:
        return [(i, 1) for i in range(count)]
    return [(i, per) for i in range(0, count, per)]

