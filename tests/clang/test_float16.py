"""float16 on the clang backend: the C conversions against numpy's, bit for bit, and float16 tensors."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from tg import Tensor
from tg_clang.compiler import KernelCache
from tg_clang.cprelude import PRELUDE, half_bits

HARNESS = PRELUDE + r"""
void h2f(const uint16_t *in, float *out, int n, int soft) {
  for (int i = 0; i < n; i++) out[i] = soft ? tg_h2f_sw(in[i]) : tg_h2f(in[i]);
}
void f2h(const float *in, uint16_t *out, int n, int soft) {
  for (int i = 0; i < n; i++) out[i] = soft ? tg_f2h_sw(in[i]) : tg_f2h(in[i]);
}
void d2h(const double *in, uint16_t *out, int n) { for (int i = 0; i < n; i++) out[i] = tg_d2h(in[i]); }
"""


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    library, _ = KernelCache().load(HARNESS, "d2h")
    p, i = ctypes.c_void_p, ctypes.c_int
    library.h2f.argtypes = [p, p, i, i]
    library.f2h.argtypes = [p, p, i, i]
    library.d2h.argtypes = [p, p, i]
    return library


@pytest.mark.parametrize("soft", [0, 1])
def test_every_half_converts_to_float_exactly(lib: ctypes.CDLL, soft: int) -> None:
    bits = np.arange(1 << 16, dtype=np.uint16)
    out = np.empty(bits.size, np.float32)
    lib.h2f(bits.ctypes.data, out.ctypes.data, bits.size, soft)
    want = bits.view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(out.view(np.uint32)[~np.isnan(want)], want.view(np.uint32)[~np.isnan(want)])
    assert np.isnan(out[np.isnan(want)]).all()


def _tricky_floats() -> np.ndarray:
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    halves = halves[np.isfinite(halves)]
    mids = (halves[:-1].astype(np.float64) + halves[1:]) / 2  # ties between neighbours
    near = np.concatenate([np.nextafter(mids.astype(np.float32), np.float32(np.inf)),
                           np.nextafter(mids.astype(np.float32), np.float32(-np.inf)), mids.astype(np.float32)])
    rng = np.random.default_rng(0)
    rand = (rng.standard_normal(1 << 16) * np.exp2(rng.integers(-30, 20, 1 << 16))).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 65504, 65519.99, 65520, 1e-8, 2.98e-8, 3e-8, 6e-8, 1e30],
                       np.float32)
    return np.concatenate([halves, near, rand, special, -special])


@pytest.mark.parametrize("soft", [0, 1])
def test_floats_round_to_half_like_numpy(lib: ctypes.CDLL, soft: int) -> None:
    x = _tricky_floats()
    out = np.empty(x.size, np.uint16)
    lib.f2h(x.ctypes.data, out.ctypes.data, x.size, soft)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, x.astype(np.float16).view(np.uint16))
    nan = np.array([np.nan], np.float32)
    lib.f2h(nan.ctypes.data, out.ctypes.data, 1, soft)
    assert np.isnan(out[:1].view(np.float16)).all()


def test_doubles_round_to_half_directly(lib: ctypes.CDLL) -> None:
    x = _tricky_floats().astype(np.float64)
    rng = np.random.default_rng(1)
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float64)
    halves = halves[np.isfinite(halves)]
    mids = (halves[:-1] + halves[1:]) / 2
    # doubles just off a tie, which a rounding through float would snap onto the tie
    off = mids + mids * rng.choice([-1, 1], mids.size) * 2.0 ** -40
    x = np.concatenate([x, mids, off])
    out = np.empty(x.size, np.uint16)
    lib.d2h(x.ctypes.data, out.ctypes.data, x.size)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, x.astype(np.float16).view(np.uint16))


def test_half_bits() -> None:
    assert half_bits(1.0) == 0x3C00 and half_bits(-2.0) == 0xC000


def test_float16_tensors_round_every_op_like_numpy() -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((40, 48)).astype(np.float16)
    b = rng.standard_normal((40, 48)).astype(np.float16)
    ta, tb = Tensor(a, device="clang"), Tensor(b, device="clang")
    np.testing.assert_array_equal((ta * tb - ta / tb - tb).numpy(), a * b - a / b - b)  # no a*b+c: fused
    np.testing.assert_array_equal((ta * ta).sqrt().numpy(), np.sqrt(a * a))
    np.testing.assert_array_equal(ta.cast("float32").numpy(), a.astype(np.float32))
    np.testing.assert_array_equal(Tensor(a.astype(np.float64), device="clang").cast("float16").numpy(), a)
    np.testing.assert_allclose((ta @ tb.T).numpy().astype(np.float32), (a @ b.T).astype(np.float32), rtol=2e-2,
                               atol=5e-2)
