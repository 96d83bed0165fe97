"""Every micro-op program of ptx_programs, rendered to PTX and run on the emulator, against core's numpy backend.

The numpy backend runs the micro-ops themselves, so it is the reference for what each op means; the
emulator only sees the PTX text.  Float results must agree to a few ulp (tg-ptx's exp2/log2/sin are
accurate, not approximations), integers and bools exactly.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("tg_ptx", reason="tg-ptx is not installed (nox -s ptx runs these tests)")

import ptx_programs as P  # noqa: E402

PROGRAMS = P.all_programs()


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_emulated_ptx_matches_the_numpy_backend(program: P.Program) -> None:
    with np.errstate(all="ignore"):
        want = P.run_numpy(program)
    got = P.run_emu(program)
    if program.buffers[0].dtype.kind == "f":
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=program.rtol,
                                   atol=0, equal_nan=True, err_msg=program.ptx())
        zeros = want == 0
        np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(want[zeros]), err_msg="signs of zeros")
    else:
        np.testing.assert_array_equal(got, want, err_msg=program.ptx())


def test_the_buffers_are_the_entrys_parameters_in_launch_order() -> None:
    program = P.scale_program()
    rendered = program.rendered()
    assert rendered.name == "scale_by_5" and rendered.variables == ()
    assert (rendered.global_size, rendered.local_size) == ((8,), (1,))
    assert [(b.index, b.name, b.writable) for b in rendered.buffers] == [(0, "data0", True), (1, "data1", False)]
    assert re.findall(r"\.param \.(\w+) (\w+)", rendered.source) == [("u64", "data0"), ("u64", "data1")]
    np.testing.assert_array_equal(P.run_emu(program), np.arange(8) * 5)


def test_integer_parameters_reach_the_kernel() -> None:
    """The runtime passes the Program's variables after its buffers (core produces none yet: hand-made PTX)."""
    program = P.scale_program()
    source = program.ptx()
    assert "mul.lo.s32 %r2, %r1, 5;" in source and "\t.param .u64 data1\n)" in source
    source = source.replace("\t.param .u64 data1\n)", "\t.param .u64 data1,\n\t.param .s32 n\n)")
    source = source.replace("mul.lo.s32 %r2, %r1, 5;", "ld.param.s32 %r2, [n];\n\tmul.lo.s32 %r2, %r1, %r2;")
    got = P.run_emu(program, source, values={"n": 7}, variables=("n",))
    np.testing.assert_array_equal(got, np.arange(8) * 7)
