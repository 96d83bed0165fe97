"""Plugin discovery, loading and selection, against real test distributions installed with entry points.

The distributions live in tests/plugins/ (nox's ``plugins`` session installs them):
tg-test-good (backend ``testgood``), tg-test-broken (raises on import), tg-test-badversion (declares
hook-spec v999), tg-test-good-duplicate (takes the name ``testgood`` again), tg-test-unknownhook
(implements a misspelt hook), tg-test-taken (plugin ``dupe``: an emitter for the target ``numpy``, which
tg-core's built-in backend provides, and a runtime of its own language ``dupe-c``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import importlib_metadata
import pytest
from tg.backends.contract import Availability, Emitter, Runtime
from tg.backends.discovery import PluginInfo, PluginRegistry
from tg.backends.numpy_backend import NumpyEmitter
from tg.backends.selection import candidates, parse_backend_list, resolve, select
from tg.hooks import LoweredKernel, Program, hookimpl
from tg.support.errors import BackendError, BackendWarning, PluginError, PluginWarning, UnknownBackendError

TEST_DISTRIBUTIONS = ["tg-test-good", "tg-test-broken", "tg-test-badversion", "tg-test-good-duplicate",
                      "tg-test-unknownhook", "tg-test-taken"]


def _installed(name: str) -> bool:
    try:
        importlib_metadata.distribution(name)
    except importlib_metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not all(_installed(d) for d in TEST_DISTRIBUTIONS),
    reason="the test plugin distributions are not installed: run `nox -s plugins`, or "
           "`pip install ./tests/plugins/tg-test-*` in this environment")


def make_registry(monkeypatch: pytest.MonkeyPatch, **env: str) -> PluginRegistry:
    """A fresh registry under the given TG_ variables, with discovery warnings silenced."""
    for key in ("TG_PLUGINS", "TG_STRICT_PLUGINS", "TG_BACKEND"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        return PluginRegistry()


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TG_")} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=60)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_python(f"import sys; from tg.cli import main; sys.exit(main({list(args)!r}))", **env)


PLUGIN_MODULES = "[m for m in sys.modules if m.startswith('tg_test') or m.startswith('tg_')]"


def test_import_tg_imports_no_plugin_module() -> None:
    result = run_python(f"import sys, tg; print({PLUGIN_MODULES})")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_listing_backends_imports_no_plugin_module() -> None:
    code = f"import sys; from tg.cli import main; main(['backends']); print({PLUGIN_MODULES})"
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_backends_table_lists_every_plugin_with_metadata() -> None:
    result = run_cli("backends")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("testgood", "testbroken", "testbadversion", "testunknownhook"):
        assert name in out
    assert "tg-test-good " in out and "tg-test-good-duplicate" in out
    assert "v999" in out and "hook-spec v2" in out


def test_backends_json_reports_problems_found_in_metadata() -> None:
    result = run_cli("backends", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["backends"]
    by_dist = {r["distribution"]: r for r in rows}
    assert by_dist["tg-test-good"] | {"state": "not loaded"} == by_dist["tg-test-good"]
    assert by_dist["tg-test-good"]["hookspec"] == 2
    bad = by_dist["tg-test-badversion"]
    assert bad["hookspec"] == 999 and "v999" in bad["problem"] and "v2" in bad["problem"]
    assert "pip install" in bad["remedy"]
    dup = by_dist["tg-test-good-duplicate"]
    assert "duplicates the backend name 'testgood'" in dup["problem"] and "tg-test-good" in dup["problem"]


def test_backends_check_says_what_runs_and_why_not() -> None:
    result = run_cli("backends", "--check", "--json")
    assert result.returncode == 0, result.stderr
    all_rows = json.loads(result.stdout)["backends"]
    rows = {r["backend"]: r for r in all_rows if r["distribution"] != "tg-test-good-duplicate"}
    assert rows["testgood"]["available"] is True
    assert rows["testgood:offline"]["available"] is False
    assert rows["testgood:offline"]["problem"] == "the test device is unplugged"
    assert rows["testgood:offline"]["remedy"] == "plug it in"
    assert "ZeroDivisionError" in rows["testbroken"]["problem"]
    assert "'tg_emiters'" in rows["testunknownhook"]["problem"]
    assert "did you mean 'tg_emitters'" in rows["testunknownhook"]["problem"]


def test_backends_check_table_for_people() -> None:
    result = run_cli("backends", "--check")
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("testgood:offline"))
    assert " no " in line and "unplugged" in line and "plug it in" in line


def test_strict_mode_makes_the_cli_fail_naming_the_plugin() -> None:
    result = run_cli("backends", TG_STRICT_PLUGINS="1")
    assert result.returncode == 1
    assert "tg-test-badversion" in result.stderr and "v999" in result.stderr


def test_python_dash_m_tg_backends() -> None:
    result = subprocess.run([sys.executable, "-m", "tg", "backends"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "testgood" in result.stdout


def test_select_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch)
    backend = select("testgood", reg)
    assert backend.name == "testgood"
    program = backend.emitter.render(LoweredKernel("k", [], (1,), (1,)))
    assert program.source == "kernel k: []" and program.name == "k" and program.global_size == (1,)
    assert reg.plugins["testgood"].state == "loaded"
    assert reg.plugins["testbroken"].state == "not loaded", "selecting by name must not load other plugins"


def test_unavailable_runtime_named_explicitly_fails_with_reason_and_remedy(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch)
    with pytest.raises(BackendError, match="testgood:offline") as info:
        select("testgood:offline", reg)
    assert "the test device is unplugged" in str(info.value) and "plug it in" in str(info.value)


def test_unknown_backend_names_it_and_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch)
    with pytest.raises(UnknownBackendError) as info:
        select("nope", reg)
    message = str(info.value)
    assert "'nope'" in message and "testgood" in message and "tg backends" in message


def test_unknown_project_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch)
    with pytest.raises(UnknownBackendError, match=r"pip install \./plugins/tg-rdna"):
        resolve("rdna", None, reg)


def test_preference_list_first_available_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch)
    assert select("testgood:offline, testgood", reg).name == "testgood"
    with pytest.warns(BackendWarning, match="nope"):
        assert select("nope,testgood", reg).name == "testgood"


def test_preference_list_with_nothing_runnable_lists_every_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch)
    with pytest.raises(BackendError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        select("testgood:offline,nope", reg)
    assert "unplugged" in str(info.value) and "'nope'" in str(info.value)


@pytest.mark.parametrize("text", ["ptx:", ":emu", "a:b:c"])
def test_malformed_backend_names(text: str) -> None:
    with pytest.raises(BackendError, match="malformed"):
        parse_backend_list(text)


def test_parse_backend_list() -> None:
    assert parse_backend_list(" ptx:emu, clang ,") == [("ptx", "emu"), ("clang", None)]


def test_broken_plugin_warns_naming_plugin_distribution_and_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch)
    with pytest.warns(PluginWarning) as record:
        assert reg.load("testbroken") is False
    message = str(record[0].message)
    assert "'testbroken'" in message and "tg-test-broken 0.1.0" in message
    assert "ZeroDivisionError: tg-test-broken fails on import on purpose" in message
    assert "TG_STRICT_PLUGINS" in message
    assert reg.load("testgood") is True


def test_strict_mode_raises_with_the_cause_chained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_PLUGINS", "testbroken")
    monkeypatch.setenv("TG_STRICT_PLUGINS", "1")
    reg = PluginRegistry()  # the other problem plugins are excluded, so discovery itself succeeds
    with pytest.raises(PluginError, match="testbroken") as info:
        reg.load("testbroken")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_strict_mode_refuses_a_wrong_hookspec_version_at_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_STRICT_PLUGINS", "1")
    monkeypatch.setenv("TG_PLUGINS", "testbadversion")
    with pytest.raises(PluginError, match=r"hook-spec v999 .* hook-spec v2"):
        PluginRegistry()


def test_wrong_hookspec_version_warns_and_is_never_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_PLUGINS", "testbadversion,testgood")
    with pytest.warns(PluginWarning, match=r"tg-test-badversion 0\.1\.0\) implements hook-spec v999"):
        reg = PluginRegistry()
    assert reg.load("testbadversion") is False
    assert "tg_test_badversion.plugin" not in sys.modules
    with pytest.raises(BackendError, match="v999"):
        select("testbadversion", reg)


def test_duplicate_name_keeps_the_first_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TG_PLUGINS", raising=False)
    with pytest.warns(PluginWarning, match=r"tg-test-good-duplicate 0\.1\.0\) duplicates the backend name"):
        reg = PluginRegistry()
    assert reg.plugins["testgood"].distribution == "tg-test-good"
    assert [d.distribution for d in reg.shadowed] == ["tg-test-good-duplicate"]
    assert select("testgood", reg).name == "testgood"


def test_unknown_hook_is_refused_naming_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch)
    with pytest.warns(PluginWarning, match=r"'testunknownhook'.*unknown hook\(s\) 'tg_emiters'"):
        assert reg.load("testunknownhook") is False
    assert reg.manager.get_plugin("testunknownhook") is None


def test_tg_plugins_empty_means_builtins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch, TG_PLUGINS="")
    assert all(info.state == "disabled" for info in reg.plugins.values() if not info.builtin)
    with pytest.raises(BackendError, match="TG_PLUGINS"):
        select("testgood", reg)


def test_tg_plugins_restricts_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch, TG_PLUGINS="tg-test-good")  # a distribution name works too
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken plugins are excluded, so nothing may warn
        reg.load_all()
    assert reg.plugins["testgood"].state == "loaded"
    assert reg.plugins["testbroken"].state == "disabled"


def test_automatic_selection_never_probes_negative_priorities(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch, TG_PLUGINS="testgood")
    assert all(b.runtime.priority >= 0 for b in candidates(reg))
    assert {b.name for b in candidates(reg, include_negative=True)} >= {"testgood", "testgood:offline"}


def test_broken_plugins_never_break_import_or_other_backends() -> None:
    code = ("import warnings, tg\nfrom tg.backends.selection import select\nwarnings.simplefilter('ignore')\n"
            "from tg.backends.discovery import registry\nregistry().load_all()\nprint(select('testgood').name)")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "testgood"


# -- a refused plugin leaves the registry as it was ------------------------------------------------------

TAKEN = r"plugin 'dupe' \(distribution tg-test-taken 0\.1\.0\) provides emitter 'numpy', which tg-core 0\.1\.0 " \
        r"\(plugin 'numpy'\) already provides"


def snapshot(reg: PluginRegistry) -> dict[str, object]:
    """Everything a registration may change: emitters, runtimes, the provider map and the plugin manager."""
    return {"emitters": dict(reg.emitters), "runtimes": dict(reg.runtimes), "provider": dict(reg.provider),
            "plugins": reg.manager.list_name_plugin(),
            "hooks": {name: [(impl.plugin_name, impl.function) for impl in caller.get_hookimpls()]
                      for name, caller in vars(reg.manager.hook).items()}}


class FakeEmitter(Emitter):
    target, language = "fake", "fake-text"

    def render(self, kernel: LoweredKernel) -> Program:
        return Program.of(kernel, kernel.name)


class FakeRuntime(Runtime):
    def __init__(self, language: str, name: Any):
        self.language, self.name = language, name

    def available(self) -> Availability:
        return Availability.yes()

    def compile(self, program: Program) -> object:
        return program.source

    def launch(self, program: Program, binary: object, buffers: Sequence[object],
               values: Mapping[str, int | float]) -> float | None:
        return None

    def alloc(self, nbytes: int) -> object:
        return bytearray(nbytes)

    def copyin(self, buffer: object, host: memoryview) -> None:
        pass

    def copyout(self, host: memoryview, buffer: object) -> None:
        pass


def fake_plugin(**hook_functions: Callable[..., object]) -> tuple[PluginInfo, object]:
    """A plugin module holding the given hook implementations, and its PluginInfo (never in the registry)."""
    import types

    module = types.ModuleType("tg_test_fake_plugin")
    for name, function in hook_functions.items():
        setattr(module, name, hookimpl(function))
    return PluginInfo("fake", module.__name__, "tg-test-fake", "0.0.1", 1), module


def _emits_a_new_emitter() -> list[Emitter]:
    return [FakeEmitter()]


def _raises() -> list[Runtime]:
    raise RuntimeError("tg_runtimes fails on purpose")


def _takes_offline() -> list[Runtime]:
    return [FakeRuntime("fake-text", "fake"), FakeRuntime("testgood-text", "offline")]


def _bad_passes(target: str, capabilities: object, extra: object) -> None:
    return None


# each: how to attempt the refused load, and what the refusal must say
REFUSALS = {
    "taken emitter target": (lambda reg: reg.load("dupe"), TAKEN),
    "taken runtime": (lambda reg: reg.register(*fake_plugin(tg_emitters=_emits_a_new_emitter,
                                                              tg_runtimes=_takes_offline)),
                      r"provides runtime 'offline' for testgood-text, which tg-test-good 0\.1\.0 "
                      r"\(plugin 'testgood'\) already provides"),
    "bad return value": (lambda reg: reg.register(*fake_plugin(tg_emitters=_emits_a_new_emitter,
                                                                 tg_runtimes=lambda: [object()])),
                         "tg_runtimes returned <object object .*>, which is not a tg.backends.contract.Runtime"),
    "runtime without a name": (lambda reg: reg.register(*fake_plugin(tg_runtimes=lambda: [FakeRuntime("x", None)])),
                               "whose name and language are not both strings"),
    "emitter twice": (lambda reg: reg.register(*fake_plugin(tg_emitters=lambda: [FakeEmitter(), FakeEmitter()])),
                      "provides emitter 'fake' more than once"),
    "hook that raises": (lambda reg: reg.register(*fake_plugin(tg_emitters=_emits_a_new_emitter,
                                                                 tg_runtimes=_raises)),
                         "raised in a registration hook: RuntimeError: tg_runtimes fails on purpose"),
    "invalid hook signature": (lambda reg: reg.register(*fake_plugin(tg_emitters=_emits_a_new_emitter,
                                                                       tg_lowering_passes=_bad_passes)),
                               "has an invalid hook implementation"),
    "unknown hook": (lambda reg: reg.load("testunknownhook"), r"unknown hook\(s\) 'tg_emiters'"),
    "bad version": (lambda reg: reg.load("testbadversion"), None),  # refused at discovery: nothing more to say
    "failed import": (lambda reg: reg.load("testbroken"), "ZeroDivisionError"),
}


@pytest.mark.parametrize("strict", [False, True], ids=["warn", "strict"])
@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_plugin_leaves_the_registry_as_it_was(monkeypatch: pytest.MonkeyPatch, case: str,
                                                         strict: bool) -> None:
    reg = make_registry(monkeypatch)
    assert reg.load("numpy") and reg.load("testgood")
    numpy_emitter, before = reg.emitters["numpy"], snapshot(reg)
    attempt, message = REFUSALS[case]
    reg.strict = strict
    if message is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert attempt(reg) is False
    elif strict:
        with pytest.raises(PluginError, match=message):
            attempt(reg)
    else:
        with pytest.warns(PluginWarning, match=message):
            assert attempt(reg) is False
    assert snapshot(reg) == before
    assert select("numpy", reg).emitter is numpy_emitter


def test_a_taken_target_goes_to_its_owner_whichever_loads_first(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch, TG_PLUGINS="dupe")
    with pytest.warns(PluginWarning, match=TAKEN):
        assert reg.load("dupe") is False  # loads numpy, the owner of the name, first
    assert reg.plugins["numpy"].state == "loaded" and reg.plugins["dupe"].state == "failed"
    assert isinstance(reg.emitters["numpy"], NumpyEmitter)
    assert set(reg.runtimes) == {("numpy-python", "numpy")}
    assert set(reg.provider.values()) == {"numpy"}
    assert [name for name, _ in reg.manager.list_name_plugin()] == ["numpy"]


def test_backend_list_skips_a_refused_plugin_and_selects_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch, TG_PLUGINS="dupe")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendWarning)  # dupe is refused, not unknown: no typo warning
        warnings.simplefilter("ignore", PluginWarning)
        backend = select("dupe,numpy", reg)
    assert backend.name == "numpy" and isinstance(backend.emitter, NumpyEmitter)
    with pytest.raises(BackendError, match=TAKEN), warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        select("dupe", reg)


def test_tensors_run_on_numpy_when_the_first_backend_is_refused() -> None:
    code = ("import warnings; warnings.simplefilter('ignore')\nimport tg\nt = tg.Tensor([1.0, 2.0]) + 1\n"
            "print(t.device, t.numpy().tolist())")
    result = run_python(code, TG_BACKEND="dupe,numpy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["numpy", "[2.0,", "3.0]"]


def _known(message: str) -> list[str]:
    return message.split("Known backends: ", 1)[1].split(". Fix:", 1)[0].split(", ")


def test_known_backends_omit_refused_failed_and_excluded_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch, TG_PLUGINS="dupe,testbroken")
    with pytest.raises(UnknownBackendError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        resolve("nope", None, reg)
    assert _known(str(info.value)) == ["numpy"]


def test_known_backends_are_the_runnable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(monkeypatch)
    with pytest.raises(UnknownBackendError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        resolve("nope", None, reg)
    known = _known(str(info.value))  # other installed plugins (tg-ptx, tg-clang) may add theirs
    assert {"numpy", "testgood", "testgood:offline"} <= set(known)
    assert not {"dupe", "testbroken", "testbadversion", "testunknownhook"} & set(known)


def test_backends_check_after_a_refusal_names_the_holder() -> None:
    result = run_cli("backends", "--check", "--json", TG_PLUGINS="dupe")
    assert result.returncode == 0, result.stderr
    all_rows = json.loads(result.stdout)["backends"]
    assert all(r["available"] is False and "TG_PLUGINS" in r["problem"] for r in all_rows if r["state"] == "disabled")
    rows = [r for r in all_rows if r["state"] != "disabled"]
    assert [(r["backend"], r["distribution"], r["available"]) for r in rows] == [
        ("numpy", "tg-core", True), ("dupe", "tg-test-taken", False)]
    assert rows[1]["state"] == "failed"
    assert "provides emitter 'numpy', which tg-core 0.1.0 (plugin 'numpy') already provides" in rows[1]["problem"]
    table = run_cli("backends", "--check", TG_PLUGINS="dupe").stdout.splitlines()
    assert next(ln for ln in table if ln.startswith("numpy ")).split()[:5] == ["numpy", "tg-core", "0.1.0", "v2", "yes"]
    assert "which tg-core 0.1.0 (plugin 'numpy') already provides" in next(ln for ln in table if ln.startswith("dupe "))


def test_a_plugin_built_for_hook_spec_v1_is_refused_with_both_versions_and_the_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """tg-test-oldversion declares ``tg.hooks:v1`` (renderers returned text then): refused, never imported."""
    monkeypatch.delenv("TG_PLUGINS", raising=False)
    with pytest.warns(PluginWarning) as caught:
        reg = PluginRegistry()
    info = reg.plugins["testoldversion"]
    assert info.state == "failed" and "hook-spec v1 but this tg-core" in info.problem and "v2" in info.problem
    assert "upgrade tg-test-oldversion to a release built for hook-spec v2" in info.remedy
    assert any("testoldversion" in str(w.message) for w in caught)
    assert "tg_test_oldversion.plugin" not in sys.modules
    with pytest.raises(BackendError, match="hook-spec v1"):
        resolve("testoldversion", None, reg)
