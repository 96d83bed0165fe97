"""The on-disk cache of compiled kernels that plugins share: private, verified, bounded.

Layout: one root (``TG_CACHE_DIR``, default ``$XDG_CACHE_HOME/tg``, else ``~/.cache/tg``) with one folder per
plugin (``clang/``, ``ptx/``...), each holding one file per kernel, named by the plugin's key.  Rules:

- folders tg creates are 0700.  The root and a plugin folder must be owned by the user and not writable by
  group or others (an existing 0755 folder of the user's is accepted: nobody else can write in it); anything
  else is refused with a :class:`KernelCacheError` naming the folder, the problem and the fix.  Each folder is
  opened, checked and held by descriptor, and every entry is reached through that descriptor (also when
  loaded: ``/proc/self/fd/N/name``), so folders above the root are not checked: whoever can rename them can
  at most point tg at another folder, which must pass the same checks;
- an entry is opened with ``O_NOFOLLOW | O_NONBLOCK`` and used only if it is a regular file of the user's,
  writable by nobody else, ending in the record written when it was built: the sha256 of its content and of
  its key.  A symbolic link, FIFO, folder, foreign or damaged entry, or the file of another key, is removed
  with a :class:`KernelCacheWarning` and the plugin rebuilds it.  ELF loaders ignore bytes after the image, so a
  shared object is loaded from :attr:`CachedBinary.path` record and all; other formats use ``.data``;
- entries are written to a temporary file and renamed into place, so readers never see half of one;
- several kernels built into one binary (one compiler run for all) are stored once: the binary under a key of its
  own (:meth:`DiskCache.put`), then under each kernel's key a small entry that refers to it
  (:meth:`DiskCache.refer`), which :meth:`DiskCache.get` follows.  A reference whose binary was evicted is a miss;
- the whole root holds at most ``TG_CACHE_MAX_MB`` (default 512): past that, the entries used least recently
  (a hit renews the file's time, at most once a minute) are removed until it holds 90% of it.  Each process
  counts the root afresh at most every few seconds and adds its own writes in between, so processes writing at
  once may overshoot the bound by what they wrote in those seconds.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pwd
import secrets
import shutil
import stat
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tg.support.errors import KernelCacheError, KernelCacheWarning
from tg.support.helpers import getenv

DEFAULT_MAX_MB = 512.0
#: The record after an entry's content: sha256(content), sha256(key), then this tag.
RECORD_TAG = b"TGKCv1\0\0"
RECORD_SIZE = 32 + 32 + len(RECORD_TAG)
_TMP_SUFFIX = ".tmp"
#: What an entry that refers to another holds (see DiskCache.refer): this, then the other entry's key.
REFERENCE_TAG = b"tg kernel cache: stored with the entry "
#: Linux names an open folder /proc/self/fd/N: a path through it reaches that very folder, whatever is renamed.
_PROC_FDS = os.path.isdir("/proc/self/fd")
#: Bytes in each cache root (by device and inode) as this process last counted them, and when.
_TOTALS: dict[tuple[int, int], tuple[int, float]] = {}
_RECOUNT_SECONDS = 5.0
#: A hit renews an entry's time (which eviction goes by) when it is older than this: at most a write a minute.
_TOUCH_NS = 60 * 10**9


def cache_root() -> Path:
    """Where the cache lives (nothing is created): ``TG_CACHE_DIR``, else ``$XDG_CACHE_HOME/tg``, else
    ``~/.cache/tg``."""
    configured = os.environ.get("TG_CACHE_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        return Path(xdg) / "tg"
    try:
        return Path.home() / ".cache" / "tg"
    except RuntimeError as exc:
        raise KernelCacheError("no kernel cache folder: HOME is not set and neither is XDG_CACHE_HOME. "
                               "Fix: set TG_CACHE_DIR to a folder of yours") from exc


def max_bytes() -> int:
    """The bound on the whole cache, from ``TG_CACHE_MAX_MB``."""
    mb = getenv("TG_CACHE_MAX_MB", DEFAULT_MAX_MB)
    if mb <= 0:
        raise KernelCacheError(f"TG_CACHE_MAX_MB={mb:g} must be a positive number of megabytes (default "
                               f"{DEFAULT_MAX_MB:g})")
    return int(mb * 1024 * 1024)


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _folder_problem(st: os.stat_result) -> tuple[str, str] | None:
    """Why a folder with these attributes may not hold tg's kernels, and the fix; None if it may."""
    uid = os.geteuid()
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder", "remove it, or set TG_CACHE_DIR to a folder of yours"
    if st.st_uid != uid:
        return (f"is owned by {_user(st.st_uid)}, not by you ({_user(uid)}), who could put code there that tg "
                "would run", "set TG_CACHE_DIR to a folder of yours (unset, tg uses ~/.cache/tg)")
    if st.st_mode & 0o022:
        return (f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}), who could put code "
                "there that tg would run", "chmod go-w on it, or set TG_CACHE_DIR to a private folder")
    return None


