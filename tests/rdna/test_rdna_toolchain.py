"""Finding LLVM: versioned names, overrides, and the errors for a missing or too old LLVM."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from rdna_helpers import needs_llvm
from tg_rdna import toolchain


def _fake_tool(folder: Path, name: str, version_line: str) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{version_line}'\necho '  Registered Targets:'\n"
                    "echo '    amdgcn - AMD GCN GPUs'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_parse_version_reads_llvm_and_lld_banners() -> None:
    assert toolchain.parse_version("Debian LLVM version 19.1.7\n  Optimized build.") == (19, 1, 7)
    assert toolchain.parse_version("Debian LLD 19.1.7 (compatible with GNU linkers)") == (19, 1, 7)
    assert toolchain.parse_version("Ubuntu LLVM version 15.0") == (15, 0, 0)
    assert toolchain.parse_version("GNU ld 2.40") is None


def test_versioned_names_are_tried_newest_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TG_RDNA_LLVM_MC", raising=False)
    monkeypatch.delenv("TG_RDNA_LLVM_BIN", raising=False)
    _fake_tool(tmp_path, "llvm-mc-16", "LLVM version 16.0.6")
    _fake_tool(tmp_path, "llvm-mc-18", "LLVM version 18.1.0")
    _fake_tool(tmp_path, "llvm-mc", "LLVM version 14.0.0")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert toolchain.find("llvm-mc") == str(tmp_path / "llvm-mc-18")


def test_a_missing_llvm_names_the_debian_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TG_RDNA_LLVM_BIN", str(tmp_path))  # an empty folder
    with pytest.raises(toolchain.ToolchainError) as info:
        toolchain.require("ld.lld")
    message = str(info.value)
    assert "ld.lld was not found" in message and "apt-get install llvm-19 lld-19" in message
    assert "lld-19" in message and "TG_RDNA_LLVM_BIN" in message
    assert "apt-get install llvm-19 lld-19" in (toolchain.problem() or "")


def test_an_override_that_names_nothing_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_RDNA_LLVM_MC", "/nonexistent/llvm-mc")
    with pytest.raises(toolchain.ToolchainError, match=r"TG_RDNA_LLVM_MC='/nonexistent/llvm-mc' names nothing"):
        toolchain.require("llvm-mc")


def test_a_too_old_llvm_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old = _fake_tool(tmp_path, "llvm-mc-14", "LLVM version 14.0.6")
    monkeypatch.setenv("TG_RDNA_LLVM_MC", str(old))
    with pytest.raises(toolchain.ToolchainError) as info:
        toolchain.require("llvm-mc")
    assert "LLVM 14.0.6, too old for gfx1100" in str(info.value)
    assert "apt-get install llvm-19 lld-19" in str(info.value)


def test_an_llvm_without_amdgpu_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "llvm-mc"
    path.write_text("#!/bin/sh\necho 'LLVM version 19.1.0'\necho '  Registered Targets:'\necho '    x86-64 - 64-bit'\n")
    path.chmod(0o755)
    monkeypatch.setenv("TG_RDNA_LLVM_MC", str(path))
    with pytest.raises(toolchain.ToolchainError, match="without the AMDGPU target"):
        toolchain.require("llvm-mc")


@needs_llvm
def test_the_installed_llvm_is_found_and_new_enough() -> None:
    mc = toolchain.require("llvm-mc")
    assert mc.version[0] >= toolchain.MIN_VERSION and os.path.isabs(mc.path)
    assert toolchain.require("ld.lld").version[0] >= toolchain.MIN_VERSION
