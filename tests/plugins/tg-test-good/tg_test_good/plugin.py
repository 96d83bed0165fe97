"""A well-behaved test backend: one emitter, a runnable runtime and an unavailable one, plus observers.

Its runtimes have negative priorities so automatic selection never picks them over numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tg.backends.contract import Availability, Capabilities, Emitter, KernelCompiled, KernelLaunched, Runtime
from tg.hooks import LoweredKernel, Program, hookimpl

EVENTS: list[Any] = []


class GoodEmitter(Emitter):
    target = "testgood"
    language = "testgood-text"
    capabilities = Capabilities(dtypes=frozenset({"float32"}))

    def render(self, kernel: LoweredKernel) -> Program:
        return Program.of(kernel, f"kernel {kernel.name}: {kernel.uops!r}")


class GoodRuntime(Runtime):
    language = "testgood-text"

    def __init__(self, name: str, priority: int, status: Availability):
        self.name, self.priority, self.status = name, priority, status

    def available(self) -> Availability:
        return self.status

    def compile(self, program: Program) -> Any:
        return program.source

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int]) -> float | None:
        return None

    def alloc(self, nbytes: int) -> Any:
        return bytearray(nbytes)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        buffer[:] = host

    def copyout(self, host: memoryview, buffer: Any) -> None:
        host[:] = buffer


@hookimpl
def tg_emitters() -> list[Emitter]:
    return [GoodEmitter()]


@hookimpl
def tg_runtimes() -> list[Runtime]:
    return [GoodRuntime("testgood", -50, Availability.yes()),
            GoodRuntime("offline", -60, Availability.no("the test device is unplugged", "plug it in"))]


@hookimpl
def tg_kernel_compiled(event: KernelCompiled) -> None:
    EVENTS.append(event)


@hookimpl
def tg_kernel_launched(event: KernelLaunched) -> None:
    EVENTS.append(event)
