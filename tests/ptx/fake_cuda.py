"""Stand-ins for the two CUDA bindings (pycuda, NVIDIA's cuda-bindings) that run kernels on the PTX emulator.

No GPU is reachable where the tests run, so these drive every line of tg-ptx's GPU runtime: memory lives in
an emulator heap, modules are "JIT-compiled" by the emulator, and a launch reads its parameters the way the
driver does (cuda-bindings: from the array of pointers, each value's bytes as many as the entry's .param has;
pycuda: device allocations and numpy scalars, packed by their dtype; it refuses a bare Python number).
"""

from __future__ import annotations

import ctypes
import enum
import importlib.metadata
import sys
import types
from typing import Any

import numpy as np
import pytest
from tg_ptx.emulator import GlobalMemory, compile_kernel, run_kernel
from tg_ptx.emulator.ptxtypes import TYPES


class _FakeFunction:
    def __init__(self, device: Any, source: str, name: str):
        self.device, self.name, self.kernel = device, name, compile_kernel(source, name)

    def run(self, values: list[Any], grid: tuple[int, ...], block: tuple[int, ...]) -> None:
        assert len(grid) == 3 and len(block) == 3
        self.device.launches.append((self.name, values, tuple(grid), tuple(block)))
        run_kernel(self.kernel, self.device.memory, grid, block, values)

    def __call__(self, *args: Any, grid: tuple[int, ...], block: tuple[int, ...]) -> None:  # pycuda's call
        for i, a in enumerate(args):
            if not hasattr(a, "address") and not isinstance(a, np.generic):
                raise TypeError(f"invalid type on parameter #{i} (0-based)")  # pycuda's refusal
        self.run([a.address if hasattr(a, "address") else a for a in args], grid, block)


def fake_pycuda() -> types.ModuleType:
    """A pycuda.driver look-alike."""
    driver = types.ModuleType("pycuda.driver")
    d: Any = driver
    d.memory, d.launches, d.modules = GlobalMemory(), [], []
    d.init = lambda: None
    d.Error = RuntimeError

    class Context:
        def push(self) -> None: ...
        def pop(self) -> None: ...
        def synchronize(self) -> None: ...

    class Device:
        def __init__(self, index: int): ...
        def retain_primary_context(self) -> Context:
            return Context()
        def compute_capability(self) -> tuple[int, int]:
            return (8, 6)
        def name(self) -> str:
            return "Fake GPU"

    class Event:
        def record(self) -> None: ...
        def synchronize(self) -> None: ...
        def time_till(self, other: Any) -> float:
            return 0.25

    class Module:
        def __init__(self, source: bytes):
            self.source = source.decode()
            d.modules.append(self.source)

        def get_function(self, name: str) -> _FakeFunction:
            return _FakeFunction(d, self.source, name)

    def memcpy_htod(dst: Any, src: np.ndarray) -> None:
        dst.data[: src.nbytes] = src.view(np.uint8)

    def memcpy_dtoh(dst: np.ndarray, src: Any) -> None:
        dst[:] = src.data[: dst.nbytes]

    class Allocation:
        def __init__(self, nbytes: int):
            self.inner = d.memory.alloc(nbytes)
            self.address, self.data = self.inner.address, self.inner.data

        def free(self) -> None:
            d.memory.free(self.inner)

    d.Device, d.Event, d.mem_alloc, d.module_from_buffer = Device, Event, Allocation, Module
    d.memcpy_htod, d.memcpy_dtoh = memcpy_htod, memcpy_dtoh
    return driver


class CUresult(enum.IntEnum):
    CUDA_SUCCESS = 0
    CUDA_ERROR_INVALID_VALUE = 1
    CUDA_ERROR_INVALID_PTX = 218


class CUdeviceptr(int):
    """cuda-bindings' device pointer: int() gives the address."""