def _refuse(path: Path, problem: str, fix: str) -> KernelCacheError:
    return KernelCacheError(f"the kernel cache folder {path} {problem}. Fix: {fix}")


def _make_folders(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700 (as the XDG spec asks of ~/.cache)."""
    missing = []
    for folder in [path, *path.parents]:
        if os.path.lexists(folder):
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _refuse(folder, f"cannot be created ({exc.strerror})",
                          "set TG_CACHE_DIR to a writable folder of yours") from exc


def _open_folder(name: str | Path, shown: Path, parent: int | None = None, create: bool = True) -> int | None:
    """A descriptor of the checked folder ``name`` (relative to the descriptor ``parent``), created 0700 when
    missing and ``create``; None when missing and not ``create``."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if parent is not None else 0)
    for _ in range(2):
        try:
            fd = os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            try:
                if parent is None:
                    _make_folders(Path(name))
                else:
                    os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                pass  # another process was quicker
            except OSError as exc:
                raise _refuse(shown, f"cannot be created ({exc.strerror})",
                              "set TG_CACHE_DIR to a writable folder of yours") from exc
            continue
        except OSError as exc:
            if parent is not None and exc.errno in (errno.ELOOP, errno.ENOTDIR) and \
                    stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                problem = "is a symbolic link"
            elif exc.errno == errno.ENOTDIR:
                problem = "is not a folder (it, or a folder above it, is a file)"
            else:
                problem = f"cannot be opened ({exc.strerror})"
            raise _refuse(shown, problem, "remove it, or set TG_CACHE_DIR to a folder of yours") from exc
        found = _folder_problem(os.fstat(fd))
        if found is not None:
            os.close(fd)
            raise _refuse(shown, *found)
        return fd
    raise _refuse(shown, "keeps disappearing while tg creates it", "set TG_CACHE_DIR to a folder of yours")


@dataclass(frozen=True)
class CachedBinary:
    """A verified cache entry: ``data`` is its content (without the record); ``path`` reaches the very file
    checked, through the folder tg holds open (to hand to a loader such as ``dlopen``); ``location`` is its
    ordinary path, for messages."""

    key: str
    data: bytes
    path: str
    location: Path


def _record(key: str, data: bytes) -> bytes:
    return hashlib.sha256(data).digest() + hashlib.sha256(key.encode()).digest() + RECORD_TAG


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, max(size, 1 << 16)):
        chunks.append(chunk)
    return b"".join(chunks)


def _entry_problem(key: str, fd: int, st: os.stat_result) -> tuple[str | None, bytes]:
    """Why the open entry ``fd`` (attributes ``st``) of ``key`` may not be used (None if it may), and its content."""
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else "a device"
        return f"is {kind}, not a regular file", b""
    if st.st_uid != os.geteuid():
        return f"is owned by {_user(st.st_uid)}", b""
    if st.st_mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})", b""
    raw = _read_all(fd, st.st_size)
    data, tail = raw[:-RECORD_SIZE], raw[-RECORD_SIZE:]
    if len(raw) < RECORD_SIZE or not tail.endswith(RECORD_TAG):
        return "has no build record (truncated, or not written by tg)", b""
    if tail[32:64] != hashlib.sha256(key.encode()).digest():
        return "holds the kernel of another key", b""
    if tail[:32] != hashlib.sha256(data).digest():
        return "does not match the digest recorded when it was built (overwritten or damaged)", b""
    return None, data


