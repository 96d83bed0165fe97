"""The compiler and its disk cache: missing compiler, cache hits, corrupt entries, concurrent processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))  # tests/ is no package; import _timeouts in any import mode
from _timeouts import process_gone  # noqa: E402
from clang_helpers import fill_kernel, run_fill  # noqa: E402
from tg.codegen.program import Program  # noqa: E402
from tg.support.errors import KernelCacheWarning  # noqa: E402
from tg_clang.compiler import CompilerNotFoundError  # noqa: E402
from tg_clang.compiler import cache_dir as default_cache_dir  # noqa: E402
from tg_clang.runtime import ClangRuntime  # noqa: E402


def test_missing_compiler_is_named_with_its_package(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    monkeypatch.setenv("TG_CC", "/nonexistent/cc")
    runtime = ClangRuntime()
    availability = runtime.available()
    assert not availability
    assert "/nonexistent/cc" in availability.reason and "apt-get install clang" in availability.remedy
    with pytest.raises(CompilerNotFoundError, match=r"/nonexistent/cc.*apt-get install clang"):
        runtime.compile(fill_kernel(1.0))


def test_selecting_clang_without_a_compiler_fails_loudly(tmp_path: Path) -> None:
    env = {**os.environ, "TG_CC": "/nonexistent/cc", "TG_BACKEND": "clang", "TG_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", "from tg import Tensor; Tensor([1.0]).numpy()"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "/nonexistent/cc" in proc.stderr and "apt-get install clang" in proc.stderr


def test_cache_dir_follows_tg_cache_dir(cache_dir: Path) -> None:
    assert default_cache_dir() == cache_dir


def test_second_load_is_a_fast_cache_hit(cache_dir: Path) -> None:
    source = fill_kernel(2.5)
    first = ClangRuntime()
    start = time.perf_counter()
    np.testing.assert_array_equal(run_fill(first, source), np.arange(64, dtype=np.float32) + 2.5)
    compile_seconds = time.perf_counter() - start
    assert first.cache.misses == 1 and first.cache.hits == 0
    assert len(list(cache_dir.glob("*.so"))) == 1
    second = ClangRuntime()  # a new runtime has no in-memory programs: it must come from the disk
    start = time.perf_counter()
    program = second.compile(source)
    load_seconds = time.perf_counter() - start
    assert program.cached and second.cache.hits == 1 and second.cache.misses == 0
    assert load_seconds < 0.05, f"cached load took {load_seconds * 1e3:.1f} ms (compile {compile_seconds:.2f} s)"


def _compile_in_child(value: float) -> None:
    """Fill the cache from another process (this one must not map a file the test then damages)."""
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = ("import sys; from clang_helpers import fill_kernel, run_fill; from tg_clang.runtime import ClangRuntime; "
              "run_fill(ClangRuntime(), fill_kernel(float(sys.argv[1])))")
    subprocess.run([sys.executable, "-c", script, repr(value)], env=env, check=True, timeout=120)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupt_cache_entry_is_rebuilt(cache_dir: Path, damage: str) -> None:
    value = 3.0 + len(damage)
    source = fill_kernel(value)
    _compile_in_child(value)
    (entry,) = cache_dir.glob("*.so")
    data = entry.read_bytes()
    bad = {"truncated": data[: len(data) // 3], "garbage": b"not an ELF file at all", "empty": b""}[damage]
    entry.write_bytes(bad)
    runtime = ClangRuntime()
    with pytest.warns(KernelCacheWarning, match="has no build record"):
        np.testing.assert_array_equal(run_fill(runtime, source), np.arange(64, dtype=np.float32) + value)
    assert runtime.cache.misses == 1 and runtime.cache.hits == 0
    assert entry.stat().st_size == len(data)


def test_concurrent_compiles_of_one_kernel_from_two_processes(cache_dir: Path) -> None:
    script = textwrap.dedent("""
        import sys, time
        import numpy as np
        from clang_helpers import fill_kernel, run_fill
        from tg_clang.runtime import ClangRuntime
        source = fill_kernel(float(sys.argv[1]), n=4096)
        while time.time() < float(sys.argv[2]):  # start together
            time.sleep(0.001)
        for _ in range(3):
            out = run_fill(ClangRuntime(), source, n=4096)
            assert (out == np.arange(4096, dtype=np.float32) + float(sys.argv[1])).all()
        print("ok")
    """)
    value, start_at = repr(time.time() % 1000), repr(time.time() + 2.0)
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-c", script, value, start_at], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    assert len(list(cache_dir.glob("*.so"))) == 1
    assert not list(cache_dir.glob("*.tmp")), "a temporary file was left behind"


def test_compile_errors_carry_the_diagnostics(cache_dir: Path) -> None:
    from tg_clang.compiler import CompileError

    bad = Program("bad", "void bad(int32_t start) { oops; }\n", (), (1,), (1,))
    with pytest.raises(CompileError, match="oops"):
        ClangRuntime().compile(bad)
    assert not list(cache_dir.glob("*.so"))


def _hung_tool(folder: Path, name: str, pids: Path) -> Path:
    """An executable ``folder/name`` that starts a child, writes both pids into ``pids`` and never finishes."""
    tool = folder / name
    tool.write_text(f"#!{sys.executable}\n"
                    "import os, subprocess, sys, time\n"
                    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                    f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
                    "time.sleep(60)\n")
    tool.chmod(0o755)
    return tool


def test_a_hung_compiler_times_out_with_its_group(cache_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tg.support.early_exec import EarlyExecTimeout

    pids = tmp_path / "pids"
    monkeypatch.setenv("TG_CC", str(_hung_tool(tmp_path, "hung-cc", pids)))
    monkeypatch.setenv("TG_EXEC_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(EarlyExecTimeout) as info:
        ClangRuntime().compile(fill_kernel(3.0))
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert "hung-cc" in message and "within 1 s" in message and "TG_EXEC_TIMEOUT" in message, message
    compiler, child = (int(p) for p in pids.read_text().split())
    assert process_gone(compiler) and process_gone(child), "the compiler or its child outlived the timeout"
    assert not list(cache_dir.glob("*")), "a timed-out compile left a file in the cache"
