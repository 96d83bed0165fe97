"""The ``clang`` runtime: host memory buffers, compiled kernels called through ctypes, and a thread pool.

A buffer is a 64-byte aligned numpy array (the kernel reads and writes it in place; copies to and from the
host are one ``memcpy``); freed ones are kept for reuse (:mod:`tg_clang.memory`).  A launch of an estimated
``SPLIT_THRESHOLD`` operations or more hands the kernel's work units to every core: one ctypes call (which
releases the GIL) to the kernel's ``_par`` entry gives them to the native thread pool (:mod:`tg_clang.pool`),
whose threads and the caller claim chunks of units from a shared counter until none is left, so a core slowed by
another process leaves its share to the others.  Where the native pool cannot be built, Python threads call the
kernel's ``_dyn`` entry instead (they block on a lock when idle).  Smaller launches stay on the calling thread.

A launch is mostly ctypes' own cost for the small kernels of a training step, so the call path is kept short:
kernels are called without ctypes argument types, with each buffer's address made into a ``c_void_p`` once
when the buffer is allocated, and the thread count is looked up once per value of ``TG_CLANG_THREADS``.
"""

from __future__ import annotations

import _ctypes
import ctypes
import math
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tg.backends.contract import Availability, Runtime
from tg.codegen.program import Program
from tg.support.early_exec import exec_jobs

from tg_clang.compiler import DEBIAN_PACKAGE, KernelCache, compiler_name, find_compiler
from tg_clang.memory import BufferCache, HostBuffer, new_buffer
from tg_clang.pool import build_in_background, native_pool
from tg_clang.threads import thread_count

#: Estimated operations below which a launch stays on the calling thread: a launch that small takes ~10 us or
#: less, and waking a sleeping worker costs ~20 us (a spinning one a few).
SPLIT_THRESHOLD = 1 << 19
#: Shares per thread in a split launch: threads claim them as they go, so a core slowed by another process
#: leaves its share to the others.
CHUNKS_PER_THREAD = 8


def _unload(handle: int) -> None:
    """``dlclose`` one load of a kernel's shared object (the C library unmaps it with its last load)."""
    _ctypes.dlclose(handle)


@dataclass
class ClangProgram:
    """A loaded kernel: the C function, its work units and cost (from the Program), its launch variables.

    ``function`` and ``parallel`` (the ``_par`` entry) are called without ctypes argument types: buffers are passed
    as their ``c_void_p`` and each variable as the ctypes value of its dtype (``c_int32``, ``c_float``: a bare
    Python float would go as a C ``double``, which a ``float`` parameter reads as garbage), the fastest way ctypes
    has to make a call."""

    name: str
    function: Any
    dynamic: Any
    units: int
    cost: int
    variables: tuple[tuple[str, Any], ...]  # (name, ctypes type) in parameter order
    strategy: str
    library: ctypes.CDLL
    cached: bool
    parallel: Any = None
    work: int = 0  # units * cost: the estimated operations of a launch

    def __post_init__(self) -> None:
        self.work = self.units * self.cost


class ThreadPool:
    """``size - 1`` persistent threads plus the caller; :meth:`run` has every thread make the same call."""

    def __init__(self, size: int):
        self.size = size
        self._pid = os.getpid()
        self._task: tuple[Any, tuple[Any, ...]] | None = None
        self._errors: list[BaseException] = []
        self._go = [threading.Lock() for _ in range(size - 1)]
        self._done = [threading.Lock() for _ in range(size - 1)]
        self._run_lock = threading.Lock()
        for lock in (*self._go, *self._done):
            lock.acquire()
        for i in range(size - 1):
            threading.Thread(target=self._worker, args=(i,), name=f"tg-clang-{i + 1}", daemon=True).start()

    def _worker(self, i: int) -> None:
        while True:
            self._go[i].acquire()  # blocks (no spinning) until run() hands out work
            try:
                assert self._task is not None
                function, args = self._task
                function(*args)
            except BaseException as exc:  # reported by run() in the caller's thread
                self._errors.append(exc)
            finally:
                self._done[i].release()

    def run(self, function: Any, args: tuple[Any, ...], threads: int | None = None) -> None:
        """Call ``function(*args)`` on ``threads`` threads at once (the caller's included); wait for all."""
        helpers = min(self.size, threads or self.size) - 1
        if helpers <= 0:
            function(*args)
            return
        with self._run_lock:
            self._task, self._errors = (function, args), []
            for i in range(helpers):
                self._go[i].release()
            try:
                function(*args)
            finally:
                for i in range(helpers):
                    self._done[i].acquire()
                self._task = None
            if self._errors:
                raise self._errors[0]


