"""The compiler started before the first kernel exists (tg_clang.prestart): the first kernel takes it, a compile
error still reads as one, a compiler that is gone means the usual compile, and one nobody took ends at exit."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from clang_helpers import record_commands, triple
from tg_clang import compiler, linking
from tg_clang.compiler import KernelCache
from tg_clang.prestart import Prestarted

SOURCE = "int tg_triple(int x) { return 3 * x; }\n"


@pytest.fixture(autouse=True)
def _unique_sources(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's kernels are new to the process (dlopen hands back a library already loaded from that path), and
    each test may start a compiler ahead (a process starts one at most)."""
    from tg_clang import prestart

    monkeypatch.setattr(sys.modules[__name__], "SOURCE", f"/* {request.node.name} */\n{SOURCE}")
    monkeypatch.setattr(prestart, "_started", [])


def _triple(cache: KernelCache, source: str | None = None) -> int:
    return triple(cache, source or SOURCE)


def _commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    return record_commands(monkeypatch)


def _options() -> list[str]:
    return linking.split_flags(compiler.default_flags())[0]


def test_the_first_kernel_takes_the_prestarted_compiler(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _commands(monkeypatch)
    cache = KernelCache(cache_dir.parent)
    cache.prepare()
    pre = cache._prestarted
    assert pre is not None
    assert _triple(cache) == 42
    compiles = [argv for argv in seen if "-c" in argv and "-###" not in argv]
    assert len(compiles) == 1 and compiles[0] == pre.argv, seen  # no second compile: the prestarted one did it
    assert not pre.folder.exists()
    seen.clear()
    assert _triple(cache, SOURCE.replace("3 *", "3 * 1 *")) == 42  # the next kernel: the usual clang -c
    assert [argv for argv in seen if "-c" in argv and "-###" not in argv][0][-3] == "-"


def test_a_process_starts_one_and_a_cache_dropped_unused_releases_it(cache_dir: Path) -> None:
    import gc

    first, second = KernelCache(cache_dir.parent), KernelCache(cache_dir.parent)
    first.prepare()
    second.prepare()
    pre = first._prestarted
    assert pre is not None and second._prestarted is None
    del first
    gc.collect()
    pre._thread.join(30)
    assert not pre._thread.is_alive() and not pre.folder.exists()  # ended: its helper is free again
    assert _triple(second) == 42


def test_a_compile_error_reads_as_one(cache_dir: Path) -> None:
    cache = KernelCache(cache_dir.parent)
    cache.prepare()
    with pytest.raises(compiler.CompileError, match="undeclared"):
        cache.load("int tg_bad(void) { return tg_nothing; }\n", "tg_bad")
    assert cache._prestarted is not None and not cache._prestarted.folder.exists()


def test_a_compiler_that_is_gone_means_the_usual_compile(cache_dir: Path) -> None:
    def gone(argv: list[str], input: bytes | None = None) -> bytes:
        raise ChildProcessError("the early exec helper died")

    cache = KernelCache(cache_dir.parent)
    cache._prestarted = Prestarted(compiler.require_compiler(), _options(), gone)
    assert _triple(cache) == 42


def test_a_compiler_that_dies_while_reading_means_the_usual_compile(cache_dir: Path) -> None:
    # a "compiler" that opens the pipe, reads a little and exits with success, writing no object file
    def reads_and_quits(argv: list[str], input: bytes | None = None) -> bytes:
        return subprocess.run(["/bin/sh", "-c", 'head -c 10 "$0" > /dev/null', argv[-3]], check=True).stdout or b""

    cache = KernelCache(cache_dir.parent)
    cache._prestarted = Prestarted(compiler.require_compiler(), _options(), reads_and_quits)
    assert _triple(cache, "/*" + "x" * 300_000 + "*/\n" + SOURCE) == 42


def test_taken_once_and_only_for_its_compiler_and_options() -> None:
    def idle(argv: list[str], input: bytes | None = None) -> bytes:
        return b""

    pre = Prestarted("/usr/bin/clang", ["-O2"], idle)
    try:
        assert not pre.take("/usr/bin/clang", ["-O1"])
        assert not pre.take("/usr/bin/cc", ["-O2"])
        assert pre.take("/usr/bin/clang", ["-O2"])
        assert not pre.take("/usr/bin/clang", ["-O2"])
    finally:
        pre.release()
    assert not pre.folder.exists()


def test_one_nobody_took_ends_at_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    from tg_clang import prestart

    monkeypatch.setattr(prestart, "RELEASE_WAIT_S", 30.0)  # (a loaded machine may take a while to start clang)
    pre = Prestarted(compiler.require_compiler(), _options(), compiler._run)
    pre.release()  # what the exit does: an empty file once the compiler reads the pipe, so that it ends
    assert not pre._thread.is_alive()
    assert pre.error is None and not pre.folder.exists()


def test_one_that_has_not_opened_its_pipe_by_the_exit_ends_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from tg_clang import prestart

    started = threading.Event()

    def late(argv: list[str], input: bytes | None = None) -> bytes:
        started.wait(10)  # the compiler starts only after the exit gave up waiting for it
        return compiler._run(argv, input)

    monkeypatch.setattr(prestart, "RELEASE_WAIT_S", 0.01)
    pre = Prestarted(compiler.require_compiler(), _options(), late)
    pre.release()
    started.set()
    pre._thread.join(30)
    assert not pre._thread.is_alive()  # the pipe is gone: the compiler fails at once instead of waiting on it
    assert isinstance(pre.error, subprocess.CalledProcessError)
