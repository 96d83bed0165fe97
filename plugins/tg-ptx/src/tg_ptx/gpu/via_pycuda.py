"""The CUDA driver through pycuda (``pycuda.driver``), which builds from source against a CUDA toolkit."""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Sequence
from typing import Any

import numpy as np

from tg_ptx.gpu.device import CudaDevice, CudaError


class PycudaDevice(CudaDevice):
    binding = "pycuda"

    def __init__(self) -> None:
        self._cuda: Any = importlib.import_module("pycuda.driver")
        self._cuda.init()
        device = self._cuda.Device(0)
        major, minor = device.compute_capability()
        self.sm, self.name = major * 10 + minor, device.name()
        self.version = importlib.metadata.version("pycuda")
        self._context: Any = device.retain_primary_context()
        self._context.push()

    def _live(self) -> Any:
        if self._context is None:
            raise CudaError("the CUDA device was already closed (the process is exiting)")
        return self._cuda

    def load(self, ptx: str, entry: str) -> Any:
        cuda = self._live()
        try:
            module = cuda.module_from_buffer(ptx.encode())
            return module, module.get_function(entry)
        except cuda.Error as exc:
            raise CudaError(f"CUDA could not load {entry}: {exc}") from None

    def launch(self, function: Any, grid: tuple[int, int, int], block: tuple[int, int, int],
               buffers: Sequence[Any], scalars: Sequence[np.int32 | np.float32]) -> float:
        cuda = self._live()
        start, end = cuda.Event(), cuda.Event()
        start.record()
        # pycuda packs a numpy scalar by its dtype ("i", "f"); it refuses a bare Python number
        function[1](*buffers, *scalars, grid=grid, block=block)
        end.record()
        end.synchronize()
        return float(start.time_till(end)) * 1e-3

    def alloc(self, nbytes: int) -> Any:
        return self._live().mem_alloc(max(nbytes, 1))

    def free(self, buffer: Any) -> None:
        if self._context is not None:
            buffer.free()

    def copyin(self, buffer: Any, host: memoryview) -> None:
        self._live().memcpy_htod(buffer, np.frombuffer(host, dtype=np.uint8))

    def copyout(self, host: memoryview, buffer: Any) -> None:
        self._live().memcpy_dtoh(np.frombuffer(host, dtype=np.uint8), buffer)

    def synchronize(self) -> None:
        if self._context is not None:
            self._context.synchronize()

    def close(self) -> None:
        if self._context is not None:
            try:
                self._context.pop()
            except Exception:  # noqa: S110 - at exit the driver may already be gone
                pass
            self._context = None
