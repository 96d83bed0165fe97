"""The functions ``tg`` offers at module level, as PyTorch does (``tg.zeros``, ``tg.cat``, ``tg.manual_seed``...).

Each is a thin wrapper over the Tensor method or constructor of the same name, with PyTorch's signature, so
``torch.x(...)`` ports as ``tg.x(...)``.  ``import tg`` stays cheap: :mod:`tg` imports this module on first use.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from tg.frontend.einsum import einsum
from tg.frontend.grad_mode import no_grad
from tg.frontend.random import manual_seed
from tg.frontend.tensor import Tensor
from tg.frontend.torch_functions import TENSOR_METHODS
from tg.support.dtype import DType, dtypes

__all__ = ["allclose", "arange", "argsort", "bmm", "cat", "clone", "cumprod", "cumsum", "device", "einsum", "empty",
           "empty_like", "erf", "expm1", "eye", "from_numpy", "full", "full_like", "gather",
           "inference_mode", "is_tensor", "isclose", "isfinite", "isinf", "isnan", "linspace", "log1p",
           "manual_seed", "masked_fill", "matmul", "multinomial", "no_grad", "norm", "ones", "ones_like",
           "outer", "prod", "rand", "rand_like", "randint", "randn", "randn_like", "randperm", "roll",
           "scatter", "scatter_add", "scatter_reduce", "set_grad_enabled", "sort", "stack", "tensor", "topk",
           "tril", "triu", "where", "zeros", "zeros_like"]

Dtype = DType | str | None


def tensor(data: Any, dtype: Dtype = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, numbers, a numpy array or a Tensor)."""
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad or None)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor with ``array``'s values, shape and dtype.  Unlike PyTorch it does not share memory with the array:
    tensors live on a backend, so later changes to the array are not seen."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy() expects a numpy.ndarray, got {type(array).__name__}: use tg.tensor(data)")
    return Tensor(array)


def zeros(*size: Any, dtype: Dtype = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return Tensor.zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad or None)


