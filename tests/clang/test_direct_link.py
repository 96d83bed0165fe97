"""Kernels linked by running the linker directly (tg_clang.linking): the learnt command line, its record in the
kernel cache, and the fallbacks to the driver when the line is missing, stale or broken (never a wrong kernel)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest
from clang_helpers import record_commands, triple
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
    return triple(cache, source or SOURCE)


def _commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    return record_commands(monkeypatch)


def _records(root: Path) -> list[Path]:
    return sorted((root / "clang").glob("link-*.link"))


def _record(cache: KernelCache, template: list[str]) -> None:
    """Write ``template`` as the cache's record for its flags (as a probe would)."""
    key = cache.links.key(compiler._compiler_identity(compiler.require_compiler()), cache.flags)
    cache.links.disk.put(key, json.dumps(template).encode())


def test_the_drivers_listing_gives_its_link_command_with_placeholders() -> None:
    cc1 = ' "/usr/lib/llvm-14/bin/clang" "-cc1" "-O2" "-o" "/tmp/x-1.o" "-x" "c" "-"\n'
    link = ' "/usr/bin/ld.gold" "-shared" "-o" "/t/k.so" "/t/crti.o" "/tmp/x-1.o" "-lm"\n'
    listing = "clang version 14\n" + cc1 + "#include <...> search starts here:\n /usr/include\n" + link
    assert linking.parse_driver_output(listing, "/t/k.so") == [
        "/usr/bin/ld.gold", "-shared", "-o", linking.OUTPUT, "/t/crti.o", linking.INPUT, "-lm"]
    assert linking.parse_driver_output("clang: error: invalid linker name\n" + listing, "/t/k.so") is None
    assert linking.parse_driver_output(listing + link, "/t/k.so") is None  # more commands than compile and link
    assert linking.parse_driver_output(listing, "/t/other.so") is None  # the output is not in the line
    assert linking.parse_driver_output(cc1 + link.replace("/tmp/x-1.o", "/tmp/y.o"), "/t/k.so") is None
    assert linking.parse_driver_output(cc1 + ' "ld" "/tmp/x-1.o" "-o" "/t/k.so"\n', "/t/k.so") is None  # no path


def test_the_driver_is_asked_without_building_anything() -> None:
    runs: list[list[str]] = []

    def run(argv: list[str], input: bytes | None = None) -> bytes:
        runs.append(argv)
        return compiler._run(argv, input)

    line = linking.ask_driver(compiler.require_compiler(), compiler.default_flags(), run)
    assert len(runs) == 1 and "-###" in runs[0]
    assert line is not None and line.count(linking.INPUT) == 1 and line.count(linking.OUTPUT) == 1
    assert os.path.isabs(line[0]) and "clang" not in Path(line[0]).name
    assert not os.path.exists("/tg-clang-probe")


def _kinds(seen: list[list[str]]) -> list[str]:
    """What each command was, in a stable order (the driver is asked in a thread of its own): ``ask`` (``-###``),
    ``compile`` (``clang -c``), ``link`` (the linker run directly), ``driver`` (clang linking an object)."""
    kinds = []
    for argv in seen:
        if "-###" in argv:
            kinds.append("ask")
        elif "-c" in argv:
            kinds.append("compile")
        elif "clang" in Path(argv[0]).name:
            kinds.append("driver" if any(a.endswith("kernel.o") for a in argv) else "build")
        else:
            kinds.append("link" if any(a.endswith("kernel.o") for a in argv) else "?")
    return sorted(kinds)


