"""getenv, Timing and the single list of environment variables."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from tg.support.helpers import ENVIRONMENT, Timing, debug_level, environ_get, getenv

ROOT = Path(__file__).resolve().parents[1]


def test_getenv_types_follow_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_X", "3")
    assert getenv("TG_X", 0) == 3
    assert getenv("TG_X", 0.5) == 3.0
    assert getenv("TG_X", "a") == "3"
    assert getenv("TG_UNSET_FOR_SURE", 7) == 7
    monkeypatch.setenv("TG_X", "yes")
    assert getenv("TG_X", False) is True
    monkeypatch.setenv("TG_X", "0")
    assert getenv("TG_X", True) is False


def test_getenv_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_X", "lots")
    with pytest.raises(ValueError, match="TG_X='lots' is not a valid int"):
        getenv("TG_X", 0)


def test_debug_level_is_read_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_DEBUG", "2")
    assert debug_level() == 2
    monkeypatch.setenv("TG_DEBUG", "0")
    assert debug_level() == 0


@pytest.mark.parametrize("table", ["os.environ's table", "os.environ.get"])
def test_environ_get_sees_every_change_to_os_environ(monkeypatch: pytest.MonkeyPatch, table: str) -> None:
    """environ_get reads os.environ's own table (faster than os.environ.get), or falls back to os.environ.get: set,
    changed, non-ASCII and removed values read as os.environ.get reads them, names read before included."""
    if table == "os.environ.get":  # a mapping of the same contents without CPython's table
        monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.delenv("TG_X", raising=False)
    assert environ_get("TG_X") is None
    monkeypatch.setenv("TG_X", "1")
    assert environ_get("TG_X") == "1"
    monkeypatch.setenv("TG_X", "caf\u00e9 \udcff")  # (a lone surrogate: how Python keeps a byte that is not UTF-8)
    assert environ_get("TG_X") == os.environ.get("TG_X") == "caf\u00e9 \udcff"
    monkeypatch.delenv("TG_X")
    assert environ_get("TG_X") is None
    assert environ_get("PATH") == os.environ.get("PATH")


def test_timing_measures_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    with Timing("step ", on_exit=lambda ns: f" ({ns > 0})") as t:
        sum(range(1000))
    assert t.seconds > 0
    assert re.fullmatch(r"step \d+\.\d\d ms \(True\)\n", capsys.readouterr().err)
    with Timing(enabled=False):
        pass
    assert capsys.readouterr().err == ""


def test_every_variable_is_prefixed_and_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ENVIRONMENT:
        assert name.startswith("TG_")
        assert f"| `{name}` |" in readme, f"{name} is missing from the README's table"
    documented = set(re.findall(r"^\| `(TG_\w+)` \|", readme, flags=re.M))
    assert documented == set(ENVIRONMENT)


def _read(*folders: Path) -> set[str]:
    source = "\n".join(p.read_text() for folder in folders for p in folder.rglob("*.py"))
    return set(re.findall(r"[\"'](TG_[A-Z_]+)[\"']", source))


def test_every_variable_core_reads_is_listed() -> None:
    read = _read(ROOT / "core" / "src" / "tg", ROOT / "examples")
    assert read <= set(ENVIRONMENT), f"undocumented: {read - set(ENVIRONMENT)}"


@pytest.mark.parametrize("plugin", ["tg-clang", "tg-ptx"])
def test_every_variable_a_plugin_reads_is_its_own_and_documented(plugin: str) -> None:
    """A plugin's variables: declared in its plugin module's ENVIRONMENT (the tg_environment hook, `tg env`) and
    in its README's table; core's table does not carry them."""
    folder = ROOT / "plugins" / plugin
    module = next(folder.glob("src/*/plugin.py")).read_text()
    declared = set(re.findall(r'^    "(TG_[A-Z_]+)":', module, flags=re.M))
    read = _read(folder / "src") - set(ENVIRONMENT)
    assert declared and read <= declared, f"undeclared: {read - declared}"
    assert not declared & set(ENVIRONMENT), "a plugin's variable is in core's table"
    readme = (folder / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in declared), [n for n in declared if f"`{n}`" not in readme]


def test_settings_that_were_accepted_silently_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """TG_DEBUG=-5, TG_BACKEND=' , ,' and TG_PLUGINS=bogus used to do nothing, without a word."""
    import warnings

    from tg.backends.discovery import PluginRegistry
    from tg.backends.selection import select
    from tg.support.errors import BackendError, PluginError, PluginWarning
    from tg.support.helpers import debug_level

    monkeypatch.setenv("TG_DEBUG", "-5")
    with pytest.raises(ValueError, match="TG_DEBUG=-5: the debug level is 0 .off. to 6"):
        debug_level()
    monkeypatch.delenv("TG_DEBUG")
    with pytest.raises(BackendError, match="TG_BACKEND=' , ,' names no backend"):
        select(" , ,")
    monkeypatch.setenv("TG_PLUGINS", "bogus")
    with pytest.warns(PluginWarning, match="TG_PLUGINS names 'bogus', which no installed plugin is called"):
        PluginRegistry()
    monkeypatch.setenv("TG_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="'bogus'"):
        PluginRegistry()
    monkeypatch.setenv("TG_PLUGINS", "")  # built-ins only: nothing named, nothing to warn about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PluginRegistry()
