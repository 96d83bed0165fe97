"""``ptx:emu``: the runtime that runs PTX text on the CPU through :mod:`tg_ptx.emulator`.

Priority -100: tg chooses it only when it is named (``TG_BACKEND=ptx:emu``, ``device="ptx:emu"``).  It
is always available.  With TG_PTX_VERIFY set, compile() also assembles each kernel with ptxas; TG_DEBUG=5
shows the SASS ptxas makes of it (when NVIDIA's nvdisasm or cuobjdump is installed too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tg.backends.contract import Availability, Runtime
from tg.codegen.program import Program

from tg_ptx import ptxas
from tg_ptx.emulator import CompiledKernel, GlobalMemory, compile_kernel, run_kernel
from tg_ptx.emulator.memory import Allocation
from tg_ptx.params import variable_values


class EmulatorRuntime(Runtime):
    language = "ptx"
    name = "emu"
    priority = -100
    variable_dtypes = frozenset({"int32", "float32"})
    symbolic_launch = True  # the emulator takes the launch dims of each launch
    dynamic_shapes = True  # the emitter renders a dynamic kernel's n0 anywhere (a loop end in a register)

    def __init__(self) -> None:
        self.memory = GlobalMemory()

    def available(self) -> Availability:
        return Availability.yes()

    def compile(self, program: Program) -> CompiledKernel:
        ptxas.verify(program.source, program.name)  # first: ptxas's verdict on a bad kernel matters most
        return compile_kernel(program.source)

    def disassemble(self, program: Program, binary: Any) -> str | None:
        """SASS for the target the kernel was written for (TG_DEBUG=5), when ptxas and nvdisasm are installed."""
        kernel: CompiledKernel = binary
        return ptxas.disassemble(kernel.source, kernel.target, kernel.name)

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int | float]) -> float | None:
        """The buffers' addresses, then the variables' values as numpy scalars of their dtypes (bits as a driver
        would copy them), as the entry's parameters in the Program's order."""
        kernel: CompiledKernel = binary
        args: list[Any] = [b.address for b in buffers] + variable_values(program, values)
        run_kernel(kernel, self.memory, program.global_size, program.local_size, args)
        return None

    def alloc(self, nbytes: int) -> Allocation:
        return self.memory.alloc(nbytes)

    def free(self, buffer: Any) -> None:
        self.memory.free(buffer)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        buffer.data[: host.nbytes] = np.frombuffer(host, dtype=np.uint8)

    def copyout(self, host: memoryview, buffer: Any) -> None:
        np.frombuffer(host, dtype=np.uint8)[:] = buffer.data[: host.nbytes]
