"""The instructions of a code object's ``.text``, read from LLVM's own disassembly of it.

``llvm-objdump -d --mcpu=gfx1100`` decodes the machine words; each line keeps its byte address and
raw words (so branch targets come from the encoded offset, not from labels).  The parsed program is
cached per code object by the sha256 of its bytes, so launching a kernel again does not run objdump.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from tg_rdna.emulator.errors import EmulatorError

OBJDUMP_NAMES = ("llvm-objdump-19", "llvm-objdump-20", "llvm-objdump-18", "llvm-objdump-17", "llvm-objdump")
_LINE = re.compile(r"^\s+(?P<text>\S.*?)\s*//\s*(?P<addr>[0-9A-Fa-f]{12,16}):(?P<words>(?:\s+[0-9A-Fa-f]{8})+)"
                   r"(?:\s+<[^>]*>)?\s*$")


@dataclass(frozen=True)
class Instruction:
    """One decoded instruction: its address, LLVM's text, mnemonic, operand strings and raw words."""

    address: int
    text: str
    mnemonic: str
    operands: tuple[str, ...]
    modifiers: tuple[str, ...]
    words: tuple[int, ...]

    @property
    def size(self) -> int:
        return 4 * len(self.words)


def find_objdump() -> str:
    override = os.environ.get("TG_RDNA_OBJDUMP")
    if override:
        return override
    for name in OBJDUMP_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise EmulatorError("llvm-objdump (LLVM 17 or newer) was not found: apt-get install llvm-19")


_MODIFIER = re.compile(r"^(offset|op_sel|op_sel_hi|neg_lo|neg_hi|mul|div|clamp|glc|slc|dlc|nv|sc0|sc1|nt|"
                       r"offset0|offset1|gds|row_mask|bank_mask|quad_perm|bound_ctrl|fi|dpp8|row_\w+|"
                       r"wave_\w+|bank_\w+)\b")


def split_operands(rest: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split an operand list into operands and trailing modifiers (``offset:16``, ``clamp``...)."""
    parts: list[str] = []
    depth, cur = 0, ""
    for ch in rest:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    operands: list[str] = []
    modifiers: list[str] = []
    for part in parts:
        # the last operand may carry space-separated modifiers: "v[2:3] offset:8 glc"
        pieces = _split_spaces(part)
        head = pieces[0]
        if _MODIFIER.match(head):
            modifiers.extend(pieces)
            continue
        operands.append(head)
        modifiers.extend(pieces[1:])
    return tuple(operands), tuple(modifiers)


def _split_spaces(part: str) -> list[str]:
    out: list[str] = []
    depth, cur = 0, ""
    for ch in part:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == " " and depth == 0:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def parse_disassembly(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        body = m.group("text")
        words = tuple(int(w, 16) for w in m.group("words").split())
        mnemonic, _, rest = body.partition(" ")
        ops, mods = split_operands(rest.strip()) if "::" not in rest else ((rest.strip(),), ())
        out.append(Instruction(int(m.group("addr"), 16), body, mnemonic, ops, mods, words))
    return out


_CACHE: dict[str, list[Instruction]] = {}


def disassemble(elf_bytes: bytes) -> list[Instruction]:
    """The instructions of the code object's .text, in address order (cached by sha256)."""
    key = hashlib.sha256(elf_bytes).hexdigest()
    if key in _CACHE:
        return _CACHE[key]
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".co") as f:
        f.write(elf_bytes)
        f.flush()
        proc = subprocess.run([find_objdump(), "-d", "--mcpu=gfx1100", "--section=.text", f.name],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise EmulatorError(f"llvm-objdump failed: {proc.stderr.strip()}")
    program = parse_disassembly(proc.stdout)
    if not program:
        raise EmulatorError("llvm-objdump found no instructions in .text")
    _CACHE[key] = program
    return program
