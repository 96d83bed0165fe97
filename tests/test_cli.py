"""`tg backends` with no third-party plugin allowed: it works, and exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tg.cli import main


def test_backends_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TG_PLUGINS", "")
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tg-core 0.1.0, hook-spec v2")


def test_backends_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TG_PLUGINS", "")
    assert main(["backends", "--check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tg_core"] == "0.1.0" and data["hookspec"] == 2 and data["checked"] is True
    assert isinstance(data["backends"], list)
    numpy_row = next(r for r in data["backends"] if r["backend"] == "numpy")
    assert numpy_row["available"] is True


def test_backends_json_without_check_says_availability_is_unknown(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TG_PLUGINS", "")
    assert main(["backends", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["checked"] is False and data["backends"]
    assert all(r["available"] is None for r in data["backends"])  # metadata only: nothing was loaded


def test_console_script_and_module_agree() -> None:
    env = os.environ | {"TG_PLUGINS": ""}
    via_module = subprocess.run([sys.executable, "-m", "tg", "backends"], capture_output=True, text=True, env=env,
                                timeout=60)
    assert via_module.returncode == 0, via_module.stderr
    assert "hook-spec v2" in via_module.stdout


def test_bad_arguments_exit_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["backends", "--nope"])
    assert exit_info.value.code == 2
