"""Linking a kernel without a second compiler process: the linker's command line, learnt from the driver.

``clang src.c -shared -o k.so`` runs three processes: the driver, a separate ``clang -cc1`` (the driver compiles
in its own process only when it has a single job to run) and the linker.  Each clang process spends ~25 ms
loading LLVM's shared libraries before it does anything, a fifth of a small kernel's compile.  So kernels are
compiled with ``clang -c`` (driver and compiler in one process) and linked by running the linker directly, with
the command line the driver itself would run.  That line is learnt by asking the driver with ``-###`` (it prints
the commands of a build and runs none), in another thread while the first kernel compiles, so the first kernel
waits for no extra process either.  Where ``ld.gold`` is installed the driver is asked for it (``-fuse-ld=gold``):
it links a kernel's small shared object in about half the time of the default ``ld.bfd``; ``ld.lld-19`` was slower
than both here (its own start-up costs as much as ``ld.bfd``'s whole link), so it is not tried.

A learnt line is kept in the kernel cache once it has linked a kernel (:class:`tg.hooks.DiskCache`, so its
folder's ownership and permission checks apply: a line another user wrote is never run), keyed by the compiler's
identity, the flags and the linker asked for.  It is only an optimisation: when the driver shows no usable line
(an error, other commands than one compile and one link, a file it names is gone) the driver links each object
file; when the direct link fails or makes a library that does not load, the kernel is linked by the driver, or
built the usual way, and the line is forgotten.  ``TG_CLANG_DIRECT_LINK=0`` always builds the usual way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from tg.hooks import DiskCache

#: Bumped whenever what a record holds changes meaning.
LINK_VERSION = "1"
#: The placeholders of the object file and the shared object in a recorded command line.
INPUT, OUTPUT = "\0input", "\0output"
#: Linkers asked for by name (``-fuse-ld=``) when installed, best first; the driver's default comes last.
PREFERRED_LINKERS = ("gold",)

Runner = Callable[[list[str], bytes], bytes]


def enabled() -> bool:
    return os.environ.get("TG_CLANG_DIRECT_LINK", "1").strip() != "0"


def split_flags(flags: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(the options a compile to an object file takes, the libraries): ``-shared`` and ``-l...`` only link."""
    return [f for f in flags if f != "-shared" and not f.startswith("-l")], [f for f in flags if f.startswith("-l")]


def parse_driver_output(text: str, out: str) -> list[str] | None:
    """The linker's command in what ``clang -v`` showed of a build of ``out`` (its compile, then its link), with
    the object file and ``out`` replaced by placeholders; None unless the listing holds no error and exactly those
    two commands, the link naming the compile's object and ``out`` once each."""
    if "error:" in text:
        return None
    commands = []
    for line in text.splitlines():
        if line.startswith(' "'):
            try:
                commands.append(shlex.split(line))
            except ValueError:
                return None
    if len(commands) != 2 or len(commands[0]) < 3 or commands[0][1] != "-cc1" or "-o" not in commands[0][:-1]:
        return None
    obj, argv = commands[0][commands[0].index("-o") + 1], commands[1]
    if not argv or not os.path.isabs(argv[0]) or argv.count(obj) != 1 or argv.count(out) != 1:
        return None
    return [INPUT if a == obj else OUTPUT if a == out else a for a in argv]


def usable(template: list[str]) -> bool:
    """Whether every absolute path the line names (the linker, its start files) is still there: an upgrade that
    moved them makes the line stale."""
    return all(os.path.exists(a) for a in template if a.startswith("/") and a not in (INPUT, OUTPUT))


def instantiate(template: list[str], obj: Path, out: Path) -> list[str]:
    return [str(obj) if a == INPUT else str(out) if a == OUTPUT else a for a in template]