def test_kernels_link_directly_and_the_line_is_recorded(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _commands(monkeypatch)
    cache = KernelCache(cache_dir.parent)
    assert _triple(cache) == 42
    # the first build: compiled to an object while the driver is asked how it links, then linked directly
    assert _kinds(seen) == ["ask", "compile", "link"], seen
    assert len(_records(cache_dir.parent)) == 1
    seen.clear()
    assert _triple(cache, SOURCE.replace("3 *", "3 * 1 *")) == 42
    assert len(seen) == 2 and "-c" in seen[0] and "-###" not in seen[0], seen
    assert "clang" not in Path(seen[1][0]).name and any(a.endswith("kernel.o") for a in seen[1]), seen
    if shutil.which("ld.gold"):
        assert Path(seen[1][0]).name == "ld.gold"
    # another process (a new cache object) reads the record: its first kernel links directly too
    seen.clear()
    assert _triple(KernelCache(cache_dir.parent), SOURCE.replace("3 *", "1 * 3 * 1 *")) == 42
    assert len(seen) == 2 and "clang" not in Path(seen[1][0]).name, seen


def test_prepare_asks_before_the_first_kernel(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _commands(monkeypatch)
    cache = KernelCache(cache_dir.parent)
    cache.prepare()
    assert _triple(cache) == 42
    assert _kinds(seen) == ["ask", "compile", "link"], seen  # asked once, by prepare
    assert len(_records(cache_dir.parent)) == 1


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
    monkeypatch.setattr(linking, "parse_driver_output", lambda text, out: None)
    seen = _commands(monkeypatch)
    cache = KernelCache(cache_dir.parent)
    assert _triple(cache) == 42
    assert _kinds(seen) == ["ask", "compile", "driver"], seen
    assert not _records(cache_dir.parent)
    seen.clear()
    assert _triple(cache, SOURCE.replace("3 *", "3 * 1 *")) == 42
    assert len(seen) == 2 and "-c" in seen[0] and Path(seen[1][0]).name.startswith("clang") and \
        any(a.endswith("kernel.o") for a in seen[1]), seen


def test_a_broken_preferred_linker_builds_the_usual_way(cache_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # the driver is asked for the preferred linker; where that linker fails, the kernel is still built (the driver
    # links it with its own linker), and a compile error still reads as one
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    broken = bin_dir / "ld.tgbroken"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(linking, "PREFERRED_LINKERS", ("tgbroken",))
    seen = _commands(monkeypatch)
    cache = KernelCache(cache_dir.parent)
    assert _triple(cache) == 42
    assert _kinds(seen) == ["ask", "compile", "driver", "link"], seen
    assert any("-fuse-ld=tgbroken" in argv for argv in seen if "-###" in argv), seen
    assert any(Path(argv[0]).name == "ld.tgbroken" for argv in seen), seen
    assert not _records(cache_dir.parent)
    seen.clear()  # the next kernel does not try it again: clang -c, then the driver links the object
    assert _triple(cache, SOURCE.replace("3 *", "3 * 1 *")) == 42
    assert len(seen) == 2 and "-c" in seen[0] and not any("-fuse-ld=tgbroken" in argv for argv in seen), seen
    with pytest.raises(compiler.CompileError, match="undeclared"):
        KernelCache(cache_dir.parent).load("int tg_bad(void) { return tg_nothing; }\n", "tg_bad")


def test_a_pool_still_building_from_an_earlier_launch_is_not_counted(cache_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A large launch starts the native pool's build in a thread that outlives it; a test counting the compiler's
    commands right after must not see that build's (it once read an extra link in CI)."""
    from tg_clang import pool

    monkeypatch.setattr(pool, "_loaded", [])  # as in a process that has not built it yet, into this empty cache
    monkeypatch.setattr(pool, "_building", None)
    pool.build_in_background()
    seen = _commands(monkeypatch)
    assert seen == [] and pool._loaded, seen  # the build had ended before the spy was installed


def test_a_pool_build_from_an_earlier_test_writes_nothing_into_this_ones_cache(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache_dir fixture waits for a native pool build still running before it points TG_CACHE_DIR at a new
    folder (the build makes its kernel cache when it runs, from TG_CACHE_DIR at that moment)."""
    import threading

    from conftest import cache_dir as fixture
    from tg_clang import pool

    release = threading.Event()
    monkeypatch.setattr(pool, "_loaded", [])
    monkeypatch.setattr(pool, "_building", None)
    monkeypatch.setattr(pool, "native_pool", lambda wait=True: (release.wait(10), pool._load())[1])
    monkeypatch.setenv("TG_CACHE_DIR", str(tmp_path / "earlier"))
    pool.build_in_background()  # held until released: a build that an earlier test's launch started
    threading.Timer(0.2, release.set).start()
    folder = next(fixture.__wrapped__(tmp_path / "this", monkeypatch))  # type: ignore[attr-defined]
    assert not pool._building.is_alive()  # type: ignore[union-attr]
    assert not list(folder.parent.rglob("*.link")), "the pool's build wrote into this test's cache"
