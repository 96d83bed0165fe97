"""Creation, read-back, dtypes, casts, promotion and devices: the ground every other module stands on."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from tg import Tensor, dtypes
from tg.testing import (
    DTYPE_NAMES,
    FLOAT_DTYPES,
    INT_DTYPES,
    assert_close,
    case_id,
    random_array,
    require,
    supports,
    tensor,
)

NUMERIC = tuple(d for d in DTYPE_NAMES if d != "bool")


# ---------------------------------------------------------------------------------------------- backend


def test_backend_matches_tg_backend(backend_name: str) -> None:
    """With TG_BACKEND set, the backend under test is one of the names it lists."""
    env = os.environ.get("TG_BACKEND")
    if not env:
        pytest.skip("TG_BACKEND is not set")
    wanted = [item.strip().partition(":") for item in env.split(",") if item.strip()]
    target, _, runtime = backend_name.partition(":")
    ok = any(t == target and (not r or r == (runtime or target)) for t, _, r in wanted)
    assert ok, f"TG_BACKEND={env!r} but the kit runs on {backend_name!r}"


def test_capabilities_declare_the_baseline(capabilities: Any) -> None:
    """The kit assumes float32, int32 and bool everywhere (Python floats, ints and comparisons make them)."""
    from tg.backends.contract import Capabilities

    assert isinstance(capabilities, Capabilities)
    assert isinstance(capabilities.dtypes, frozenset)
    missing = {"float32", "int32", "bool"} - set(capabilities.dtypes)
    assert not missing, f"backend does not declare the baseline dtypes {sorted(missing)}"


def test_default_device_is_the_backend(backend_name: str) -> None:
    t = Tensor([1.0, 2.0])
    assert isinstance(t.device, str)
    assert t.device == backend_name


# ---------------------------------------------------------------------------------------------- dtypes


def test_dtype_objects() -> None:
    for name in DTYPE_NAMES:
        dt = getattr(dtypes, name)
        assert dt.name == name
        assert dt == getattr(dtypes, name)
        for other in DTYPE_NAMES:
            if other != name:
                assert dt != getattr(dtypes, other), f"dtypes.{name} == dtypes.{other}"


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_roundtrip_numpy_with_dtype(name: str, rng: np.random.Generator) -> None:
    require(name)
    arr = random_array((3, 4), name, rng)
    t = Tensor(arr, dtype=getattr(dtypes, name))
    assert t.dtype == getattr(dtypes, name)
    out = t.numpy()
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.dtype(name), f"numpy() of a {name} tensor gave {out.dtype}"
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("name", [d for d in DTYPE_NAMES if d != "float64"])
def test_numpy_array_keeps_its_dtype(name: str, rng: np.random.Generator) -> None:
    """``Tensor(ndarray)`` without ``dtype`` keeps the array's dtype (float64 is left to the backend)."""
    require(name)
    arr = random_array((2, 3), name, rng)
    t = Tensor(arr)
    assert t.dtype == getattr(dtypes, name)
    np.testing.assert_array_equal(t.numpy(), arr)


@pytest.mark.parametrize(("data", "dtype", "shape"), [
    (2.5, "float32", ()),
    (3, "int32", ()),
    (True, "bool", ()),
    ([1.0, 2.0, 3.5], "float32", (3,)),
    ([1, 2, -3], "int32", (3,)),
    ([1, 2.5], "float32", (2,)),
    ([True, False], "bool", (2,)),
    ([[1, 2, 3], [4, 5, 6]], "int32", (2, 3)),
    ([[[0.5]], [[1.5]]], "float32", (2, 1, 1)),
], ids=case_id)
def test_from_python(data: Any, dtype: str, shape: tuple[int, ...]) -> None:
    """Python floats make float32, ints int32, bools bool; nested lists keep their nesting as the shape."""
    t = Tensor(data)
    assert t.dtype == getattr(dtypes, dtype)
    assert t.shape == shape
    assert isinstance(t.shape, tuple)
    np.testing.assert_array_equal(t.numpy(), np.array(data, dtype=dtype))


def test_explicit_dtype_from_python() -> None:
    t = Tensor([1, 2, 3], dtype=dtypes.float32)
    assert t.dtype == dtypes.float32
    assert t.numpy().tolist() == [1.0, 2.0, 3.0]


