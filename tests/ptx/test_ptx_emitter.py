"""The PTX emitter: every micro-op kind renders, the text reads like hand-written PTX, the target is configurable."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("tg_ptx", reason="tg-ptx is not installed (nox -s ptx runs these tests)")

import ptx_programs as P  # noqa: E402
from tg.codegen.uops import Ops  # noqa: E402
from tg_ptx.arch import isa_version, parse_arch, set_detected_arch, target_arch  # noqa: E402
from tg_ptx.emitter import CAPABILITIES, PTXEmitter, kernel_name  # noqa: E402

PROGRAMS = {p.name: p for p in P.all_programs()}


def ptx(name: str) -> str:
    return PROGRAMS[name].ptx()


def test_every_micro_op_kind_is_rendered() -> None:
    """Every micro-op the PTX target renders (all but the optional ones it leaves to core: POW) has a program."""
    programs = [*PROGRAMS.values(), P.scale_program()]
    covered = {u.op for p in programs for u in p.uops}
    rendered_ops = {op for op in Ops if CAPABILITIES.rendered(op)}
    assert covered == rendered_ops, f"no program renders {sorted(o.name for o in rendered_ops - covered)}"
    assert Ops.POW not in rendered_ops
    for p in programs:
        rendered = p.rendered()
        assert rendered.source.count(".entry") == 1 and f".entry {rendered.name}(\n" in rendered.source
        assert rendered.buffers == p.lowered().buffers and rendered.global_size == p.global_size


def test_one_entry_named_after_the_kernel_with_typed_registers() -> None:
    text = ptx("mulacc_float32")
    assert re.search(r"^\.visible \.entry mulacc_float32\($", text, flags=re.M)
    assert re.search(r"^\t\.reg \.f32 %f<\d+>;$", text, flags=re.M)
    assert re.search(r"^\t\.reg \.u64 %rd<\d+>;$", text, flags=re.M)
    assert "fma.rn.f32" in text
    assert text.startswith("//") and ".version 7.0\n.target sm_80\n.address_size 64" in text


def test_float_arithmetic_is_never_contracted() -> None:
    text = ptx("add_float32") + ptx("mul_float64") + ptx("sub_float16")
    assert "add.rn.f32" in text and "mul.rn.f64" in text and "sub.rn.f16" in text
    assert "div.rn.f32" in ptx("div_float32")


def test_masked_loads_and_stores_are_predicated() -> None:
    load = ptx("gated_load_float32")
    assert re.search(r"setp\.\w+\.s32 (%p\d+)", load)
    assert re.search(r"@%p\d+ ld\.global\.nc\.f32 %f\d+, \[%rd\d+\];", load)
    assert re.search(r"@%p\d+ st\.global\.f32", ptx("gated_store_float32"))


def test_vectors_use_v4_and_v2_accesses() -> None:
    assert re.search(r"ld\.global\.nc\.v4\.f32 \{%f\d+, %f\d+, %f\d+, %f\d+\}", ptx("vector_float32"))
    assert re.search(r"st\.global\.v4\.f32", ptx("vector_float32"))
    assert re.search(r"ld\.global\.nc\.v4\.b16", ptx("vector_float16"))
    assert ptx("vector_float64").count("ld.global.nc.v2.f64") == 2  # 16 bytes per access at most


def test_loops_are_labels_and_branches() -> None:
    text = ptx("nested_max")
    assert len(re.findall(r"^\$L_loop\d+:$", text, flags=re.M)) == 2
    assert len(re.findall(r"@%p\d+ bra\.uni \$L_loop\d+;", text)) == 2
    assert "bra.uni $L_end" in ptx("empty_loop")  # a loop that may not run is skipped


def test_local_memory_is_shared_with_barriers() -> None:
    text = ptx("group_reduce_float32")
    assert re.search(r"^\t\.shared \.align 16 \.b8 partials\[32\];", text, flags=re.M)
    assert "bar.sync 0;" in text
    assert re.search(r"st\.shared\.f32 \[%rs\d+\]", text)
    assert ".maxntid 8, 1, 1" in text
    two = ptx("local_neighbours")
    assert "first[32]" in two and "second[32]" in two


def test_float16_lives_in_b16_registers_and_uses_f32_where_ptx_has_no_f16_op() -> None:
    div = ptx("div_float16")
    assert re.search(r"\.reg \.b16 %h<\d+>;", div)
    assert "cvt.f32.f16" in div and "div.rn.f32" in div and "cvt.rn.f16.f32" in div
    assert "add.rn.f16" in ptx("add_float16")
    assert "ld.global.nc.b16" in div


def test_bool_is_a_predicate_in_registers_and_a_byte_in_memory() -> None:
    text = ptx("and_bool")
    assert "and.pred" in text and "ld.global.nc.u8" in text and "st.global.u8" in text
    assert re.search(r"setp\.ne\.u16 %p\d+, %ruc\d+, 0", text)


def test_accurate_transcendentals() -> None:
    exp2 = ptx("exp2_float32")
    assert "ex2.approx.ftz.f32" in exp2 and "setp.lt.f32 %p0, %f0, 0fC2FC0000" in exp2  # x < -126: scaled
    log2 = ptx("log2_float32")
    assert "lg2.approx.ftz.f32" in log2 and "0f00800000" in log2  # subnormal x (< 2^-126): scaled
    for name in ("sin_float32", "sin_float64", "exp2_float64", "log2_float64", "sin_float16"):
        assert ".approx" not in ptx(name), name  # float64 polynomials, never the hardware's sin.approx
    assert "cvt.rni.f64.f64" in ptx("sin_float32")  # the range reduction


def test_capabilities() -> None:
    caps = CAPABILITIES
    assert caps.dtypes == {"float16", "float32", "float64", "int8", "uint8", "int32", "int64", "bool"}
    assert (caps.group_size, caps.local_memory, caps.vector_width) == (128, 48 * 1024, 4)
    assert Ops.MULACC in caps.renders and Ops.POW not in caps.renders and Ops.DIV in caps.renders
    assert not caps.sin_is_sin2pi
    assert PTXEmitter.target == "ptx" and PTXEmitter.language == "ptx"


def test_kernel_names_are_ptx_identifiers() -> None:
    assert kernel_name("r_add_3_4") == "r_add_3_4"
    assert kernel_name("3d-conv") == "k_3d_conv"
    rendered = replace(PROGRAMS["add_int32"], name="3d-conv").rendered()
    assert rendered.name == "k_3d_conv" and ".visible .entry k_3d_conv(" in rendered.source  # what runtimes look up


@pytest.mark.parametrize(("arch", "version"), [("sm_80", "7.0"), ("sm_86", "7.1"), ("sm_89", "7.8"),
                                               ("sm_90", "7.8"), ("sm_90a", "8.0"), ("sm_120", "8.7")])
def test_target_and_isa_version_follow_tg_ptx_arch(monkeypatch: pytest.MonkeyPatch, arch: str, version: str) -> None:
    monkeypatch.setenv("TG_PTX_ARCH", arch)
    assert isa_version(arch) == version
    text = ptx("add_int32")
    assert f".version {version}\n.target {arch}\n" in text


def test_target_defaults_to_sm_80_then_to_the_open_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TG_PTX_ARCH", raising=False)
    assert target_arch() == "sm_80"
    set_detected_arch("sm_86")
    try:
        assert target_arch() == "sm_86"
        monkeypatch.setenv("TG_PTX_ARCH", "sm_90")
        assert target_arch() == "sm_90"
    finally:
        set_detected_arch(None)


@pytest.mark.parametrize("bad", ["sm_75", "compute_80", "80", "sm_8x"])
def test_bad_targets_are_refused(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not a PTX target|too old"):
        parse_arch(bad)
    monkeypatch.setenv("TG_PTX_ARCH", bad)
    with pytest.raises(ValueError, match=f"TG_PTX_ARCH: '{bad}'"):
        target_arch()


def test_the_kernels_of_a_real_program_render(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tg import Tensor

    monkeypatch.setenv("TG_DEBUG", "4")
    a = Tensor(np.ones((5, 13), np.float32), device="ptx:emu")  # a shape no other test uses: a fresh kernel
    b = Tensor(np.ones((13, 3), np.float32), device="ptx:emu")
    (a @ b).numpy()
    out = capsys.readouterr().out
    assert ".visible .entry" in out and "fma.rn.f32" in out