class DiskCache:
    """One plugin's folder of the kernel cache: ``get`` a verified entry by key, ``put`` a freshly built one.

    ``root`` overrides the configured root; ``suffix`` ends every entry's name (``.so``).  Keys are the plugin's
    (letters, digits, ``-_.``), and must change whenever what the entry would hold changes."""

    def __init__(self, plugin: str, suffix: str = "", root: Path | None = None):
        self.plugin, self.suffix, self._root = plugin, suffix, root
        self._held: tuple[Path, int, int, tuple[int, int]] | None = None  # folder, root fd, fd, (dev, ino)
        self._lock = threading.RLock()  # threads compiling at once share the held folder

    @property
    def directory(self) -> Path:
        """The plugin's folder (configured path; nothing is created)."""
        return (self._root or cache_root()) / self.plugin

    def _folder(self) -> tuple[int, int]:
        """(root fd, plugin folder fd), opened and checked on first use and again whenever the path now names
        another folder (TG_CACHE_DIR changed, the folder was replaced) or the folder's mode changed."""
        with self._lock:
            return self._checked_folder()

    def _checked_folder(self) -> tuple[int, int]:
        path = self.directory
        held = self._held
        if held is not None and held[0] == path:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == held[3] and _folder_problem(st) is None:
                    return held[1], held[2]
        self.close()
        root_fd = _open_folder(path.parent, path.parent)
        assert root_fd is not None
        try:
            fd = _open_folder(self.plugin, path, parent=root_fd)
            assert fd is not None
        except BaseException:
            os.close(root_fd)
            raise
        if not os.access(path, os.W_OK | os.X_OK):
            os.close(fd)
            os.close(root_fd)
            raise _refuse(path, "is not writable (a read-only file system?)",
                          "set TG_CACHE_DIR to a writable folder of yours")
        st = os.fstat(fd)
        self._held = (path, root_fd, fd, (st.st_dev, st.st_ino))
        return root_fd, fd

    def close(self) -> None:
        """Let go of the folder's descriptors (the next access opens and checks it again)."""
        with self._lock:
            if self._held is not None:
                os.close(self._held[1])
                os.close(self._held[2])
                self._held = None

    def __del__(self) -> None:
        try:  # at interpreter exit module globals may be gone already: the descriptors close with the process
            self.close()
        except Exception:  # noqa: S110
            pass

    def name(self, key: str) -> str:
        if not _is_key(key):
            raise ValueError(f"a cache key is a plain file name, not {key!r}")
        return key + self.suffix

    def _pinned(self, fd: int, name: str) -> str:
        return f"/proc/self/fd/{fd}/{name}" if _PROC_FDS else str(self.directory / name)

    def get(self, key: str) -> CachedBinary | None:
        """The entry of ``key`` if there is a good one (and it becomes the most recently used); None on a miss.
        A bad entry is removed with a warning saying what was wrong, and is a miss.  Where ``key`` refers to the
        entry of kernels built together (:meth:`refer`), that entry is returned (its ``key`` is the shared
        one: discard that one if a loader rejects it); a reference whose entry is gone is a miss."""
        entry = self._get(key)
        if entry is None or not entry.data.startswith(REFERENCE_TAG):
            return entry
        shared = entry.data[len(REFERENCE_TAG):].decode("ascii", errors="replace")
        if not _is_key(shared) or shared == key:
            self.discard(key, "refers to no valid entry")
            return None
        found = self._get(shared)
        if found is None or found.data.startswith(REFERENCE_TAG):  # evicted (the size bound), or another reference
            return None
        return found

    def _get(self, key: str) -> CachedBinary | None:
        """:meth:`get` of the entry stored under ``key`` itself (a reference is returned as it is)."""
        _, folder = self._folder()
        name = self.name(key)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.discard(key, "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be read ({exc})")
            return None
        try:
            st = os.fstat(fd)
            problem, data = _entry_problem(key, fd, st)
            if problem is None and time.time_ns() - st.st_mtime_ns > _TOUCH_NS:
                with contextlib.suppress(OSError):
                    os.utime(fd)  # the time eviction goes by
        finally:
            os.close(fd)
        if problem is not None:
            self.discard(key, problem)
            return None
        return CachedBinary(key, data, self._pinned(folder, name), self.directory / name)

    def discard(self, key: str, problem: str) -> None:
        """Remove the entry of ``key`` with a warning that it ``problem`` (a loader rejected it, say)."""
        _, folder = self._folder()
        name = self.name(key)
        warnings.warn(f"tg {self.plugin} kernel cache: {self.directory / name} {problem}; it is removed and "
                      "the kernel rebuilt", KernelCacheWarning, stacklevel=3)
        _remove(name, folder)

    def put(self, key: str, data: bytes) -> CachedBinary:
        """Store ``data`` as the entry of ``key`` (atomically, with its build record) and return it; then keep
        the cache under its bound."""
        entry, root_fd, size = self._write(key, data)
        self._bound(root_fd, size, {self.name(key)})
        return entry

    def refer(self, keys: Sequence[str], shared: str) -> None:
        """Make each of ``keys`` refer to the entry of ``shared``, stored already (one binary of several kernels
        built together, each key a kernel's): :meth:`get` of any of them returns that entry.  Call it once the
        binary is known to be good (loaded), so a reference never leads to a bad one.  ``shared`` must be a key of
        its own (of everything the binary was built from), never one of ``keys``; the cache's bound is kept once all
        are written, and never evicts them or ``shared``."""
        if shared in keys:
            raise ValueError(f"the shared entry's key {shared!r} is one of the keys that refer to it")
        added, root_fd = 0, None
        for key in keys:
            _, root_fd, size = self._write(key, REFERENCE_TAG + shared.encode())
            added += size
        if root_fd is not None:
            self._bound(root_fd, added, {self.name(k) for k in (shared, *keys)})

    def _write(self, key: str, data: bytes) -> tuple[CachedBinary, int, int]:
        """:meth:`put` without keeping the bound: the entry, the root's descriptor and the bytes written."""
        root_fd, folder = self._folder()
        name = self.name(key)
        tmp = f".{name}.{secrets.token_hex(6)}{_TMP_SUFFIX}"
        content = data + _record(key, data)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
                try:
                    os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
                except IsADirectoryError:
                    _remove(name, folder)
                    os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=folder)
        except OSError as exc:
            raise _refuse(self.directory, f"cannot take a new kernel ({exc.strerror})",
                          "free some space or set TG_CACHE_DIR to a writable folder of yours") from exc
        return CachedBinary(key, data, self._pinned(folder, name), self.directory / name), root_fd, len(content)

    def _bound(self, root_fd: int, added: int, keep: set[str]) -> None:
        """Evict least recently used entries once the root may hold more than the bound.  The process keeps a
        running total per root, counted afresh at most every few seconds (other processes write too), so most
        writes do not pay for a scan of the folders."""
        limit = max_bytes()
        st = os.fstat(root_fd)
        known = _TOTALS.get((st.st_dev, st.st_ino))
        now = time.monotonic()
        if known is None or now - known[1] > _RECOUNT_SECONDS:
            with _plugin_folders(root_fd) as folders:
                known = (sum(f.size for f in _files(folders)), now)
        else:
            known = (known[0] + added, known[1])
        if known[0] > limit:
            known = (_evict(root_fd, int(limit * 0.9), keep=(self.plugin, keep)), now)
        _TOTALS[(st.st_dev, st.st_ino)] = known


