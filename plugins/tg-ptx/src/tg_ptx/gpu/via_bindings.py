"""The CUDA driver through NVIDIA's cuda-bindings (``cuda.bindings.driver``): binary wheels, no toolkit needed.

Every call returns ``(CUresult, *values)``; :func:`_ok` turns a failure into a :class:`CudaError` naming
the call and the driver's error.  The primary context is made current in each thread that uses the device.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from cuda.bindings import driver as cu

from tg_ptx.gpu.device import CudaDevice, CudaError

_TEXT = "error text unavailable"


def _ok(result: Any, call: str) -> Any:
    """The value(s) after the status of a cuda-bindings call, or a CudaError naming ``call`` and the error."""
    err, *values = result
    if err != cu.CUresult.CUDA_SUCCESS:
        name = cu.cuGetErrorName(err)[1] or b"?"
        text = cu.cuGetErrorString(err)[1] or _TEXT.encode()
        raise CudaError(f"CUDA {call} failed: {name.decode()}: {text.decode()}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


#: The C type each launch variable's numpy type is passed as (the driver copies as many bytes as the .param has).
_SCALAR_CTYPES = {np.dtype(np.int32): ctypes.c_int32, np.dtype(np.float32): ctypes.c_float}


def scalar_ctype(value: np.int32 | np.float32) -> Any:
    """``value`` as the ctypes object of its C type, made from its bytes (a float32's bits exactly: NaN, -0.0)."""
    ctype = _SCALAR_CTYPES.get(np.asarray(value).dtype)
    if ctype is None:
        raise CudaError(f"a launch variable of numpy type {np.asarray(value).dtype} (tg-ptx passes int32 and float32)")
    return ctype.from_buffer_copy(np.asarray(value).tobytes())


class LoadedModule:
    """A module the driver loaded and its kernel's function (what ``compile`` gives core)."""

    __slots__ = ("module", "function", "__weakref__")

    def __init__(self, module: Any, function: Any):
        self.module, self.function = module, function


class BindingsDevice(CudaDevice):
    binding = "cuda-bindings"

    def __init__(self) -> None:
        _ok(cu.cuInit(0), "cuInit")
        self._device = _ok(cu.cuDeviceGet(0), "cuDeviceGet")
        attr = cu.CUdevice_attribute
        major = _ok(cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self._device),
                    "cuDeviceGetAttribute")
        minor = _ok(cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self._device),
                    "cuDeviceGetAttribute")
        self.sm = int(major) * 10 + int(minor)
        self.name = _ok(cu.cuDeviceGetName(256, self._device), "cuDeviceGetName").split(b"\0")[0].decode()
        self.version = importlib.metadata.version("cuda-bindings")
        self._context: Any = _ok(cu.cuDevicePrimaryCtxRetain(self._device), "cuDevicePrimaryCtxRetain")
        self._threads = threading.local()
        self._start = self._end = None
        self._current()
        self._start = _ok(cu.cuEventCreate(0), "cuEventCreate")
        self._end = _ok(cu.cuEventCreate(0), "cuEventCreate")

    def _current(self) -> None:
        if self._context is None:
            raise CudaError("the CUDA device was already closed (the process is exiting)")
        if not getattr(self._threads, "current", False):
            _ok(cu.cuCtxSetCurrent(self._context), "cuCtxSetCurrent")
            self._threads.current = True

    def load(self, ptx: str, entry: str) -> Any:
        self._current()
        module = _ok(cu.cuModuleLoadData(ptx.encode() + b"\0"), f"cuModuleLoadData ({entry})")
        loaded = LoadedModule(module, _ok(cu.cuModuleGetFunction(module, entry.encode()),
                                          f"cuModuleGetFunction ({entry})"))
        release = weakref.finalize(loaded, self._unload, module)  # when nothing can launch it any more
        release.atexit = False  # at exit the context goes, and its modules with it
        return loaded

    def _unload(self, module: Any) -> None:
        if self._context is not None:
            self._current()
            cu.cuModuleUnload(module)  # a failure leaks the module's memory; nothing computes with it

    def launch(self, function: Any, grid: tuple[int, int, int], block: tuple[int, int, int],
               buffers: Sequence[Any], scalars: Sequence[np.int32 | np.float32]) -> float:
        self._current()
        values: list[Any] = [ctypes.c_uint64(int(b)) for b in buffers] + [scalar_ctype(s) for s in scalars]
        pointers = (ctypes.c_void_p * max(len(values), 1))(*[ctypes.addressof(v) for v in values])
        _ok(cu.cuEventRecord(self._start, 0), "cuEventRecord")
        _ok(cu.cuLaunchKernel(function.function, *grid, *block, 0, 0, ctypes.addressof(pointers), 0), "cuLaunchKernel")
        _ok(cu.cuEventRecord(self._end, 0), "cuEventRecord")
        _ok(cu.cuEventSynchronize(self._end), "kernel launch (cuEventSynchronize)")
        return float(_ok(cu.cuEventElapsedTime(self._start, self._end), "cuEventElapsedTime")) * 1e-3

    def alloc(self, nbytes: int) -> Any:
        self._current()
        return _ok(cu.cuMemAlloc(max(nbytes, 1)), f"cuMemAlloc ({nbytes} bytes)")

    def free(self, buffer: Any) -> None:
        if self._context is not None:
            self._current()
            _ok(cu.cuMemFree(buffer), "cuMemFree")

    def copyin(self, buffer: Any, host: memoryview) -> None:
        self._current()
        if host.nbytes:
            array = np.frombuffer(host, dtype=np.uint8)
            _ok(cu.cuMemcpyHtoD(buffer, array.ctypes.data, host.nbytes), "cuMemcpyHtoD")

    def copyout(self, host: memoryview, buffer: Any) -> None:
        self._current()
        if host.nbytes:
            array = np.frombuffer(host, dtype=np.uint8)
            _ok(cu.cuMemcpyDtoH(array.ctypes.data, buffer, host.nbytes), "cuMemcpyDtoH")

    def synchronize(self) -> None:
        if self._context is not None:
            self._current()
            _ok(cu.cuCtxSynchronize(), "cuCtxSynchronize")

    def close(self) -> None:
        if self._context is None:
            return
        self._context = None
        try:
            cu.cuDevicePrimaryCtxRelease(self._device)
        except Exception:  # noqa: S110 - at exit the driver may already be gone
            pass
