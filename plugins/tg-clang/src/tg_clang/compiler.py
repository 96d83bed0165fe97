"""The C compiler and its on-disk cache of kernel binaries.

``clang`` (or ``TG_CC``) compiles each kernel to a shared object through tg's early-exec helper, in a private
temporary folder.  Binaries are kept in core's kernel cache (:class:`tg.hooks.DiskCache`: ``TG_CACHE_DIR``,
default ``$XDG_CACHE_HOME/tg``, else ``~/.cache/tg``, under ``clang/``; private folders, entries checked
against the digest recorded when they were built, size-bounded), named by a hash of the source, the compiler
(resolved path, size and time stamp, so an upgrade misses), the flags and the host CPU (``-march=native``).
An entry that fails the checks, or does not load (an incomplete ELF file is caught before ``dlopen``, which
would crash on it), is removed with a warning and rebuilt.  Looking a kernel up never starts a process: a
cache hit costs reading and hashing the file, a look at its ELF headers and a ``dlopen``.
"""

from __future__ import annotations

import _ctypes
import ctypes
import functools
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

from tg.hooks import CachedBinary, DiskCache
from tg.support.errors import BackendError

from tg_clang import batch, linking, prestart

#: Bumped whenever the emitted C or the flags change meaning, so stale binaries are never reused.
CACHE_VERSION = "2"  # 2: entries end in core's build record (tg.hooks.DiskCache)
DEBIAN_PACKAGE = "clang"
#: tg-clang's folder in the kernel cache.
CACHE_PLUGIN = "clang"
#: IEEE semantics are kept (no -ffast-math): inf, nan, signed zeros and denormals behave as numpy's.
#: -fwrapv: signed integers wrap like the IR's; -fno-math-errno only lets sqrt be an instruction.
#: -Werror=implicit-function-declaration: a call to an undeclared function (see tg_clang.cprelude) is an error, never
#: a call whose C type the compiler guessed.
#: -mprefer-vector-width=512: the tiles are planned for the CPU's widest registers (tg_clang.tiling: 64 bytes with
#: AVX-512), and clang's tuning for recent Xeons otherwise splits every vector into 256-bit halves (half the FMA
#: throughput: a matmul at half speed); on a CPU without AVX-512 it changes nothing.
BASE_FLAGS = ("-std=gnu11", "-O2", "-march=native", "-mprefer-vector-width=512", "-fPIC", "-shared", "-fwrapv",
              "-fno-math-errno", "-ffp-contract=on", "-Wno-psabi", "-Werror=implicit-function-declaration")
#: The libmvec functions the lane renderer calls (glibc >= 2.35 has them all).
LIBMVEC_SYMBOLS = ("_ZGVdN8v_exp2f", "_ZGVdN8v_log2f", "_ZGVdN8v_sinf", "_ZGVdN4v_exp2", "_ZGVdN4v_log2",
                   "_ZGVdN4v_sin", "_ZGVeN16v_exp2f", "_ZGVeN16v_log2f", "_ZGVeN16v_sinf", "_ZGVeN8v_exp2",
                   "_ZGVeN8v_log2", "_ZGVeN8v_sin")


@functools.cache
def has_libmvec() -> bool:
    """Whether glibc's vector math library with every function the kernels call is installed."""
    try:
        lib = ctypes.CDLL("libmvec.so.1")
        return all(hasattr(lib, name) for name in LIBMVEC_SYMBOLS)
    except OSError:
        return False


def default_flags() -> tuple[str, ...]:
    """The compiler flags (libraries last): with libmvec, kernels call its exp2/log2/sin (<= 2 ulp), in SIMD lanes
    and in scalar code alike (see :data:`tg_clang.cprelude.PRELUDE`)."""
    if has_libmvec():
        return (*BASE_FLAGS, "-DTG_LIBMVEC=1", "-lmvec", "-lm")
    return (*BASE_FLAGS, "-lm")


class CompilerNotFoundError(BackendError):
    """The C compiler is not installed (or TG_CC names nothing runnable)."""


class CompileError(BackendError):
    """The C compiler rejected a kernel; the message carries its diagnostics."""


def compiler_name() -> str:
    return os.environ.get("TG_CC", "").strip() or "clang"


def find_compiler() -> str | None:
    """The compiler's full path, or None when it is not installed; cheap (a PATH lookup)."""
    return shutil.which(compiler_name())


def missing_compiler_message(name: str | None = None) -> str:
    name = name or compiler_name()
    origin = " (from TG_CC)" if os.environ.get("TG_CC", "").strip() else ""
    return (f"tg-clang: the C compiler '{name}'{origin} was not found. Install clang "
            f"(Debian/Ubuntu: apt-get install {DEBIAN_PACKAGE}) or set TG_CC to a C compiler with clang's vector "
            "extensions")


