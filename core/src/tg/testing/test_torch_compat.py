"""PyTorch's smaller names, on the backend under test: dtypes at module level, tg.linspace/eye/allclose/randperm/
save/load, and Tensor.new_zeros, t(), eq/lt..., index_select, narrow, unbind, repeat_interleave, type_as, view_as,
type()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tg
from tg import Tensor
from tg.testing import require, supports


def test_dtypes_under_pytorchs_names() -> None:
    assert tg.float32 is tg.float is tg.dtypes.float32 and tg.long is tg.int64 is tg.dtypes.int64
    assert tg.half is tg.float16 and tg.double is tg.float64 and tg.bool is tg.dtypes.bool
    assert tg.zeros(2, dtype=tg.float32).dtype is tg.float32
    assert Tensor([1.5, 2.5]).to(tg.default_backend_name()).cast(tg.int32).dtype is tg.int32


def test_creation_functions() -> None:
    np.testing.assert_allclose(tg.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5), rtol=1e-6)
    np.testing.assert_array_equal(tg.eye(3).numpy(), np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(tg.eye(2, 3).numpy(), np.eye(2, 3, dtype=np.float32))
    x = tg.randn(2, 3)
    assert tg.empty_like(x).shape == tg.rand_like(x).shape == tg.randn_like(x).shape == (2, 3)
    tg.manual_seed(4)
    perm = tg.randperm(10).numpy()
    assert sorted(perm.tolist()) == list(range(10))
    tg.manual_seed(4)
    assert tg.randperm(10).numpy().tolist() == perm.tolist()
    assert tg.is_tensor(x) and not tg.is_tensor(np.zeros(2))
    assert tg.device("cuda", 0) == "cuda:0" and tg.device("cpu") == "cpu"


def test_comparisons_by_name_and_allclose() -> None:
    a, b = Tensor([1.0, 2.0, 3.0]), Tensor([1.0, 2.5, 2.0])
    assert a.eq(b).numpy().tolist() == [True, False, False] and a.ne(b).numpy().tolist() == [False, True, True]
    assert a.lt(b).numpy().tolist() == [False, True, False] and a.ge(b).numpy().tolist() == [True, False, True]
    assert a.le(2.0).numpy().tolist() == [True, True, False] and a.gt(2.0).numpy().tolist() == [False, False, True]
    assert tg.allclose(a, a + 1e-7) and not tg.allclose(a, b)
    assert tg.isclose(a, b).numpy().tolist() == [True, False, False]
    nan = Tensor([float("nan"), 1.0])
    assert not tg.allclose(nan, nan) and tg.allclose(nan, nan, equal_nan=True)
    t, f = Tensor([True, True, False]), Tensor([True, False, False])
    assert t.logical_and(f).numpy().tolist() == [True, False, False]
    assert t.logical_or(f).numpy().tolist() == [True, True, False]
    assert t.logical_xor(f).numpy().tolist() == [False, True, False]


def test_shape_methods() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = Tensor(a)
    np.testing.assert_array_equal(x.t().numpy(), a.T)
    cube = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(Tensor(cube).mT.numpy(), cube.swapaxes(-1, -2))
    with pytest.raises(ValueError, match="at most 2 dimensions"):
        Tensor(cube).t()
    np.testing.assert_array_equal(x.view_as(Tensor(np.zeros(6, np.float32))).numpy(), a.reshape(6))
    np.testing.assert_array_equal(Tensor([1.0, 2.0]).reshape(2, 1).expand_as(x).numpy(), [[1.0] * 3, [2.0] * 3])
    assert Tensor([1, 2]).type_as(x).dtype == x.dtype
    np.testing.assert_array_equal(x.mm(Tensor(a.T)).numpy(), a @ a.T)
    assert x.new_zeros(2, 2).numpy().tolist() == [[0, 0], [0, 0]] and x.new_ones((3,)).dtype == x.dtype
    assert x.new_full((2,), 7.0).numpy().tolist() == [7.0, 7.0] and x.new_tensor([1, 2]).dtype == x.dtype
    assert x.nelement() == 6 and x.element_size() == 4 and x.is_contiguous() and not x.T.is_contiguous()
    w = Tensor([1.0], requires_grad=True)
    assert w.is_leaf and not (w * 2).is_leaf


def test_selection_methods() -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = Tensor(a)
    np.testing.assert_array_equal(x.index_select(1, Tensor([3, 0])).numpy(), a[:, [3, 0]])
    np.testing.assert_array_equal(x.index_select(0, Tensor([2])).numpy(), a[[2]])
    np.testing.assert_array_equal(x.narrow(1, 1, 2).numpy(), a[:, 1:3])
    with pytest.raises(IndexError, match="do not fit"):
        x.narrow(1, 3, 2)
    rows = x.unbind(0)
    assert len(rows) == 3 and rows[1].numpy().tolist() == a[1].tolist()
    np.testing.assert_array_equal(x.repeat_interleave(2, dim=0).numpy(), np.repeat(a, 2, axis=0))
    np.testing.assert_array_equal(x.repeat_interleave(3).numpy(), np.repeat(a, 3))


def test_save_and_load_a_state_dict(tmp_path: Path) -> None:
    from tg import nn

    model = nn.Linear(3, 2)
    tg.save(model.state_dict(), tmp_path / "m.safetensors")
    loaded = tg.load(tmp_path / "m.safetensors")
    assert set(loaded) == set(model.state_dict())
    other = nn.Linear(3, 2)
    other.load_state_dict(loaded)
    np.testing.assert_array_equal(other.weight.numpy(), model.weight.numpy())
    with pytest.raises(TypeError, match="never pickles"):
        tg.save([1, 2, 3], tmp_path / "x")


@pytest.mark.parametrize(("dtype", "name"), [("float32", "FloatTensor"), ("float64", "DoubleTensor"),
                                             ("float16", "HalfTensor"), ("uint8", "ByteTensor"),
                                             ("int8", "CharTensor"), ("int32", "IntTensor"),
                                             ("int64", "LongTensor"), ("bool", "BoolTensor")])
def test_type_names_the_dtype_as_pytorch_does(dtype: str, name: str) -> None:
    require(dtype)
    x = Tensor([1, 0, 1], dtype=dtype)
    assert x.type() == f"tg.{name}"
    back = Tensor([2.75, 1.5, 0.0]).type(f"torch.{name}")  # a ported line keeps working
    assert back.dtype.name == dtype and back.type() == f"tg.{name}"
    np.testing.assert_array_equal(back.numpy(), np.array([2.75, 1.5, 0.0]).astype(dtype))
    assert Tensor([1.0]).type(f"tg.{name}").dtype.name == dtype and Tensor([1.0]).type(dtype).dtype.name == dtype


def test_type_casts_with_gradients_and_refuses_what_it_cannot_mean() -> None:
    x = Tensor([1.5, -2.5], requires_grad=True)
    assert x.type(tg.float32) is x and x.type("tg.FloatTensor") is x  # already that dtype: itself, as PyTorch
    assert not x.type("torch.IntTensor").requires_grad  # no gradient through integers, as PyTorch
    (x.type("torch.DoubleTensor" if supports("float64") else "float32") * 3).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match="move the tensor to the GPU"):
        x.type("torch.cuda.FloatTensor")
    with pytest.raises(TypeError, match="not a type tg knows"):
        x.type("torch.ShortTensor")
    with pytest.raises(TypeError, match="tg dtype or a name"):
        x.type(float)
