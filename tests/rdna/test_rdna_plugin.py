"""tg-rdna as a plugin: entry points, lazy imports, environment variables, the runtimes' availability messages,
the kernarg layout, TG_DEBUG=5's disassembly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from typing import Any

import pytest
from rdna_helpers import needs_llvm
from tg.codegen.program import KernelParam, Program
from tg.support.dtype import dtypes
from tg_rdna import runtime_cl
from tg_rdna.runtime_emu import kernarg


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("TG_")}
    out["TG_PLUGINS"] = "rdna"
    out.update(extra)
    return out


def test_import_tg_imports_no_tg_rdna_module_and_no_pyopencl() -> None:
    code = """
import sys, tg
from tg.backends.discovery import registry
reg = registry()
assert 'rdna' in reg.plugins, reg.plugins
print(sorted(m for m in sys.modules if m.startswith(('tg_rdna', 'pyopencl'))))
"""
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["[]"], r.stdout + r.stderr


def test_the_plugin_module_imports_no_pyopencl_and_runs_no_tool() -> None:
    code = """
import sys, subprocess
calls = []
real = subprocess.Popen.__init__
def spy(self, *a, **k):
    calls.append(a[0] if a else k.get('args'))
    return real(self, *a, **k)
subprocess.Popen.__init__ = spy
import tg_rdna.plugin
print('pyopencl' in sys.modules, 'tg_rdna.emulator' in sys.modules, len(calls))
"""
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["False", "False", "0"], r.stdout + r.stderr


def test_tg_env_lists_the_plugins_variables() -> None:
    r = subprocess.run([sys.executable, "-m", "tg", "env"], env=env(), capture_output=True, text=True, check=True)
    for name in ("TG_RDNA_LLVM_MC", "TG_RDNA_LLVM_LLD", "TG_RDNA_LLVM_BIN", "TG_RDNA_DEVICE"):
        assert name in r.stdout, r.stdout


def test_tg_backends_lists_both_runtimes_and_says_why_rdna_cannot_run() -> None:
    r = subprocess.run([sys.executable, "-m", "tg", "backends", "--check", "--json"], env=env(),
                       capture_output=True, text=True, check=True)
    rows = {row["backend"]: row for row in json.loads(r.stdout)["backends"]}
    assert rows["rdna:emu"]["priority"] == -100 and rows["rdna"]["priority"] == 250
    assert rows["rdna"]["distribution"] == "tg-rdna"
    if not rows["rdna"]["available"]:
        assert "rdna:emu" in rows["rdna"]["remedy"] or "rdna:emu" in rows["rdna"]["problem"]


def test_naming_rdna_without_an_amd_gpu_fails_pointing_at_the_emulator() -> None:
    code = "from tg import Tensor; print((Tensor([1.0]) * 2).numpy())"
    r = subprocess.run([sys.executable, "-c", code], env=env(TG_BACKEND="rdna"), capture_output=True, text=True)
    if r.returncode == 0:
        pytest.skip("an RDNA3 GPU with ROCm's OpenCL is here")
    assert "rdna:emu" in r.stderr, r.stderr[-2000:]


class _Device:
    def __init__(self, name: str, platform: Any):
        self.name, self.platform = name, platform


class _Platform:
    def __init__(self, name: str, devices: list[str]):
        self.name = name
        self._devices = [_Device(d, self) for d in devices]

    def get_devices(self) -> list[_Device]:
        return self._devices


def _fake_cl(monkeypatch: pytest.MonkeyPatch, platforms: list[_Platform] | Exception) -> None:
    module = types.ModuleType("pyopencl")

    def get_platforms() -> list[_Platform]:
        if isinstance(platforms, Exception):
            raise platforms
        return platforms

    module.get_platforms = get_platforms  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyopencl", module)


def test_without_pyopencl_the_fix_is_the_extra_and_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyopencl", None)  # import fails
    a = runtime_cl.OpenCLRuntime().available()
    assert not a and a.reason == "pyopencl is not installed"
    assert "tg-rdna[opencl]" in a.remedy and "rdna:emu" in a.remedy


def test_no_opencl_platform_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cl(monkeypatch, RuntimeError("clGetPlatformIDs failed: PLATFORM_NOT_FOUND_KHR"))
    a = runtime_cl.OpenCLRuntime().available()
    assert not a and a.reason.startswith("no OpenCL platform") and "PLATFORM_NOT_FOUND" in a.reason
    assert "rocm-opencl-runtime" in a.remedy and "rdna:emu" in a.remedy


def test_only_pocl_or_mesa_cannot_load_amd_code_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cl(monkeypatch, [_Platform("Portable Computing Language", ["pthread-cpu"]),
                           _Platform("rusticl", ["AMD Radeon RX 7900 XTX (radeonsi, gfx1100)"])])
    a = runtime_cl.OpenCLRuntime().available()
    assert not a and "no RDNA3 (gfx11) device" in a.reason and "cannot load AMD code objects" in a.reason
    assert "rdna:emu" in a.remedy


def test_a_non_gfx11_amd_device_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cl(monkeypatch, [_Platform("AMD Accelerated Parallel Processing", ["gfx1030"])])
    a = runtime_cl.OpenCLRuntime().available()
    assert not a and "gfx1030 (AMD Accelerated Parallel Processing): not gfx11" in a.reason


@needs_llvm
def test_a_gfx1100_on_rocm_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cl(monkeypatch, [_Platform("AMD Accelerated Parallel Processing", ["gfx1100"])])
    a = runtime_cl.OpenCLRuntime().available()
    assert a and "gfx1100" in a.detail


def test_kernarg_holds_addresses_then_int32_variables_padded_to_8() -> None:
    params = (KernelParam(0, "data0", dtypes.float32, True), KernelParam(1, "data1", dtypes.float32, False))
    p = Program("k", "", params, (1,), (1,), variables=("n",), attributes={"kernarg_size": 24})
    data = kernarg(p, [0x1000, 0x2000], {"n": -3})
    assert data == (0x1000).to_bytes(8, "little") + (0x2000).to_bytes(8, "little") + (-3).to_bytes(4, "little",
                                                                                                 signed=True) + bytes(4)
    with pytest.raises(ValueError, match="declares 16 kernarg bytes"):
        kernarg(Program("k", "", params, (1,), (1,), variables=("n",), attributes={"kernarg_size": 16}),
                [1, 2], {"n": 0})


@needs_llvm
def test_tg_debug_5_prints_llvms_disassembly(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from tg.codegen.builder import KernelBuilder
    from tg.codegen.program import LoweredKernel
    from tg.codegen.uops import Ops
    from tg_rdna.emitter import RDNAEmitter
    from tg_rdna.runtime_emu import EmulatorRuntime

    monkeypatch.setenv("TG_CACHE_DIR", str(tmp_path))
    b = KernelBuilder()
    o, x = b.define_global(0, dtypes.float32, True), b.define_global(1, dtypes.float32, False)
    g = b.special("gidx0", 32)
    b.store(o, g, b.alu(Ops.EXP2, b.load(x, g, dtypes.float32)))
    program = RDNAEmitter().render(LoweredKernel("exp2_32", b.uops, (32,), (1,)))
    listing = EmulatorRuntime().disassemble(program, None) or ""
    assert "<exp2_32>:" in listing and "v_exp_f32" in listing and "s_endpgm" in listing
