"""Helpers shared by the clang backend's tests (importable from a subprocess: tests/clang is on its path)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import numpy as np
from tg import Tensor
from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.uops import Ops
from tg.support.dtype import dtypes


def fill_kernel(value: float, n: int = 64, name: str = "fill") -> Program:
    """The program of a kernel writing ``value + i`` to element i of a float32 buffer of ``n``."""
    from tg_clang.emitter import ClangEmitter

    b = KernelBuilder()
    out = b.define_global(0, dtypes.float32, True)
    gid = b.special("gidx0", n)
    b.store(out, gid, b.alu(Ops.ADD, b.cast(gid, dtypes.float32), b.const(value, dtypes.float32)))
    return ClangEmitter().render(LoweredKernel(name, b.uops, (n,), (1,)))


def run_fill(runtime: object, program: Program, n: int = 64) -> np.ndarray:
    """Compile and run a :func:`fill_kernel` program on ``runtime`` (a ClangRuntime); its output."""
    from tg_clang.runtime import ClangRuntime

    assert isinstance(runtime, ClangRuntime)
    binary = runtime.compile(program)
    buf = runtime.alloc(4 * n)
    runtime.launch(program, binary, [buf], {})
    out = np.empty(n, np.float32)
    runtime.copyout(out.data.cast("B"), buf)
    return out


def matches_numpy(graph: Callable[[list[Tensor]], Tensor], arrays: list[np.ndarray], rtol: float = 1e-4) -> None:
    """``graph`` of ``arrays`` on clang equals (integers, bools) or is close to (floats) the same on numpy."""
    want = graph([Tensor(a, device="numpy") for a in arrays]).numpy()
    got = graph([Tensor(a, device="clang") for a in arrays]).numpy()
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
def new_kernels(fn: Callable[[], None]) -> list[tuple[str, str, str]]:
    """(name, strategy, C source) of each kernel ``fn`` compiles on clang (a kernel of a structure compiled before,
    in this process, is not compiled again: a test that reads sources uses shapes of its own)."""
    from tg.engine.device import device_state

    binaries = device_state("clang").binaries
    before = {key for key, _ in binaries.items()}
    fn()
    return [(p.name, p.strategy, key[1]) for key, p in binaries.items() if key not in before]


def record_commands(monkeypatch: Any) -> list[list[str]]:
    """Record every command tg_clang.compiler runs from now on (``monkeypatch``: pytest's fixture); a native pool
    that an earlier test's launch started building in a thread is waited for first, so its commands are not seen."""
    from tg_clang import compiler, pool

    pool.wait_for_background_build()
    seen: list[list[str]] = []
    original = compiler._run

    def spy(argv: list[str], input: bytes | None = None) -> bytes:
        seen.append(list(argv))
        return original(argv, input)

    monkeypatch.setattr(compiler, "_run", spy)
    return seen


def triple(cache: Any, source: str) -> int:
    """Load ``source`` (which defines ``int tg_triple(int)``) through the KernelCache ``cache``; tg_triple(14)."""
    lib, _ = cache.load(source, "tg_triple")
    fn = lib.tg_triple
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return int(fn(14))
