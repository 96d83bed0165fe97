"""Parses PTX text into entries, their parameters, register and shared-memory declarations and instructions.

It covers the module layout of the PTX ISA (``.version``, ``.target``, ``.address_size``, ``.entry``
with ``.param`` lists and performance directives) and the statement syntax inside an entry (labels,
``.reg``/``.shared`` declarations, ``@p``/``@!p`` guards, operands that are registers, immediates,
``[address]`` expressions, ``{vector}`` lists and symbols).  What it does not know (``.func``, ``.local``,
module-scope variables...) is refused with the construct and its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from tg_ptx.emulator.errors import EmulatorError
from tg_ptx.emulator.ptxtypes import TYPES, PType, is_immediate, ptype

# -- operands ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reg:
    name: str  # "%f3", or a special register such as "%tid.x"
    negated: bool = False  # "!%p1" (predicate operands only)


@dataclass(frozen=True)
class Imm:
    text: str


@dataclass(frozen=True)
class Sym:
    name: str  # a label, a parameter or a .shared variable


@dataclass(frozen=True)
class Addr:
    base: Reg | Sym | None
    offset: int


@dataclass(frozen=True)
class Vec:
    items: tuple[Reg | Imm, ...]


@dataclass(frozen=True)
class PredPair:
    """The ``p|q`` destination of setp: q receives the complement."""

    first: Reg
    second: Reg


Operand = Reg | Imm | Sym | Addr | Vec | PredPair

# -- module structure ----------------------------------------------------------------------------------------


@dataclass
class Instruction:
    opcode: str  # "add"
    mods: tuple[str, ...]  # ("rn", "f32")
    operands: tuple[Operand, ...]
    guard: Reg | None
    line: int
    text: str


@dataclass
class Param:
    name: str
    type: str  # "u64"


@dataclass
class SharedVar:
    name: str
    offset: int
    nbytes: int


@dataclass
class Entry:
    name: str
    params: list[Param]
    registers: dict[str, PType] = field(default_factory=dict)  # declared type of each register
    shared: dict[str, SharedVar] = field(default_factory=dict)
    shared_bytes: int = 0
    instructions: list[Instruction] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)  # label -> index of the next instruction
    max_threads: int | None = None  # .maxntid / .reqntid (x*y*z)
    req_threads: tuple[int, ...] | None = None


@dataclass
class Module:
    version: str
    target: str
    address_size: int
    entries: dict[str, Entry]


# -- lexing helpers ------------------------------------------------------------------------------------------

_IDENT = r"[A-Za-z_$%][\w$]*"
_LABEL = re.compile(rf"\s*({_IDENT})\s*:(?!:)")
_ENTRY = re.compile(rf"(?:\.visible\s+|\.weak\s+|\.extern\s+)?\.entry\s+({_IDENT})\s*\(")
_REG_RANGE = re.compile(rf"({_IDENT})<(\d+)>$")
_GUARD = re.compile(r"@(!?)(%[\w$]+)\s+")


def _strip_comments(text: str) -> str:
    """Comments replaced by spaces, newlines kept (so line numbers stay right)."""
    def blank(m: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    return re.sub(r"//[^\n]*|/\*.*?\*/", blank, text, flags=re.S)


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside brackets and braces."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail or parts:
        parts.append(tail)
    return [p for p in parts if p]


def _matching_brace(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise EmulatorError("an entry's body has no closing brace")


def parse_operand(text: str, line: int, stmt: str) -> Operand:
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        items = []
        for item in _split_top(text[1:-1]):
            op = parse_operand(item, line, stmt)
            if not isinstance(op, (Reg, Imm)):
                raise EmulatorError(f"vector element {item!r} is not a register or immediate", line, stmt)
            items.append(op)
        return Vec(tuple(items))
    if text.startswith("[") and text.endswith("]"):
        return _parse_address(text[1:-1].replace(" ", ""), line, stmt)
    if "|" in text:
        first, second = text.split("|", 1)
        return PredPair(Reg(first.strip()), Reg(second.strip()))
    if text.startswith("!%"):
        return Reg(text[1:], negated=True)
    if text.startswith("%"):
        return Reg(text)
    if is_immediate(text):
        return Imm(text)
    if re.fullmatch(_IDENT, text):
        return Sym(text)
    raise EmulatorError(f"cannot read operand {text!r}", line, stmt)


def _parse_address(inner: str, line: int, stmt: str) -> Addr:
    m = re.fullmatch(rf"({_IDENT})?(?:\+?(-?(?:0[xX][0-9a-fA-F]+|\d+)))?", inner)
    if m is None or (m.group(1) is None and m.group(2) is None):
        raise EmulatorError(f"cannot read address [{inner}]", line, stmt)
    base: Reg | Sym | None = None
    if m.group(1):
        base = Reg(m.group(1)) if m.group(1).startswith("%") else Sym(m.group(1))
    offset = int(m.group(2), 0) if m.group(2) else 0
    return Addr(base, offset)


# -- parsing -------------------------------------------------------------------------------------------------


def parse_module(text: str) -> Module:
    """Parse a whole PTX module."""
    src = _strip_comments(text)
    version = _directive(src, "version") or ""
    target = _directive(src, "target") or ""
    address_size = int(_directive(src, "address_size") or 64)
    if not version or not target:
        raise EmulatorError("a PTX module starts with .version and .target directives")
    if address_size != 64:
        raise EmulatorError(f".address_size {address_size} is not supported (only 64)")
    if re.search(r"(^|\s)\.func\s", src):
        raise EmulatorError("device functions (.func) are not supported")
    entries: dict[str, Entry] = {}
    pos = 0
    while True:
        m = _ENTRY.search(src, pos)
        if m is None:
            break
        _check_module_scope(src[pos:m.start()], src, pos)
        close = src.index(")", m.end())
        params = _parse_params(src[m.end():close], src.count("\n", 0, m.end()) + 1)
        open_at = src.index("{", close)
        entry = Entry(m.group(1), params)
        _parse_directives(entry, src[close + 1:open_at])
        end = _matching_brace(src, open_at)
        _parse_body(entry, src, open_at + 1, end, text)
        entries[entry.name] = entry
        pos = end + 1
    _check_module_scope(src[pos:], src, pos)
    if not entries:
        raise EmulatorError("the PTX module has no .entry")
    return Module(version, target.split(",")[0].strip(), address_size, entries)


def _directive(src: str, name: str) -> str | None:
    m = re.search(rf"^\s*\.{name}\s+([^\n;]+)", src, flags=re.M)
    return m.group(1).strip() if m else None


def _check_module_scope(chunk: str, src: str, offset: int) -> None:
    for m in re.finditer(r"^\s*\.(global|shared|const|local)\b[^\n]*", chunk, flags=re.M):
        line = src.count("\n", 0, offset + m.start()) + 1
        raise EmulatorError(f"module-scope .{m.group(1)} variables are not supported", line, m.group(0))


def _parse_params(text: str, line: int) -> list[Param]:
    params = []
    for item in _split_top(text):
        words = item.split()
        if len(words) != 3 or words[0] != ".param" or not words[1].startswith(".") or words[1][1:] not in TYPES:
            raise EmulatorError(f"unsupported kernel parameter {item!r} (expected .param .type name)", line, item)
        params.append(Param(words[2], words[1][1:]))
    return params


def _parse_directives(entry: Entry, text: str) -> None:
    for m in re.finditer(r"\.(maxntid|reqntid)\s+([\d\s,]+)", text):
        dims = tuple(int(x) for x in m.group(2).replace(",", " ").split())
        total = int(np.prod(dims))
        if m.group(1) == "reqntid":
            entry.req_threads = dims
        entry.max_threads = total if entry.max_threads is None else min(entry.max_threads, total)


def _parse_body(entry: Entry, src: str, start: int, end: int, original: str) -> None:
    lines = original.split("\n")
    pos = start
    while pos < end:
        while pos < end and src[pos] in " \t\r\n{}":
            pos += 1
        if pos >= end:
            break
        line = src.count("\n", 0, pos) + 1
        m = _LABEL.match(src, pos)
        if m is not None and not src[pos:m.end()].lstrip().startswith((".", "@")):
            entry.labels[m.group(1)] = len(entry.instructions)
            pos = m.end()
            continue
        semi = src.find(";", pos, end)
        if semi < 0:
            raise EmulatorError("statement without a closing ';'", line, src[pos:end])
        stmt = src[pos:semi].strip()
        shown = lines[line - 1] if line - 1 < len(lines) else stmt
        pos = semi + 1
        if stmt.startswith(".reg"):
            _declare_registers(entry, stmt, line, shown)
        elif stmt.startswith(".shared"):
            _declare_shared(entry, stmt, line, shown)
        elif stmt.startswith(".pragma"):
            continue
        elif stmt.startswith("."):
            raise EmulatorError(f"unsupported declaration {stmt.split()[0]}", line, shown)
        else:
            entry.instructions.append(_parse_instruction(stmt, line, shown))


def _declare_registers(entry: Entry, stmt: str, line: int, shown: str) -> None:
    words = stmt.split(None, 2)
    if len(words) < 3 or words[1][1:] not in TYPES:
        raise EmulatorError("unsupported register declaration", line, shown)
    declared = ptype(words[1][1:])
    for name in _split_top(words[2]):
        m = _REG_RANGE.match(name)
        if m:
            for i in range(int(m.group(2))):
                entry.registers[f"{m.group(1)}{i}"] = declared
        else:
            entry.registers[name] = declared


def _declare_shared(entry: Entry, stmt: str, line: int, shown: str) -> None:
    m = re.fullmatch(rf"\.shared\s+(?:\.align\s+(\d+)\s+)?\.(\w+)\s+({_IDENT})\s*(?:\[(\d+)\])?", stmt)
    if m is None or m.group(2) not in TYPES:
        raise EmulatorError("unsupported .shared declaration", line, shown)
    size = ptype(m.group(2)).size
    align = max(int(m.group(1) or size), size)
    offset = -(-entry.shared_bytes // align) * align
    nbytes = size * int(m.group(4) or 1)
    entry.shared[m.group(3)] = SharedVar(m.group(3), offset, nbytes)
    entry.shared_bytes = offset + nbytes


def _parse_instruction(stmt: str, line: int, shown: str) -> Instruction:
    guard = None
    m = _GUARD.match(stmt)
    if m:
        guard = Reg(m.group(2), negated=m.group(1) == "!")
        stmt = stmt[m.end():]
    head, _, rest = stmt.partition(" ")
    head, rest = head.strip(), rest.strip()
    if "\t" in head:
        head, _, more = head.partition("\t")
        rest = (more + " " + rest).strip()
    parts = head.split(".")
    operands = tuple(parse_operand(op, line, shown) for op in _split_top(rest))
    return Instruction(parts[0], tuple(p for p in parts[1:] if p), operands, guard, line, shown)
