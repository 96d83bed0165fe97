"""Kernels built together: tg-clang's compile_many compiles the new kernels of a schedule as a few C files (the part
they share once, then each kernel's own functions), a few files at once; each kernel is cached under its own key,
referring to the shared library; a name two of them share, or a file the compiler rejects, falls back to one by
one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from clang_helpers import fill_kernel
from tg.codegen.program import Program
from tg_clang import batch, compiler
from tg_clang.cfile import OWN_CODE, file_start
from tg_clang.runtime import ClangRuntime


def _file(name: str, width: int = 0, size: int = 1) -> tuple[str, str]:
    """A kernel file (and its name) whose shared part depends only on ``width``, its own part ``size`` lines long."""
    typedefs = [f"typedef float tg_float_v __attribute__((ext_vector_type({width})));"] if width else []
    own = [f"void {name}(void) {{ /* {i} */ }}" for i in range(size)]
    return "\n".join([*file_start(name, 1, 1, "scalar", typedefs), *own]), name


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources each compile (one clang run) is given, from now on."""
    sources: list[str] = []
    lock = threading.Lock()
    real = compiler.KernelCache._build

    def build(self: compiler.KernelCache, source: str, *args: object, **kwargs: object) -> object:
        with lock:
            sources.append(source)
        return real(self, source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(compiler.KernelCache, "_build", build)
    return sources


def _run(rt: ClangRuntime, program: Program, binary: object, n: int = 64) -> np.ndarray:
    buf = rt.alloc(4 * n)
    rt.launch(program, binary, [buf], {})
    out = np.empty(n, np.float32)
    rt.copyout(out.data.cast("B"), buf)
    return out


def test_plan_groups_kernels_of_one_shared_part_with_distinct_names() -> None:
    files = [_file("a"), _file("b"), _file("c", width=16), _file("d", width=16), _file("a", size=3),
             ("/* not a kernel file */", "e")]
    groups = batch.plan(files, jobs=1)
    assert sorted(map(sorted, groups)) == [[0], [1, 4], [2, 3], [5]]  # the second 'a' joins the other batch
    assert batch.plan(files[:4], jobs=1) == [[0, 1], [2, 3]] or batch.plan(files[:4], jobs=1) == [[2, 3], [0, 1]]


def test_plan_makes_as_many_batches_as_builds_run_at_once_and_at_most_batch_max_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    files = [_file(f"k{i}", size=1 + i % 3) for i in range(8)]
    groups = batch.plan(files, jobs=2)
    assert len(groups) == 2 and sorted(i for g in groups for i in g) == list(range(8))
    sizes = [sum(len(files[i][0]) for i in g) for g in groups]
    assert max(sizes) - min(sizes) <= max(len(f[0]) for f in files)  # balanced by the length of their code
    mixed = [_file(f"m{i}", width=4 << i % 3) for i in range(17)]  # three kinds: 6, 6 and 5 kernels
    assert len(batch.plan(mixed, jobs=4)) == 4 and len(batch.plan(mixed[:2], jobs=4)) == 2
    monkeypatch.setattr(batch, "BATCH_MAX", 3)
    assert sorted(len(g) for g in batch.plan(files, jobs=1)) == [2, 3, 3]


def test_merge_takes_one_shared_part_once() -> None:
    merged = batch.merge([_file("a")[0], _file("b")[0]], ["a", "b"])
    assert merged.count(OWN_CODE) == 1 and merged.count("#include <stdint.h>") == 1
    assert "void a(void)" in merged and "void b(void)" in merged and merged.startswith("/* tg-clang: 2 kernels")
    with pytest.raises(ValueError, match="same shared part"):
        batch.merge([_file("a")[0], _file("b", width=8)[0]], ["a", "b"])


def test_a_schedules_kernels_compile_as_one_file_and_run_as_when_built_alone(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_EXEC_JOBS", "1")
    sources = _counting(monkeypatch)
    programs = [fill_kernel(float(v), name=f"fill_{v}") for v in range(3)]
    rt = ClangRuntime()
    binaries = rt.compile_many(programs)
    assert len(sources) == 1 and rt.cache.misses == 3  # one clang run for the three
    for v, (program, binary) in enumerate(zip(programs, binaries)):
        np.testing.assert_array_equal(_run(rt, program, binary), np.arange(64, dtype=np.float32) + v)
    # stored once: three small references and one library; a new process loads each kernel from it
    sizes = sorted(f.stat().st_size for f in cache_dir.glob("*.so"))
    assert len(sizes) == 4 and sizes[2] < 1024 < sizes[3]
    again = ClangRuntime()
    for program in programs:
        again.compile(program)
    assert again.cache.hits == 3 and len(sources) == 1
    np.testing.assert_array_equal(_run(again, programs[2], again.compile(programs[2])), np.arange(64) + 2.0)
    # the library evicted (the cache's size bound): a kernel whose entry refers to it is compiled again, alone
    for f in cache_dir.glob("*.so"):
        if f.stat().st_size > 1024:
            f.unlink()
    third = ClangRuntime()
    np.testing.assert_array_equal(_run(third, programs[1], third.compile(programs[1])), np.arange(64) + 1.0)
    assert third.cache.misses == 1 and len(sources) == 2 and "fill_0" not in sources[-1]


def test_two_builds_run_at_once_where_two_jobs_are_allowed(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_EXEC_JOBS", "2")
    sources = _counting(monkeypatch)
    programs = [fill_kernel(float(v), name=f"fill_{v}") for v in range(4)]
    ClangRuntime().compile_many(programs)
    assert len(sources) == 2 and all(s.startswith("/* tg-clang: 2 kernels built together") for s in sources)


def test_a_shared_name_and_a_rejected_file_fall_back_to_one_by_one(cache_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_EXEC_JOBS", "1")
    sources = _counting(monkeypatch)
    same = [fill_kernel(1.0, name="fill"), fill_kernel(2.0, name="fill")]
    rt = ClangRuntime()
    first, second = rt.compile_many(same)
    assert len(sources) == 2 and first.library._name != second.library._name
    assert _run(rt, same[1], second)[0] == 2.0
    good, bad = fill_kernel(3.0, name="fill_good"), fill_kernel(4.0, name="fill_bad")
    bad = replace(bad, source=bad.source.replace("void fill_bad(", "void fill_bad(no_such_type x, "))
    with pytest.raises(compiler.CompileError, match="no_such_type") as failed:
        rt.compile_many([good, bad])
    assert "fill_bad" in str(failed.value) and "fill_good" not in str(failed.value)  # compiled alone
    assert _run(rt, good, rt.compile(good))[0] == 3.0


def test_a_file_past_its_time_limit_is_compiled_again_kernel_by_kernel(cache_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_EXEC_JOBS", "1")
    sources = _counting(monkeypatch)
    real = compiler._compile

    def slow_when_merged(argv: list[str], source: str, name: str) -> None:
        if source.startswith("/* tg-clang: "):
            raise subprocess.TimeoutExpired(argv, 120)
        real(argv, source, name)

    monkeypatch.setattr(compiler, "_compile", slow_when_merged)
    monkeypatch.setenv("TG_CLANG_DIRECT_LINK", "0")
    programs = [fill_kernel(float(v), name=f"fill_{v}") for v in range(2)]
    rt = ClangRuntime()
    binaries = rt.compile_many(programs)
    assert len(sources) == 3 and rt.cache.misses == 2  # the file, then each kernel alone
    assert _run(rt, programs[1], binaries[1])[0] == 1.0


_VECTOR_KERNELS = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from clang_helpers import new_kernels
from tg import Tensor
from tg_clang import batch
x = np.arange(32, dtype=np.float32)
made = new_kernels(lambda: np.testing.assert_array_equal((Tensor(x) * 2 + 1).numpy(), x * 2 + 1))
print(json.dumps([batch.split(source) for _, _, source in made]))
"""


def test_the_scalar_renderers_vector_types_go_with_the_kernels_own_code(cache_dir: Path) -> None:
    # per-thread float4 vectors, rendered one thread at a time (the emitter reads these when the plugin loads)
    env = {**os.environ, "TG_BACKEND": "clang", "TG_PLUGINS": "clang", "TG_CLANG_VECTOR_WIDTH": "4",
           "TG_CLANG_SPMD": "0"}
    out = subprocess.run([sys.executable, "-c", _VECTOR_KERNELS, str(Path(__file__).parent)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    parts = json.loads(out.stdout.strip().splitlines()[-1])
    assert parts and all(p is not None and "ext_vector_type" not in p[0] for p in parts)
    assert any("ext_vector_type(4)" in p[1] for p in parts)


def test_a_failed_schedule_leaves_no_library_of_its_other_kernels_mapped(cache_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_EXEC_JOBS", "2")
    good = [fill_kernel(float(v), name=f"mapped_{v}") for v in range(4)]
    bad = fill_kernel(9.0, name="mapped_bad")
    bad = replace(bad, source=bad.source.replace("void mapped_bad(", "void mapped_bad(no_such_type x, "))
    with pytest.raises(compiler.CompileError, match="no_such_type"):
        ClangRuntime().compile_many([bad, *good])
    mapped = [line for line in Path("/proc/self/maps").read_text().splitlines() if str(cache_dir.parent) in line]
    assert mapped == []
