"""Random tensors: rand, randn, uniform, randint, and manual_seed for reproducible draws (one generator per process).

Numbers are drawn on the host with numpy's generator and uploaded; the buffer keeps how to draw new ones, so a
``tg.jit`` replay redraws them instead of repeating the traced values.
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate cls as type[Tensor], their only subclass; mypy wants a supertype there)
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tg.engine.device import canonical_name
from tg.frontend.host_data import shape_arg
from tg.graph.lazy import LazyBuffer
from tg.support.dtype import DType, dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor

# The process's generator, made on first use (importing numpy.random is a tenth of the Python a program's first
# matmul waits for), replaced by seeding.
_generator: list[np.random.Generator] = []


def manual_seed(seed: int) -> None:
    """Seed the generator every random tensor is drawn from (parameter initialisation and dropout included)."""
    _generator[:] = [np.random.default_rng(seed)]


def _rng() -> np.random.Generator:
    if not _generator:
        _generator.append(np.random.default_rng())  # (two threads at once: both get the first one appended)
    return _generator[0]


def host_generator() -> np.random.Generator:
    """The process's numpy generator that random tensors are drawn from (seeded by :func:`manual_seed`), for host-side
    draws that ``tg.manual_seed`` must make reproducible too (a DataLoader's shuffling)."""
    return _rng()


class RandomMixin:
    """Tensor's random constructors (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    manual_seed = staticmethod(manual_seed)

    @classmethod
    def _random(cls: type[Tensor], draw: Callable[[tuple[int, ...]], Any], shape: tuple[Any, ...],
                dtype: DType | str | None, device: str | None, requires_grad: bool | None) -> Tensor:
        size, dt = shape_arg(shape), dtypes.from_any(dtype) if dtype is not None else dtypes.default_float

        def redraw() -> np.ndarray:
            return np.asarray(draw(size)).astype(dt.np)

        return cls(LazyBuffer.from_numpy(redraw(), canonical_name(device), redraw), requires_grad=requires_grad)

    @classmethod
    def rand(cls: type[Tensor], *shape: Any, dtype: DType | str | None = None, device: str | None = None,
             requires_grad: bool | None = None) -> Tensor:
        """Uniform in [0, 1)."""
        return cls._random(lambda size: _rng().random(size), shape, dtype, device, requires_grad)

    @classmethod
    def randn(cls: type[Tensor], *shape: Any, dtype: DType | str | None = None, device: str | None = None,
              requires_grad: bool | None = None) -> Tensor:
        """Standard normal."""
        return cls._random(lambda size: _rng().standard_normal(size), shape, dtype, device, requires_grad)

    @classmethod
    def uniform(cls: type[Tensor], *shape: Any, low: float = 0.0, high: float = 1.0, dtype: DType | str | None = None,
                device: str | None = None, requires_grad: bool | None = None) -> Tensor:
        return cls._random(lambda size: _rng().uniform(low, high, size), shape, dtype, device, requires_grad)

    @classmethod
    def randint(cls: type[Tensor], low: int, high: Any = None, size: Any = None, *, dtype: DType | str | None = None,
                device: str | None = None, requires_grad: bool | None = None) -> Tensor:
        """Integers uniform in ``[low, high)``, PyTorch's forms: ``randint(low, high, size)`` and
        ``randint(high, size)``; ``size`` is a tuple (or an int).  The dtype defaults to the default int."""
        if high is None:  # randint(high, size=...)
            low, high = 0, low
        elif size is None and isinstance(high, (tuple, list)):  # randint(high, size)
            low, high, size = 0, low, high
        if size is None:
            raise TypeError("randint() needs a size: randint(low, high, size) or randint(high, size), e.g. "
                            "randint(0, 10, (2, 3))")
        if not high > low:
            raise ValueError(f"randint: high ({high}) must be larger than low ({low})")
        dt = dtypes.from_any(dtype) if dtype is not None else dtypes.default_int
        if dt.is_float or dt == dtypes.bool:
            raise TypeError(f"randint makes integers, got dtype {dt.name}")
        shape = tuple(size) if isinstance(size, (tuple, list)) else (size,)
        return cls._random(lambda n: _rng().integers(low, high, n), shape, dt, device, requires_grad)
