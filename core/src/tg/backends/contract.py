"""The objects a backend plugin hands to core: emitters, runtimes, their capabilities and events.

A backend is an :class:`Emitter` (renders micro-ops to source text for one *target*) plus a
:class:`Runtime` (compiles that text and runs it).  Plugins return instances of these from the hooks in
:mod:`tg.hooks`; core never imports a plugin by name.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from tg.codegen.capabilities import Capabilities


@dataclass(frozen=True)
class Availability:
    """Whether a runtime can run on this machine; when not, ``reason`` says why and ``remedy`` the fix."""

    ok: bool
    reason: str = ""
    remedy: str = ""

    @classmethod
    def yes(cls) -> Availability:
        return cls(True)

    @classmethod
    def no(cls, reason: str, remedy: str = "") -> Availability:
        return cls(False, reason, remedy)

    def __bool__(self) -> bool:
        return self.ok

    def explain(self) -> str:
        if self.ok:
            return "available"
        return self.reason + (f" (fix: {self.remedy})" if self.remedy else "")


class Emitter(abc.ABC):
    """Renders a lowered kernel (a list of micro-ops) to source text for one target."""

    #: The target's name, e.g. ``"clang"`` or ``"ptx"``; it is the first part of a backend name.
    target: str
    #: The language of the text it renders (``"c"``, ``"ptx"``...): runtimes of that language run it.
    language: str
    capabilities: Capabilities = Capabilities()

    @abc.abstractmethod
    def render(self, name: str, uops: Any) -> str:
        """Return the source text of the kernel called ``name``, built from ``uops``."""


class Runtime(abc.ABC):
    """Compiles what an emitter rendered and runs it on a device.

    ``language`` is the kind of text it runs: it pairs with every emitter of that language.  ``name`` is
    the part after the colon in a backend name (``ptx:emu`` is the ``ptx`` emitter with the runtime
    ``emu``).  A backend named without a runtime uses the runtime whose name equals the emitter's
    target (``ptx`` means ``ptx:ptx``), or else the highest-priority runtime of its language.
    ``priority`` orders automatic selection when TG_BACKEND is unset: higher first, the built-in numpy
    backend is 0, and a runtime below 0 (an emulator, a test double) is chosen only when named.
    """

    language: str
    name: str
    priority: int = 0

    def available(self) -> Availability:
        """Say, cheaply and without raising, whether this runtime can run here (and if not, why)."""
        return Availability.yes()

    @abc.abstractmethod
    def compile(self, source: str, name: str) -> Any:
        """Turn source text into the runtime's program object (a binary, a callable...)."""

    @abc.abstractmethod
    def launch(self, program: Any, buffers: list[Any], global_size: tuple[int, ...],
               local_size: tuple[int, ...], values: dict[str, int]) -> float | None:
        """Run ``program`` over ``buffers``; return its time in seconds when measured, else None."""

    @abc.abstractmethod
    def alloc(self, nbytes: int) -> Any:
        """Allocate ``nbytes`` of device memory and return the runtime's handle for it."""

    @abc.abstractmethod
    def copyin(self, buffer: Any, host: memoryview) -> None:
        """Copy host bytes into a device buffer."""

    @abc.abstractmethod
    def copyout(self, host: memoryview, buffer: Any) -> None:
        """Copy a device buffer's bytes into host memory."""

    def disassemble(self, program: Any) -> str | None:
        """The machine code of a compiled program as text (for TG_DEBUG=5), or None if there is no tool."""
        return None

    def free(self, buffer: Any) -> None:  # noqa: B027 - optional: garbage collection may be enough
        """Release a buffer from :meth:`alloc`."""

    def synchronize(self) -> None:  # noqa: B027 - optional for synchronous runtimes
        """Wait until all launched work has finished."""


@dataclass(frozen=True)
class Backend:
    """An emitter paired with a runtime that runs its text: what a tensor's ``device`` names."""

    emitter: Emitter
    runtime: Runtime

    @property
    def name(self) -> str:
        target = self.emitter.target
        return target if self.runtime.name == target else f"{target}:{self.runtime.name}"

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


@dataclass(frozen=True)
class KernelCompiled:
    """Sent to observers after a kernel is compiled (or loaded from the cache)."""

    backend: str
    name: str
    source: str
    seconds: float
    cached: bool


@dataclass(frozen=True)
class KernelLaunched:
    """Sent to observers after a kernel ran."""

    backend: str
    name: str
    global_size: tuple[int, ...]
    local_size: tuple[int, ...]
    seconds: float | None
    bytes_moved: int
