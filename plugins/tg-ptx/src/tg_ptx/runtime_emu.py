"""``ptx:emu``: the runtime that runs PTX text on the CPU through :mod:`tg_ptx.emulator`.

Priority -100: tg chooses it only when it is named (``TG_BACKEND=ptx:emu``, ``device="ptx:emu"``).  It
is always available.  With TG_PTX_VERIFY set, compile() also assembles each kernel with ptxas; TG_DEBUG=5
shows the SASS ptxas makes of it (when NVIDIA's nvdisasm or cuobjdump is installed too).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tg.backends.contract import Availability, Runtime

from tg_ptx import ptxas
from tg_ptx.emulator import CompiledKernel, GlobalMemory, compile_kernel, run_kernel
from tg_ptx.emulator.memory import Allocation


class EmulatorRuntime(Runtime):
    language = "ptx"
    name = "emu"
    priority = -100

    def __init__(self) -> None:
        self.memory = GlobalMemory()

    def available(self) -> Availability:
        return Availability.yes()

    def compile(self, source: str, name: str) -> CompiledKernel:
        ptxas.verify(source, ptxas.entry_name(source) or name)  # first: ptxas's verdict on a bad kernel matters most
        return compile_kernel(source)

    def disassemble(self, program: Any) -> str | None:
        """SASS for the target the kernel was written for (TG_DEBUG=5), when ptxas and nvdisasm are installed."""
        kernel: CompiledKernel = program
        return ptxas.disassemble(kernel.source, kernel.target, kernel.name)

    def launch(self, program: Any, buffers: list[Any], global_size: tuple[int, ...], local_size: tuple[int, ...],
               values: dict[str, int]) -> float | None:
        kernel: CompiledKernel = program
        args: list[Any] = []
        queue = list(buffers)
        for p in kernel.entry.params:
            if p.type in ("u64", "b64", "s64") and queue:
                args.append(queue.pop(0).address)
            elif p.name in values:
                args.append(values[p.name])
            else:
                raise ValueError(f"kernel {kernel.name}: no value for parameter {p.name}")
        grid = int(np.prod(global_size)) if global_size else 1
        block = int(np.prod(local_size)) if local_size else 1
        run_kernel(kernel, self.memory, grid, block, args)
        return None

    def alloc(self, nbytes: int) -> Allocation:
        return self.memory.alloc(nbytes)

    def free(self, buffer: Any) -> None:
        self.memory.free(buffer)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        buffer.data[: host.nbytes] = np.frombuffer(host, dtype=np.uint8)

    def copyout(self, host: memoryview, buffer: Any) -> None:
        np.frombuffer(host, dtype=np.uint8)[:] = buffer.data[: host.nbytes]
