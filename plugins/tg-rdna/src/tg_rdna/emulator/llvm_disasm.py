"""LLVM's AMDGPU disassembler inside this process: the C API of the libLLVM that the found ``llvm-mc`` runs on.

``llvm-objdump`` costs ~25 ms a code object, nearly all of it loading libLLVM; the emulator needs a disassembly of
every kernel it runs, so the conformance kit on ``rdna:emu`` spent a fifth of its time there.  The same decoder
and instruction printer are reachable through libLLVM's C API (``LLVMCreateDisasmCPU``, ``LLVMDisasmInstruction``),
loaded once per process with :mod:`ctypes`: each instruction's text is what llvm-objdump prints for it.

The library is the libLLVM of the ``llvm-mc`` tg-rdna assembles with: of its major version, found beside it
(``<bin>/../lib``) or in the system's library folders, and loaded only when no other user could have written it
(owned by root or by us, not writable by group or others).  Where there is none (an LLVM linked statically, a
library without the AMDGPU target) or ``TG_RDNA_DISASSEMBLER=objdump`` is set, :func:`disassembler` is None and the
emulator runs ``llvm-objdump``.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import re
import sys
import threading

from tg_rdna import toolchain
from tg_rdna.codeobject import MCPU, TRIPLE

#: Bytes of text one instruction may print (LLVM's longest gfx11 lines are under 200).
TEXT_BYTES = 1024
_INITIALIZERS = ("LLVMInitializeAMDGPUTargetInfo", "LLVMInitializeAMDGPUTargetMC", "LLVMInitializeAMDGPUDisassembler")


class Disassembler:
    """One disassembler context for gfx1100 in a loaded libLLVM; :meth:`instructions` decodes a piece of code."""

    def __init__(self, library: ctypes.CDLL, path: str):
        self.path = path
        self._lib = library
        library.LLVMCreateDisasmCPU.restype = ctypes.c_void_p
        library.LLVMCreateDisasmCPU.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int,
                                                ctypes.c_void_p, ctypes.c_void_p]
        library.LLVMDisasmInstruction.restype = ctypes.c_size_t
        library.LLVMDisasmInstruction.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                                                  ctypes.c_char_p, ctypes.c_size_t]
        for name in _INITIALIZERS:
            getattr(library, name)()
        self._context = library.LLVMCreateDisasmCPU(TRIPLE.encode(), MCPU.encode(), None, 0, None, None)
        if not self._context:
            raise OSError(f"{path} cannot disassemble {TRIPLE} {MCPU}")
        self._lock = threading.Lock()  # one context: calls must not overlap

    def instructions(self, code: bytes, address: int) -> list[tuple[int, str, bytes]]:
        """(address, text, encoding) of each instruction of ``code``, which starts at ``address``; ValueError at
        bytes that decode to no instruction."""
        raw = (ctypes.c_uint8 * max(len(code), 1)).from_buffer_copy(code or b"\0")
        text = ctypes.create_string_buffer(TEXT_BYTES)
        out: list[tuple[int, str, bytes]] = []
        offset = 0
        with self._lock:
            while offset < len(code):
                size = self._lib.LLVMDisasmInstruction(self._context, ctypes.byref(raw, offset), len(code) - offset,
                                                       address + offset, text, TEXT_BYTES)
                line = text.value.decode().strip()
                if size == 0 or len(text.value) >= TEXT_BYTES - 1 or "; Warning:" in line:
                    where = f"0x{address + offset:x} (bytes {code[offset:offset + 8].hex()})"
                    if size == 0:
                        raise ValueError(f"no instruction decodes at {where}")
                    if "; Warning:" in line:  # LLVM decodes it but flags the encoding (a misaligned register pair)
                        raise ValueError(f"LLVM flags the instruction at {where}: {line}")
                    raise ValueError(f"the instruction at {where} prints longer than {TEXT_BYTES - 2} bytes")
                out.append((address + offset, line, code[offset:offset + size]))
                offset += size
        return out


def _trusted(path: str) -> bool:
    """Whether only root or this user could have written ``path`` (and its folder)."""
    for p in (path, os.path.dirname(path)):
        st = os.stat(p)
        if st.st_uid not in (0, os.getuid()) or st.st_mode & 0o022:
            return False
    return True


def library_candidates(mc: toolchain.Tool) -> list[str]:
    """The libLLVM shared libraries of ``mc``'s major version (by name, real paths): beside it (``<bin>/../lib``,
    where LLVM's own builds and Debian's llvm-<v>-dev put it), then in the system's library folders (where
    Debian's libllvm<v> puts it)."""
    major = mc.version[0]
    name = re.compile(rf"^libLLVM(-{major}\.so|\.so\.{major})(\.|$)")
    beside = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(mc.path))), "lib")
    multiarch = getattr(sys.implementation, "_multiarch", "")  # x86_64-linux-gnu on Debian
    folders = [beside, *([f"/usr/lib/{multiarch}"] if multiarch else []), "/usr/lib64", "/usr/lib"]
    out: list[str] = []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "libLLVM*.so*"))):
            real = os.path.realpath(path)
            if name.match(os.path.basename(real)) and real not in out:
                out.append(real)
    return out


def _version(library: ctypes.CDLL) -> tuple[int, int, int] | None:
    """libLLVM's version (``LLVMGetVersion``, LLVM 16 and newer), else None."""
    try:
        get = library.LLVMGetVersion
    except AttributeError:
        return None
    parts = [ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()]
    get.restype = None
    get(*(ctypes.byref(p) for p in parts))
    return parts[0].value, parts[1].value, parts[2].value


#: TG_RDNA_DISASSEMBLER's settings: "auto" (or unset) decodes in-process where it can, "objdump" never does.
SETTINGS = ("auto", "objdump")
_loading = threading.Lock()


def disassembler() -> Disassembler | None:
    """The in-process disassembler, or None where no libLLVM of llvm-mc's version gives one (the emulator then runs
    llvm-objdump)."""
    setting = os.environ.get("TG_RDNA_DISASSEMBLER", "").strip().lower() or "auto"
    if setting not in SETTINGS:
        raise ValueError(f"TG_RDNA_DISASSEMBLER={setting!r}: use 'auto' (libLLVM in this process where it loads, "
                         "else llvm-objdump) or 'objdump'")
    if setting == "objdump":
        return None
    with _loading:  # (LLVM's target initialisers must not run twice at once)
        return _load()


@functools.cache
def _load() -> Disassembler | None:
    try:
        mc = toolchain.require("llvm-mc")
    except toolchain.ToolchainError:
        return None
    for path in library_candidates(mc):
        try:
            if not _trusted(path):
                continue
            library = ctypes.CDLL(path)
            version = _version(library)
            if version is not None and version != mc.version:  # the very LLVM that assembles (a static llvm-mc
                continue  # may sit beside another release's libLLVM)
            return Disassembler(library, path)
        except (OSError, AttributeError):  # not loadable, or without the AMDGPU target's entry points
            continue
    return None
