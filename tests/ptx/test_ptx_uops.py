"""Every micro-op program of ptx_programs, rendered to PTX and run on the emulator, against core's numpy backend.

The numpy backend runs the micro-ops themselves, so it is the reference for what each op means; the
emulator only sees the PTX text.  Float results must agree to a few ulp (tg-ptx's exp2/log2/sin are
accurate, not approximations), integers and bools exactly.
"""

from __future__ import annotations

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


def test_integer_parameters_reach_the_kernel() -> None:
    program = P.var_program()
    assert ".param .s32 n" in program.ptx()
    np.testing.assert_array_equal(P.run_emu(program), np.arange(8) * 5)