def fake_cuda_bindings() -> types.ModuleType:
    """A ``cuda.bindings.driver`` look-alike: every call returns ``(CUresult, *values)``."""
    driver = types.ModuleType("cuda.bindings.driver")
    d: Any = driver
    d.memory, d.launches, d.modules, d.current, d.unloaded = GlobalMemory(), [], [], [], []
    d.released = 0
    ok = CUresult.CUDA_SUCCESS
    d.CUresult = CUresult
    d.CUdevice_attribute = types.SimpleNamespace(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR=75,
                                                 CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR=76)
    allocations: dict[int, Any] = {}
    d.cuInit = lambda flags: (ok,)
    d.cuDeviceGet = lambda ordinal: (ok, ordinal)
    d.cuDeviceGetAttribute = lambda attribute, device: (ok, {75: 9, 76: 0}[attribute])
    d.cuDeviceGetName = lambda length, device: (ok, b"Fake H100\0\0\0")
    d.cuDevicePrimaryCtxRetain = lambda device: (ok, "context")
    d.cuCtxSetCurrent = lambda context: (d.current.append(context), (ok,))[1]
    d.cuCtxSynchronize = lambda: (ok,)
    d.cuEventCreate = lambda flags: (ok, object())
    d.cuEventRecord = lambda event, stream: (ok,)
    d.cuEventSynchronize = lambda event: (ok,)
    d.cuEventElapsedTime = lambda start, end: (ok, 0.5)
    d.cuGetErrorName = lambda err: (ok, CUresult(err).name.encode())
    d.cuGetErrorString = lambda err: (ok, b"a fake error")

    def released(device: int) -> tuple[CUresult]:
        d.released += 1
        return (ok,)

    def load(image: bytes) -> tuple[CUresult, Any]:
        assert image.endswith(b"\0"), "PTX given to the driver must be NUL-terminated"
        source = image[:-1].decode()
        if "invalid" in source:
            return (CUresult.CUDA_ERROR_INVALID_PTX, None)
        d.modules.append(source)
        return (ok, source)

    def get_function(module: str, name: bytes) -> tuple[CUresult, Any]:
        return (ok, _FakeFunction(d, module, name.decode()))

    def alloc(nbytes: int) -> tuple[CUresult, CUdeviceptr]:
        a = d.memory.alloc(nbytes)
        allocations[a.address] = a
        return (ok, CUdeviceptr(a.address))

    def free(pointer: CUdeviceptr) -> tuple[CUresult]:
        d.memory.free(allocations.pop(int(pointer)))
        return (ok,)

    def htod(pointer: CUdeviceptr, host: int, nbytes: int) -> tuple[CUresult]:
        allocations[int(pointer)].data[:nbytes] = np.frombuffer(ctypes.string_at(host, nbytes), np.uint8)
        return (ok,)

    def dtoh(host: int, pointer: CUdeviceptr, nbytes: int) -> tuple[CUresult]:
        ctypes.memmove(host, allocations[int(pointer)].data.ctypes.data, nbytes)
        return (ok,)

    def launch(function: _FakeFunction, gx: int, gy: int, gz: int, bx: int, by: int, bz: int, shared: int,
               stream: int, params: int, extra: int) -> tuple[CUresult]:
        entry = function.kernel.entry
        pointers = (ctypes.c_void_p * len(entry.params)).from_address(params)
        types = [TYPES[p.type] for p in entry.params]
        values = [np.frombuffer(ctypes.string_at(pointers[i], t.size), t.np)[0] for i, t in enumerate(types)]
        function.run(values, (gx, gy, gz), (bx, by, bz))
        return (ok,)

    d.cuDevicePrimaryCtxRelease = released
    d.cuModuleLoadData, d.cuModuleGetFunction, d.cuMemAlloc, d.cuMemFree = load, get_function, alloc, free
    d.cuMemcpyHtoD, d.cuMemcpyDtoH, d.cuLaunchKernel = htod, dtoh, launch
    d.cuModuleUnload = lambda module: (d.unloaded.append(module), (ok,))[1]
    return driver


def install_pycuda(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the ``ptx`` runtime find :func:`fake_pycuda` as its binding; return the fake driver."""
    from tg_ptx.gpu import probe

    driver = fake_pycuda()
    monkeypatch.setitem(sys.modules, "pycuda", types.ModuleType("pycuda"))
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setattr(probe, "_installed", lambda module: True)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2024.1")
    monkeypatch.delenv("TG_PTX_DRIVER", raising=False)
    return driver


def install_cuda_bindings(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the ``ptx`` runtime drive :func:`fake_cuda_bindings` (TG_PTX_DRIVER=cuda-bindings); return the fake
    driver."""
    from tg_ptx.gpu import probe

    driver = fake_cuda_bindings()
    package = types.ModuleType("cuda.bindings")
    package.driver = driver  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
    monkeypatch.setitem(sys.modules, "cuda.bindings", package)
    monkeypatch.setitem(sys.modules, "cuda.bindings.driver", driver)
    monkeypatch.delitem(sys.modules, "tg_ptx.gpu.via_bindings", raising=False)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "13.0.0")
    monkeypatch.setenv("TG_PTX_DRIVER", "cuda-bindings")
    monkeypatch.setattr(probe, "_installed", lambda module: True)
    return driver
