"""The tg conformance kit: the tests every backend must pass, checked against a numpy oracle.

Run it against a backend (the backend's plugin must be installed in the same environment)::

    TG_BACKEND=mychip pytest --pyargs tg.testing            # the whole kit
    TG_BACKEND=mychip pytest --pyargs tg.testing -k matmul  # a subset, by test name
    TG_BACKEND=mychip pytest --pyargs tg.testing.test_nn    # one module
    TG_BACKEND=mychip pytest --pyargs tg.testing -x -q      # stop at the first failure

Without ``TG_BACKEND`` the kit runs on the backend tg picks by itself.  The header of the run names the
backend under test and the dtypes it declares (``tg.backend_capabilities().dtypes``); a test that needs
a dtype the backend does not declare is skipped, and the skip reason names the dtype and the backend.

Every ``test_*.py`` module in this package is collected by the command above, so the kit is one
aggregate: a backend cannot miss a test that was added later.  Nothing here is registered as a pytest
plugin, so the kit never activates itself in an unrelated pytest run.

The helpers below are what the kit's tests use; a third party may reuse them in its own tests:
:func:`assert_close` (per-dtype tolerances), :func:`random_array`, :func:`supports` and
:func:`require`, :func:`tensor`, :func:`numeric_grad` and :func:`check_grad`.

Conventions the kit relies on (documented here so a backend author knows what is being asked):

- A Python ``float`` makes a float32 tensor, a Python ``int`` an int32 tensor, a Python ``bool`` a
  bool tensor; comparisons give bool tensors.
- Promotion is "category, then size": bool < integer < float; within a category the larger size wins.
  The kit only checks pairs where that rule is unambiguous.
- ``a // b`` on integers is floor division, like Python, numpy and PyTorch (``-7 // 2 == -4``).
- Casting a float to an integer truncates toward zero (``-2.7 -> -2``), like C and PyTorch; out of the
  integer's range it saturates and NaN gives 0.  The other edge cases (``x // 0``, NaN in ``maximum``,
  bool arithmetic, exact constants...) are tabled in :mod:`tg.testing.test_semantics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tg import Tensor

__all__ = ["DTYPE_NAMES", "FLOAT_DTYPES", "INT_DTYPES", "TOLERANCES", "assert_close", "backend_name", "case_id",
           "check_grad", "dtype_name", "numeric_grad", "random_array", "require", "supports", "tensor",
           "tolerance"]

#: Every dtype the kit knows, by name.
DTYPE_NAMES: tuple[str, ...] = ("float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool")
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float16", "float64")
INT_DTYPES: tuple[str, ...] = ("int8", "uint8", "int32", "int64")

#: (rtol, atol) per float dtype for results of a handful of operations; integers and bools are exact.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-2, 1e-2),
    "float32": (1e-4, 1e-5),
    "float64": (1e-7, 1e-9),
}


def dtype_name(dtype: Any) -> str:
    """The name of a tg dtype, a numpy dtype or a dtype name: ``dtype_name(dtypes.float32) == "float32"``."""
    if isinstance(dtype, str):
        return dtype
    name = getattr(dtype, "name", None)
    if isinstance(name, str):
        return name
    return np.dtype(dtype).name


def case_id(value: Any) -> str:
    """A compact pytest id for a parameter value: ``(2, 3)`` -> ``(2,3)`` (no spaces or quotes)."""
    return str(value).replace(" ", "").replace("'", "")


def tolerance(dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)`` for one dtype; ``(0, 0)`` for integers and bools."""
    return TOLERANCES.get(dtype_name(dtype), (0.0, 0.0))


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray | np.generic):
        return np.asarray(value.numpy())
    return np.asarray(value)


def assert_close(actual: Any, expected: Any, dtype: Any = "float32", *, rtol: float | None = None,
                 atol: float | None = None, scale: float = 1.0, check_shape: bool = True, msg: str = "") -> None:
    """Assert a tg result equals a numpy reference within the tolerance of ``dtype``.

    ``actual`` is a tg Tensor (read back with ``.numpy()``), a numpy array or a scalar; ``expected`` a
    numpy array or scalar, ideally computed in float64 from the same (already rounded) inputs.  Float
    dtypes compare with ``rtol``/``atol`` (defaults from :data:`TOLERANCES`, ``atol`` multiplied by
    ``scale`` for results that sum many terms); NaNs must match NaNs and infinities must match exactly.
    Integer and bool dtypes compare exactly.  Shapes must match unless ``check_shape`` is False.
    """
    got = _as_numpy(actual)
    want = np.asarray(expected)
    name = dtype_name(dtype)
    where = f" ({msg})" if msg else ""
    if check_shape:
        assert got.shape == want.shape, f"shape {got.shape} != expected {want.shape}{where}"
    if name in TOLERANCES:
        d_rtol, d_atol = TOLERANCES[name]
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=d_rtol if rtol is None else rtol,
                                   atol=(d_atol if atol is None else atol) * scale,
                                   equal_nan=True, err_msg=f"dtype {name}{where}")
    elif want.dtype == np.bool_ or got.dtype == np.bool_:
        np.testing.assert_array_equal(got.astype(np.bool_), want.astype(np.bool_), err_msg=f"dtype {name}{where}")
    else:
        np.testing.assert_array_equal(got.astype(np.int64), want.astype(np.int64), err_msg=f"dtype {name}{where}")


_DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "float16": (-1.0, 1.0), "float32": (-1.0, 1.0), "float64": (-1.0, 1.0),
    "int8": (-5, 6), "uint8": (0, 11), "int32": (-10, 11), "int64": (-10, 11),
}


def random_array(shape: Sequence[int] | int, dtype: Any = "float32", rng: np.random.Generator | None = None,
                 low: float | None = None, high: float | None = None) -> np.ndarray:
    """A random numpy array of ``shape`` in ``dtype``: floats uniform in [low, high), ints in [low, high).

    Defaults keep results of a few products well inside every dtype's range: floats in [-1, 1), signed
    ints in small ranges around 0, uint8 in [0, 10], bools half True.  Float16 values are the rounded
    ones, so a float64 reference computed from the returned array sees exactly what the backend sees.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    name = dtype_name(dtype)
    if name == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    d_low, d_high = _DEFAULT_RANGES[name]
    lo = d_low if low is None else low
    hi = d_high if high is None else high
    if name in FLOAT_DTYPES:
        return np.asarray((lo + (hi - lo) * rng.random(shape)).astype(name))
    return np.asarray(rng.integers(int(lo), int(hi), size=shape).astype(name))


def backend_name() -> str:
    """The name of the backend under test (``tg.default_backend_name()``)."""
    import tg

    return str(tg.default_backend_name())


def supports(dtype: Any) -> bool:
    """Whether the backend under test declares ``dtype`` (a name or a tg dtype) in its capabilities."""
    import tg

    return dtype_name(dtype) in tg.backend_capabilities().dtypes


def require(*dtypes: Any) -> None:
    """Skip the calling test unless the backend under test declares every one of ``dtypes``."""
    import pytest

    for dtype in dtypes:
        if not supports(dtype):
            pytest.skip(f"dtype {dtype_name(dtype)} is not supported by backend {backend_name()!r}")


def tensor(data: Any, dtype: Any = None, requires_grad: bool | None = None) -> Tensor:
    """A tg Tensor from ``data`` with the dtype given by name (or tg dtype), or inferred when None."""
    from tg import Tensor, dtypes

    tg_dtype = None if dtype is None else getattr(dtypes, dtype_name(dtype))
    return Tensor(data, dtype=tg_dtype, requires_grad=requires_grad)


def numeric_grad(fn: Callable[..., Any], arrays: Sequence[np.ndarray], eps: float = 1e-6) -> list[np.ndarray]:
    """Central finite-difference gradients of the scalar ``fn(*arrays)`` with respect to each array (float64)."""
    xs = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for x in xs:
        g = np.zeros_like(x)
        flat, gflat = x.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            plus = float(fn(*xs))
            flat[i] = old - eps
            minus = float(fn(*xs))
            flat[i] = old
            gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def check_grad(tg_fn: Callable[..., Any], np_fn: Callable[..., Any], arrays: Sequence[np.ndarray],
               rng: np.random.Generator | None = None, *, rtol: float = 2e-3, atol: float = 2e-4,
               analytic: Callable[..., Sequence[np.ndarray]] | None = None,
               wrt: Sequence[int] | None = None) -> None:
    """Check tg's gradients of ``tg_fn`` against the float64 numpy function ``np_fn``.

    Both functions take the same inputs (tg Tensors resp. float64 arrays) and return one result of the
    same shape.  The loss is ``(result * w).sum()`` with fixed random weights ``w`` (so every output
    element contributes differently); tg computes it in float32 and backpropagates, the reference is
    ``analytic`` when given, else central finite differences of the float64 numpy loss.  ``wrt`` picks
    which inputs need gradients (default: all).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    arrays64 = [np.asarray(a, dtype=np.float64) for a in arrays]
    wrt = list(range(len(arrays))) if wrt is None else list(wrt)
    out_shape = np.shape(np_fn(*arrays64))
    weights = rng.uniform(0.5, 1.5, size=out_shape) * rng.choice([-1.0, 1.0], size=out_shape)
    ts = [tensor(a.astype(np.float32), "float32", requires_grad=(i in wrt)) for i, a in enumerate(arrays64)]
    out = tg_fn(*ts)
    assert tuple(out.shape) == tuple(out_shape), f"result shape {tuple(out.shape)} != numpy's {out_shape}"
    loss = (out * tensor(weights.astype(np.float32), "float32")).sum()
    loss.backward()

    def loss64(*xs: np.ndarray) -> float:
        return float((np.asarray(np_fn(*xs), dtype=np.float64) * weights).sum())

    if analytic is None:
        expected = numeric_grad(loss64, arrays64)
    else:
        expected = [np.asarray(g, dtype=np.float64) for g in analytic(weights, *arrays64)]
    for i in wrt:
        grad = ts[i].grad
        assert grad is not None, f"input {i} got no gradient"
        got = _as_numpy(grad)
        assert got.shape == arrays64[i].shape, f"gradient of input {i}: shape {got.shape} != {arrays64[i].shape}"
        scale = max(1.0, float(np.abs(expected[i]).max(initial=0.0)))
        np.testing.assert_allclose(got.astype(np.float64), expected[i], rtol=rtol, atol=atol * scale,
                                   err_msg=f"gradient of input {i}")
