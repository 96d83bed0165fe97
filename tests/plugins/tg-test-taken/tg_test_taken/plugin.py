"""A test plugin whose emitter takes the target ``numpy``, which tg-core's built-in backend provides.

It must be refused whole: neither its emitter nor its runtime (of a language of its own, ``dupe-c``)
may reach the registry, and the built-in numpy backend must keep working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tg.backends.contract import Availability, Capabilities, Emitter, Runtime
from tg.hooks import LoweredKernel, Program, hookimpl


class TakenEmitter(Emitter):
    target = "numpy"
    language = "dupe-c"
    capabilities = Capabilities(dtypes=frozenset({"float32"}))

    def render(self, kernel: LoweredKernel) -> Program:
        return Program.of(kernel, f"/* {kernel.name} */")


class DupeRuntime(Runtime):
    language = "dupe-c"
    name = "dupe"
    priority = -10

    def available(self) -> Availability:
        return Availability.yes()

    def compile(self, program: Program) -> Any:
        return program.source

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int | float]) -> float | None:
        return None

    def alloc(self, nbytes: int) -> Any:
        return bytearray(nbytes)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        buffer[:] = host

    def copyout(self, host: memoryview, buffer: Any) -> None:
        host[:] = buffer


@hookimpl
def tg_emitters() -> list[Emitter]:
    return [TakenEmitter()]


@hookimpl
def tg_runtimes() -> list[Runtime]:
    return [DupeRuntime()]
