"""Assembly text -> HSA code object: ``llvm-mc`` assembles, ``ld.lld -shared`` links, core's disk cache keeps it.

The linked code object (an ELF shared object for ``amdgcn-amd-amdhsa--gfx1100``) is cached in core's kernel cache
(:class:`tg.hooks.DiskCache`, folder ``rdna/``: private folders, entries verified against the digest recorded when
built, size-bounded), keyed by the source, both tools' identities (path, size, time stamp, LLVM version) and the
flags, so an LLVM upgrade never reuses an old build.  Assembler errors show llvm-mc's message and the lines of the
kernel around each line it names.  :func:`disassemble` is ``llvm-objdump -d`` of a code object (TG_DEBUG=5).

:func:`build_many` builds the new kernels of a schedule together (up to :data:`BATCH_MAX`): one file
(:func:`tg_rdna.codeobject.merge`), one llvm-mc and one ld.lld run, one code object holding them all, stored once,
each kernel's entry referring to it.  Each run of either tool costs ~14 ms, most of it loading LLVM's library: more
than a small kernel's own work.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from tg.hooks import DiskCache
from tg.support.errors import BackendError

from tg_rdna import codeobject, toolchain
from tg_rdna.codeobject import MCPU, TRIPLE

T = TypeVar("T")
#: The most kernels built into one code object (its launches and disassembly read all of it).
BATCH_MAX = 16
#: Bumped whenever the emitted code, the flags or the entries change meaning, so stale code objects are never
#: reused (2: kernels built together refer to their code object through core's DiskCache.refer).
CACHE_VERSION = "2"
CACHE_PLUGIN = "rdna"
MC_FLAGS = (f"-triple={TRIPLE}", f"-mcpu={MCPU}", "-filetype=obj")
LD_FLAGS = ("-shared", "--no-undefined", "--threads=1")  # one thread: a kernel links in ~14 ms, not ~17


class AssemblerError(BackendError):
    """llvm-mc or ld.lld rejected a kernel; the message holds the tool's diagnostics and the source around them."""


def excerpt(source: str, message: str, context: int = 3) -> str:
    """The lines of ``source`` around each ``<file>:<line>:`` that ``message`` names, the named ones marked >>."""
    lines = source.splitlines()
    named = sorted({int(m) for m in re.findall(r":(\d+):\d+: (?:error|warning)", message)})
    out: list[str] = []
    shown: set[int] = set()
    for n in named:
        for i in range(max(1, n - context), min(len(lines), n + context) + 1):
            if i not in shown:
                shown.add(i)
                out.append(f"{'>>' if i == n else '  '} {i:5d} | {lines[i - 1]}")
        out.append("   ...")
    return "\n".join(out)


def cache_key(source: str, mc: toolchain.Tool, lld: toolchain.Tool) -> str:
    h = hashlib.sha256()
    for part in (CACHE_VERSION, mc.identity, lld.identity, " ".join(MC_FLAGS + LD_FLAGS), source):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:40]


def _fail(tool: str, name: str, source: str, exc: subprocess.CalledProcessError) -> AssemblerError:
    stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
    return AssemblerError(f"tg-rdna: {tool} rejected kernel {name} (exit {exc.returncode}):\n{stderr.strip()}\n"
                          f"{excerpt(source, stderr)}")


def link(source: str, name: str = "kernel") -> bytes:
    """Assemble and link ``source`` (no cache): the code object's bytes."""
    mc, lld = toolchain.require("llvm-mc"), toolchain.require("ld.lld")
    with tempfile.TemporaryDirectory(prefix="tg-rdna-") as tmp:  # private (0700)
        obj, out = Path(tmp) / "kernel.o", Path(tmp) / "kernel.co"
        try:
            toolchain.run([mc.path, *MC_FLAGS, "-", "-o", str(obj)], input=source.encode())
        except subprocess.CalledProcessError as exc:
            raise _fail("llvm-mc", name, source, exc) from exc
        try:
            toolchain.run([lld.path, *LD_FLAGS, str(obj), "-o", str(out)])
        except subprocess.CalledProcessError as exc:
            raise _fail("ld.lld", name, source, exc) from exc
        return out.read_bytes()


