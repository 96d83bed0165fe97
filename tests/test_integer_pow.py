"""Integer ``x ** y`` with a tensor of exponents is one POW micro-op: one kernel, rendered by the target or taken apart
by core into squarings over every bit of the exponent's dtype (``TG_NUMPY_CAPS=no_pow`` makes the numpy backend a
target without POW).  It used to be a chain of 63 squarings in the lazy graph: ~51 kernels for int64."""

from __future__ import annotations

import numpy as np
import pytest
from tg import Tensor
from tg.engine.device import device_state, reset_devices


@pytest.mark.parametrize("caps", ["", "interpret", "no_pow"])
@pytest.mark.parametrize("dtype", ["int64", "uint8"])
def test_integer_power_of_a_tensor_is_one_kernel(monkeypatch: pytest.MonkeyPatch, caps: str, dtype: str) -> None:
    monkeypatch.setenv("TG_BACKEND", "numpy")
    monkeypatch.setenv("TG_NUMPY_CAPS", caps)
    reset_devices()
    try:
        info = np.iinfo(dtype)
        base = np.array([3, 2, 0, 1, 7, 5], dtype)
        exponents = np.array([info.max, info.max // 2 + 2, 0, 2, 31, 1], dtype)
        x, y = Tensor(base).realize(), Tensor(exponents).realize()
        state = device_state()
        before = state.kernel_count
        got = (x ** y).numpy()
        assert state.kernel_count - before == 1
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(got, base ** exponents)
    finally:
        reset_devices()