def ones(*size: Any, dtype: Dtype = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return Tensor.ones(*size, dtype=dtype, device=device, requires_grad=requires_grad or None)


def full(size: Any, fill_value: int | float | bool, dtype: Dtype = None, device: str | None = None,
         requires_grad: bool = False) -> Tensor:
    return Tensor.full(tuple(size) if isinstance(size, list) else size, fill_value, dtype, device,
                       requires_grad or None)


def empty(*size: Any, dtype: Dtype = None, device: str | None = None) -> Tensor:
    return Tensor.empty(*size, dtype=dtype, device=device)


def _like(t: Tensor, fill_value: int | float | bool, dtype: Dtype, device: str | None, requires_grad: bool) -> Tensor:
    dt = dtypes.from_any(dtype) if dtype is not None else t.dtype
    return Tensor.full(t.shape, fill_value, dt, device if device is not None else t.device, requires_grad or None)


def zeros_like(input: Tensor, dtype: Dtype = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return _like(input, 0, dtype, device, requires_grad)


def ones_like(input: Tensor, dtype: Dtype = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return _like(input, 1, dtype, device, requires_grad)


def full_like(input: Tensor, fill_value: int | float | bool, dtype: Dtype = None, device: str | None = None,
              requires_grad: bool = False) -> Tensor:
    return _like(input, fill_value, dtype, device, requires_grad)


def arange(start: int | float, end: int | float | None = None, step: int | float = 1, dtype: Dtype = None,
           device: str | None = None) -> Tensor:
    return Tensor.arange(start, end, step, dtype=dtype, device=device)


def rand(*size: Any, dtype: Dtype = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return Tensor.rand(*size, dtype=dtype, device=device, requires_grad=requires_grad or None)


def randn(*size: Any, dtype: Dtype = None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return Tensor.randn(*size, dtype=dtype, device=device, requires_grad=requires_grad or None)


def randint(low: int, high: Any = None, size: Any = None, *, dtype: Dtype = None, device: str | None = None,
            requires_grad: bool = False) -> Tensor:
    """``randint(low, high, size)`` or ``randint(high, size)``: integers uniform in ``[low, high)``."""
    return Tensor.randint(low, high, size, dtype=dtype, device=device, requires_grad=requires_grad or None)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join ``tensors`` along ``dim`` (the other dims must match)."""
    if isinstance(tensors, Tensor):
        raise TypeError("cat() takes a sequence of tensors: tg.cat([a, b], dim=0)")
    return Tensor.cat(*tensors, dim=dim)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join same-shaped ``tensors`` along a new dim ``dim``."""
    if isinstance(tensors, Tensor):
        raise TypeError("stack() takes a sequence of tensors: tg.stack([a, b], dim=0)")
    return Tensor.stack(*tensors, dim=dim)


def where(condition: Tensor, input: Any = None, other: Any = None) -> Tensor:
    """Elements of ``input`` where ``condition`` is true, else of ``other`` (tensors or scalars, broadcast)."""
    if input is None or other is None:
        raise TypeError("where(condition) alone (the indices of the true elements) is not supported: give "
                        "where(condition, input, other)")
    cond = condition if isinstance(condition, Tensor) else Tensor(condition)
    return cond.where(input, other)


# -- operations: the Tensor methods of the same name, with the tensor as the first argument ----------------------


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:
    return input.gather(dim, index)


def scatter(input: Tensor, dim: int, index: Tensor, src: Any = None, value: Any = None, *,
            reduce: str | None = None) -> Tensor:
    return input.scatter(dim, index, src, value, reduce=reduce)


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    return input.scatter_add(dim, index, src)


def scatter_reduce(input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    return input.scatter_reduce(dim, index, src, reduce, include_self=include_self)


def cumsum(input: Tensor, dim: int, *, dtype: Dtype = None) -> Tensor:
    return input.cumsum(dim, dtype=dtype)


def cumprod(input: Tensor, dim: int, *, dtype: Dtype = None) -> Tensor:
    return input.cumprod(dim, dtype=dtype)


def prod(input: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: Dtype = None) -> Tensor:
    return input.prod(dim, keepdim, dtype=dtype)


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    return input.sort(dim, descending, stable)


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return input.argsort(dim, descending, stable)


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    return input.topk(k, dim, largest, sorted)


def multinomial(input: Tensor, num_samples: int, replacement: bool = False) -> Tensor:
    return input.multinomial(num_samples, replacement)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    return input.tril(diagonal)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    return input.triu(diagonal)


def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    return input.masked_fill(mask, value)


def log1p(input: Tensor) -> Tensor:
    return input.log1p()


def expm1(input: Tensor) -> Tensor:
    return input.expm1()


def erf(input: Tensor) -> Tensor:
    return input.erf()


def isnan(input: Tensor) -> Tensor:
    return input.isnan()


def isinf(input: Tensor) -> Tensor:
    return input.isinf()


def isfinite(input: Tensor) -> Tensor:
    return input.isfinite()


def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    return input.roll(shifts, dims)


def norm(input: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Dtype = None) -> Tensor:
    return input.norm(p, dim, keepdim, dtype)


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    return input.outer(vec2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    return input.bmm(mat2)


def matmul(input: Tensor, other: Tensor) -> Tensor:
    return input.matmul(other)


def clone(input: Tensor) -> Tensor:
    return input.clone()


def _method_function(name: str) -> Any:
    def function(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(input, Tensor):
            raise TypeError(f"tg.{name}() takes a Tensor first, not {type(input).__name__}: tg.{name}(x, ...) is "
                            f"x.{name}(...)")
        return getattr(input, name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"``tg.{name}(input, ...)`` is ``input.{name}(...)``, as ``torch.{name}`` is."
    return function


for _name in TENSOR_METHODS:
    globals()[_name] = _method_function(_name)
__all__ += list(TENSOR_METHODS)


def device(type: str, index: builtins.int | None = None) -> str:
    """``tg.device("cuda")`` / ``tg.device("cuda", 0)``: the device's name, usable wherever tg takes one
    (``.to(device)``, ``device=``); PyTorch's ``cpu`` and ``cuda`` mean tg backends (see ``Tensor.to``)."""
    return type if index is None else f"{type}:{index}"


def is_tensor(obj: Any) -> builtins.bool:
    return isinstance(obj, Tensor)


def linspace(start: builtins.float, end: builtins.float, steps: builtins.int, dtype: Dtype = None,
             device: str | None = None, requires_grad: builtins.bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included (computed in float64 on the host)."""
    if steps < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    values = np.linspace(start, end, steps)
    return Tensor(values.astype((dtypes.from_any(dtype) if dtype is not None else dtypes.default_float).np),
                  device=device, requires_grad=requires_grad or None)


def eye(n: builtins.int, m: builtins.int | None = None, dtype: Dtype = None, device: str | None = None,
        requires_grad: builtins.bool = False) -> Tensor:
    rows = Tensor.arange(n, device=device).reshape(n, 1)
    cols = Tensor.arange(n if m is None else m, device=device).reshape(1, -1)
    out = (rows == cols).cast(dtypes.from_any(dtype) if dtype is not None else dtypes.default_float)
    return out.requires_grad_(True) if requires_grad else out


def isclose(input: Tensor, other: Tensor, rtol: builtins.float = 1e-5, atol: builtins.float = 1e-8,
            equal_nan: builtins.bool = False) -> Tensor:
    close = (input - other).abs() <= atol + rtol * other.abs()
    close = close | (input == other)  # equal infinities
    return close | (input.isnan() & other.isnan()) if equal_nan else close


def allclose(input: Tensor, other: Tensor, rtol: builtins.float = 1e-5, atol: builtins.float = 1e-8,
             equal_nan: builtins.bool = False) -> builtins.bool:
    """Whether every element is close (reads the result: this waits for the values)."""
    return builtins.bool(isclose(input, other, rtol, atol, equal_nan).all().item())


def empty_like(input: Tensor, dtype: Dtype = None, device: str | None = None,
               requires_grad: builtins.bool = False) -> Tensor:
    return _like(input, 0, dtype, device, requires_grad)


def rand_like(input: Tensor, dtype: Dtype = None, device: str | None = None,
              requires_grad: builtins.bool = False) -> Tensor:
    return Tensor.rand(*input.shape, dtype=dtype or input.dtype, device=device or input.device,
                       requires_grad=requires_grad or None)


def randn_like(input: Tensor, dtype: Dtype = None, device: str | None = None,
               requires_grad: builtins.bool = False) -> Tensor:
    return Tensor.randn(*input.shape, dtype=dtype or input.dtype, device=device or input.device,
                        requires_grad=requires_grad or None)


def randperm(n: builtins.int, dtype: Dtype = None, device: str | None = None) -> Tensor:
    """A random permutation of ``0..n-1`` from tg's generator (``tg.manual_seed`` makes it repeatable)."""
    from tg.frontend.random import _rng

    return Tensor(_rng().permutation(n).astype((dtypes.from_any(dtype) if dtype is not None else dtypes.int32).np),
                  device=device)


class set_grad_enabled:  # noqa: N801 - PyTorch's name
    """``with tg.set_grad_enabled(False):`` records no graph inside, as :class:`no_grad`; ``True`` records it."""

    def __init__(self, mode: builtins.bool):
        self.mode = mode
        self._inner: Any = None

    def __enter__(self) -> None:
        if not self.mode:
            self._inner = no_grad()
            self._inner.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._inner is not None:
            self._inner.__exit__(*exc)


inference_mode = no_grad