def test_readback_helpers() -> None:
    t = Tensor([[1.5, 2.0, -3.0], [4.0, 5.0, 6.25]])
    assert t.tolist() == [[1.5, 2.0, -3.0], [4.0, 5.0, 6.25]]
    assert t.shape == (2, 3)
    assert t.ndim == 2
    assert t.numel() == 6
    assert Tensor(7.5).item() == 7.5
    assert isinstance(Tensor(7.5).item(), float)
    item = Tensor([3]).item()
    assert item == 3 and isinstance(item, int)
    assert Tensor(True).item() is True
    assert Tensor(4.0).tolist() == 4.0
    assert Tensor([[2.5]]).item() == 2.5


def test_realize_returns_a_tensor() -> None:
    t = Tensor([1.0, 2.0]) + 1
    r = t.realize()
    assert isinstance(r, Tensor)
    np.testing.assert_array_equal(r.numpy(), [2.0, 3.0])


# ---------------------------------------------------------------------------------------------- factories


@pytest.mark.parametrize("shape", [(), (1,), (3,), (2, 3), (2, 1, 4), (2, 3, 1, 2)], ids=case_id)
def test_zeros_ones_empty(shape: tuple[int, ...]) -> None:
    z, o, e = Tensor.zeros(*shape), Tensor.ones(*shape), Tensor.empty(*shape)
    for t in (z, o, e):
        assert t.shape == shape
        assert t.dtype == dtypes.float32
    np.testing.assert_array_equal(z.numpy(), np.zeros(shape, np.float32))
    np.testing.assert_array_equal(o.numpy(), np.ones(shape, np.float32))
    assert e.numpy().shape == shape


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_factories_with_dtype(name: str) -> None:
    require(name)
    dt = getattr(dtypes, name)
    z, o = Tensor.zeros(2, 3, dtype=dt), Tensor.ones(2, 3, dtype=dt)
    assert z.dtype == dt and o.dtype == dt
    np.testing.assert_array_equal(z.numpy(), np.zeros((2, 3), name))
    np.testing.assert_array_equal(o.numpy(), np.ones((2, 3), name))


def test_full() -> None:
    t = Tensor.full((2, 3), 2.5)
    assert t.shape == (2, 3) and t.dtype == dtypes.float32
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 2.5, np.float32))
    i = Tensor.full((4,), 7)
    assert i.dtype == dtypes.int32
    np.testing.assert_array_equal(i.numpy(), [7, 7, 7, 7])
    np.testing.assert_array_equal(Tensor.full((), -1.0).numpy(), np.float32(-1.0))


@pytest.mark.parametrize(("args", "dtype"), [
    ((5,), "int32"), ((0, 5), "int32"), ((2, 11, 3), "int32"), ((5, -3, -2), "int32"), ((-4, 4), "int32"),
    ((0.0, 1.0, 0.25), "float32"), ((1.5, 4.0), "float32"),
], ids=case_id)
def test_arange(args: tuple[Any, ...], dtype: str) -> None:
    t = Tensor.arange(*args)
    assert t.dtype == getattr(dtypes, dtype)
    assert_close(t, np.arange(*args).astype(dtype), dtype)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_eye(n: int) -> None:
    t = Tensor.eye(n)
    assert t.dtype == dtypes.float32
    np.testing.assert_array_equal(t.numpy(), np.eye(n, dtype=np.float32))


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_like(name: str, rng: np.random.Generator) -> None:
    require(name)
    src = tensor(random_array((3, 2), name, rng), name)
    z, o = Tensor.zeros_like(src), Tensor.ones_like(src)
    assert z.shape == (3, 2) and z.dtype == src.dtype and o.dtype == src.dtype
    np.testing.assert_array_equal(z.numpy(), np.zeros((3, 2), name))
    np.testing.assert_array_equal(o.numpy(), np.ones((3, 2), name))


def test_rand_statistics() -> None:
    r = Tensor.rand(64, 64)
    assert r.shape == (64, 64) and r.dtype == dtypes.float32
    a = r.numpy()
    assert a.min() >= 0.0 and a.max() < 1.0
    assert abs(a.mean() - 0.5) < 0.03
    assert abs(a.std() - np.sqrt(1 / 12)) < 0.03
    assert len(np.unique(a)) > 4000, "rand repeats values"


def test_randn_statistics() -> None:
    a = Tensor.randn(64, 64).numpy()
    assert a.shape == (64, 64) and a.dtype == np.float32
    assert np.isfinite(a).all()
    assert abs(a.mean()) < 0.06
    assert abs(a.std() - 1.0) < 0.06
    assert 0.6 < np.mean(np.abs(a) < 1.0) < 0.76  # ~68% within one sigma


