"""Kernels linked by running the linker directly (tg_clang.linking): the learnt command line, its record in the
kernel cache, and the fallbacks to the driver when the line is missing, stale or broken (never a wrong kernel)."""

from __future__ import annotations

import ctypes
import json
import shutil
import sys
import warnings
from pathlib import Path

import pytest
from tg.support.errors import KernelCacheWarning
from tg_clang import compiler, linking
from tg_clang.compiler import KernelCache

SOURCE = "int tg_triple(int x) { return 3 * x; }\n"


@pytest.fixture(autouse=True)
def _unique_sources(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's kernels are new to the process: a library is loaded by its path in the cache, which an earlier
    test's identical kernel may have had (``/proc/self/fd/N/KEY.so``), and dlopen would hand that one back."""
    monkeypatch.setattr(sys.modules[__name__], "SOURCE", f"/* {request.node.name} */\n{SOURCE}")


def _triple(cache: KernelCache, source: str | None = None) -> int:
    lib, _ = cache.load(source or SOURCE, "tg_triple")
    fn = lib.tg_triple
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return int(fn(14))


def _commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record every command the compiler module runs."""
    seen: list[list[str]] = []
    original = compiler._run

    def spy(argv: list[str], input: bytes | None = None) -> bytes:
        seen.append(list(argv))
        return original(argv, input)

    monkeypatch.setattr(compiler, "_run", spy)
    return seen


def _records(root: Path) -> list[Path]:
    return sorted((root / "clang").glob("link-*.link"))


def _record(cache: KernelCache, template: list[str]) -> None:
    """Write ``template`` as the cache's record for its flags (as a probe would)."""
    key = cache.links.key(compiler._compiler_identity(compiler.require_compiler()), cache.flags)
    cache.links.disk.put(key, json.dumps(template).encode())


def test_a_listing_gives_its_one_command_with_placeholders() -> None:
    listing = ('clang version 14\n "/usr/bin/ld.gold" "-shared" "-o" "/t/p.so" "/t/crti.o" "/t/p.o" "-lm"\n')
    assert linking.parse_driver_output(listing, "/t/p.o", "/t/p.so") == [
        "/usr/bin/ld.gold", "-shared", "-o", linking.OUTPUT, "/t/crti.o", linking.INPUT, "-lm"]
    # clang -### exits 0 even when it reports an error, and then prints a line without the option it rejected
    assert linking.parse_driver_output("clang: error: invalid linker name\n" + listing, "/t/p.o", "/t/p.so") is None
    assert linking.parse_driver_output(listing + listing, "/t/p.o", "/t/p.so") is None  # two jobs: not just a link
    assert linking.parse_driver_output(listing, "/t/q.o", "/t/p.so") is None  # the object is missing from the line
    assert linking.parse_driver_output(' "ld" "/t/p.o" "-o" "/t/p.so"\n', "/t/p.o", "/t/p.so") is None  # no path


def test_kernels_link_directly_and_the_line_is_recorded(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _commands(monkeypatch)
    cache = KernelCache(cache_dir.parent)
    assert _triple(cache) == 42
    links = [argv for argv in seen if not argv[0].endswith("sh") and "-c" not in argv and "-shared" in argv]
    assert links and all("clang" not in Path(argv[0]).name for argv in links), seen  # the linker itself ran
    if shutil.which("ld.gold"):
        assert any(Path(argv[0]).name == "ld.gold" for argv in links)
    assert len(_records(cache_dir.parent)) == 1
    # another process (a new cache object) reads the record instead of asking the driver again
    seen.clear()
    assert _triple(KernelCache(cache_dir.parent), SOURCE.replace("3 *", "3 * 1 *")) == 42
    assert not any("-###" in " ".join(argv) for argv in seen), seen


def test_other_flags_learn_their_own_line(cache_dir: Path) -> None:
    KernelCache(cache_dir.parent).load(SOURCE, "tg_triple")
    KernelCache(cache_dir.parent, flags=(*compiler.default_flags(), "-pthread")).load(SOURCE, "tg_triple")
    assert len(_records(cache_dir.parent)) == 2


def test_switched_off_the_driver_links(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_CLANG_DIRECT_LINK", "0")
    seen = _commands(monkeypatch)
    assert _triple(KernelCache(cache_dir.parent)) == 42
    assert len(seen) == 1 and "-shared" in seen[0] and Path(seen[0][0]).name.startswith("clang")
    assert not _records(cache_dir.parent)


def test_a_failing_line_falls_back_to_the_driver_and_is_forgotten(cache_dir: Path) -> None:
    cache = KernelCache(cache_dir.parent)
    false = shutil.which("false")
    assert false is not None
    _record(cache, [false, linking.INPUT, "-o", linking.OUTPUT])
    with pytest.warns(KernelCacheWarning, match="linked a kernel that failed"):
        assert _triple(cache) == 42
    assert not _records(cache_dir.parent)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _triple(cache, SOURCE.replace("3 *", "1 * 3 *")) == 42  # the driver from now on, quietly


def test_a_line_that_links_garbage_never_gives_a_wrong_kernel(cache_dir: Path) -> None:
    # a "linker" that exits 0 after writing a shared object of another function (returning x + 1): the library
    # loads but lacks the kernel's symbol, so the kernel is rebuilt by the driver
    other = cache_dir.parent / "other.so"
    KernelCache(cache_dir.parent / "elsewhere").load("int tg_other(int x) { return x + 1; }\n", "tg_other")
    built = next((cache_dir.parent / "elsewhere" / "clang").glob("*.so"))
    other.write_bytes(built.read_bytes())
    cache = KernelCache(cache_dir.parent)
    _record(cache, ["/bin/sh", "-c", 'cp "$1" "$2"', "sh", str(other), linking.OUTPUT, linking.INPUT])
    with pytest.warns(KernelCacheWarning):
        assert _triple(cache) == 42
    # a truncated ELF file is caught too (before dlopen, which would crash on it)
    other.write_bytes(built.read_bytes()[:200])
    _record(cache, ["/bin/sh", "-c", 'cp "$1" "$2"', "sh", str(other), linking.OUTPUT, linking.INPUT])
    with pytest.warns(KernelCacheWarning):
        assert _triple(KernelCache(cache_dir.parent), SOURCE.replace("3 *", "1 * 3 *")) == 42


def test_a_stale_or_damaged_record_is_learnt_again(cache_dir: Path) -> None:
    cache = KernelCache(cache_dir.parent)
    _record(cache, ["/nonexistent/ld.gold", linking.INPUT, "-o", linking.OUTPUT])  # an upgrade removed it
    with pytest.warns(KernelCacheWarning, match="not a usable linker command line"):
        assert _triple(cache) == 42
    record = _records(cache_dir.parent)
    assert len(record) == 1 and "/nonexistent" not in record[0].read_text(errors="replace")
    _record(cache, ["no placeholders"])
    with pytest.warns(KernelCacheWarning, match="not a usable linker command line"):
        assert _triple(KernelCache(cache_dir.parent), SOURCE.replace("3 *", "1 * 3 *")) == 42


def test_no_usable_answer_from_the_driver_links_with_the_driver(cache_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linking, "parse_driver_output", lambda text, obj, out: None)
    seen = _commands(monkeypatch)
    assert _triple(KernelCache(cache_dir.parent)) == 42
    assert not _records(cache_dir.parent)
    assert any("-c" in argv for argv in seen) and any(argv[-2:] != ["-o", "x"] and "-shared" in argv and
                                                      any(a.endswith("kernel.o") for a in argv) for argv in seen)