def ask_driver(compiler: str, flags: tuple[str, ...], run: Runner) -> list[str] | None:
    """The linker's command line the driver would run to build a kernel with ``flags`` (a preferred linker asked
    for), from what ``-###`` prints (no compile, no link: just the driver's start-up); None when it shows no usable
    line or the driver fails."""
    options, libraries = split_flags(flags)
    linker = [f"-fuse-ld={name}" for name in PREFERRED_LINKERS if shutil.which(f"ld.{name}")][:1]
    out = "/tg-clang-probe/kernel.so"  # never written: -### runs nothing
    argv = ["/bin/sh", "-c", 'exec "$0" "$@" 2>&1', compiler, *options, "-shared", *linker, "-###", "-x", "c", "-",
            "-o", out, *libraries]
    try:
        text = run(argv, b"").decode(errors="replace")
    except (OSError, subprocess.SubprocessError):
        return None
    template = parse_driver_output(text, out)
    return template if template is not None and usable(template) else None


class Answer:
    """The driver's answer to :func:`ask_driver`, computed in a thread of its own; :meth:`line` waits for it."""

    def __init__(self, compiler: str, flags: tuple[str, ...], run: Runner):
        self._line: list[str] | None = None
        self._done = threading.Event()
        threading.Thread(target=self._ask, args=(compiler, flags, run), name="tg-clang-link-line",
                         daemon=True).start()

    def _ask(self, compiler: str, flags: tuple[str, ...], run: Runner) -> None:
        try:
            self._line = ask_driver(compiler, flags, run)
        except Exception:  # noqa: BLE001 - no line: the driver links (an error of the helper itself shows there)
            self._line = None
        finally:
            self._done.set()

    def line(self) -> list[str] | None:
        self._done.wait()
        return self._line


class LinkLines:
    """The learnt command lines of one kernel cache root, per (compiler identity, flags): remembered in this
    process and in the cache's ``clang/`` folder."""

    def __init__(self, plugin: str, root: Path | None):
        self.disk = DiskCache(plugin, suffix=".link", root=root)
        self._lines: dict[str, list[str] | None] = {}
        self._asked: dict[str, Answer] = {}  # lines being asked of the driver, at most once per key at a time
        self._lock = threading.Lock()

    @staticmethod
    def key(compiler_identity: str, flags: tuple[str, ...]) -> str:
        h = hashlib.sha256()
        for part in (LINK_VERSION, compiler_identity, " ".join(flags), ",".join(PREFERRED_LINKERS)):
            h.update(part.encode())
            h.update(b"\0")
        return "link-" + h.hexdigest()[:40]

    def known(self, compiler_identity: str, flags: tuple[str, ...]) -> list[str] | None | bool:
        """The linker's command line for kernels built with ``flags``: remembered, else recorded in the cache;
        None when this process found none usable; False when it is not known yet (see :meth:`learn`)."""
        key = self.key(compiler_identity, flags)
        with self._lock:
            if key in self._lines:
                return self._lines[key]
        template = self._read(key)
        if template is None:
            return False
        with self._lock:
            self._lines[key] = template
        return template

    def ask(self, compiler: str, compiler_identity: str, flags: tuple[str, ...], run: Runner) -> Answer:
        """The driver's answer for ``flags``, asked in a thread now unless it is being asked already."""
        key = self.key(compiler_identity, flags)
        with self._lock:
            answer = self._asked.get(key)
            if answer is None:
                answer = self._asked[key] = Answer(compiler, flags, run)
        return answer

    def learn(self, compiler_identity: str, flags: tuple[str, ...], template: list[str] | None) -> None:
        """Remember what a build showed (None: link with the driver from now on in this process); record a line."""
        key = self.key(compiler_identity, flags)
        with self._lock:
            self._lines[key] = template
            self._asked.pop(key, None)
        if template is not None:
            self.disk.put(key, json.dumps(template).encode())

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
        with self._lock:
            self._lines[key] = None
            self._asked.pop(key, None)
        if self.disk.get(key) is not None:
            self.disk.discard(key, "linked a kernel that failed")