def require_compiler() -> str:
    path = find_compiler()
    if path is None:
        raise CompilerNotFoundError(missing_compiler_message())
    return path


def cache_dir() -> Path:
    """The folder of tg-clang's kernel cache (created on first use)."""
    return DiskCache(CACHE_PLUGIN).directory


@functools.cache
def _host_cpu() -> str:
    """What -march=native compiles for: the CPU model and feature flags (read with plain system calls: this is on
    the path of a new process's first cached kernel)."""
    chunks = []
    try:
        fd = os.open("/proc/cpuinfo", os.O_RDONLY | os.O_CLOEXEC)
        try:
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError:
        import platform

        return platform.machine() + platform.processor()
    text = b"".join(chunks).decode(errors="replace")
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags", "vendor_id"))]
    return "\n".join(dict.fromkeys(keep))


def _compiler_identity(path: str) -> str:
    real = os.path.realpath(path)
    st = os.stat(real)
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def cache_key(source: str, compiler: str, flags: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for part in (CACHE_VERSION, _compiler_identity(compiler), " ".join(flags), _host_cpu(), source):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:40]


def _run(argv: list[str], input: bytes | None = None) -> bytes:
    from tg.support.helpers import early_exec

    return early_exec(argv, input=input)


def _compile(argv: list[str], source: str, compiler: str) -> None:
    """Run the compiler command ``argv`` on ``source`` (its standard input); a failure is a :class:`CompileError`
    with the compiler's messages, a missing compiler a :class:`CompilerNotFoundError`."""
    try:
        _run(argv, input=source.encode())
    except subprocess.CalledProcessError as exc:
        raise _compile_error(exc, argv, compiler) from exc
    except FileNotFoundError as exc:
        raise CompilerNotFoundError(missing_compiler_message(compiler)) from exc


def _compile_error(exc: subprocess.CalledProcessError, argv: list[str], compiler: str) -> CompileError:
    stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
    return CompileError(f"tg-clang: {os.path.basename(compiler)} failed (exit {exc.returncode}) on this kernel:\n"
                        f"{stderr.strip()}\ncommand: {' '.join(argv)}")


def compile_to(source: str, output: Path, compiler: str, flags: tuple[str, ...]) -> None:
    """Compile ``source`` into the shared object ``output`` with one driver run (compile and link) in the
    early-exec helper."""
    options, libraries = linking.split_flags(flags)
    _compile([compiler, *options, "-shared", "-x", "c", "-", "-o", str(output), *libraries], source, compiler)


def compile_object(source: str, obj: Path, compiler: str, flags: tuple[str, ...]) -> None:
    """Compile ``source`` into the object file ``obj`` (``clang -c``: the driver compiles in its own process)."""
    options, _ = linking.split_flags(flags)
    _compile([compiler, *options, "-c", "-x", "c", "-", "-o", str(obj)], source, compiler)


def link_object(template: list[str], obj: Path, output: Path) -> bool:
    """Link ``obj`` into ``output`` with a learnt linker command line; whether that worked."""
    try:
        _run(linking.instantiate(template, obj, output))
    except (OSError, subprocess.SubprocessError):
        return False
    return output.is_file()


def link_with_driver(obj: Path, output: Path, compiler: str, flags: tuple[str, ...]) -> bool:
    """Link ``obj`` into ``output`` with the compiler's driver (when no linker command line is known)."""
    options, libraries = linking.split_flags(flags)
    try:
        _run([compiler, *options, "-shared", str(obj), "-o", str(output), *libraries])
    except (OSError, subprocess.SubprocessError):
        return False
    return output.is_file()


