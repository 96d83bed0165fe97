"""``ptx``: the GPU runtime, through pycuda and the CUDA driver (the driver JIT-compiles the PTX).

Nothing here imports pycuda or touches the driver until the runtime is used: :meth:`available` checks,
cheaply and without raising, that pycuda is installed (``importlib.util.find_spec``), that the driver
library loads (ctypes) and that it reports a device; the first allocation, compile or launch then starts
tg's early-exec helper (so that no process forks after CUDA is initialised), opens device 0's primary
context and records its compute capability as the emitter's default target (see :mod:`tg_ptx.arch`).
Kernels are timed with CUDA events.  TG_DEBUG>=5 prints each kernel's SASS when ptxas and
nvdisasm/cuobjdump are installed.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tg.backends.contract import Availability, Runtime
from tg.codegen.program import Program

from tg_ptx import ptxas
from tg_ptx.arch import MIN_SM, set_detected_arch, target_arch

PYCUDA_REMEDY = "pip install 'tg-ptx[cuda]' (needs a CUDA toolkit to build)"
DRIVER_REMEDY = "install the NVIDIA driver (it provides libcuda.so), or use TG_BACKEND=ptx:emu to run on the CPU"
DEVICE_REMEDY = "run on a machine with an NVIDIA GPU (sm_80 or newer), or use TG_BACKEND=ptx:emu to run on the CPU"
_CUDA_ERROR_NO_DEVICE = 100
_ATTRIBUTE_CC_MAJOR, _ATTRIBUTE_CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR


def _load_driver() -> Any | None:
    """The CUDA driver library through ctypes, or None when it cannot be loaded."""
    names = [n for n in (ctypes.util.find_library("cuda"), "libcuda.so.1", "libcuda.so") if n]
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def check_available() -> Availability:
    """pycuda installed, the driver loadable, a device, sm_80 or newer: the first missing piece is the reason."""
    try:
        if importlib.util.find_spec("pycuda") is None:
            return Availability.no("pycuda is not installed", PYCUDA_REMEDY)
    except (ImportError, ValueError):
        return Availability.no("pycuda is not installed", PYCUDA_REMEDY)
    driver = _load_driver()
    if driver is None:
        return Availability.no("no NVIDIA driver (libcuda.so not found)", DRIVER_REMEDY)
    try:
        from tg.support.helpers import enable_early_exec

        enable_early_exec()  # before cuInit: the helper that runs ptxas must not be forked from a CUDA process
        code = driver.cuInit(0)
        if code == _CUDA_ERROR_NO_DEVICE:
            return Availability.no("no CUDA device", DEVICE_REMEDY)
        if code != 0:
            return Availability.no(f"the NVIDIA driver failed to initialise (CUresult {code})", DEVICE_REMEDY)
        count = ctypes.c_int(0)
        code = driver.cuDeviceGetCount(ctypes.byref(count))
        if code != 0 or count.value == 0:
            return Availability.no("no CUDA device", DEVICE_REMEDY)
        sm = _compute_capability(driver)
        if sm is not None and sm < MIN_SM:
            return Availability.no(f"the GPU is sm_{sm}, and tg-ptx emits PTX for sm_{MIN_SM} and newer",
                                   DEVICE_REMEDY)
    except Exception as exc:  # available() must never raise
        return Availability.no(f"the NVIDIA driver could not be queried ({type(exc).__name__}: {exc})", DEVICE_REMEDY)
    return Availability.yes()


def _compute_capability(driver: Any) -> int | None:
    """Device 0's compute capability as major*10 + minor (86 for sm_86), or None if the driver will not say."""
    device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    if driver.cuDeviceGet(ctypes.byref(device), 0) != 0:
        return None
    if driver.cuDeviceGetAttribute(ctypes.byref(major), _ATTRIBUTE_CC_MAJOR, device) != 0 or \
            driver.cuDeviceGetAttribute(ctypes.byref(minor), _ATTRIBUTE_CC_MINOR, device) != 0:
        return None
    return major.value * 10 + minor.value


@dataclass
class CudaProgram:
    name: str
    source: str
    module: Any
    function: Any


class CudaRuntime(Runtime):
    language = "ptx"
    name = "ptx"
    priority = 300

    def __init__(self) -> None:
        self._cuda: Any = None
        self._context: Any = None

    def available(self) -> Availability:
        return check_available()

    def _driver(self) -> Any:
        """pycuda.driver with device 0's primary context current (opened on first use)."""
        if self._cuda is None:
            from tg.support.helpers import enable_early_exec

            enable_early_exec()
            cuda = importlib.import_module("pycuda.driver")
            cuda.init()
            device = cuda.Device(0)
            self._context = device.retain_primary_context()
            self._context.push()
            atexit.register(self._close)
            major, minor = device.compute_capability()
            if major * 10 + minor >= MIN_SM:
                set_detected_arch(f"sm_{major}{minor}")
            self._cuda = cuda
        return self._cuda

    def _close(self) -> None:
        if self._context is not None:
            try:
                self._context.pop()
            except Exception:  # noqa: S110 - at exit the driver may already be gone
                pass
            self._context = None

    def compile(self, program: Program) -> CudaProgram:
        cuda = self._driver()
        ptxas.verify(program.source, program.name)
        module = cuda.module_from_buffer(program.source.encode())
        return CudaProgram(program.name, program.source, module, module.get_function(program.name))

    def disassemble(self, program: Program, binary: Any) -> str | None:
        """SASS for the open GPU's target (TG_DEBUG=5), when ptxas and nvdisasm or cuobjdump are installed."""
        return ptxas.disassemble(program.source, target_arch(), program.name)

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any], values: Mapping[str, int]) -> float | None:
        """Buffers (device pointers) then the variables' values as int32, in the Program's parameter order."""
        cuda = self._driver()
        prog: CudaProgram = binary
        args: list[Any] = [*buffers, *(np.int32(values[v]) for v in program.variables)]
        grid = (*program.global_size, 1, 1)[:3]
        block = (*program.local_size, 1, 1)[:3]
        start, end = cuda.Event(), cuda.Event()
        start.record()
        prog.function(*args, grid=tuple(int(g) for g in grid), block=tuple(int(b) for b in block))
        end.record()
        end.synchronize()
        return float(start.time_till(end)) * 1e-3

    def alloc(self, nbytes: int) -> Any:
        return self._driver().mem_alloc(max(nbytes, 1))

    def free(self, buffer: Any) -> None:
        if self._context is not None:
            buffer.free()

    def copyin(self, buffer: Any, host: memoryview) -> None:
        self._driver().memcpy_htod(buffer, np.frombuffer(host, dtype=np.uint8))

    def copyout(self, host: memoryview, buffer: Any) -> None:
        self._driver().memcpy_dtoh(np.frombuffer(host, dtype=np.uint8), buffer)

    def synchronize(self) -> None:
        if self._context is not None:
            self._context.synchronize()
