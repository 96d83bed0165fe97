"""The hook spec as a contract: what registration accepts and refuses, without installing anything."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import tg
from tg import hooks
from tg.backends.contract import Availability, Backend, Capabilities, Emitter, Runtime
from tg.backends.discovery import PluginInfo, PluginRegistry
from tg.hooks import LoweredKernel, Ops, Program, dtypes
from tg.support.errors import PluginError, PluginWarning


class TinyEmitter(Emitter):
    language = "tiny"

    def __init__(self, target: str = "tiny"):
        self.target = target

    def render(self, kernel: LoweredKernel) -> Program:
        return Program.of(kernel, kernel.name)


class TinyRuntime(Runtime):
    language = "tiny"
    priority = -1

    def __init__(self, name: str = "tiny"):
        self.name = name

    def compile(self, program: Program) -> Any:
        return program.source

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int | float]) -> float | None:
        return None

    def alloc(self, nbytes: int) -> Any:
        return bytearray(nbytes)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        buffer[:] = host

    def copyout(self, host: memoryview, buffer: Any) -> None:
        host[:] = buffer


class TinyPlugin:
    def __init__(self, emitters: list[Any], runtimes: list[Any]):
        self.emitters, self.runtimes = emitters, runtimes

    @hooks.hookimpl
    def tg_emitters(self) -> list[Any]:
        return self.emitters

    @hooks.hookimpl
    def tg_runtimes(self) -> list[Any]:
        return self.runtimes


@pytest.fixture
def reg(monkeypatch: pytest.MonkeyPatch) -> PluginRegistry:
    monkeypatch.setenv("TG_PLUGINS", "")  # no installed plugin interferes
    monkeypatch.delenv("TG_STRICT_PLUGINS", raising=False)
    return PluginRegistry()


def info(name: str) -> PluginInfo:
    return PluginInfo(name, f"{name}_module", f"tg-{name}", "1.0", hooks.HOOKSPEC_VERSION)


def test_markers_are_pluggy_markers_for_project_tg() -> None:
    assert hooks.PROJECT == "tg"
    assert tg.hookimpl is hooks.hookimpl and tg.hookspec is hooks.hookspec


def test_every_declared_hook_is_listed_and_documented() -> None:
    declared = [n for n, f in inspect.getmembers(hooks, inspect.isfunction) if hasattr(f, "tg_spec")]
    assert sorted(declared) == sorted(hooks.HOOK_NAMES)
    for name in declared:
        doc = inspect.getdoc(getattr(hooks, name)) or ""
        assert "Called" in doc, f"{name} must say when it is called"


@pytest.mark.parametrize(("text", "version"), [("tg.hooks:v1", 1), (" tg.hooks : v12 ", 12), ("tg.hooks:1", None),
                                               ("other:v1", None), ("tg.hooks", None)])
def test_declared_version(text: str, version: int | None) -> None:
    assert hooks.declared_version(text) == version


def test_the_declaration_names_a_real_attribute() -> None:
    assert getattr(hooks, f"v{hooks.HOOKSPEC_VERSION}") == hooks.HOOKSPEC_VERSION


def test_registering_collects_emitters_and_runtimes(reg: PluginRegistry) -> None:
    assert reg.register(info("tiny"), TinyPlugin([TinyEmitter()], [TinyRuntime(), TinyRuntime("alt")]))
    backend = Backend(reg.emitters["tiny"], reg.runtimes[("tiny", "alt")])
    assert backend.name == "tiny:alt"
    assert Backend(reg.emitters["tiny"], reg.runtimes[("tiny", "tiny")]).name == "tiny"


def test_unknown_hook_names_the_plugin_and_suggests(reg: PluginRegistry) -> None:
    class Typo:
        @hooks.hookimpl
        def tg_runtime(self) -> list[Any]:
            return []

    with pytest.warns(PluginWarning, match=r"plugin 'typo' .*'tg_runtime' \(did you mean 'tg_runtimes'\?\)"):
        assert not reg.register(info("typo"), Typo())


def test_wrong_hook_arguments_are_refused(reg: PluginRegistry) -> None:
    class BadArgs:
        @hooks.hookimpl
        def tg_lowering_passes(self, target: str, speed: int) -> None:
            return None

    with pytest.warns(PluginWarning, match="invalid hook implementation"):
        assert not reg.register(info("badargs"), BadArgs())


def test_wrong_return_types_are_refused(reg: PluginRegistry) -> None:
    with pytest.warns(PluginWarning, match="not a tg.backends.contract.Emitter"):
        assert not reg.register(info("junk"), TinyPlugin(["not an emitter"], []))
    assert reg.manager.get_plugin("junk") is None


def test_a_taken_target_is_refused(reg: PluginRegistry) -> None:
    assert reg.register(info("first"), TinyPlugin([TinyEmitter()], [TinyRuntime()]))
    with pytest.warns(PluginWarning, match=r"plugin 'second' \(distribution tg-second 1\.0\) provides emitter 'tiny', "
                                           r"which tg-first 1\.0 \(plugin 'first'\) already provides"):
        assert not reg.register(info("second"), TinyPlugin([TinyEmitter()], []))
    with pytest.warns(PluginWarning, match=r"runtime 'tiny' for tiny, which tg-first 1\.0 \(plugin 'first'\)"):
        assert not reg.register(info("third"), TinyPlugin([TinyEmitter("third")], [TinyRuntime("alt"), TinyRuntime()]))
    assert "third" not in reg.emitters and ("tiny", "alt") not in reg.runtimes
    assert reg.register(info("fourth"), TinyPlugin([TinyEmitter("third")], [TinyRuntime("alt")]))


def test_one_module_under_two_plugin_names_is_refused_and_the_first_kept(reg: PluginRegistry) -> None:
    plugin = TinyPlugin([TinyEmitter()], [])
    assert reg.register(info("first"), plugin)
    with pytest.warns(PluginWarning, match="plugin 'again' .* uses module again_module, which plugin 'first' already"):
        assert not reg.register(info("again"), plugin)
    assert reg.manager.get_plugin("first") is plugin and reg.provider[id(reg.emitters["tiny"])] == "first"


def _discovered(reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch, name: str, plugin: object) -> None:
    """Make ``plugin`` look discovered (from distribution tg-NAME) and importable as NAME_module."""
    monkeypatch.setitem(sys.modules, f"{name}_module", plugin)
    reg.plugins[name] = info(name)


def test_a_target_named_after_another_plugin_goes_to_that_plugin(reg: PluginRegistry,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _discovered(reg, monkeypatch, "owner", TinyPlugin([TinyEmitter("owner")], [TinyRuntime("owner")]))
    _discovered(reg, monkeypatch, "squatter", TinyPlugin([TinyEmitter("owner")], []))
    with pytest.warns(PluginWarning, match=r"'squatter' .* emitter 'owner', which tg-owner 1\.0 \(plugin 'owner'\)"):
        assert not reg.load("squatter")  # asked for first, yet the owner is loaded first and keeps its name
    assert reg.plugins["owner"].state == "loaded" and reg.provider[id(reg.emitters["owner"])] == "owner"


def test_plugins_taking_each_others_names_load_without_recursing(reg: PluginRegistry,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _discovered(reg, monkeypatch, "left", TinyPlugin([TinyEmitter("left"), TinyEmitter("right")], []))
    _discovered(reg, monkeypatch, "right", TinyPlugin([TinyEmitter("right"), TinyEmitter("left")], []))
    with pytest.warns(PluginWarning) as record:
        reg.load("left")
    assert [str(w.message).count("already provides") for w in record] == [1]  # one refusal, said once
    assert sorted(i.state for n, i in reg.plugins.items() if n in ("left", "right")) == ["failed", "loaded"]
    assert len({reg.provider[id(reg.emitters[target])] for target in ("left", "right")}) == 1  # one holds both


def test_a_hook_that_raises_is_reported_with_its_cause(reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    class Raises:
        @hooks.hookimpl
        def tg_emitters(self) -> list[Any]:
            raise RuntimeError("no driver")

    with pytest.warns(PluginWarning, match="RuntimeError: no driver"):
        assert not reg.register(info("raises"), Raises())
    reg.strict = True
    with pytest.raises(PluginError, match="no driver") as err:
        reg.register(info("raises2"), Raises())
    assert isinstance(err.value.__cause__, RuntimeError)


def test_availability_probe_that_raises_means_unavailable(reg: PluginRegistry) -> None:
    class Flaky(TinyRuntime):
        def available(self) -> Availability:
            raise OSError("driver exploded")

    runtime = Flaky()
    status = reg.available(runtime)
    assert not status and "OSError: driver exploded" in status.reason


def test_capabilities_defaults_are_conservative() -> None:
    caps = Capabilities()
    assert caps.vector_width == 1 and caps.local_memory == 0
    assert caps.renders == frozenset({Ops.DIV, Ops.RECIP, Ops.NEG})
    assert "float32" in caps.dtypes


def test_an_emitter_returns_a_program_in_launch_order() -> None:
    from tg.backends.numpy_backend import NumpyEmitter, NumpyRuntime
    from tg.codegen.builder import KernelBuilder

    b = KernelBuilder()
    out = b.define_global(0, dtypes.float32, True)
    second = b.define_global(2, dtypes.int32, False)
    first = b.define_global(1, dtypes.float32, False)
    g = b.special("gidx0", 4)
    total = b.alu(Ops.ADD, b.load(first, g, dtypes.float32), b.cast(b.load(second, g, dtypes.int32), dtypes.float32))
    b.store(out, g, total)
    program = NumpyEmitter(Capabilities()).render(LoweredKernel("add", b.uops, (4,), (1,)))
    assert isinstance(program, Program) and program.name == "add" and program.global_size == (4,)
    assert [(p.index, p.name, p.dtype.name, p.writable) for p in program.buffers] == [
        (0, "data0", "float32", True), (1, "data1", "float32", False), (2, "data2", "int32", False)]
    runtime = NumpyRuntime()
    handles = [runtime.alloc(16) for _ in range(3)]
    runtime.copyin(handles[1], memoryview(np.arange(4, dtype=np.float32).tobytes()))
    runtime.copyin(handles[2], memoryview(np.full(4, 10, np.int32).tobytes()))
    assert runtime.launch(program, runtime.compile(program), handles, {}) is None
    result = np.empty(4, np.float32)
    runtime.copyout(memoryview(result).cast("B"), handles[0])
    np.testing.assert_array_equal(result, [10, 11, 12, 13])


def test_an_emitter_that_returns_text_is_a_clear_error() -> None:
    from tg.backends.numpy_backend import NumpyRuntime
    from tg.engine.device import DeviceState
    from tg.engine.realize import build_program
    from tg.schedule.scheduler import create_schedule

    class TextEmitter(TinyEmitter):
        language = NumpyRuntime.language

        def render(self, kernel: LoweredKernel) -> Any:
            return "def k(bufs): pass"

    state = DeviceState(Backend(TextEmitter("text"), NumpyRuntime()), PluginRegistry())
    (kernel,) = [i for i in create_schedule([(tg.Tensor([1.0, 2.0]) * 2).lazydata]) if hasattr(i, "ast")]
    with pytest.raises(tg.BackendError, match=r"returned str from render\(\), not a tg.hooks.Program"):
        build_program(kernel, state)


def test_observers_hear_compiles_and_launches_and_cannot_break_them() -> None:
    from tg.backends.numpy_backend import NumpyEmitter, NumpyRuntime
    from tg.engine.device import Buffer, DeviceState
    from tg.engine.realize import build_program
    from tg.schedule.scheduler import create_schedule

    events: list[Any] = []

    class Observer:
        def __init__(self, fail: bool = False):
            self.fail = fail

        @hooks.hookimpl
        def tg_kernel_compiled(self, event: hooks.KernelCompiled) -> None:
            events.append(event)

        @hooks.hookimpl
        def tg_kernel_launched(self, event: hooks.KernelLaunched) -> None:
            if self.fail:
                raise RuntimeError("observer bug")
            events.append(event)

    reg = PluginRegistry()
    state = DeviceState(Backend(NumpyEmitter(Capabilities()), NumpyRuntime()), reg)
    x = np.array([1.0, 2.0], np.float32)
    (kernel,) = [i for i in create_schedule([(tg.Tensor(x) * 2).lazydata]) if hasattr(i, "ast")]
    source = Buffer(state.backend, 2, dtypes.float32).copyin(x)

    def run() -> np.ndarray:
        out = Buffer(state.backend, 2, dtypes.float32)
        state.launch(build_program(kernel, state), [out, source])
        return out.numpy()

    np.testing.assert_array_equal(run(), x * 2)
    assert events == []  # nobody listens: nothing is sent
    reg.manager.register(Observer(), "observer")
    np.testing.assert_array_equal(run(), x * 2)
    assert [type(e).__name__ for e in events] == ["KernelCompiled", "KernelLaunched"]
    assert events[0].backend == events[1].backend == state.backend.name and events[1].program.name
    reg.manager.register(Observer(fail=True), "failing")
    with pytest.warns(RuntimeWarning, match="observer of tg_kernel_launched raised RuntimeError: observer bug"):
        np.testing.assert_array_equal(run(), x * 2)


def test_too_many_registers_lowers_the_kernel_again_without_register_tiles_and_vectors() -> None:
    from tg.backends.numpy_backend import NumpyEmitter, NumpyRuntime
    from tg.codegen.uops import Ops as UOps
    from tg.codegen.uops import VecDType
    from tg.engine.device import Buffer, DeviceState
    from tg.engine.realize import build_program
    from tg.schedule.scheduler import create_schedule

    seen: list[bool] = []

    class SmallRegisterFile(NumpyEmitter):
        """Refuses every kernel with vector lanes, as a target whose registers they would overflow."""

        def __init__(self, caps: Capabilities, refuse_all: bool = False):
            super().__init__(caps)
            self.refuse_all = refuse_all

        def render(self, kernel: LoweredKernel) -> Any:
            vectors = any(u.op is UOps.VECTORIZE or isinstance(u.dtype, VecDType) for u in kernel.uops)
            seen.append(vectors)
            if vectors or self.refuse_all:
                raise hooks.TooManyRegisters(f"kernel {kernel.name} needs 300 registers, the target has 256")
            return super().render(kernel)

    caps = Capabilities(vector_width=4, upcast=16, unroll=8)
    x = np.arange(64, dtype=np.float32)
    (kernel,) = [i for i in create_schedule([(tg.Tensor(x) * 2).lazydata]) if hasattr(i, "ast")]
    state = DeviceState(Backend(SmallRegisterFile(caps), NumpyRuntime()), PluginRegistry())
    source = Buffer(state.backend, 64, dtypes.float32).copyin(x)
    out = Buffer(state.backend, 64, dtypes.float32)
    state.launch(build_program(kernel, state), [out, source])
    np.testing.assert_array_equal(out.numpy(), x * 2)
    assert seen == [True, False]  # first lowered with vector lanes, refused, then lowered plain

    state = DeviceState(Backend(SmallRegisterFile(caps, refuse_all=True), NumpyRuntime()), PluginRegistry())
    with pytest.raises(tg.BackendError, match="needs 300 registers.*even without register tiles"):
        build_program(kernel, state)
    plain = DeviceState(Backend(SmallRegisterFile(Capabilities(), refuse_all=True), NumpyRuntime()), PluginRegistry())
    with pytest.raises(tg.BackendError, match="needs 300 registers, the target has 256$"):
        build_program(kernel, plain)


def test_a_python_float_is_a_launch_variable_only_where_emitter_and_runtime_both_take_float32() -> None:
    """An emitter declaring float32 variables paired with a runtime that passes only int32 ones (the default) gets the
    value compiled in: the runtime never receives a float it did not declare (it might pass it as an int)."""
    from tg.backends.numpy_backend import NumpyEmitter, NumpyRuntime
    from tg.engine.device import DeviceState
    from tg.engine.realize import kernel_key, render_program
    from tg.schedule.scheduler import create_schedule

    class IntsOnly(NumpyRuntime):
        variable_dtypes = frozenset({"int32"})

    caps = Capabilities(variables=frozenset({"int32", "float32"}))
    (kernel,) = [i for i in create_schedule([(tg.Tensor(np.arange(4, dtype=np.float32)) * 0.5).lazydata])
                 if hasattr(i, "ast")]
    assert kernel.params == [0.5]
    both = DeviceState(Backend(NumpyEmitter(caps), NumpyRuntime()), PluginRegistry())
    program, _ = render_program(kernel, both)
    assert both.scalar_params and program.variables == ("p0",) and program.variable_dtypes == ("float32",)
    ints = DeviceState(Backend(NumpyEmitter(caps), IntsOnly()), PluginRegistry())
    program, _ = render_program(kernel, ints)
    assert not ints.scalar_params and ints.capabilities.variables == {"int32"}
    assert program.variables == () and "0.5" in program.source
    assert kernel_key(kernel, with_param_values=True) != kernel_key(kernel, with_param_values=False)
