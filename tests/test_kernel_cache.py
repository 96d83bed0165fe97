"""Core's on-disk kernel cache (tg.support.kernel_cache): private folders, foreign or open folders refused, entries
verified against their build record, never a hang on a FIFO, a size bound, and ``tg cache``."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from tg.cli import main
from tg.support import kernel_cache
from tg.support.errors import BackendError, KernelCacheError, KernelCacheWarning
from tg.support.kernel_cache import DiskCache, cache_root, clear, usage

OTHER_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TG_CACHE_DIR, not created yet."""
    path = tmp_path / "cache"
    monkeypatch.setenv("TG_CACHE_DIR", str(path))
    monkeypatch.delenv("TG_CACHE_MAX_MB", raising=False)
    yield path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TG_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "tg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "tg"
    monkeypatch.setenv("TG_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine" and DiskCache("x").directory == tmp_path / "mine" / "x"


def test_folders_are_created_private(root: Path) -> None:
    nested = root / "a" / "b"
    cache = DiskCache("chip", root=nested)
    cache.put("k1", b"binary")
    for folder in (root, root / "a", nested, nested / "chip"):
        assert _mode(folder) == 0o700, folder
    entry = nested / "chip" / "k1"
    assert _mode(entry) == 0o600 and entry.stat().st_uid == os.geteuid()


def test_an_existing_0755_folder_of_ours_is_accepted(root: Path) -> None:
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    cache = DiskCache("chip")
    cache.put("k", b"payload")
    got = cache.get("k")
    assert got is not None and got.data == b"payload"


@pytest.mark.parametrize("which", ["root", "plugin folder"])
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_folder_others_can_write_is_refused(root: Path, which: str, mode: int) -> None:
    (root / "chip").mkdir(parents=True, mode=0o700)
    folder = root if which == "root" else root / "chip"
    os.chmod(folder, mode)
    (root / "chip" / "k").write_bytes(b"planted")
    with pytest.raises(KernelCacheError, match=rf"{folder} is writable by group or others \(mode 0{mode:o}\).*"
                                               r"Fix: chmod go-w"):
        DiskCache("chip").get("k")


@as_root
@pytest.mark.parametrize("which", ["root", "plugin folder"])
def test_a_folder_owned_by_someone_else_is_refused(root: Path, which: str) -> None:
    (root / "chip").mkdir(parents=True, mode=0o700)
    folder = root if which == "root" else root / "chip"
    os.chown(folder, OTHER_UID, -1)
    with pytest.raises(KernelCacheError, match=rf"{folder} is owned by uid {OTHER_UID}.*not by you.*"
                                               r"Fix: set TG_CACHE_DIR"):
        DiskCache("chip").put("k", b"x")
    assert not (root / "chip" / "k").exists()


def test_a_cache_path_that_is_a_file_is_named(root: Path) -> None:
    root.write_text("not a folder")
    with pytest.raises(KernelCacheError, match=rf"{root} is not a folder.*Fix: .*TG_CACHE_DIR"):
        DiskCache("chip").get("k")
    assert issubclass(KernelCacheError, BackendError)


def test_a_plugin_folder_that_is_a_symlink_is_refused(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    root.mkdir(mode=0o700)
    (root / "chip").symlink_to(elsewhere)
    with pytest.raises(KernelCacheError, match="is a symbolic link"):
        DiskCache("chip").put("k", b"x")
    assert not list(elsewhere.iterdir())


def _read_only(folder: Path) -> None:
    """Make ``folder`` unwritable even to root (immutable), or skip."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o500)
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("root cannot make a folder read-only here (chattr +i)")


def _writable(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    os.chmod(folder, 0o700)


def test_an_unwritable_root_is_named(root: Path) -> None:
    root.mkdir(mode=0o700)
    _read_only(root)
    try:
        with pytest.raises(KernelCacheError, match=rf"folder {root}/chip cannot be created \(.*\).*"
                                                   "Fix: set TG_CACHE_DIR to a writable folder"):
            DiskCache("chip").put("k", b"x")
    finally:
        _writable(root)


def test_an_unwritable_plugin_folder_is_named(root: Path) -> None:
    (root / "chip").mkdir(parents=True, mode=0o700)
    _read_only(root / "chip")
    try:
        with pytest.raises(KernelCacheError, match=rf"folder {root}/chip is not writable.*Fix: set TG_CACHE_DIR"):
            DiskCache("chip").get("k")
    finally:
        _writable(root / "chip")


def _bad_entry(cache: DiskCache, key: str, match: str) -> None:
    """``get(key)`` returns within 10 s, warns ``match`` and finds nothing; the bad entry is gone."""
    found: list[object] = []

    def look() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found.append(cache.get(key))
            found.append([str(w.message) for w in caught if issubclass(w.category, KernelCacheWarning)])

    worker = threading.Thread(target=look, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "looking up the entry hung"
    assert found[0] is None
    assert any(match in m and "it is removed and the kernel rebuilt" in m for m in found[1]), found[1]  # type: ignore[attr-defined]
    assert not os.path.lexists(cache.directory / cache.name(key))


def test_a_fifo_entry_does_not_hang(root: Path) -> None:
    cache = DiskCache("chip", suffix=".so")
    cache.put("other", b"x")
    os.mkfifo(cache.directory / "k.so")
    _bad_entry(cache, "k", "is a FIFO, not a regular file")
    assert cache.put("k", b"rebuilt").data == b"rebuilt"
    got = cache.get("k")
    assert got is not None and got.data == b"rebuilt"


def test_a_folder_entry_is_removed_and_rebuilt(root: Path) -> None:
    cache = DiskCache("chip")
    cache.put("other", b"x")
    (cache.directory / "k" / "inside").mkdir(parents=True)
    _bad_entry(cache, "k", "is a folder, not a regular file")
    (cache.directory / "k2").mkdir()  # a put over a folder replaces it too
    cache.put("k2", b"new")
    got = cache.get("k2")
    assert got is not None and got.data == b"new"


def test_a_symlinked_entry_is_not_followed(root: Path, tmp_path: Path) -> None:
    cache = DiskCache("chip")
    cache.put("good", b"content")
    (cache.directory / "k").symlink_to(cache.directory / "good")
    _bad_entry(cache, "k", "is a symbolic link")
    assert (cache.directory / "good").exists()


@as_root
def test_an_entry_owned_by_someone_else_is_refused(root: Path) -> None:
    cache = DiskCache("chip")
    cache.put("k", b"content")
    os.chown(cache.directory / "k", OTHER_UID, -1)
    _bad_entry(cache, "k", f"is owned by uid {OTHER_UID}")


def test_an_entry_others_can_write_is_refused(root: Path) -> None:
    cache = DiskCache("chip")
    cache.put("k", b"content")
    os.chmod(cache.directory / "k", 0o666)
    _bad_entry(cache, "k", "is writable by group or others (mode 0666)")


def test_an_overwritten_entry_fails_its_digest(root: Path) -> None:
    cache = DiskCache("chip")
    cache.put("k", b"\x90" * 100)
    path = cache.directory / "k"
    raw = bytearray(path.read_bytes())
    raw[10] = 0xCC  # same size, one instruction replaced
    path.write_bytes(bytes(raw))
    _bad_entry(cache, "k", "does not match the digest recorded when it was built")


def test_another_keys_entry_is_refused(root: Path) -> None:
    cache = DiskCache("chip")
    cache.put("a", b"kernel a")
    (cache.directory / "b").write_bytes((cache.directory / "a").read_bytes())
    _bad_entry(cache, "b", "holds the kernel of another key")


def test_an_entry_without_a_record_is_refused(root: Path) -> None:
    cache = DiskCache("chip")
    cache.put("other", b"x")
    (cache.directory / "k").write_bytes(b"\x7fELF planted by hand")
    _bad_entry(cache, "k", "has no build record")


def test_kernels_built_together_are_stored_once_and_each_key_refers_to_them(root: Path) -> None:
    cache = DiskCache("chip", suffix=".so")
    stored = cache.put("ab", b"\x7fELF two kernels")
    cache.refer(["a", "b"], "ab")
    for key in ("a", "b", "ab"):
        got = cache.get(key)
        assert got is not None and got.key == "ab" and got.data == stored.data == b"\x7fELF two kernels"
        assert Path(got.path).read_bytes().startswith(b"\x7fELF two kernels")
    sizes = {p.name: p.stat().st_size for p in cache.directory.iterdir()}
    assert sorted(sizes) == ["a.so", "ab.so", "b.so"] and sizes["a.so"] < 200  # references are small
    with pytest.raises(ValueError, match="is one of the keys"):
        cache.refer(["a", "ab"], "ab")
    (cache.directory / "ab.so").unlink()  # evicted by the size bound: each reference is a plain miss
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get("a") is None and cache.get("b") is None
    cache.put("a", b"\x7fELF a alone")  # rebuilt alone: the reference is replaced
    got = cache.get("a")
    assert got is not None and got.key == "a" and got.data == b"\x7fELF a alone"


def test_referring_keys_never_evict_the_binary_they_refer_to(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_CACHE_MAX_MB", "0.008")  # 8,000 bytes: the binary alone is past it
    cache = DiskCache("chip")
    cache.put("old", b"o" * 100)
    cache.put("ab", b"\x7fELF" + b"k" * 8000)  # the least recently used entry goes, the new one stays
    cache.refer(["a", "b"], "ab")
    assert not (cache.directory / "old").exists()
    assert all((got := cache.get(key)) is not None and got.key == "ab" for key in ("a", "b"))


def test_a_reference_to_no_valid_entry_is_removed(root: Path) -> None:
    cache = DiskCache("chip")
    cache.put("k", kernel_cache.REFERENCE_TAG + b"../elsewhere")
    with pytest.warns(KernelCacheWarning, match="refers to no valid entry"):
        assert cache.get("k") is None
    assert not (cache.directory / "k").exists()
    cache.put("s", b"shared")
    cache.refer(["r"], "s")
    cache.put("s", kernel_cache.REFERENCE_TAG + b"r")  # a reference to a reference is not followed
    assert cache.get("r") is None


def test_a_good_entry_round_trips_and_leaves_no_temporary_file(root: Path) -> None:
    cache = DiskCache("chip", suffix=".bin")
    stored = cache.put("k", b"\x00\x01payload")
    got = cache.get("k")
    assert got is not None and got.data == stored.data == b"\x00\x01payload"
    assert Path(got.path).read_bytes().startswith(b"\x00\x01payload")  # the pinned path reaches the file
    assert got.location == root / "chip" / "k.bin"
    assert sorted(p.name for p in cache.directory.iterdir()) == ["k.bin"]
    assert cache.get("missing") is None
    with pytest.raises(ValueError, match="plain file name"):
        cache.get("../escape")


def test_a_replaced_folder_is_opened_and_checked_again(root: Path) -> None:
    cache = DiskCache("chip")
    cache.put("k", b"x")
    os.rename(root, root.with_name("moved"))
    root.mkdir(mode=0o777)
    os.chmod(root, 0o777)
    with pytest.raises(KernelCacheError, match="writable by group or others"):
        cache.get("k")


def test_eviction_keeps_the_cache_under_its_bound(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_CACHE_MAX_MB", str(40_000 / 2**20))  # 40 kB
    monkeypatch.setattr(kernel_cache, "_TOUCH_NS", 0)  # every hit renews the entry's time (at most once a minute)
    a, b = DiskCache("chip"), DiskCache("other")
    a.put("first", b"\1" * 5000)
    for i in range(20):
        (a if i % 2 else b).put(f"k{i}", bytes([i]) * 5000)
        assert a.get("first") is not None, i  # used all along: it stays
        total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        assert total <= 40_000, (i, total)
    assert a.get("k1") is None and b.get("k0") is None  # the oldest went first, in either folder
    assert a.get("k19") is not None and b.get("k18") is not None


def test_a_hit_renews_the_time_eviction_goes_by_at_most_once_a_minute(root: Path) -> None:
    cache = DiskCache("chip")
    entry = cache.put("k", b"x" * 100)
    fresh = entry.location.stat().st_mtime_ns
    assert cache.get("k") is not None and entry.location.stat().st_mtime_ns == fresh  # recent: no write
    old = time.time_ns() - 120 * 10**9
    os.utime(entry.location, ns=(old, old))
    assert cache.get("k") is not None and entry.location.stat().st_mtime_ns > old + 60 * 10**9


def test_an_entry_larger_than_the_bound_is_kept_until_the_next(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_CACHE_MAX_MB", str(1000 / 2**20))
    cache = DiskCache("chip")
    cache.put("big", b"x" * 5000)
    assert cache.get("big") is not None


def test_a_bad_bound_is_named(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_CACHE_MAX_MB", "0")
    with pytest.raises(KernelCacheError, match="TG_CACHE_MAX_MB=0 must be a positive"):
        DiskCache("chip").put("k", b"x")


def test_usage_and_clear(root: Path) -> None:
    assert usage() == usage(root) and not usage().exists
    DiskCache("chip").put("k1", b"x" * 100)
    DiskCache("chip").put("k2", b"x" * 100)
    DiskCache("other").put("k", b"y")
    found = usage()
    assert found.exists and found.folders["chip"][0] == 2 and found.folders["other"][0] == 1
    assert found.folders["chip"][1] == sum(p.stat().st_size for p in (root / "chip").iterdir())
    with pytest.raises(KernelCacheError, match="no folder for plugin 'nope'"):
        clear("nope")
    assert clear("chip")[0] == 2
    assert usage().folders == {"chip": (0, 0), "other": (1, found.folders["other"][1])}
    assert clear()[0] == 1 and usage().folders == {"chip": (0, 0), "other": (0, 0)}


def test_tg_cache_shows_and_clears(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache"]) == 0
    assert f"kernel cache: {root}" in capsys.readouterr().out
    DiskCache("chip").put("k", b"x" * 3000)
    DiskCache("other").put("k", b"x")
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "bound 512.0 MB" in out and any(line.split()[:2] == ["chip", "1"] for line in out.splitlines())
    assert main(["cache", "clear", "--plugin", "chip"]) == 0
    assert "removed 1 file(s)" in capsys.readouterr().out
    assert not (root / "chip" / "k").exists() and (root / "other" / "k").exists()
    assert main(["cache", "clear"]) == 0 and not (root / "other" / "k").exists()


def test_tg_cache_names_an_unsafe_root(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root.mkdir()
    os.chmod(root, 0o777)
    assert main(["cache", "clear"]) == 1
    assert f"the kernel cache folder {root} is writable by group or others" in capsys.readouterr().err


def test_plugins_find_it_in_the_hook_spec() -> None:
    from tg import hooks

    assert hooks.DiskCache is DiskCache and hooks.KernelCacheError is KernelCacheError
    assert {"DiskCache", "CachedBinary", "KernelCacheError"} <= set(hooks.__all__)
