"""A compiler started before its kernel exists, for the first kernel a program waits for.

A ``clang`` process spends ~25 ms loading LLVM's shared libraries before it reads a line, a third of a small
kernel's compile.  For a program's first kernel nothing else overlaps it, so the runtime starts ``clang -c`` at its
first buffer (see :meth:`tg_clang.compiler.KernelCache.prepare`), in an early-exec helper, on a named pipe in a
private temporary folder; the compiler loads while tg still lowers and renders the kernel, and the kernel's source
is then written into the pipe.  The first kernel that cache builds takes it; every other kernel is compiled the
usual way.  A process starts one at most (it holds an early-exec helper while it waits), and one whose kernel cache
is dropped before it compiled anything is released then.

Nothing here may hang or hide an error: the source is only written once the compiler has opened the pipe (until
then, a compiler that is gone means "not taken", and the kernel is compiled the usual way); a compiler that dies
while reading is noticed (a broken pipe); a compile error is raised as the compiler reported it.  One that no
kernel took by the time the process exits is given an empty file, so that it exits at once.
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

Runner = Callable[[list[str], bytes | None], bytes]

#: How long the exit waits at most for a compiler nobody took to open its pipe (it is then given an empty file).
RELEASE_WAIT_S = 0.2


class Prestarted:
    """``compiler options -c -x c PIPE -o OBJ`` run by ``run`` in a thread, waiting for its source on ``PIPE``."""

    def __init__(self, compiler: str, options: list[str], run: Runner):
        self.compiler, self.options = compiler, list(options)
        self.folder = Path(tempfile.mkdtemp(prefix="tg-clang-"))  # private (0700)
        self.pipe = self.folder / "kernel.c"
        self.obj = self.folder / "kernel.o"
        try:
            os.mkfifo(self.pipe, 0o600)
        except OSError:
            self.cleanup()
            raise
        self.argv = [compiler, *options, "-c", "-x", "c", str(self.pipe), "-o", str(self.obj)]
        self.error: BaseException | None = None
        self._pid = os.getpid()
        self._taken = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(run,), name="tg-clang-prestarted", daemon=True)
        self._thread.start()
        atexit.register(self.release)

    def _run(self, run: Runner) -> None:
        try:
            run(self.argv, None)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever takes the compiler (see finish)
            self.error = exc

    def take(self, compiler: str, options: list[str]) -> bool:
        """Claim the compiler for a kernel built with ``compiler`` and ``options``: True once per process."""
        with self._lock:
            if self._taken or self._pid != os.getpid() or compiler != self.compiler or options != self.options:
                return False
            self._taken = True
            return True

    def feed(self, source: bytes) -> bool:
        """Write ``source`` into the pipe once the compiler has opened it; False when it is not there to read it (it
        ended before opening the pipe, or died while reading): the caller then compiles the usual way."""
        fd = self._open_writer(None)
        if fd is None:
            return False
        try:
            os.set_blocking(fd, True)
            view = memoryview(source)
            while view:
                view = view[os.write(fd, view):]
        except BrokenPipeError:
            return False
        finally:
            os.close(fd)  # the end of the file for the compiler
        return True

    def finish(self) -> None:
        """Wait for the compiler to end; raise what its run raised (a compile error as ``CalledProcessError``)."""
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _open_writer(self, wait: float | None) -> int | None:
        """The pipe's write end, as soon as the compiler has opened the read end; None if its run ended first (or,
        with ``wait`` seconds, once they have passed)."""
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                return os.open(self.pipe, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    return None
            if not self._thread.is_alive() or (deadline is not None and time.monotonic() > deadline):
                return None
            time.sleep(0.0005)

    def release(self) -> None:
        """At exit: a compiler nobody took gets an empty file and ends (its helper is then free to stop)."""
        if self._pid != os.getpid():
            return
        with self._lock:
            taken, self._taken = self._taken, True
        if not taken:
            fd = self._open_writer(RELEASE_WAIT_S)
            if fd is None and self._thread.is_alive():
                # the compiler may be opening the pipe this instant: a reader blocks in open() until some writer
                # comes, so hold the pipe open for writing (Linux opens a FIFO read-write without waiting) while it
                # is removed; a compiler that comes later finds no file and ends
                try:
                    fd = os.open(self.pipe, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
                except OSError:
                    fd = None
                self.cleanup()
            if fd is not None:
                os.close(fd)  # the end of the (empty) file for the compiler
                self._thread.join(timeout=RELEASE_WAIT_S)
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


_started: list[int] = []  # the processes (ids) that have started theirs
_start_lock = threading.Lock()


def start_once(compiler: str, options: list[str], run: Runner) -> Prestarted | None:
    """This process's prestarted compiler, started now; None if the process started one already."""
    with _start_lock:
        if os.getpid() in _started:
            return None
        _started.append(os.getpid())
    return Prestarted(compiler, options, run)
