"""The objects a backend plugin hands to core: emitters, runtimes, their capabilities and events.

A backend is an :class:`Emitter` (renders micro-ops to source text for one *target*) plus a
:class:`Runtime` (compiles that text and runs it).  Plugins return instances of these from the hooks in
:mod:`tg.hooks`; core never imports a plugin by name.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tg.codegen.capabilities import Capabilities, NotSymbolic

__all__ = ["Availability", "Backend", "Capabilities", "Emitter", "KernelCompiled", "KernelLaunched", "NotSymbolic",
           "Runtime", "TooManyRegisters"]

if TYPE_CHECKING:  # annotations only: importing the contract stays cheap (no numpy)
    from tg.codegen.program import LoweredKernel, Program


@dataclass(frozen=True)
class Availability:
    """Whether a runtime can run on this machine; when not, ``reason`` says why and ``remedy`` the fix.

    When it can, ``detail`` may say what it will run on (``tg backends --check`` shows it).
    """

    ok: bool
    reason: str = ""
    remedy: str = ""
    detail: str = ""

    @classmethod
    def yes(cls, detail: str = "") -> Availability:
        return cls(True, detail=detail)

    @classmethod
    def no(cls, reason: str, remedy: str = "") -> Availability:
        return cls(False, reason, remedy)

    def __bool__(self) -> bool:
        return self.ok

    def explain(self) -> str:
        if self.ok:
            return f"available ({self.detail})" if self.detail else "available"
        return self.reason + (f" (fix: {self.remedy})" if self.remedy else "")


class TooManyRegisters(Exception):
    """What ``Emitter.render`` raises when a kernel, as core lowered it, keeps more values live than the target's
    registers hold and the target does not spill.  Core's register tiles (``upcast``), vector lanes
    (``vector_width``) and unrolled loops (``unroll``) are what make a kernel hungry: core lowers the kernel once
    more without them and renders that; only if the plain kernel does not fit either does the error reach the
    user.  The message should say what did not fit (``"kernel k needs 300 VGPRs, a wave has 256"``)."""


class Emitter(abc.ABC):
    """Renders lowered kernels (micro-op lists) to source text for one target."""

    #: The target's name, e.g. ``"clang"`` or ``"ptx"``; it is the first part of a backend name.
    target: str
    #: The language of the text it renders (``"c"``, ``"ptx"``...): runtimes of that language run it.
    language: str
    capabilities: Capabilities = Capabilities()

    @abc.abstractmethod
    def render(self, kernel: LoweredKernel) -> Program:
        """Render ``kernel`` (already fitted to :attr:`capabilities`) as a :class:`Program`.

        ``Program.of(kernel, source)`` keeps core's launch and buffer order; an emitter that decomposes the work
        its own way says so with :meth:`Program.launched_as`, and passes its runtime anything else in
        ``attributes``.  A kernel that does not fit the target's registers raises :class:`TooManyRegisters`.
        """

    def same_bits(self, dynamic: Program, exact: LoweredKernel, values: Mapping[str, int]) -> bool:
        """Whether ``dynamic``, this emitter's rendering of a kernel for every size (``LoweredKernel.dynamic``, see
        :attr:`Runtime.dynamic_shapes`), launched with ``values`` (``{"n0": t}``) gives every element the bits that
        its rendering of ``exact`` would give: the kernel of that size, as :meth:`render` would receive it.  Core asks
        at each size before it launches ``dynamic`` there, and builds ``exact`` where the answer is False.

        Override it where a rendering chooses its arithmetic by the sizes: SIMD lanes across a float reduction
        where a cost estimate favours them sum in another order than one thread's loop, with the same micro-ops.
        Only an emitter that overrides it is asked (core lowers the exact kernel for the question).
        """
        return True


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
    #: True when :meth:`compile` may run in several threads at once: core then compiles the new kernels of a
    #: schedule together (up to ``TG_EXEC_JOBS`` at a time) instead of one after another (unless the runtime has a
    #: :meth:`compile_many` of its own, which core calls instead).
    concurrent_compile: bool = False
    #: The dtypes of launch variables (``Program.variables``) whose values :meth:`launch` passes to the kernel
    #: exactly (a float32 as a C ``float``: never as an int or a double).  Core never sends a variable of another
    #: dtype: it compiles that value into the kernel instead.
    variable_dtypes: frozenset[str] = frozenset({"int32"})
    #: True when :meth:`launch` reads ``program.global_size`` and ``local_size`` at every launch (never sizes kept
    #: from :meth:`compile`) and the backend's emitters render a kernel with ``launch_vars`` so that it runs right
    #: at every size they allow (a ``SPECIAL``'s size is then an upper bound, not the launch).  Core then compiles
    #: a kernel once for every size of its outermost dimension (a new batch size or sequence length reuses it),
    #: passing the size as the int32 variable ``n0`` (``TG_SYMBOLIC=0`` turns that off).  Needs ``int32`` in
    #: :attr:`variable_dtypes` and in the emitter's ``Capabilities.variables``.
    symbolic_launch: bool = False
    #: True when, beyond :attr:`symbolic_launch`, the backend's emitters render right at every size a kernel in which
    #: ``n0`` appears anywhere in int32 arithmetic (strides, loop ends, masks, gates; a ``SPECIAL``'s size is an upper
    #: bound) and whose ``launch_vars`` may be quadratic (``SymbolicSize.square``, ``offset``), or raise
    #: :class:`NotSymbolic`.  Core then builds one kernel for every value of a size that appears anywhere in a
    #: kernel, such as a sequence length (see :mod:`tg.engine.dynamic`).
    dynamic_shapes: bool = False

    def available(self) -> Availability:
        """Say, cheaply and without raising, whether this runtime can run here (and if not, why)."""
        return Availability.yes()

    @abc.abstractmethod
    def compile(self, program: Program) -> Any:
        """Turn ``program`` into the runtime's binary (machine code, a loaded module, a callable...); never None.

        Core keeps at most ``TG_KERNELS_MAX`` binaries per backend and drops the least recently used; a jitted
        function may still hold one.  So a binary that holds resources (a loaded library, a GPU module) releases
        them when the last reference to it goes (a finalizer), never when core drops it."""

    def compile_many(self, programs: Sequence[Program]) -> list[Any]:
        """The binaries of several programs, in order: what :meth:`compile` gives for each.  A runtime whose
        compiler can take several kernels in one run (one assembler and linker process for all of them, where each
        process costs more than a small kernel's work) overrides it; core then hands it the kernels of a schedule that
        are not compiled yet, together, and never compiles them in threads of its own (:attr:`concurrent_compile`):
        the runtime may run several builds at once itself (``tg.support.early_exec.exec_jobs()`` says how many)."""
        return [self.compile(p) for p in programs]

    @abc.abstractmethod
    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int | float]) -> float | None:
        """Run ``binary`` (from :meth:`compile` of ``program``) over ``program.global_size`` groups of
        ``program.local_size`` threads; ``buffers`` are handles from :meth:`alloc`, one per ``program.buffers``
        in that order, ``values`` the value of each of ``program.variables`` (an int for an int32, a float for a
        float32, exact in float32; it may hold values of variables the kernel dropped as unused: look them up by
        name).  Core never launches a program whose
        global or local size has a 0 (an empty tensor's kernel does no work).  Return the kernel's time in
        seconds when the runtime measured it, else None (core then times the call)."""

    @abc.abstractmethod
    def alloc(self, nbytes: int) -> Any:
        """Allocate ``nbytes`` (at least 8) of device memory, aligned for any dtype; return its handle."""

    @abc.abstractmethod
    def copyin(self, buffer: Any, host: memoryview) -> None:
        """Copy ``host`` (a C-contiguous byte view, format ``"B"``, at most the buffer's size) into ``buffer``."""

    @abc.abstractmethod
    def copyout(self, host: memoryview, buffer: Any) -> None:
        """Fill ``host`` (a writable C-contiguous byte view, format ``"B"``) from the start of ``buffer``."""

    def disassemble(self, program: Program, binary: Any) -> str | None:
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
    """Sent to observers after a kernel is compiled (``cached``: it was compiled before in this process)."""

    backend: str
    program: Program
    seconds: float
    cached: bool

    @property
    def name(self) -> str:
        return self.program.name


@dataclass(frozen=True)
class KernelLaunched:
    """Sent to observers after a kernel ran: ``seconds`` as the runtime measured it (None: it did not)."""

    backend: str
    program: Program
    seconds: float | None
    bytes_moved: int

    @property
    def name(self) -> str:
        return self.program.name

    @property
    def global_size(self) -> tuple[int, ...]:
        return self.program.global_size

    @property
    def local_size(self) -> tuple[int, ...]:
        return self.program.local_size