def test_uniform_range() -> None:
    a = Tensor.uniform(32, 32, low=-3.0, high=-1.0).numpy()
    assert a.shape == (32, 32)
    assert a.min() >= -3.0 and a.max() < -1.0
    assert abs(a.mean() + 2.0) < 0.08


def test_manual_seed_reproducible() -> None:
    Tensor.manual_seed(42)
    a, b = Tensor.rand(5, 5).numpy(), Tensor.randn(7).numpy()
    Tensor.manual_seed(42)
    c, d = Tensor.rand(5, 5).numpy(), Tensor.randn(7).numpy()
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)
    Tensor.manual_seed(43)
    assert not np.array_equal(Tensor.rand(5, 5).numpy(), a)
    assert not np.array_equal(Tensor.rand(5, 5).numpy(), Tensor.rand(5, 5).numpy()), "successive draws repeat"


# ---------------------------------------------------------------------------------------------- casts


def _cast_values(src: str, dst: str) -> np.ndarray:
    """Values exactly representable in ``src`` whose cast to ``dst`` is well defined everywhere."""
    unsigned = "uint8" in (src, dst)
    vals: list[Any]
    if src in FLOAT_DTYPES:
        vals = [0.0, 0.25, 1.5, 2.75, 3.0, 7.5] + ([] if unsigned else [-0.5, -1.0, -2.75, -7.5])
    elif src == "bool":
        vals = [0, 1, 1, 0]
    else:
        vals = [0, 1, 2, 5, 7, 100] + ([] if unsigned else [-1, -3, -100])
    return np.array(vals).astype(src)


@pytest.mark.parametrize("src", DTYPE_NAMES)
def test_cast(src: str) -> None:
    """Casts to every dtype match numpy's: float->int truncates toward zero, anything->bool is ``!= 0``."""
    require(src)
    for dst in DTYPE_NAMES:
        if not supports(dst):
            continue
        arr = _cast_values(src, dst)
        t = tensor(arr, src).cast(getattr(dtypes, dst))
        assert t.dtype == getattr(dtypes, dst), f"cast {src} -> {dst} gave {t.dtype}"
        out = t.numpy()
        assert out.dtype == np.dtype(dst), f"cast {src} -> {dst}: numpy() gave {out.dtype}"
        np.testing.assert_array_equal(out, arr.astype(dst), err_msg=f"cast {src} -> {dst}")


def test_cast_shorthands(rng: np.random.Generator) -> None:
    require("float16")
    arr = random_array((4, 3), "float32", rng, -4, 4)
    t = tensor(arr, "float32")
    assert t.half().dtype == dtypes.float16
    assert t.int().dtype == dtypes.int32
    assert t.int().float().dtype == dtypes.float32
    np.testing.assert_array_equal(t.half().numpy(), arr.astype(np.float16))
    np.testing.assert_array_equal(t.int().numpy(), arr.astype(np.int32))
    np.testing.assert_array_equal(t.half().float().numpy(), arr.astype(np.float16).astype(np.float32))


def test_cast_after_compute(rng: np.random.Generator) -> None:
    a = random_array((5, 6), "float32", rng, -3, 3)
    t = (tensor(a, "float32") * 2 + 0.5).int()
    np.testing.assert_array_equal(t.numpy(), (a * 2 + 0.5).astype(np.int32))
    b = (tensor(a, "float32") > 0).float() * 3
    np.testing.assert_array_equal(b.numpy(), (a > 0).astype(np.float32) * 3)


# ---------------------------------------------------------------------------------------------- promotion


@pytest.mark.parametrize(("a", "b", "want"), [
    ("float16", "float32", "float32"), ("float32", "float64", "float64"), ("float16", "float64", "float64"),
    ("int32", "int64", "int64"), ("int8", "int32", "int32"), ("uint8", "int32", "int32"), ("int8", "int64", "int64"),
    ("uint8", "int64", "int64"), ("bool", "int32", "int32"), ("bool", "int8", "int8"), ("bool", "float32", "float32"),
    ("bool", "float16", "float16"), ("int32", "float32", "float"), ("int8", "float32", "float"),
    ("int64", "float32", "float"), ("uint8", "float16", "float"),
], ids=case_id)
def test_promotion(a: str, b: str, want: str, rng: np.random.Generator) -> None:
    """Category then size; ``"float"`` means any float dtype (int + float is ambiguous about the size)."""
    require(a, b, *(d for d in FLOAT_DTYPES if d == want))
    x, y = random_array((3, 4), a, rng), random_array((3, 4), b, rng)
    for out in (tensor(x, a) + tensor(y, b), tensor(y, b) + tensor(x, a)):
        name = out.dtype.name
        if want == "float":
            assert name in FLOAT_DTYPES, f"{a} + {b} gave {name}, expected a float dtype"
        else:
            assert name == want, f"{a} + {b} gave {name}, expected {want}"
        assert_close(out, x.astype(np.float64) + y.astype(np.float64), name)


