"""The code object's HSA metadata, as ROCm's loader reads it: the ``NT_AMDGPU_METADATA`` note (MessagePack).

``ld.lld`` turns the ``.amdgpu_metadata`` YAML into a MessagePack map in an ELF note (owner ``AMDGPU``, type 32).
The emulator plays the runtime's part with it: the hidden arguments each kernel lists (``.value_kind:
hidden_block_count_x`` ... at their ``.offset``) are filled at launch from the grid, as ROCm does.  Only the
MessagePack forms that metadata uses are decoded (maps, arrays, strings, integers, booleans, nil, floats); any other
byte is an error naming it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from tg_rdna.emulator.elf import ElfFile
from tg_rdna.emulator.errors import EmulatorError

NT_AMDGPU_METADATA = 32
SHT_NOTE = 7


@dataclass(frozen=True)
class KernelArgument:
    kind: str  # .value_kind: global_buffer, by_value, hidden_block_count_x, ...
    offset: int
    size: int


def kernel_arguments(elf: ElfFile) -> dict[str, tuple[KernelArgument, ...]]:
    """Each kernel's arguments (``.name`` -> its ``.args``), from the metadata note; empty without one."""
    meta = metadata(elf)
    out: dict[str, tuple[KernelArgument, ...]] = {}
    for kernel in meta.get("amdhsa.kernels", []):
        args = tuple(KernelArgument(str(a[".value_kind"]), int(a[".offset"]), int(a[".size"]))
                     for a in kernel.get(".args", []))
        out[str(kernel[".name"])] = args
    return out


def metadata(elf: ElfFile) -> dict[str, Any]:
    """The decoded ``NT_AMDGPU_METADATA`` map ({} when the code object has none)."""
    for sec in elf.sections.values():
        if sec.kind != SHT_NOTE:
            continue
        pos, end = sec.offset, sec.offset + sec.size
        while pos + 12 <= end:
            namesz, descsz, kind = struct.unpack_from("<III", elf.data, pos)
            name = elf.data[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            desc = pos + 12 + _align4(namesz)
            if name == b"AMDGPU" and kind == NT_AMDGPU_METADATA:
                value, _ = _decode(elf.data[desc:desc + descsz], 0)
                if not isinstance(value, dict):
                    raise EmulatorError("the AMDGPU metadata note is not a map")
                return value
            pos = desc + _align4(descsz)
    return {}


def _align4(n: int) -> int:
    return (n + 3) & ~3


_FIXED = {0xC0: None, 0xC2: False, 0xC3: True}
_INTS = {0xCC: "<B", 0xCD: "<H", 0xCE: "<I", 0xCF: "<Q", 0xD0: "<b", 0xD1: "<h", 0xD2: "<i", 0xD3: "<q",
         0xCA: "<f", 0xCB: "<d"}
_LENGTHS = {0xD9: ("str", "<B"), 0xDA: ("str", "<H"), 0xDB: ("str", "<I"), 0xDC: ("array", "<H"),
            0xDD: ("array", "<I"), 0xDE: ("map", "<H"), 0xDF: ("map", "<I")}


def _decode(data: bytes, pos: int) -> tuple[Any, int]:
    """One MessagePack value at ``pos``: (value, the position after it).  Multi-byte numbers are big-endian."""
    if pos >= len(data):
        raise EmulatorError("the AMDGPU metadata note ends inside a value")
    b = data[pos]
    pos += 1
    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0xA0 <= b <= 0xBF:
        return _string(data, pos, b & 0x1F)
    if 0x90 <= b <= 0x9F:
        return _array(data, pos, b & 0x0F)
    if 0x80 <= b <= 0x8F:
        return _map(data, pos, b & 0x0F)
    if b in _FIXED:
        return _FIXED[b], pos
    if b in _INTS:
        fmt = ">" + _INTS[b][1:]
        return struct.unpack_from(fmt, data, pos)[0], pos + struct.calcsize(fmt)
    if b in _LENGTHS:
        what, fmt = _LENGTHS[b]
        fmt = ">" + fmt[1:]
        (n,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return {"str": _string, "array": _array, "map": _map}[what](data, pos, n)
    raise EmulatorError(f"unsupported MessagePack byte 0x{b:02x} in the AMDGPU metadata note")


def _string(data: bytes, pos: int, n: int) -> tuple[str, int]:
    return data[pos:pos + n].decode(), pos + n


def _array(data: bytes, pos: int, n: int) -> tuple[list[Any], int]:
    out = []
    for _ in range(n):
        value, pos = _decode(data, pos)
        out.append(value)
    return out, pos


def _map(data: bytes, pos: int, n: int) -> tuple[dict[Any, Any], int]:
    out = {}
    for _ in range(n):
        key, pos = _decode(data, pos)
        value, pos = _decode(data, pos)
        out[key] = value
    return out, pos