_pool: ThreadPool | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPool:
    """This process's pool (a forked child builds its own: threads do not survive a fork)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._pid != os.getpid():
            _pool = ThreadPool(thread_count())
        return _pool


#: The ctypes type a launch variable of each dtype is passed as.
_VARIABLE_TYPES = {"int32": ctypes.c_int32, "float32": ctypes.c_float}


class ClangRuntime(Runtime):
    language = "c"
    name = "clang"
    priority = 100
    concurrent_compile = True  # (compile may run in several threads; core calls compile_many, which does)
    variable_dtypes = frozenset(_VARIABLE_TYPES)
    symbolic_launch = True  # the work units come from each launch's global size
    #: kernels built for every value of a size render one thread at a time, or are refused where their bits could
    #: differ from the exact kernels' (see tg_clang.dynamic)
    dynamic_shapes = True

    def __init__(self) -> None:
        self.cache = KernelCache()
        self.freed = BufferCache()
        self._warming = False
        if find_compiler() is not None:
            # The backend is being chosen: its compiles run in the early-exec helpers, whose start (a Python process
            # each, tens of milliseconds) then overlaps the program's first tensors instead of its first compile.
            from tg.support.helpers import enable_early_exec

            enable_early_exec()

    def _warm_up(self) -> None:
        """At the first buffer (a program is about to run kernels here): start the compiler the first kernel will
        take and ask the driver for the linker's command line (see :meth:`KernelCache.prepare`), so that the first
        compile, a few lowerings later, waits for neither."""
        self._warming = True
        try:
            self.cache.prepare()  # (its work runs in threads of its own)
        except Exception:  # noqa: BLE001 - only a head start: the first compile reports what is wrong
            pass

    def available(self) -> Availability:
        if find_compiler() is None:
            return Availability.no(f"the C compiler '{compiler_name()}' was not found on PATH",
                                   f"apt-get install {DEBIAN_PACKAGE} (or set TG_CC to a C compiler)")
        return Availability.yes()

    def compile(self, program: Program) -> ClangProgram:
        if not self._warming:
            self._warm_up()
        return self._loaded(program, *self.cache.load(program.source, program.name))

    def compile_many(self, programs: Sequence[Program]) -> list[Any]:
        """The new kernels of a schedule: compiled a few C files at a time, ``TG_EXEC_JOBS`` files at once (see
        :mod:`tg_clang.batch`)."""
        if not self._warming:
            self._warm_up()
        loaded = self.cache.load_many([(p.source, p.name) for p in programs], exec_jobs())
        return [self._loaded(p, library, cached) for p, (library, cached) in zip(programs, loaded)]

    def _loaded(self, program: Program, library: ctypes.CDLL, cached: bool) -> ClangProgram:
        """The :class:`ClangProgram` of ``program`` from its loaded library."""
        symbol = program.name
        units = math.prod(program.global_size)
        n_bufs, variables = len(program.buffers), program.variables
        function, dynamic = getattr(library, symbol), getattr(library, symbol + "_dyn")
        parallel = getattr(library, symbol + "_par", None)  # absent from kernels written before the native pool
        function.restype = dynamic.restype = None
        if parallel is not None:
            parallel.restype = None
        types = [_VARIABLE_TYPES[dtype] for dtype in program.variable_dtypes or ["int32"] * len(variables)]
        dynamic.argtypes = [ctypes.c_void_p] * n_bufs + types + [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32]
        loaded = ClangProgram(symbol, function, dynamic, units, int(program.attributes.get("cost", 1)),
                              tuple(zip(variables, types)), str(program.attributes.get("strategy", "")), library,
                              cached, parallel)
        # unmapped when nothing can call it any more (core let it go and no jitted function holds it)
        release = weakref.finalize(loaded, _unload, library._handle)
        release.atexit = False  # at exit the process unmaps everything anyway
        return loaded

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int | float]) -> float | None:
        kernel = binary
        assert isinstance(kernel, ClangProgram)
        units = program.global_size[0]  # read at each launch: a launch may follow a variable (symbolic sizes)
        if units * kernel.cost < SPLIT_THRESHOLD or units < 2:
            if kernel.variables:
                kernel.function(*[b.arg for b in buffers], *[t(values[v]) for v, t in kernel.variables], 0, units)
            else:
                kernel.function(*[b.arg for b in buffers], 0, units)
            return None
        args = [*(b.arg for b in buffers), *(t(values[v]) for v, t in kernel.variables)]
        threads = min(thread_count(), units)
        if threads < 2:
            kernel.function(*args, 0, units)
            return None
        chunk = max(1, units // (threads * CHUNKS_PER_THREAD))
        native = native_pool(wait=False)  # not built yet: this launch goes to Python threads
        if native is not None and kernel.parallel is not None:
            kernel.parallel(*args, native.run_address, units, chunk, threads)
            return None
        counter = ctypes.c_int32(0)
        pool().run(kernel.dynamic, (*args, ctypes.addressof(counter), units, chunk), threads)
        # The native pool is built after the first launch that splits, not before it: its compile would take a core
        # from that launch (a program's first 1024 x 1024 matmul: 16-24 ms instead of 7-9).  Until it is ready,
        # launches split across Python threads.
        build_in_background()
        return None

    def alloc(self, nbytes: int) -> HostBuffer:
        if not self._warming:
            self._warm_up()
        return self.freed.take(nbytes) or new_buffer(nbytes)

    def free(self, buffer: Any) -> None:
        assert isinstance(buffer, HostBuffer)
        self.freed.give(buffer)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        buffer.array[: host.nbytes] = np.frombuffer(host, dtype=np.uint8)

    def copyout(self, host: memoryview, buffer: Any) -> None:
        np.frombuffer(host, dtype=np.uint8)[:] = buffer.array[: host.nbytes]
