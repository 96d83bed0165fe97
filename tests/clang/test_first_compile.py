"""What a program's first kernels wait for on the clang backend: long loops of tall register tiles kept rolled
(unrolling them is a third of the compile, for no speed), the link line asked for at the first buffer, and a
launch that never waits for the native pool's compile."""

from __future__ import annotations

import multiprocessing
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from clang_helpers import new_kernels
from tg import Tensor
from tg_clang.crender import NO_UNROLL

rng = np.random.default_rng(21)


def _new_sources(fn: Callable[[], None]) -> dict[str, tuple[str, str]]:
    """name -> (strategy, C source) of the kernels ``fn`` compiles."""
    return {name: (strategy, source) for name, strategy, source in new_kernels(fn)}


def _loops(source: str) -> list[tuple[bool, int | None]]:
    """(kept rolled, iterations when constant) of each loop over a micro-op range (``rN_M``) in ``source``."""
    found = []
    for line in source.splitlines():
        m = re.search(r"for \(int32_t (r\d+_\d+) = (-?\d+)?[^;]*; \1 < (-?\d+)?", line)
        if m:
            trips = int(m.group(3)) - int(m.group(2)) if m.group(2) and m.group(3) else None
            found.append((NO_UNROLL in line, trips))
    return found


def _check(graph: Callable[[list[Tensor]], Tensor], arrays: list[np.ndarray]) -> None:
    want = graph([Tensor(a, device="numpy") for a in arrays]).numpy()
    got = graph([Tensor(a, device="clang") for a in arrays]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_tall_tiles_keep_long_loops_rolled(fresh_devices: None) -> None:
    a, b = rng.standard_normal((67, 301)).astype("float32"), rng.standard_normal((301, 80)).astype("float32")
    x, w = rng.standard_normal((2, 5, 12, 12)).astype("float32"), rng.standard_normal((24, 5, 3, 3)).astype("float32")
    matmul = _new_sources(lambda: _check(lambda t: t[0] @ t[1], [a, b]))
    conv = _new_sources(lambda: _check(lambda t: t[0].conv2d(t[1], padding=1), [x, w]))
    tall = {name: src for name, (strategy, src) in {**matmul, **conv}.items()
            if (m := re.match(r"tiled[TA]?(\d+)x", strategy)) and int(m.group(1)) >= 4}
    assert len(tall) >= 2, (matmul, conv)
    loops = [loop for src in tall.values() for loop in _loops(src)]
    assert (True, 301) in loops  # the matmul's reduction (and its pack) stay rolled
    assert any(trips == 3 for _, trips in loops)  # the convolution's window is unrolled (test_unrolling.py)
    assert all(rolled == (trips is None or trips > 16) for rolled, trips in loops), loops
    for src in tall.values():  # the loops over work units and micro-tiles too
        assert NO_UNROLL + "for (int32_t u = start;" in src


def test_other_kernels_leave_unrolling_to_clang(fresh_devices: None) -> None:
    x = rng.standard_normal((300, 70)).astype("float32")
    new = _new_sources(lambda: _check(lambda t: (t[0] * 2).exp().sum(axis=0), [x]))
    assert new and not any(NO_UNROLL in src for _, src in new.values()), new


def test_the_first_buffer_asks_for_the_link_line(cache_dir: Path) -> None:
    from tg_clang import compiler
    from tg_clang.runtime import ClangRuntime

    runtime = ClangRuntime()
    identity = compiler._compiler_identity(compiler.require_compiler())
    assert runtime.cache.links.known(identity, runtime.cache.flags) is False
    runtime.alloc(64)
    key = runtime.cache.links.key(identity, runtime.cache.flags)
    for _ in range(200):  # the warm-up thread starts the helpers, then asks the driver
        answer = runtime.cache.links._asked.get(key)
        if answer is not None:
            break
        threading.Event().wait(0.05)
    assert answer is not None
    line = answer.line()
    assert line is not None and "clang" not in Path(line[0]).name


def _child_builds_its_pool(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import tg_clang.pool as native

    native.build_in_background()
    native.wait_for_background_build()
    queue.put(native.native_pool(wait=False) is not None)


def test_a_child_forked_during_the_pool_build_builds_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process forked while its parent builds the native pool: the build's thread is not in the child and the
    lock that thread holds stays held there; the child starts a build of its own (before, it never had a pool, or
    waited on that lock for ever)."""
    import tg_clang.pool as native

    monkeypatch.delenv("TG_CLANG_NATIVE_POOL", raising=False)
    held, release = threading.Event(), threading.Event()

    def building() -> None:  # the parent's build, under way: it holds the lock
        with native._lock:
            held.set()
            release.wait(60)

    thread = threading.Thread(target=building, daemon=True)
    thread.start()
    assert held.wait(10)
    monkeypatch.setattr(native, "_loaded", [])
    monkeypatch.setattr(native, "_building", thread)
    try:
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_builds_its_pool, args=(queue,))
        child.start()
        assert queue.get(timeout=120) is True
        child.join(timeout=60)
        assert child.exitcode == 0
    finally:
        release.set()
        thread.join(10)


def test_the_pool_is_built_after_the_first_split_launch(monkeypatch: pytest.MonkeyPatch, fresh_devices: None) -> None:
    """The native pool's compile starts after the first launch that splits across threads, not at its kernel's
    compile: it would take a core from that launch (on two cores, a first 1024 x 1024 matmul ran 16-24 ms instead of
    7-9)."""
    import tg_clang.pool as native
    import tg_clang.runtime as rt

    events: list[str] = []
    threads = rt.pool()

    class Recorded:
        def run(self, *args: object) -> None:
            events.append("launch")
            threads.run(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(native, "_loaded", [])
    monkeypatch.setattr(native, "_building", None)
    monkeypatch.setattr(rt, "pool", Recorded)
    monkeypatch.setattr(rt, "build_in_background", lambda: events.append("build"))
    monkeypatch.setattr(rt, "SPLIT_THRESHOLD", 0)
    monkeypatch.setenv("TG_CLANG_THREADS", "2")
    a, b = rng.standard_normal((47, 64)).astype("float32"), rng.standard_normal((64, 35)).astype("float32")
    _check(lambda t: t[0] @ t[1], [a, b])
    assert events[:2] == ["launch", "build"], events
    assert native._building is None and not native._loaded  # nothing built it on the way


def test_the_prelude_declares_what_kernels_call_and_refuses_the_rest(cache_dir: Path) -> None:
    import ctypes

    from tg_clang.compiler import CompileError, KernelCache
    from tg_clang.cprelude import PRELUDE

    cache = KernelCache(cache_dir.parent)
    with pytest.raises(CompileError, match="implicit"):  # undeclared: an error, never a call of a guessed type
        cache.load(PRELUDE + "float tg_f(float x) { return expm1f(x); }\n", "tg_f")
    calls = {"exp2": "exp2{s}(x)", "log2": "log2{s}(x)", "sin": "sin{s}(x)", "sqrt": "sqrt{s}(x)",
             "trunc": "trunc{s}(x * 3)", "pow": "pow{s}(x, y)", "fmod": "fmod{s}(x * 7, y)",
             "tg_exp2": "tg_exp2{s}(x)", "tg_log2": "tg_log2{s}(x)", "tg_sin": "tg_sin{s}(x)"}
    body = "".join(f"void call_{name}{s}(const {t} *a, const {t} *b, {t} *out, int n) {{ for (int i = 0; i < n; i++) "
                   f"{{ {t} x = a[i], y = b[i]; out[i] = {call.format(s=s)}; }} }}\n"
                   for name, call in calls.items() for s, t in (("f", "float"), ("", "double")))
    body += "int tg_inf(double x) { return isinf(x) + 2 * isnan(x) + 4 * (fabs(x) == 2.0); }\n"
    lib, _ = cache.load(PRELUDE + body, "tg_inf")
    fn = lib.tg_inf
    fn.argtypes, fn.restype = [ctypes.c_double], ctypes.c_int
    assert [fn(v) for v in (np.inf, -np.inf, np.nan, -2.0, 1.5)] == [1, 1, 2, 4, 0]
    numpy = {"exp2": lambda x, y: np.exp2(x), "log2": lambda x, y: np.log2(x), "sin": lambda x, y: np.sin(x),
             "sqrt": lambda x, y: np.sqrt(x), "trunc": lambda x, y: np.trunc(x * 3), "pow": np.power,
             "fmod": lambda x, y: np.fmod(x * 7, y), "tg_exp2": lambda x, y: np.exp2(x),
             "tg_log2": lambda x, y: np.log2(x), "tg_sin": lambda x, y: np.sin(x)}
    for dtype, s in ((np.float32, "f"), (np.float64, "")):
        a = rng.uniform(0.1, 4.0, 64).astype(dtype)
        b = rng.uniform(0.5, 2.0, 64).astype(dtype)
        for name, want in numpy.items():
            out = np.empty_like(a)
            getattr(lib, f"call_{name}{s}")(*(ctypes.c_void_p(v.ctypes.data) for v in (a, b, out)), ctypes.c_int(64))
            np.testing.assert_allclose(out, want(a, b), rtol=1e-6 if s else 1e-12, err_msg=name + s)
