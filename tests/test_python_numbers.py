"""Python numbers meeting tensors: ints a dtype cannot hold are refused or widened, never wrapped silently."""

from __future__ import annotations

import numpy as np
import pytest
from tg import Tensor


def test_a_list_of_big_ints_becomes_int64() -> None:
    t = Tensor([1, 2**40])
    assert t.dtype.name == "int64"
    np.testing.assert_array_equal(t.numpy(), [1, 2**40])
    assert Tensor([1, 2]).dtype.name == "int32"  # the default int where it holds the values


def test_ints_no_dtype_holds_are_refused() -> None:
    with pytest.raises(OverflowError, match="too large for int64"):
        Tensor([2**70])
    with pytest.raises(OverflowError, match="Python integer 300 is out of range for uint8"):
        Tensor([1, 300], dtype="uint8")
    np.testing.assert_array_equal(Tensor(np.array([1, 300]), dtype="uint8").numpy(), [1, 44])  # an array casts


def test_arithmetic_with_an_int_the_tensor_cannot_hold_is_refused() -> None:
    """``Tensor([1, 2]) + 2**40`` used to give [1, 2]."""
    with pytest.raises(OverflowError, match=r"Python integer 1099511627776 is out of range .* x.cast\('int64'\)"):
        Tensor([1, 2]) + 2**40
    np.testing.assert_array_equal((Tensor([1, 2]).cast("int64") + 2**40).numpy(), [2**40 + 1, 2**40 + 2])
    np.testing.assert_allclose((Tensor([1.0, 2.0]) + 2**40).numpy(), [2.0**40, 2.0**40], rtol=1e-6)
