"""Runtime.compile_many: a runtime that builds several kernels in one run gets the new kernels of a schedule together;
one without it gets them one at a time, as before."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import tg
from tg.backends.contract import Backend, Capabilities
from tg.backends.discovery import PluginRegistry
from tg.backends.numpy_backend import NumpyEmitter, NumpyRuntime
from tg.codegen.program import Program
from tg.engine.device import DeviceState
from tg.engine.realize import build_programs, kernel_key
from tg.schedule.scheduler import Kernel, create_schedule


class Batching(NumpyRuntime):
    """The numpy runtime, building through compile_many (recorded) and never through compile alone."""

    def __init__(self, count: int | None = None) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.singles = 0
        self.count = count  # binaries to return instead of one per program (a broken runtime)

    def compile(self, program: Program) -> Any:
        self.singles += 1
        return super().compile(program)

    def compile_many(self, programs: Sequence[Program]) -> list[Any]:
        self.batches.append([p.name for p in programs])
        made = [super(Batching, self).compile(p) for p in programs]
        return made if self.count is None else made[:self.count]


def _kernels() -> list[Kernel]:
    """A schedule of three kernels (three outputs of different reductions)."""
    a = tg.Tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    outs = [(a * 2).sum(0), (a + 1).amax(1), (a - 3).exp()]
    kernels = [i for i in create_schedule([t.lazydata for t in outs]) if isinstance(i, Kernel)]
    assert len(kernels) == 3
    return kernels


def _state(runtime: NumpyRuntime) -> DeviceState:
    return DeviceState(Backend(NumpyEmitter(Capabilities()), runtime), PluginRegistry())


def test_the_kernels_of_a_schedule_reach_compile_many_together() -> None:
    kernels = _kernels()
    runtime = Batching()
    state = _state(runtime)
    keys = [kernel_key(k, not state.scalar_params) for k in kernels]
    first = build_programs(kernels[0], keys[0], state, kernels[1:])
    assert len(runtime.batches) == 1 and len(runtime.batches[0]) == 3 and runtime.singles == 0
    assert all(state.kernels.get(k) is not None for k in keys) and state.kernels.get(keys[0]) is first
    # built once: a kernel met again, or a schedule whose kernels are all built, compiles nothing more
    build_programs(kernels[1], keys[1], state, kernels[2:])
    assert len(runtime.batches) == 1 and runtime.singles == 0


def test_compile_many_wins_over_core_compiling_in_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # a runtime may do both (tg-clang splits the kernels into a few files and builds those at once): core hands it
    # the kernels together and starts no thread of its own
    monkeypatch.setenv("TG_EXEC_JOBS", "4")
    kernels = _kernels()
    runtime = Batching()
    runtime.concurrent_compile = True
    state = _state(runtime)
    build_programs(kernels[0], kernel_key(kernels[0], not state.scalar_params), state, kernels[1:])
    assert [len(b) for b in runtime.batches] == [3] and runtime.singles == 0


def test_a_runtime_without_compile_many_builds_one_kernel_at_a_time() -> None:
    kernels = _kernels()
    state = _state(NumpyRuntime())
    keys = [kernel_key(k, not state.scalar_params) for k in kernels]
    build_programs(kernels[0], keys[0], state, kernels[1:])
    assert state.kernels.get(keys[0]) is not None
    assert state.kernels.get(keys[1]) is None and state.kernels.get(keys[2]) is None


def test_compile_many_skips_the_programs_built_before_and_checks_the_count() -> None:
    from tg.engine.realize import render_program

    kernels = _kernels()
    runtime = Batching()
    state = _state(runtime)
    programs = [render_program(k, state)[0] for k in kernels]
    built = state.compile(programs[0])
    assert state.compile_many(programs)[0] is built
    assert runtime.batches == [[programs[1].name, programs[2].name]]
    broken = _state(Batching(count=1))
    with pytest.raises(tg.BackendError, match="returned 1 binaries for 3 programs"):
        broken.compile_many(programs)


def test_observers_hear_of_each_program_once_as_compiled() -> None:
    from tg import hooks
    from tg.engine.realize import render_program

    events: list[tuple[str, bool]] = []

    class Observer:
        @hooks.hookimpl
        def tg_kernel_compiled(self, event: hooks.KernelCompiled) -> None:
            events.append((event.name, event.cached))

    kernels = _kernels()
    state = _state(Batching())
    state.registry.manager.register(Observer(), "observer")
    p0, p1 = (render_program(k, state)[0] for k in kernels[:2])
    state.compile_many([p0, p1, p0])  # listed twice: compiled once, as compile() would
    assert events == [(p0.name, False), (p1.name, False), (p0.name, True)]
