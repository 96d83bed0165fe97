"""A PTX emulator: runs PTX assembly text on the CPU with numpy, every thread of a launch at once.

It knows only the text (semantics from NVIDIA's PTX ISA manual), never the micro-ops it came from, so
running tg's conformance kit through it checks the emitter's output instruction by instruction.

- :mod:`.ptxtypes`: PTX's fundamental types as numpy dtypes, and immediate literals;
- :mod:`.parser`: text -> :class:`~.parser.Module` (entries, parameters, registers, instructions);
- :mod:`.memory`: global memory (buffers at fake 64-bit addresses, bounds-checked) and shared memory;
- :mod:`.context`: the registers of every thread, the active mask, operand readers and writers;
- :mod:`.semantics`: one numpy implementation per instruction, built once per kernel;
- :mod:`.executor`: runs a kernel over a grid with per-thread predicates, divergent branches and
  barriers.
"""

from tg_ptx.emulator.errors import EmulatorError
from tg_ptx.emulator.executor import CompiledKernel, compile_kernel, run_kernel
from tg_ptx.emulator.memory import GlobalMemory
from tg_ptx.emulator.parser import Module, parse_module

__all__ = ["CompiledKernel", "EmulatorError", "GlobalMemory", "Module", "compile_kernel", "parse_module",
           "run_kernel"]
