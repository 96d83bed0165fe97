"""``rdna:emu``: the runtime that runs the linked code objects on the CPU through :mod:`tg_rdna.emulator`.

Priority -100: tg chooses it only when it is named (``TG_BACKEND=rdna:emu``, ``device="rdna:emu"``).  compile()
builds the code object with LLVM exactly as for a GPU (:mod:`tg_rdna.build`, cached on disk); the emulator then
runs that code object (its descriptor and machine code), never the assembly text or the micro-ops.  Buffers live
in the emulator's flat device memory; the kernarg segment is laid out as :mod:`tg_rdna.codeobject` says.
"""

from __future__ import annotations

import importlib.util
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tg.backends.contract import Availability, Runtime
from tg.codegen.program import Program

from tg_rdna import build, toolchain, variables


@dataclass(frozen=True)
class EmuBuffer:
    """A buffer in the emulator's memory: its device address and size."""

    address: int
    nbytes: int


def kernarg(program: Program, addresses: Sequence[int], values: Mapping[str, int | float]) -> bytes:
    """The explicit part of a launch's kernarg segment: the buffers' 64-bit addresses, then the variables (4 bytes
    each, :func:`tg_rdna.variables.pack`), padded to 8 bytes (the layout :class:`tg_rdna.codeobject.KernelDescription`
    declares); the hidden arguments after it are the dispatcher's to fill (ROCm's runtime, or the emulator from the
    code object's metadata)."""
    if len(addresses) != len(program.buffers):
        raise ValueError(f"tg-rdna: kernel {program.name} takes {len(program.buffers)} buffers, got {len(addresses)}")
    data = struct.pack(f"<{len(addresses)}Q", *addresses)
    data += variables.pack(program, values)
    data += b"\0" * (-len(data) % 8)
    expected = program.attributes.get("kernarg_size")
    if expected is not None and expected != len(data):
        raise ValueError(f"tg-rdna: kernel {program.name} declares {expected} kernarg bytes, the launch has "
                         f"{len(data)}")
    return data


def _emulator_problem() -> str | None:
    if importlib.util.find_spec("tg_rdna.emulator") is None:
        return "this tg-rdna has no emulator package (tg_rdna.emulator)"
    return None


class EmulatorRuntime(Runtime):
    language = "rdna"
    name = "emu"
    priority = -100
    variable_dtypes = frozenset(variables.FORMATS)
    symbolic_launch = True  # the emulator takes the launch dims of each launch
    dynamic_shapes = True  # the emitter renders a dynamic kernel's n0 anywhere (a loop end in a register)

    def __init__(self) -> None:
        self._memory: Any = None
        self.launches = self.steps = self.issued = 0  # totals over every launch (bench/rdna_emu.py reads them)

    @property
    def memory(self) -> Any:
        if self._memory is None:
            from tg_rdna.emulator import Memory

            self._memory = Memory()
        return self._memory

    def available(self) -> Availability:
        problem = toolchain.problem()
        if problem is not None:
            return Availability.no(problem, f"{toolchain.PACKAGES} (the emulator runs what LLVM builds)")
        problem = _emulator_problem()
        if problem is not None:
            return Availability.no(problem, "reinstall tg-rdna: pip install ./plugins/tg-rdna")
        return Availability.yes("gfx1100 code objects built by LLVM, run by tg-rdna's emulator on the CPU")

    def compile(self, program: Program) -> Any:
        from tg_rdna.emulator import CodeObject

        return CodeObject(build.build(program.source, program.name))

    def compile_many(self, programs: Sequence[Program]) -> list[Any]:
        """The programs of a schedule built together (:func:`tg_rdna.build.build_many`): kernels that share a code
        object share its :class:`CodeObject` (its decoded program too)."""
        from tg_rdna.emulator import CodeObject

        return build.load_many([(p.source, p.name) for p in programs], CodeObject)

    def disassemble(self, program: Program, binary: Any) -> str | None:
        return build.disassemble(build.build(program.source, program.name), program.name)

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int | float]) -> float | None:
        args = kernarg(program, [b.address for b in buffers], values)
        binary.launch(program.name, args, tuple(program.global_size), tuple(program.local_size), self.memory)
        self.launches += 1
        self.steps += binary.last_steps
        self.issued += binary.last_issued
        return None

    def alloc(self, nbytes: int) -> EmuBuffer:
        return EmuBuffer(self.memory.allocate(max(nbytes, 8)), nbytes)

    def free(self, buffer: Any) -> None:
        self.memory.free(buffer.address)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        self.memory.write(buffer.address, host)

    def copyout(self, host: memoryview, buffer: Any) -> None:
        data = self.memory.read(buffer.address, host.nbytes)
        host[:] = data
