"""What the ``ptx`` runtime asks of the CUDA driver, whichever Python binding carries the calls."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tg.support.errors import BackendError

if TYPE_CHECKING:
    import numpy as np


class CudaError(BackendError):
    """The CUDA driver refused a call; the message names the call and the driver's error."""


class CudaDevice(abc.ABC):
    """Device 0 with its primary context: memory, modules and launches.

    ``binding`` names the Python binding (``"cuda-bindings"`` or ``"pycuda"``) and ``version`` its version;
    ``sm`` is the compute capability (``90`` for sm_90) and ``name`` the GPU's.
    """

    binding: str
    version: str
    sm: int
    name: str

    @abc.abstractmethod
    def load(self, ptx: str, entry: str) -> Any:
        """JIT-compile ``ptx`` and return the function ``entry`` of it (raises :class:`CudaError`)."""

    @abc.abstractmethod
    def launch(self, function: Any, grid: tuple[int, int, int], block: tuple[int, int, int],
               buffers: Sequence[Any], scalars: Sequence[np.int32 | np.float32]) -> float:
        """Run ``function`` with the buffers' addresses then ``scalars`` (the launch variables, each packed as its
        numpy type's 4 bytes, bit for bit) as its parameters, wait for it, and return its time in seconds (CUDA
        events)."""

    @abc.abstractmethod
    def alloc(self, nbytes: int) -> Any: ...

    @abc.abstractmethod
    def free(self, buffer: Any) -> None: ...

    @abc.abstractmethod
    def copyin(self, buffer: Any, host: memoryview) -> None: ...

    @abc.abstractmethod
    def copyout(self, host: memoryview, buffer: Any) -> None: ...

    @abc.abstractmethod
    def synchronize(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Release the primary context (at exit); later calls must not touch the driver."""

