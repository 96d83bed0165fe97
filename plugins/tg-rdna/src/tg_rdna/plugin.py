"""tg-rdna's hook implementations: the RDNA3 emitter and its two runtimes (``rdna`` on a GPU through OpenCL,
``rdna:emu`` on the CPU).

tg imports this module only when an rdna backend is selected or probed.  It imports no pyopencl and runs no LLVM
tool: the runtimes do so on first use (compile, launch) and ``available()`` only looks things up.
"""

from __future__ import annotations

from tg.backends.contract import Emitter, Runtime
from tg.hooks import hookimpl

from tg_rdna.emitter import RDNAEmitter
from tg_rdna.runtime_cl import OpenCLRuntime
from tg_rdna.runtime_emu import EmulatorRuntime


@hookimpl
def tg_emitters() -> list[Emitter]:
    return [RDNAEmitter()]


@hookimpl
def tg_runtimes() -> list[Runtime]:
    return [OpenCLRuntime(), EmulatorRuntime()]


#: The environment variables this plugin reads (``tg env`` lists them).
ENVIRONMENT: dict[str, str] = {
    "TG_RDNA_LLVM_BIN": "A folder holding LLVM's llvm-mc, ld.lld and llvm-objdump (any of the names llvm-mc-19 ... "
                        "llvm-mc-15, llvm-mc). Unset: PATH, newest versioned name first.",
    "TG_RDNA_LLVM_MC": "The llvm-mc to assemble kernels with (a path or a name; LLVM 15 or newer with AMDGPU).",
    "TG_RDNA_LLVM_LLD": "The ld.lld to link code objects with (a path or a name; LLVM 15 or newer).",
    "TG_RDNA_LLVM_OBJDUMP": "The llvm-objdump that TG_DEBUG=5 disassembles code objects with (and rdna:emu, where "
                            "llvm-mc's libLLVM does not load).",
    "TG_RDNA_LLVM_READELF": "The llvm-readelf tg-rdna's tests read code objects' notes with.",
    "TG_RDNA_DEVICE": "For the rdna runtime: which gfx11 OpenCL device to use (default 0).",
    "TG_RDNA_EMU_MAX_STEPS": "For rdna:emu: instruction steps a launch may take before it counts as an endless loop "
                             "(default 2,000,000).",
    "TG_RDNA_DISASSEMBLER": "For rdna:emu: 'auto' (default) decodes code objects in this process with llvm-mc's "
                            "own libLLVM where it loads (the same decoder, ~20x faster), else with llvm-objdump; "
                            "'objdump' always uses llvm-objdump.",
    "TG_RDNA_EMU_CHUNK_WAVES": "For rdna:emu: waves the emulator runs together (default 4096; whole work groups).",
}


@hookimpl
def tg_environment() -> dict[str, str]:
    return dict(ENVIRONMENT)