class CodeObjectCache:
    """Builds code objects into the disk cache and reads them back; counts hits and misses (for tests).

    ``directory`` is a cache root to use instead of ``TG_CACHE_DIR`` (code objects go to its ``rdna/`` folder)."""

    def __init__(self, directory: Path | None = None):
        self.disk = DiskCache(CACHE_PLUGIN, suffix=".co", root=directory)
        self.hits = 0
        self.misses = 0

    def build(self, source: str, name: str = "kernel") -> bytes:
        """The code object of ``source``: from the cache when it is there and intact, else built and stored."""
        key = self._key(source)
        data = self._cached(key)
        if data is None:
            self.misses += 1
            data = link(source, name)
            self.disk.put(key, data)
        return data

    def build_many(self, kernels: Sequence[tuple[str, str]]) -> list[bytes]:
        """The code objects of ``kernels`` (source and name each), in order.  Those not in the cache are built
        :data:`BATCH_MAX` at a time into one code object, in one llvm-mc and one ld.lld run; the code object is stored
        once, and each kernel's key holds a reference to it.  A kernel whose name another of them has, and every one
        of a batch whose build fails (so that each error names its own kernel), is built alone."""
        keys = [self._key(source) for source, _ in kernels]
        found: dict[int, bytes] = {}
        together: dict[str, int] = {}  # kernel name -> index, the first of each name not in the cache
        for i, key in enumerate(keys):
            data = self._cached(key)
            if data is not None:
                found[i] = data
            else:
                together.setdefault(kernels[i][1], i)
        batch = list(together.values())
        for start in range(0, len(batch) if len(batch) > 1 else 0, BATCH_MAX):
            part = batch[start:start + BATCH_MAX]
            merged = codeobject.merge([kernels[i][0] for i in part]) if len(part) > 1 else None
            if merged is None:
                continue
            try:
                data = link(merged, f"{len(part)} kernels ({', '.join(kernels[i][1] for i in part)})")
            except AssemblerError:
                continue
            self.misses += len(part)
            shared = self._key(merged)
            self.disk.put(shared, data)
            self.disk.refer([keys[i] for i in part], shared)
            for i in part:
                found[i] = data
        return [found[i] if i in found else self.build(*kernels[i]) for i in range(len(kernels))]

    def _key(self, source: str) -> str:
        return cache_key(source, toolchain.require("llvm-mc"), toolchain.require("ld.lld"))

    def _cached(self, key: str) -> bytes | None:
        """The code object stored under ``key`` (or the one of kernels built together it refers to) when it is there
        and intact (counted as a hit), else None: a reference whose code object the cache's size bound evicted is a
        miss, and the kernel is built again (its entry replaced)."""
        entry = self.disk.get(key)
        if entry is None:
            return None
        if entry.data[:4] == b"\x7fELF":
            self.hits += 1
            return entry.data
        self.disk.discard(entry.key, "is not an ELF code object")
        return None


_shared: CodeObjectCache | None = None


def _cache() -> CodeObjectCache:
    global _shared
    if _shared is None:
        _shared = CodeObjectCache()
    return _shared


def build(source: str, name: str = "kernel") -> bytes:
    """The code object of ``source`` through the process's shared cache."""
    return _cache().build(source, name)


def build_many(kernels: Sequence[tuple[str, str]]) -> list[bytes]:
    """:meth:`CodeObjectCache.build_many` through the process's shared cache."""
    return _cache().build_many(kernels)


def load_many(kernels: Sequence[tuple[str, str]], load: Callable[[bytes], T]) -> list[T]:
    """:func:`build_many` of ``kernels``, each code object made ready by ``load`` once: kernels built together share
    what it returns (a runtime's loaded program)."""
    loaded: dict[bytes, T] = {}
    out = []
    for data in build_many(kernels):
        if data not in loaded:
            loaded[data] = load(data)
        out.append(loaded[data])
    return out


def disassemble(code_object: bytes, name: str | None = None) -> str:
    """``llvm-objdump -d`` of a code object (for TG_DEBUG=5): of kernel ``name`` alone when given (a code object may
    hold kernels built together)."""
    path = toolchain.find("llvm-objdump")
    if path is None:
        raise toolchain.ToolchainError(toolchain.missing_message("llvm-objdump"))
    only = [f"--disassemble-symbols={name}"] if name is not None else []
    with tempfile.TemporaryDirectory(prefix="tg-rdna-") as tmp:
        co = Path(tmp) / "kernel.co"
        co.write_bytes(code_object)
        return toolchain.run([path, "-d", f"--mcpu={MCPU}", *only, str(co)]).decode(errors="replace")
