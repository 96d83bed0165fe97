"""The instructions of a code object's ``.text``, read from LLVM's own disassembly of it.

LLVM's AMDGPU decoder reads the machine words: in this process through libLLVM's C API (:mod:`.llvm_disasm`),
else ``llvm-objdump -d --mcpu=gfx1100``, whose lines are the same text.  Each instruction keeps its byte address
and raw words (so branch targets come from the encoded offset, not from labels).  The parsed program is cached
per code object by the sha256 of its bytes, so launching a kernel again decodes nothing.
"""

from __future__ import annotations

import hashlib
import re
import struct
import subprocess
from dataclasses import dataclass

from tg_rdna import toolchain
from tg_rdna.emulator import llvm_disasm
from tg_rdna.emulator.elf import parse_elf
from tg_rdna.emulator.errors import EmulatorError

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
    """The llvm-objdump tg-rdna uses (``TG_RDNA_LLVM_OBJDUMP``, ``TG_RDNA_LLVM_BIN``, else the newest on PATH)."""
    found = toolchain.find("llvm-objdump")
    if found is None:
        raise EmulatorError(toolchain.missing_message("llvm-objdump"))
    return found


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
    """The instructions of ``llvm-objdump -d`` output (lines without an address and words are skipped)."""
    out: list[Instruction] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            words = tuple(int(w, 16) for w in m.group("words").split())
            out.append(instruction(int(m.group("addr"), 16), m.group("text"), words))
    return out


def instruction(address: int, body: str, words: tuple[int, ...]) -> Instruction:
    """An :class:`Instruction` from LLVM's text of it."""
    mnemonic, _, rest = body.partition(" ")
    ops, mods = split_operands(rest.strip()) if "::" not in rest else ((rest.strip(),), ())
    return Instruction(address, body, mnemonic, ops, mods, words)


_CACHE: dict[str, list[Instruction]] = {}


def disassemble(elf_bytes: bytes) -> list[Instruction]:
    """The instructions of the code object's .text, in address order (cached by sha256)."""
    key = hashlib.sha256(elf_bytes).hexdigest()
    if key in _CACHE:
        return _CACHE[key]
    decoder = llvm_disasm.disassembler()
    program = _in_process(decoder, elf_bytes) if decoder is not None else _with_objdump(elf_bytes)
    if not program:
        raise EmulatorError("LLVM's disassembler found no instructions in .text")
    _CACHE[key] = program
    return program


def _in_process(decoder: llvm_disasm.Disassembler, elf_bytes: bytes) -> list[Instruction]:
    text = parse_elf(elf_bytes).sections.get(".text")
    if text is None:
        raise EmulatorError("the code object has no .text section")
    code = elf_bytes[text.offset:text.offset + text.size]
    try:
        return [instruction(address, body, struct.unpack(f"<{len(raw) // 4}I", raw))
                for address, body, raw in decoder.instructions(code, text.address)]
    except ValueError as exc:
        raise EmulatorError(f"LLVM's disassembler ({decoder.path}): {exc}") from None


def _with_objdump(elf_bytes: bytes) -> list[Instruction]:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".co") as f:
        f.write(elf_bytes)
        f.flush()
        try:  # through tg's early-exec helper, with its time limit, like every LLVM run of tg-rdna
            text = toolchain.run([find_objdump(), "-d", "--mcpu=gfx1100", "--section=.text", f.name]).decode()
        except subprocess.CalledProcessError as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
            raise EmulatorError(f"llvm-objdump failed: {stderr.strip()}") from None
    return parse_disassembly(text)
