"""Linking a kernel without a second compiler process: the linker's command line, learnt once from the driver.

``clang src.c -shared -o k.so`` runs three processes: the driver, a separate ``clang -cc1`` (the driver compiles
in its own process only when it has a single job to run) and the linker.  Each clang process spends ~25 ms
loading LLVM's shared libraries before it does anything, which is a fifth of a small kernel's compile.  So a
kernel is compiled with ``clang -c`` (driver and compiler in one process) and linked by running the linker
directly, with the command line the driver itself would run: ``clang -### ... probe.o -o probe.so`` prints it.
Where ``ld.gold`` is installed the driver is asked for it (``-fuse-ld=gold``): it links a kernel's small shared
object in about half the time of the default ``ld.bfd``; ``ld.lld-19`` was slower than both here (its own start-up
costs as much as ``ld.bfd``'s whole link), so it is not tried.

The learnt command line is kept in the kernel cache (:class:`tg.hooks.DiskCache`, so its folder's ownership and
permission checks apply: a line another user wrote is never run), keyed by the compiler's identity, the flags and
the linker asked for.  It is only an optimisation: when there is no usable line (the driver prints an error or
more than one command, a file it names is gone) the driver links the object file; when the direct link fails or
makes a library that does not load, the kernel is built the old way, by the driver alone, and the line is
forgotten.  A process asks the driver (when the cache has no record) in a thread while its first kernel
compiles.  ``TG_CLANG_DIRECT_LINK=0`` always builds the old way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from tg.hooks import DiskCache

#: Bumped whenever what a record holds changes meaning.
LINK_VERSION = "1"
#: The placeholders of the object file and the shared object in a recorded command line.
INPUT, OUTPUT = "\0input", "\0output"
#: Linkers asked for by name (``-fuse-ld=``) when installed, best first; the driver's default comes last.
PREFERRED_LINKERS = ("gold",)

_PROBE_OBJECT, _PROBE_OUTPUT = "tg-probe.o", "tg-probe.so"

Runner = Callable[[list[str]], bytes]


def enabled() -> bool:
    return os.environ.get("TG_CLANG_DIRECT_LINK", "1").strip() != "0"


def split_flags(flags: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(the options a compile to an object file takes, the libraries): ``-shared`` and ``-l...`` only link."""
    return [f for f in flags if f != "-shared" and not f.startswith("-l")], [f for f in flags if f.startswith("-l")]


def parse_driver_output(text: str, obj: str, out: str) -> list[str] | None:
    """The one command of a ``-###`` listing, with ``obj`` and ``out`` replaced by placeholders; None unless the
    listing holds no error and exactly one command that names each of them once."""
    if "error:" in text:
        return None
    commands = [line for line in text.splitlines() if line.startswith(' "')]
    if len(commands) != 1:
        return None
    try:
        argv = shlex.split(commands[0])
    except ValueError:
        return None
    if not argv or not os.path.isabs(argv[0]) or argv.count(obj) != 1 or argv.count(out) != 1:
        return None
    return [INPUT if a == obj else OUTPUT if a == out else a for a in argv]


def usable(template: list[str]) -> bool:
    """Whether every absolute path the line names (the linker, its start files) is still there: an upgrade that
    moved them makes the line stale."""
    return all(os.path.exists(a) for a in template if a.startswith("/") and a not in (INPUT, OUTPUT))


def instantiate(template: list[str], obj: Path, out: Path) -> list[str]:
    return [str(obj) if a == INPUT else str(out) if a == OUTPUT else a for a in template]


def probe(compiler: str, flags: tuple[str, ...], run: Runner) -> list[str] | None:
    """Ask the driver how it links (a preferred linker first); None when no answer is usable."""
    options, libraries = split_flags(flags)
    choices = [f"-fuse-ld={name}" for name in PREFERRED_LINKERS if shutil.which(f"ld.{name}")] + [None]
    with tempfile.TemporaryDirectory(prefix="tg-clang-link-") as tmp:
        obj, out = os.path.join(tmp, _PROBE_OBJECT), os.path.join(tmp, _PROBE_OUTPUT)
        Path(obj).touch()  # the driver leaves out inputs that do not exist
        for choice in choices:
            argv = ["/bin/sh", "-c", 'exec "$0" "$@" 2>&1', compiler, *options, "-shared",
                    *([choice] if choice else []), "-###", obj, "-o", out, *libraries]
            try:
                text = run(argv).decode(errors="replace")
            except (OSError, subprocess.SubprocessError):
                continue
            template = parse_driver_output(text, obj, out)
            if template is not None and usable(template):
                return template
    return None


class LinkLines:
    """The learnt command lines of one kernel cache root, per (compiler identity, flags): remembered in this
    process and in the cache's ``clang/`` folder."""

    def __init__(self, plugin: str, root: Path | None):
        self.disk = DiskCache(plugin, suffix=".link", root=root)
        self._lines: dict[str, Future[list[str] | None]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(compiler_identity: str, flags: tuple[str, ...]) -> str:
        h = hashlib.sha256()
        for part in (LINK_VERSION, compiler_identity, " ".join(flags), ",".join(PREFERRED_LINKERS)):
            h.update(part.encode())
            h.update(b"\0")
        return "link-" + h.hexdigest()[:40]

    def start(self, compiler: str, compiler_identity: str, flags: tuple[str, ...],
              run: Runner) -> Future[list[str] | None]:
        """The linker's command line for kernels built with ``flags`` (None: let the driver link them), as a future:
        when it is neither remembered nor recorded, the driver is asked in a thread, so that the question overlaps
        the compile of the kernel that needs the answer."""
        key = self.key(compiler_identity, flags)
        with self._lock:
            known = self._lines.get(key)
            if known is not None:
                return known
            future: Future[list[str] | None] = Future()
            self._lines[key] = future
        template = self._read(key)
        if template is not None:
            future.set_result(template)
            return future

        def learn() -> None:
            try:
                found = probe(compiler, flags, run)
                if found is not None:
                    self.disk.put(key, json.dumps(found).encode())
                future.set_result(found)
            except BaseException as exc:  # noqa: BLE001 - the kernel is then linked by the driver
                future.set_result(None)
                if not isinstance(exc, Exception):
                    raise

        threading.Thread(target=learn, name="tg-clang-link-probe", daemon=True).start()
        return future

    def _read(self, key: str) -> list[str] | None:
        entry = self.disk.get(key)
        if entry is None:
            return None
        try:
            template = json.loads(entry.data)
        except ValueError:
            template = None
        if (not isinstance(template, list) or not all(isinstance(a, str) for a in template)
                or template.count(INPUT) != 1 or template.count(OUTPUT) != 1 or not usable(template)):
            self.disk.discard(key, "is not a usable linker command line")
            return None
        return template

    def forget(self, compiler_identity: str, flags: tuple[str, ...]) -> None:
        """The line failed: build with the driver from now on in this process, and learn it again next time."""
        key = self.key(compiler_identity, flags)
        gone: Future[list[str] | None] = Future()
        gone.set_result(None)
        with self._lock:
            self._lines[key] = gone
        if self.disk.get(key) is not None:
            self.disk.discard(key, "linked a kernel that failed")
