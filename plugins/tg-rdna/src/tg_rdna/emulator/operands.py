"""Operands of LLVM's AMDGPU disassembly: registers, inline constants, literals and modifiers.

Scalar registers are numbered as in the encoding: s0-s105, vcc_lo 106, vcc_hi 107, null 124, m0 125,
exec_lo 126, exec_hi 127.  Inline constants are the integers -16..64 and the floats 0.5, 1.0, 2.0,
4.0 (and negatives) and 1/(2*pi); their bits depend on the operand's type (an f16 operand's ``1.0``
is 0x3c00, an f32's 0x3f800000); hexadecimal literals are taken as 32 raw bits.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from tg_rdna.emulator.errors import EmulatorError

VCC_LO, VCC_HI, NULL, M0, EXEC_LO, EXEC_HI = 106, 107, 124, 125, 126, 127
SCALAR_NAMES = {"vcc_lo": (VCC_LO, 1), "vcc_hi": (VCC_HI, 1), "vcc": (VCC_LO, 2), "null": (NULL, 1),
                "m0": (M0, 1), "exec_lo": (EXEC_LO, 1), "exec_hi": (EXEC_HI, 1), "exec": (EXEC_LO, 2)}
INV_2PI = 0.15915494309189535
_FLOAT_CONSTS = {"0.5": 0.5, "-0.5": -0.5, "1.0": 1.0, "-1.0": -1.0, "2.0": 2.0, "-2.0": -2.0, "4.0": 4.0,
                 "-4.0": -4.0, "0.15915494": INV_2PI}
_REG = re.compile(r"^([sv])(?:(\d+)|\[(\d+):(\d+)\])(?:\.([lh]))?$")


@dataclass(frozen=True)
class Operand:
    """kind: 'v' (VGPRs), 's' (scalar registers), 'imm' (integer), 'fimm' (float inline constant),
    'off' (no address register), 'scc'."""

    kind: str
    index: int = 0
    count: int = 1
    value: int = 0
    fvalue: float = 0.0
    neg: bool = False
    absolute: bool = False
    half: int = 0  # 1: .l, 2: .h (16-bit halves of a VGPR)
    text: str = ""

    @property
    def is_reg(self) -> bool:
        return self.kind in ("v", "s")

    def regs(self) -> list[tuple[str, int]]:
        if self.kind == "v":
            return [("v", self.index + i) for i in range(self.count)]
        if self.kind == "s":
            return [("s", self.index + i) for i in range(self.count) if self.index + i != NULL]
        return []


@functools.lru_cache(maxsize=1 << 14)  # kernels name the same registers and constants again and again
def parse_operand(text: str) -> Operand:
    t = text.strip()
    neg = absolute = False
    if t.startswith("-") and not re.match(r"^-\d", t) and not t.startswith("-0x"):
        neg, t = True, t[1:]
    elif re.match(r"^neg\((.*)\)$", t):
        neg, t = True, t[4:-1]
    if t.startswith("|") and t.endswith("|"):
        absolute, t = True, t[1:-1]
    elif re.match(r"^abs\((.*)\)$", t):
        absolute, t = True, t[4:-1]
    m = _REG.match(t)
    if m:
        kind = m.group(1)
        if m.group(2) is not None:
            index, count = int(m.group(2)), 1
        else:
            index, count = int(m.group(3)), int(m.group(4)) - int(m.group(3)) + 1
        half = {"l": 1, "h": 2}.get(m.group(5) or "", 0)
        return Operand(kind, index, count, neg=neg, absolute=absolute, half=half, text=text)
    if t in SCALAR_NAMES:
        index, count = SCALAR_NAMES[t]
        return Operand("s", index, count, neg=neg, absolute=absolute, text=text)
    if t == "off":
        return Operand("off", text=text)
    if t in ("scc", "src_scc"):
        return Operand("scc", text=text)
    if t in _FLOAT_CONSTS:
        return Operand("fimm", fvalue=_FLOAT_CONSTS[t], neg=neg, absolute=absolute, text=text)
    try:
        value = int(t, 0)
    except ValueError:
        raise EmulatorError(f"unsupported operand {text!r}") from None
    return Operand("imm", value=value, neg=neg, absolute=absolute, text=text)


def immediate_bits(op: Operand, typ: str) -> int:
    """The bits an inline constant or literal gives an operand of type ``typ``."""
    width = type_width(typ)
    if op.kind == "fimm":
        if typ in ("f16", "u16", "i16", "b16"):
            return int(np.array(op.fvalue, np.float16).view(np.uint16))
        if typ == "f64":
            return int(np.array(op.fvalue, np.float64).view(np.uint64))
        bits = int(np.array(op.fvalue, np.float32).view(np.uint32))
        return bits
    is_inline = -16 <= op.value <= 64 and not op.text.strip().lower().startswith(("0x", "-0x"))
    if width == 64:
        if typ == "f64" and not is_inline:
            return (op.value & 0xFFFFFFFF) << 32  # a 64-bit float literal is its high half
        if typ == "i64" and not is_inline:  # signed operands sign-extend a 32-bit literal, unsigned zero-extend
            return (((op.value & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000) & 0xFFFFFFFFFFFFFFFF
        return op.value & 0xFFFFFFFFFFFFFFFF if is_inline else op.value & 0xFFFFFFFF
    return op.value & ((1 << width) - 1) if width < 32 else op.value & 0xFFFFFFFF


def type_width(typ: str) -> int:
    width = _WIDTHS.get(typ)
    if width is None:
        width = _WIDTHS[typ] = 64 if typ.endswith("64") else 16 if typ.endswith("16") else 32
    return width


_WIDTHS: dict[str, int] = {}


