"""Reads a linked AMDGPU code object (ELF64): its sections, symbols and kernel descriptors.

Only what the emulator needs, parsed with :mod:`struct`: the section headers, the ``.text`` bytes and
address, the symbol table, and each ``<name>.kd`` (the 64-byte kernel descriptor of LLVM's
AMDGPUUsage, "Kernel Descriptor", code object v5).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tg_rdna.emulator.errors import EmulatorError

EM_AMDGPU = 224


@dataclass(frozen=True)
class Section:
    name: str
    kind: int
    address: int
    offset: int
    size: int


@dataclass(frozen=True)
class KernelDescriptor:
    """The fields of a kernel descriptor that set up a wave (bit positions from AMDGPUUsage)."""

    group_segment_fixed_size: int
    private_segment_fixed_size: int
    kernarg_size: int
    entry_offset: int
    rsrc1: int
    rsrc2: int
    rsrc3: int
    properties: int

    @classmethod
    def parse(cls, raw: bytes) -> KernelDescriptor:
        if len(raw) != 64:
            raise EmulatorError(f"a kernel descriptor is 64 bytes, got {len(raw)}")
        group, private, kernarg = struct.unpack_from("<III", raw, 0)
        (entry,) = struct.unpack_from("<q", raw, 16)
        rsrc3, rsrc1, rsrc2 = struct.unpack_from("<III", raw, 44)
        (props,) = struct.unpack_from("<H", raw, 56)
        return cls(group, private, kernarg, entry, rsrc1, rsrc2, rsrc3, props)

    # compute_pgm_rsrc1
    @property
    def float_denorm_mode_32(self) -> int:
        return (self.rsrc1 >> 16) & 3

    @property
    def float_denorm_mode_16_64(self) -> int:
        return (self.rsrc1 >> 18) & 3

    @property
    def ieee_mode(self) -> bool:
        return bool((self.rsrc1 >> 23) & 1)

    # compute_pgm_rsrc2
    @property
    def private_segment(self) -> bool:
        return bool(self.rsrc2 & 1)

    @property
    def user_sgpr_count(self) -> int:
        return (self.rsrc2 >> 1) & 0x1F

    @property
    def workgroup_id_enabled(self) -> tuple[bool, bool, bool]:
        return tuple(bool((self.rsrc2 >> b) & 1) for b in (7, 8, 9))  # type: ignore[return-value]

    @property
    def workgroup_info(self) -> bool:
        return bool((self.rsrc2 >> 10) & 1)

    @property
    def vgpr_workitem_id(self) -> int:
        return (self.rsrc2 >> 11) & 3

    # kernel_code_properties
    def user_sgpr(self, bit: int) -> bool:
        return bool((self.properties >> bit) & 1)

    @property
    def wavefront_size32(self) -> bool:
        return bool((self.properties >> 10) & 1)


@dataclass
class ElfFile:
    """Sections and symbols of an ELF64 little-endian AMDGPU object."""

    data: bytes
    sections: dict[str, Section]
    symbols: dict[str, tuple[int, int]]  # name -> (value, size)

    def bytes_at(self, address: int, size: int) -> bytes:
        for sec in self.sections.values():
            if sec.kind != 8 and sec.address <= address and address + size <= sec.address + sec.size:
                start = sec.offset + address - sec.address
                return self.data[start:start + size]
        raise EmulatorError(f"address 0x{address:x} (+{size}) is in no section of the code object")


def parse_elf(data: bytes) -> ElfFile:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise EmulatorError("not a 64-bit little-endian ELF file (a linked AMDGPU code object is expected)")
    (machine,) = struct.unpack_from("<H", data, 18)
    if machine != EM_AMDGPU:
        raise EmulatorError(f"ELF machine {machine} is not AMDGPU ({EM_AMDGPU})")
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
    raw = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_off = raw[shstrndx][4]

    def cstr(off: int) -> str:
        end = data.index(b"\0", off)
        return data[off:end].decode()

    sections = {cstr(names_off + h[0]): Section(cstr(names_off + h[0]), h[1], h[3], h[4], h[5]) for h in raw}
    symbols: dict[str, tuple[int, int]] = {}
    for h in raw:
        if h[1] not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        str_off = raw[h[6]][4]
        for i in range(h[5] // 24):
            name_off, _info, _other, _shndx, value, size = struct.unpack_from("<IBBHQQ", data, h[4] + i * 24)
            if name_off:
                symbols.setdefault(cstr(str_off + name_off), (value, size))
    return ElfFile(data, sections, symbols)