class KernelCache:
    """Compiles kernels into the disk cache and loads them; counts hits and misses (for tests and benchmarks).

    ``directory`` is a cache root to use instead of ``TG_CACHE_DIR`` (kernels go to its ``clang/`` folder)."""

    def __init__(self, directory: Path | None = None, flags: tuple[str, ...] | None = None):
        self.disk = DiskCache(CACHE_PLUGIN, suffix=".so", root=directory)
        self.links = linking.LinkLines(CACHE_PLUGIN, directory)
        self.flags = flags if flags is not None else default_flags()
        self.hits = 0
        self.misses = 0
        self._prestarted: prestart.Prestarted | None = None  # see prepare()
        self._compiled = False  # whether a kernel was compiled here yet
        self._count = threading.Lock()  # kernels compile in several threads at once

    def path_for(self, source: str) -> Path:
        return self.disk.directory / self.disk.name(cache_key(source, require_compiler(), self.flags))

    def load(self, source: str, symbol: str) -> tuple[ctypes.CDLL, bool]:
        """The loaded library that exports ``symbol``, compiled if needed; and whether it came from the cache."""
        compiler = require_compiler()
        key = cache_key(source, compiler, self.flags)
        lib = self._cached(key, symbol)
        if lib is not None:
            return lib, True
        return self._build_alone(source, symbol, compiler, key), False

    def load_many(self, kernels: Sequence[tuple[str, str]], jobs: int) -> list[tuple[ctypes.CDLL, bool]]:
        """:meth:`load` of each of ``kernels`` (source and symbol), in order; the ones not in the cache are compiled
        a few files at a time (:mod:`tg_clang.batch`), ``jobs`` builds at once.  A file of several kernels is stored
        once, each kernel's cache entry referring to it (``DiskCache.refer``).  The kernels of a file the compiler
        rejects (or that runs past its time limit) are compiled one by one, so that each error names its own
        kernel."""
        compiler = require_compiler()
        keys = [cache_key(source, compiler, self.flags) for source, _ in kernels]
        out: dict[int, tuple[ctypes.CDLL, bool]] = {}
        todo = []
        for i, ((_, symbol), key) in enumerate(zip(kernels, keys)):
            lib = self._cached(key, symbol)
            if lib is not None:
                out[i] = (lib, True)
            else:
                todo.append(i)
        groups = [[todo[j] for j in group] for group in batch.plan([kernels[i] for i in todo], jobs)]

        def build(group: list[int]) -> None:
            if len(group) > 1:
                out.update(self._build_together([kernels[i] for i in group], [keys[i] for i in group], group,
                                                compiler))
            for i in group:
                if i not in out:
                    out[i] = (self._build_alone(*kernels[i], compiler, keys[i]), False)

        try:
            if len(groups) > 1 and jobs > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(min(jobs, len(groups)), thread_name_prefix="tg-clang-build") as pool:
                    list(pool.map(build, groups))  # (raises the first error)
            else:
                for group in groups:
                    build(group)
        except BaseException:
            for lib, _ in out.values():  # nothing will call them: unmapped (ctypes never closes a library)
                _ctypes.dlclose(lib._handle)
            raise
        return [out[i] for i in range(len(kernels))]

    def _build_alone(self, source: str, symbol: str, compiler: str, key: str) -> ctypes.CDLL:
        """Compile one kernel (not in the cache: counted as a miss) into the cache under ``key`` and load it."""
        with self._count:
            self.misses += 1
        return self._build_loaded(source, symbol, compiler, key)[1]

    def _build_together(self, kernels: list[tuple[str, str]], keys: list[str], where: list[int],
                        compiler: str) -> dict[int, tuple[ctypes.CDLL, bool]]:
        """Compile ``kernels`` as one file and load each from it, by its index in ``where``, then make their keys
        refer to it; {} when the compiler rejects the file or runs past its time limit (the caller then builds them
        one by one, each with its own error and time); a kernel that does not load from it is left out."""
        source = batch.merge([s for s, _ in kernels], [name for _, name in kernels])
        shared = cache_key(source, compiler, self.flags)
        try:
            entry, first = self._build_loaded(source, kernels[0][1], compiler, shared)
        except (CompileError, subprocess.TimeoutExpired):
            return {}
        made = {where[0]: (first, False)}
        referring = [keys[0]]
        for i, key, (_, symbol) in zip(where[1:], keys[1:], kernels[1:]):
            lib = _try_load(entry.path, entry.data, symbol)
            if lib is not None:
                made[i] = (lib, False)
                referring.append(key)
        self.disk.refer(referring, shared)
        with self._count:
            self.misses += len(made)
        return made

    def _cached(self, key: str, symbol: str) -> ctypes.CDLL | None:
        """The library of ``key`` from the disk cache, loaded, if it is there and exports ``symbol`` (counted as a
        hit); a library that does not load or lacks it is removed."""
        entry = self.disk.get(key)
        if entry is None:
            return None
        lib = _try_load(entry.path, entry.data, symbol)
        if lib is None:
            self.disk.discard(entry.key, f"does not load or lacks '{symbol}'")
            return None
        with self._count:
            self.hits += 1
        return lib

    def _build_loaded(self, source: str, symbol: str, compiler: str, key: str) -> tuple[CachedBinary, ctypes.CDLL]:
        """Compile ``source`` into the cache under ``key`` and load it: the entry and the library."""
        entry, lib, direct = self._build(source, symbol, compiler, key, True)
        if lib is None and direct:  # the direct link made something that does not load: the driver links it
            self.links.forget(_compiler_identity(compiler), self.flags)
            entry, lib, _ = self._build(source, symbol, compiler, key, False)
        if lib is None:
            raise CompileError(f"tg-clang: the freshly compiled kernel {entry.location} does not load or lacks "
                               f"'{symbol}'")
        return entry, lib

    def _build(self, source: str, symbol: str, compiler: str, key: str,
               direct: bool) -> tuple[CachedBinary, ctypes.CDLL | None, bool]:
        """Compile ``source`` into the cache and load it: (the entry, the library or None if it does not load,
        whether the linker ran directly).  ``direct``: compile with ``clang -c`` and run the linker directly
        (see :mod:`tg_clang.linking`), the driver linking where no line is known or the line fails; else, or
        when even that link fails, the driver compiles and links."""
        identity = _compiler_identity(compiler)
        with tempfile.TemporaryDirectory(prefix="tg-clang-") as tmp:  # private (0700), the compiler writes here
            output = Path(tmp) / "kernel.so"
            linked = False
            if direct and linking.enabled():
                template = self.links.known(identity, self.flags)
                # not known yet: the driver is asked for it while this kernel compiles
                asked = self.links.ask(compiler, identity, self.flags, _run) if template is False else None
                obj = Path(tmp) / "kernel.o"
                if not self._compile_prestarted(source, obj, compiler):
                    compile_object(source, obj, compiler, self.flags)
                if asked is not None:
                    template = asked.line()
                if isinstance(template, list):
                    linked = link_object(template, obj, output)
                    if linked and asked is not None:
                        self.links.learn(identity, self.flags, template)  # recorded once it has linked a kernel
                    elif not linked:
                        self.links.forget(identity, self.flags)
                elif asked is not None:
                    self.links.learn(identity, self.flags, None)  # the driver links from now on in this process
                if not linked:
                    linked = link_with_driver(obj, output, compiler, self.flags)
            if not linked:
                compile_to(source, output, compiler, self.flags)
            entry = self.disk.put(key, output.read_bytes())
        return entry, _try_load(entry.path, entry.data, symbol), linked

    def _compile_prestarted(self, source: str, obj: Path, compiler: str) -> bool:
        """Compile ``source`` into ``obj`` with the compiler :meth:`prepare` started, if this is the first kernel
        that can take it; False when it did not (the caller compiles the usual way).  A compile error is raised."""
        self._compiled = True
        pre, options = self._prestarted, linking.split_flags(self.flags)[0]
        if pre is None or not pre.take(compiler, options):
            return False
        try:
            if not pre.feed(source.encode()):
                return False
            try:
                pre.finish()
            except subprocess.CalledProcessError as exc:
                raise _compile_error(exc, pre.argv, compiler) from exc
            except (OSError, subprocess.SubprocessError):  # its helper failed, not the kernel: the usual way
                return False
            if not pre.obj.is_file():
                return False
            os.replace(pre.obj, obj)
            return True
        finally:
            pre.cleanup()

    def prepare(self) -> None:
        """Before a program's first kernel (see :mod:`tg_clang.prestart` and :mod:`tg_clang.linking`): start the
        compiler that kernel will take, and ask the driver for the linker's command line if it is not known (each
        in a thread of its own)."""
        if linking.enabled():
            compiler = find_compiler()
            if compiler is not None:
                identity = _compiler_identity(compiler)
                if self._prestarted is None and not self._compiled:  # (none once a kernel went the usual way)
                    self._prestarted = prestart.start_once(compiler, linking.split_flags(self.flags)[0], _run)
                    if self._prestarted is not None:  # a cache dropped unused frees the helper it holds
                        weakref.finalize(self, self._prestarted.release)
                if self.links.known(identity, self.flags) is False:
                    self.links.ask(compiler, identity, self.flags, _run)


def elf_complete(image: bytes) -> bool:
    """Whether ``image`` is a whole 64-bit ELF file: every segment and the section table lie inside it.

    Checked before ``dlopen``, because mapping a truncated shared object crashes the process (SIGBUS)
    instead of failing.  The cache hands over the very bytes it verified, so no file is read twice."""
    size = len(image)
    if size < 64 or image[:4] != b"\x7fELF" or image[4] != 2 or image[5] != 1:
        return False
    phoff, shoff = struct.unpack_from("<QQ", image, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", image, 54)
    if shoff + shentsize * shnum > size or phoff + phentsize * phnum > size or phentsize < 56:
        return False
    for i in range(phnum):
        kind, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", image, phoff + i * phentsize)
        if kind == 1 and offset + filesz > size:  # PT_LOAD
            return False
    return True


def _try_load(path: str, image: bytes, symbol: str) -> ctypes.CDLL | None:
    """The shared object at ``path`` (whose content is ``image``) loaded, if it is whole and exports ``symbol``."""
    if not elf_complete(image):
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    try:
        getattr(lib, symbol)
    except AttributeError:
        # unloaded, or a rebuilt library at the same path would be this one again (dlopen goes by name)
        _ctypes.dlclose(lib._handle)
        return None
    return lib
