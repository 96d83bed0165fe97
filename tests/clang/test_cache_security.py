"""tg-clang on core's kernel cache: a planted shared object never runs, a bad entry (overwritten code, another
kernel's, a FIFO, a folder) is rebuilt and the right answer comes out, an unusable cache path is named."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from clang_helpers import fill_kernel, run_fill
from tg.hooks import KernelCacheError
from tg.support.errors import KernelCacheWarning
from tg_clang.compiler import KernelCache
from tg_clang.runtime import ClangRuntime

HERE = Path(__file__).parent


def _planted_library(tmp_path: Path, marker: Path) -> bytes:
    """A shared object whose constructor creates ``marker``: the code an attacker would plant."""
    source = tmp_path / "evil.c"
    source.write_text(textwrap.dedent(f"""
        #include <stdio.h>
        __attribute__((constructor)) static void planted(void) {{
            FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("ran", f); fclose(f); }}
        }}
        void fill(void) {{}}
    """))
    library = tmp_path / "evil.so"
    subprocess.run(["clang", "-shared", "-fPIC", "-o", str(library), str(source)], check=True, timeout=120)
    return library.read_bytes()


def _child(script: str, cache_root: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh process (one that never mapped the entries this test damages)."""
    env = {**os.environ, "TG_CACHE_DIR": str(cache_root),
           "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout)


def _fill_in_child(cache_root: Path, *values: float) -> None:
    script = ("from clang_helpers import fill_kernel, run_fill; from tg_clang.runtime import ClangRuntime\n"
              f"for v in {values!r}: run_fill(ClangRuntime(), fill_kernel(v))")
    proc = _child(script, cache_root)
    assert proc.returncode == 0, proc.stderr


def _expect(value: float) -> np.ndarray:
    return np.arange(64, dtype=np.float32) + value


@pytest.mark.parametrize("unsafe", ["group-writable", "world-writable", "foreign"])
def test_a_planted_library_in_an_unsafe_folder_never_runs(cache_dir: Path, tmp_path: Path, unsafe: str) -> None:
    if unsafe == "foreign" and os.geteuid() != 0:
        pytest.skip("giving the folder to another user needs root")
    marker = tmp_path / "planted-code-ran"
    cache_dir.mkdir(mode=0o700)
    program = fill_kernel(1.5)
    (KernelCache().path_for(program.source)).write_bytes(_planted_library(tmp_path, marker))
    if unsafe == "foreign":
        os.chown(cache_dir, 65534, -1)
    else:
        os.chmod(cache_dir, 0o770 if unsafe == "group-writable" else 0o777)
    with pytest.raises(KernelCacheError, match=rf"{cache_dir} is (owned by uid 65534|writable by group or others)"
                                               r".*Fix: "):
        ClangRuntime().compile(program)
    assert not marker.exists(), "the planted constructor ran"


def test_a_library_without_tgs_record_is_rebuilt_not_loaded(cache_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "planted-code-ran"
    program = fill_kernel(2.5)
    cache_dir.mkdir(mode=0o700)
    KernelCache().path_for(program.source).write_bytes(_planted_library(tmp_path, marker))
    runtime = ClangRuntime()
    with pytest.warns(KernelCacheWarning, match="has no build record"):
        np.testing.assert_array_equal(run_fill(runtime, program), _expect(2.5))
    assert not marker.exists(), "the planted constructor ran"
    assert runtime.cache.misses == 1 and runtime.cache.hits == 0


def test_another_kernels_library_under_this_key_is_rebuilt(cache_dir: Path) -> None:
    _fill_in_child(cache_dir.parent, 10.0, 20.0)
    ten, twenty = (KernelCache().path_for(fill_kernel(v).source) for v in (10.0, 20.0))
    twenty.write_bytes(ten.read_bytes())  # a valid .so of the other kernel, record and all
    runtime = ClangRuntime()
    with pytest.warns(KernelCacheWarning, match="holds the kernel of another key"):
        np.testing.assert_array_equal(run_fill(runtime, fill_kernel(20.0)), _expect(20.0))
    assert runtime.cache.misses == 1


def test_overwritten_code_is_rebuilt_instead_of_crashing(cache_dir: Path) -> None:
    """Every byte of the code replaced by int3 (SIGTRAP if it ran) in a still well-formed ELF file."""
    _fill_in_child(cache_dir.parent, 4.0)
    entry = KernelCache().path_for(fill_kernel(4.0).source)
    text = subprocess.run(["readelf", "-SW", str(entry)], capture_output=True, text=True).stdout
    line = next((ln for ln in text.splitlines() if " .text " in ln), None)
    raw = bytearray(entry.read_bytes())
    if line is not None:
        fields = line.split("]", 1)[1].split()
        offset, size = int(fields[3], 16), int(fields[4], 16)
    else:  # no readelf: overwrite the middle, still inside the image
        offset, size = len(raw) // 3, 64
    raw[offset:offset + size] = b"\xcc" * size
    entry.write_bytes(bytes(raw))
    script = ("import warnings, numpy as np; from clang_helpers import fill_kernel, run_fill\n"
              "from tg_clang.runtime import ClangRuntime\n"
              "with warnings.catch_warnings(record=True) as w:\n"
              "    warnings.simplefilter('always'); r = ClangRuntime(); out = run_fill(r, fill_kernel(4.0))\n"
              "assert (out == np.arange(64, dtype=np.float32) + 4.0).all(), out\n"
              "print(r.cache.misses, [str(x.message) for x in w])")
    proc = _child(script, cache_dir.parent)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    assert proc.stdout.startswith("1 ") and "does not match the digest recorded when it was built" in proc.stdout


def test_a_fifo_entry_neither_hangs_nor_fails(cache_dir: Path) -> None:
    cache_dir.mkdir(mode=0o700)
    os.mkfifo(KernelCache().path_for(fill_kernel(6.0).source))
    script = ("import numpy as np; from clang_helpers import fill_kernel, run_fill\n"
              "from tg_clang.runtime import ClangRuntime\n"
              "assert (run_fill(ClangRuntime(), fill_kernel(6.0)) == np.arange(64, dtype=np.float32) + 6.0).all()\n"
              "print('ok')")
    try:
        proc = _child(script, cache_dir.parent, timeout=90)  # a compile takes well under a second
    except subprocess.TimeoutExpired:
        pytest.fail("a FIFO in the cache hung the run")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert "is a FIFO, not a regular file" in proc.stderr


def test_a_folder_entry_is_rebuilt(cache_dir: Path) -> None:
    program = fill_kernel(7.0)
    entry = KernelCache().path_for(program.source)
    (entry / "junk").mkdir(parents=True)
    runtime = ClangRuntime()
    with pytest.warns(KernelCacheWarning, match="is a folder"):
        np.testing.assert_array_equal(run_fill(runtime, program), _expect(7.0))
    assert entry.is_file()


def test_a_cache_path_that_is_a_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cache-file"
    path.write_text("")
    monkeypatch.setenv("TG_CACHE_DIR", str(path))
    with pytest.raises(KernelCacheError, match=rf"{path} is not a folder.*Fix: "):
        ClangRuntime().compile(fill_kernel(8.0))


def test_entries_are_private_and_the_cache_stays_bounded(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = ClangRuntime()
    run_fill(runtime, fill_kernel(0.0))
    (entry,) = cache_dir.glob("*.so")
    assert oct(cache_dir.stat().st_mode & 0o777) == "0o700" and oct(entry.stat().st_mode & 0o777) == "0o600"
    bound = 3.5 * entry.stat().st_size
    monkeypatch.setenv("TG_CACHE_MAX_MB", str(bound / 2**20))
    for v in range(1, 8):
        np.testing.assert_array_equal(run_fill(runtime, fill_kernel(float(v))), _expect(float(v)))
        assert sum(p.stat().st_size for p in cache_dir.iterdir()) <= bound
    assert 1 <= len(list(cache_dir.glob("*.so"))) <= 3
