"""An RDNA3 (gfx1100, wave32) emulator: runs linked AMD code objects on the CPU with numpy.

It reads only the code object — the kernel descriptor and the machine code of ``.text`` (through
LLVM's own disassembly of it) — never the micro-ops or the emitter's text, so running tg's
conformance kit through it checks what LLVM assembled.  It is stricter than the hardware is kind:
a register read before the ``s_waitcnt`` that covers its load, a missing TRANS->VALU wait, an
out-of-bounds access or a deadlocked barrier are errors.

- :mod:`.elf`: sections, symbols and kernel descriptors of the ELF;
- :mod:`.program`: LLVM's disassembly -> :class:`~.program.Instruction` (cached by sha256);
- :mod:`.llvm_disasm`: that disassembly in this process, through libLLVM's C API (else llvm-objdump);
- :mod:`.operands`: registers, inline constants and literals;
- :mod:`.memory`: the flat device address space (bounds-checked);
- :mod:`.state`: register files of all waves, and the per-step view (:class:`~.state.Ctx`);
- :mod:`.numerics`: f32 semantics (denormal flushing, single-rounding FMA, transcendentals, division);
- :mod:`.valu_table`, :mod:`.valu`, :mod:`.salu`, :mod:`.memops`: instruction builders;
- :mod:`.tracking`: the s_waitcnt and TRANS-hazard checks;
- :mod:`.executor`: runs the waves, per-wave program counters, barriers;
- :mod:`.codeobject`: :class:`CodeObject` and the initial wave state;
- :mod:`.forwarding`: the gfx11 VALU partial-forwarding hazard; :mod:`.catalog`: the supported instructions.

Environment: ``TG_RDNA_EMU_MAX_STEPS`` (steps before a launch counts as an endless loop, default 2,000,000),
``TG_RDNA_EMU_CHUNK_WAVES`` (waves run together, default 4096), ``TG_RDNA_DISASSEMBLER=objdump`` (decode with
llvm-objdump, not in-process); llvm-objdump is found as tg-rdna finds LLVM's other tools (``TG_RDNA_LLVM_OBJDUMP``,
``TG_RDNA_LLVM_BIN``).

Usage::

    co = CodeObject(elf_bytes)
    mem = Memory()
    buf = mem.allocate(4 * n)
    mem.write(buf, data)
    co.launch("kernel", kernarg_bytes, (groups_x,), (64,), mem)
    out = mem.read(buf, 4 * n)
"""

from tg_rdna.emulator.codeobject import CodeObject
from tg_rdna.emulator.errors import EmulatorError
from tg_rdna.emulator.memory import Memory

__all__ = ["CodeObject", "EmulatorError", "Memory"]
