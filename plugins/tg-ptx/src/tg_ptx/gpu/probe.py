"""Is there an NVIDIA driver, a GPU and a Python binding for it?  Answered cheaply, without raising.

Only ctypes touches the driver here (``libcuda.so``): no binding is imported, so ``tg backends --check``
and automatic backend selection stay fast on machines without a GPU.  The early-exec helper is started
before ``cuInit``, so that no process is ever forked from a CUDA-initialised one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Any

from tg.support.helpers import getenv

from tg_ptx.arch import MIN_SM

#: TG_PTX_DRIVER's values, in the order tried when it is unset: (name, module to look for, distribution).
BINDINGS: list[tuple[str, str, str]] = [("pycuda", "pycuda", "pycuda"),
                                        ("cuda-bindings", "cuda.bindings", "cuda-bindings")]
BINDING_REMEDY = "pip install 'tg-ptx[cuda]' (NVIDIA's cuda-bindings: binary wheels that need only the driver)"
NO_GPU_REMEDY = ("on a machine without an NVIDIA GPU use TG_BACKEND=ptx:emu (PTX run on the CPU), or a fallback "
                 "list such as TG_BACKEND=ptx,clang that takes the GPU where there is one")
_CUDA_ERROR_NO_DEVICE = 100
_CC_MAJOR, _CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR


@dataclass(frozen=True)
class GpuProbe:
    """What the probe found: ``problem`` is empty when the GPU can be used through ``binding``."""

    problem: str = ""
    remedy: str = ""
    binding: str = ""
    device_name: str = ""
    sm: int = 0

    def describe(self) -> str:
        """One line for ``tg backends --check``: the GPU and the binding that drives it, and why that one."""
        others = [name for name, module, _ in BINDINGS if name != self.binding and not _installed(module)]
        why = f"; {', '.join(others)} not installed" if others else ""
        return f"{self.device_name} (sm_{self.sm}) through {self.binding} {_version(self.binding)}{why}"


def load_driver() -> Any | None:
    """The CUDA driver library through ctypes, or None when it cannot be loaded."""
    names = [n for n in (ctypes.util.find_library("cuda"), "libcuda.so.1", "libcuda.so") if n]
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def choose_binding() -> tuple[str, str]:
    """``(binding, problem)``: the binding TG_PTX_DRIVER names, else the first installed; problem if none."""
    wanted = getenv("TG_PTX_DRIVER", "").strip()
    names = [name for name, _, _ in BINDINGS]
    if wanted and wanted not in names:
        return "", f"TG_PTX_DRIVER={wanted!r} is not one of {', '.join(names)}"
    for name, module, _ in BINDINGS:
        if wanted in ("", name) and _installed(module):
            return name, ""
    if wanted:
        return "", f"TG_PTX_DRIVER={wanted} but {wanted} is not installed"
    return "", "neither cuda-bindings nor pycuda is installed"


def probe() -> GpuProbe:
    """The first missing piece of driver, GPU (sm_80 or newer) and binding, or what will be used."""
    driver = load_driver()
    if driver is None:
        return GpuProbe("no NVIDIA driver here (libcuda.so not found), so no GPU to run on", NO_GPU_REMEDY)
    try:
        from tg.support.helpers import enable_early_exec

        enable_early_exec()  # before cuInit: the helper that runs ptxas must not be forked from a CUDA process
        code = driver.cuInit(0)
        count = ctypes.c_int(0)
        if code == _CUDA_ERROR_NO_DEVICE or (code == 0 and (driver.cuDeviceGetCount(ctypes.byref(count)) != 0
                                                            or count.value == 0)):
            return GpuProbe("the NVIDIA driver is installed but reports no GPU", NO_GPU_REMEDY)
        if code != 0:
            return GpuProbe(f"the NVIDIA driver failed to initialise (CUresult {code})", NO_GPU_REMEDY)
        sm, name = _device_info(driver)
    except Exception as exc:  # the probe must never raise
        return GpuProbe(f"the NVIDIA driver could not be queried ({type(exc).__name__}: {exc})", NO_GPU_REMEDY)
    if sm and sm < MIN_SM:
        return GpuProbe(f"the GPU ({name}) is sm_{sm}, and tg-ptx emits PTX for sm_{MIN_SM} and newer",
                        "use TG_BACKEND=ptx:emu, or another backend")
    binding, problem = choose_binding()
    if problem:
        return GpuProbe(f"{name} found, but {problem}", BINDING_REMEDY)
    return GpuProbe(binding=binding, device_name=name, sm=sm)


def _device_info(driver: Any) -> tuple[int, str]:
    """Device 0's compute capability (major*10 + minor; 0 if the driver will not say) and name."""
    device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    if driver.cuDeviceGet(ctypes.byref(device), 0) != 0:
        return 0, "GPU 0"
    name = ctypes.create_string_buffer(256)
    named = driver.cuDeviceGetName(name, 256, device) == 0
    label = name.value.decode(errors="replace") if named else "GPU 0"
    if driver.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, device) != 0 or \
            driver.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, device) != 0:
        return 0, label
    return major.value * 10 + minor.value, label
