"""NVIDIA's ptxas accepts what the emitter writes (sm_80 and sm_90), and a rejected kernel is reported well."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("tg_ptx", reason="tg-ptx is not installed (nox -s ptx runs these tests)")

import ptx_programs as P  # noqa: E402
from tg.support.errors import BackendError  # noqa: E402
from tg_ptx import ptxas  # noqa: E402

HAVE_PTXAS = ptxas.find_tool("ptxas") is not None
needs_ptxas = pytest.mark.skipif(not HAVE_PTXAS, reason=f"ptxas (NVIDIA's PTX assembler) was not found: {ptxas.REMEDY}")

BROKEN = P.all_programs()[0].ptx().replace("add.rn.f16", "addd.rn.f16", 1)
assert "addd.rn.f16" in BROKEN


@pytest.fixture
def verifier(monkeypatch: pytest.MonkeyPatch) -> ptxas.Verifier:
    monkeypatch.setenv("TG_PTX_VERIFY", "sm_80,sm_90")
    return ptxas.Verifier()


@needs_ptxas
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_ptxas_accepts_every_program(monkeypatch: pytest.MonkeyPatch, arch: str) -> None:
    programs = [*P.all_programs(), P.scale_program()]
    monkeypatch.setenv("TG_PTX_VERIFY", arch)
    monkeypatch.setenv("TG_PTX_VERIFY_BATCH", str(len(programs) + 1))
    v = ptxas.Verifier()
    for p in programs:
        v.add(p.ptx(), p.name)
    v.flush()
    assert v.counts == {arch: len(programs)}


@needs_ptxas
def test_a_rejected_kernel_names_ptxas_line_and_shows_the_ptx_around_it() -> None:
    with pytest.raises(ptxas.PtxasError) as info:
        ptxas.assemble(BROKEN, "sm_80", "add_float16")
    message = str(info.value)
    assert "ptxas -arch=sm_80 rejected kernel add_float16" in message
    assert "addd" in message
    marked = [line for line in message.splitlines() if line.startswith(">")]
    assert len(marked) == 1 and "addd.rn.f16" in marked[0]


@needs_ptxas
def test_verification_one_kernel_at_a_time(verifier: ptxas.Verifier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TG_PTX_VERIFY_BATCH", raising=False)
    good = P.all_programs()[1]
    verifier.add(good.ptx(), good.name)
    assert verifier.counts == {"sm_80": 1, "sm_90": 1}
    with pytest.raises(ptxas.PtxasError, match="rejected kernel add_float16"):
        verifier.add(BROKEN, "add_float16")


@needs_ptxas
def test_a_batch_names_the_kernel_at_fault(verifier: ptxas.Verifier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_PTX_VERIFY_BATCH", "4")
    programs = P.all_programs()[1:4]
    for p in programs:
        verifier.add(p.ptx(), p.name)  # three kernels: still pending
    assert len(verifier.pending) == 3 and not verifier.counts
    with pytest.raises(ptxas.PtxasError, match="rejected kernel add_float16"):
        verifier.add(BROKEN, "add_float16")  # the fourth fills the batch: checked in the background
        verifier.flush()  # ...whose verdict arrives here at the latest
    assert not verifier.counts and not verifier.pending


@needs_ptxas
def test_the_emulator_runtime_verifies_before_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from tg_ptx.runtime_emu import EmulatorRuntime

    monkeypatch.setenv("TG_PTX_VERIFY", "sm_90")
    monkeypatch.delenv("TG_PTX_VERIFY_BATCH", raising=False)
    program = replace(P.all_programs()[0].rendered(), source=BROKEN)
    assert program.name == "add_float16"
    with pytest.raises(ptxas.PtxasError, match="-arch=sm_90 rejected kernel add_float16"):
        EmulatorRuntime().compile(program)


def test_verification_is_off_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TG_PTX_VERIFY", raising=False)
    v = ptxas.Verifier()
    v.add(BROKEN, "add_float16")
    assert not v.counts and not v.pending and ptxas.verify_targets() == []


def test_a_bad_verify_target_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_PTX_VERIFY", "sm_80,sm_61")
    with pytest.raises(BackendError, match="TG_PTX_VERIFY"):
        ptxas.verify_targets()


def test_missing_ptxas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ptxas, "find_tool", lambda tool: None)
    with pytest.raises(ptxas.PtxasError, match=r"ptxas was not found.*tg-ptx\[ptxas\]"):
        ptxas.assemble(BROKEN, "sm_80", "k")
    assert ptxas.disassemble(BROKEN, "sm_80", "k") is None  # core then says there is no disassembler


@needs_ptxas
def test_tg_debug_5_disassembles_through_ptxas_and_nvdisasm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tg_ptx.runtime_emu import EmulatorRuntime

    fake = tmp_path / "nvdisasm"  # stands in for NVIDIA's disassembler: shows what it was given
    fake.write_text('#!/bin/sh\necho "SASS of $(basename "$2"): $(wc -c < "$2") bytes of cubin ($1)"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    program = P.all_programs()[1]
    runtime = EmulatorRuntime()
    rendered = program.rendered()
    text = runtime.disassemble(rendered, runtime.compile(rendered))
    assert text is not None and text.startswith(f"SASS of {program.name}.cubin:") and "(-c)" in text


def test_ptxas_is_found_in_cuda_home_and_in_nvidia_wheels(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "cuda" / "bin" / "nvdisasm"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", os.defpath)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "cuda"))
    assert ptxas.find_tool("nvdisasm") == str(fake)
    wheel = tmp_path / "site" / "nvidia" / "cuda_nvcc" / "bin" / "nvdisasm"
    wheel.parent.mkdir(parents=True)
    wheel.write_text("#!/bin/sh\n")
    wheel.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.delenv("CUDA_HOME")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert ptxas.find_tool("nvdisasm") in (str(wheel), "/usr/local/cuda/bin/nvdisasm")


def test_excerpt_marks_each_line_ptxas_names() -> None:
    source = "\n".join(f"line{i}" for i in range(1, 21))
    text = ptxas.excerpt(source, "ptxas k.ptx, line 10; error : bad")
    assert ">   10  line10" in text and "    7  line7" in text and "line14" not in text
    assert ptxas.excerpt(source, "no line here") == ""


def test_a_hung_ptxas_times_out_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from tg.support.early_exec import EarlyExecTimeout

    fake = tmp_path / "ptxas"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("TG_EXEC_TIMEOUT", "1")
    assert ptxas.find_tool("ptxas") == str(fake)
    start = time.monotonic()
    with pytest.raises(EarlyExecTimeout, match=r"ptxas -arch=sm_80 .*within 1 s.*TG_EXEC_TIMEOUT"):
        ptxas.assemble(P.all_programs()[0].ptx(), "sm_80", "stuck")
    assert time.monotonic() - start < 15


class _Reporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str, **markup: bool) -> None:
        self.lines.append(line)


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Any:
    """tg_ptx.pytest_plugin with a fresh tally and process verifier (TG_PTX_VERIFY=sm_80,sm_90, batches of 10)."""
    from tg_ptx import pytest_plugin

    monkeypatch.setenv("TG_PTX_VERIFY", "sm_80,sm_90")
    monkeypatch.setenv("TG_PTX_VERIFY_BATCH", "10")
    monkeypatch.setattr(pytest_plugin, "_failure", [])
    monkeypatch.setattr(pytest_plugin, "_accepted", {})
    monkeypatch.setattr(ptxas, "verifier", ptxas.Verifier())
    return pytest_plugin


@needs_ptxas
def test_an_xdist_worker_checks_its_pending_kernels_and_hands_the_verdict_on(plugin: Any) -> None:
    ptxas.verify(BROKEN, "add_float16")  # pending (a batch of 10) when the worker's session ends
    session = SimpleNamespace(config=SimpleNamespace(workeroutput={}), exitstatus=0)
    plugin.pytest_sessionfinish(session, 0)
    verdict = session.config.workeroutput["tg_ptx_verify"]
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED and not ptxas.verifier.pending
    assert verdict["accepted"] == {} and len(verdict["failures"]) == 1
    assert "ptxas -arch=sm_80 rejected kernel add_float16" in verdict["failures"][0]


def test_the_xdist_controller_adds_up_the_workers_and_fails_for_a_rejection(plugin: Any) -> None:
    def worker(name: str, accepted: dict[str, int], failures: list[str]) -> SimpleNamespace:
        verdict = {"accepted": accepted, "failures": failures}
        return SimpleNamespace(gateway=SimpleNamespace(id=name), workeroutput={"tg_ptx_verify": verdict})

    plugin.pytest_testnodedown(worker("gw0", {"sm_80": 3, "sm_90": 3}, []), None)
    plugin.pytest_testnodedown(worker("gw1", {"sm_80": 2, "sm_90": 2}, []), None)
    session = SimpleNamespace(config=SimpleNamespace(), exitstatus=0)
    plugin.pytest_sessionfinish(session, 0)
    reporter = _Reporter()
    plugin.pytest_terminal_summary(reporter, 0, session.config)
    assert session.exitstatus == 0 and reporter.lines == ["tg-ptx: ptxas accepted 5 kernels for sm_80, 5 kernels for "
                                                          "sm_90"]
    plugin.pytest_testnodedown(worker("gw2", {}, ["ptxas -arch=sm_80 rejected kernel k"]), None)
    plugin.pytest_testnodedown(SimpleNamespace(gateway=SimpleNamespace(id="gw3"), workeroutput={}), None)
    plugin.pytest_sessionfinish(session, 0)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
    assert plugin._failure == ["gw2: ptxas -arch=sm_80 rejected kernel k",
                               "gw3 ended without ptxas's verdict on its kernels"]