def _is_key(key: str) -> bool:
    """Whether ``key`` may name an entry: a plain file name (no folder, not hidden)."""
    return bool(key) and "/" not in key and not key.startswith(".") and "\0" not in key


@dataclass(frozen=True)
class _File:
    plugin: str
    name: str
    size: int
    used_ns: int
    folder: int


def _remove(name: str, folder: int) -> None:
    try:
        os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=folder)


@contextlib.contextmanager
def _plugin_folders(root_fd: int) -> Iterator[list[tuple[str, int]]]:
    """(name, fd) of every plugin folder under the root that passes the checks (the others are left alone)."""
    with os.scandir(root_fd) as it:
        names = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    folders = []
    try:
        for name in names:
            with contextlib.suppress(KernelCacheError):
                fd = _open_folder(name, Path(name), parent=root_fd, create=False)
                if fd is not None:
                    folders.append((name, fd))
        yield folders
    finally:
        for _, fd in folders:
            os.close(fd)


def _files(folders: list[tuple[str, int]]) -> list[_File]:
    """Every file in these plugin folders: entries, and temporary files of writes in progress or crashed."""
    found = []
    for plugin, fd in folders:
        with os.scandir(fd) as it:
            for e in it:
                with contextlib.suppress(OSError):
                    st = e.stat(follow_symlinks=False)
                    found.append(_File(plugin, e.name, st.st_size, st.st_mtime_ns, fd))
    return found