@pytest.mark.parametrize(("dtype", "scalar", "want"), [
    ("float16", 1.5, "float16"), ("float32", 2, "float32"), ("float64", 0.5, "float64"), ("int8", 3, "int8"),
    ("uint8", 2, "uint8"), ("int32", -4, "int32"), ("int64", 5, "int64"), ("int32", 2.5, "float"),
    ("bool", 1, "int"), ("bool", 0.5, "float"),
], ids=case_id)
def test_python_scalars_are_weak(dtype: str, scalar: float, want: str, rng: np.random.Generator) -> None:
    """A Python scalar never widens a tensor of its own category; it lifts a lower category."""
    require(dtype)
    x = random_array((2, 3), dtype, rng)
    for out in (tensor(x, dtype) + scalar, scalar + tensor(x, dtype)):
        name = out.dtype.name
        if want == "float":
            assert name in FLOAT_DTYPES, f"{dtype} + {scalar!r} gave {name}"
        elif want == "int":
            assert name in INT_DTYPES, f"{dtype} + {scalar!r} gave {name}"
        else:
            assert name == want, f"{dtype} + {scalar!r} gave {name}, expected {want}"
        require(name)
        assert_close(out, x.astype(np.float64) + scalar, name)


def test_comparison_gives_bool(rng: np.random.Generator) -> None:
    for name in NUMERIC:
        if not supports(name):
            continue
        x, y = tensor(random_array((3,), name, rng), name), tensor(random_array((3,), name, rng), name)
        assert (x < y).dtype == dtypes.bool
        assert (x == 1).dtype == dtypes.bool


# ---------------------------------------------------------------------------------------------- views, devices


def test_contiguous_and_detach(rng: np.random.Generator) -> None:
    a = random_array((3, 4, 5), "float32", rng)
    t = tensor(a, "float32").permute(2, 0, 1).contiguous()
    np.testing.assert_array_equal(t.numpy(), a.transpose(2, 0, 1))
    d = tensor(a, "float32", requires_grad=True).detach()
    assert not d.requires_grad
    np.testing.assert_array_equal(d.numpy(), a)


def test_to_same_device(rng: np.random.Generator, backend_name: str) -> None:
    a = random_array((3, 4), "float32", rng)
    t = tensor(a, "float32").to(backend_name)
    assert t.device == backend_name
    np.testing.assert_array_equal(t.numpy(), a)


def test_to_numpy_backend_and_back(rng: np.random.Generator, backend_name: str) -> None:
    """Copies between backends go through the host; the numpy backend is always there."""
    a = random_array((3, 4), "float32", rng)
    t = (tensor(a, "float32") * 2).to("numpy")
    assert t.device == "numpy"
    u = (t + 1).to(backend_name)
    assert u.device == backend_name
    assert_close(u * 3, (a * 2 + 1) * 3)
    v = Tensor(a, device="numpy")
    assert v.device == "numpy"
    np.testing.assert_array_equal(v.numpy(), a)


# ---------------------------------------------------------------------------------------------- edge shapes


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0), (2, 0, 3)], ids=case_id)
def test_empty_tensors(shape: tuple[int, ...]) -> None:
    z = Tensor.zeros(*shape)
    assert z.shape == shape and z.numel() == 0
    assert z.numpy().shape == shape
    t = Tensor(np.zeros(shape, np.float32))
    assert t.shape == shape
    assert t.tolist() == np.zeros(shape).tolist()


def test_zero_dim(rng: np.random.Generator) -> None:
    t = Tensor(np.array(2.5, np.float32))
    assert t.shape == () and t.ndim == 0 and t.numel() == 1
    assert t.numpy().shape == ()
    assert (t * 2).item() == 5.0
    assert t.reshape(1).shape == (1,)
    assert Tensor([3.0]).reshape(()).shape == ()