def _evict(root_fd: int, target: int, keep: tuple[str, set[str]]) -> int:
    """Remove the least recently used files but ``keep`` (plugin, names) until the root holds at most ``target``
    bytes; return what it then holds."""
    with _plugin_folders(root_fd) as folders:
        files = _files(folders)
        total = sum(f.size for f in files)
        for f in sorted(files, key=lambda f: f.used_ns):
            if total <= target:
                break
            if f.plugin != keep[0] or f.name not in keep[1]:
                with contextlib.suppress(OSError):
                    _remove(f.name, f.folder)
                total -= f.size
    return total


@dataclass(frozen=True)
class CacheUsage:
    """What ``tg cache`` shows: the root, whether it exists, the bound, and (files, bytes) per plugin folder."""

    root: Path
    exists: bool
    folders: dict[str, tuple[int, int]]
    max_bytes: int


def usage(root: Path | None = None) -> CacheUsage:
    """The cache's size per plugin (creates nothing; an unsafe root raises :class:`KernelCacheError`)."""
    root = root or cache_root()
    root_fd = _open_folder(root, root, create=False)
    if root_fd is None:
        return CacheUsage(root, False, {}, max_bytes())
    try:
        with _plugin_folders(root_fd) as folders:
            sizes = {name: (0, 0) for name, _ in folders}
            for f in _files(folders):
                count, size = sizes[f.plugin]
                sizes[f.plugin] = (count + 1, size + f.size)
    finally:
        os.close(root_fd)
    return CacheUsage(root, True, sizes, max_bytes())


def clear(plugin: str | None = None, root: Path | None = None) -> tuple[int, int]:
    """Remove every file of one plugin's folder, or of all; return (files, bytes) removed.  Folders stay."""
    root = root or cache_root()
    root_fd = _open_folder(root, root, create=False)
    if root_fd is None:
        return 0, 0
    removed, size = 0, 0
    try:
        with _plugin_folders(root_fd) as folders:
            if plugin is not None and plugin not in {name for name, _ in folders}:
                known = ", ".join(name for name, _ in folders) or "none"
                raise KernelCacheError(f"the kernel cache {root} has no folder for plugin {plugin!r} "
                                       f"(it has: {known})")
            for f in _files(folders):
                if plugin is None or f.plugin == plugin:
                    with contextlib.suppress(OSError):
                        _remove(f.name, f.folder)
                        removed, size = removed + 1, size + f.size
    finally:
        os.close(root_fd)
    return removed, size
