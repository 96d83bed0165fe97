"""``ptx``: the GPU runtime: the CUDA driver JIT-compiles the PTX and runs it on device 0.

The driver is reached through NVIDIA's cuda-bindings or through pycuda (:mod:`tg_ptx.gpu`); nothing is
imported and the driver is not touched until the runtime is used: :meth:`available` asks the driver
through ctypes whether there is a GPU (see :mod:`tg_ptx.gpu.probe`), and the first allocation, compile or
launch opens device 0's primary context and records its compute capability as the emitter's default target
(see :mod:`tg_ptx.arch`).  Kernels are timed with CUDA events.  TG_DEBUG>=5 prints each kernel's SASS when
ptxas and nvdisasm/cuobjdump are installed.
"""

from __future__ import annotations

import atexit
from collections.abc import Mapping, Sequence
from typing import Any

from tg.backends.contract import Availability, Runtime
from tg.codegen.program import Program

from tg_ptx import ptxas
from tg_ptx.arch import MIN_SM, set_detected_arch, target_arch
from tg_ptx.gpu.device import CudaDevice, CudaError
from tg_ptx.gpu.probe import choose_binding, probe
from tg_ptx.params import variable_values


def check_available() -> Availability:
    """A driver, a GPU of sm_80 or newer and a binding to reach it, or the first missing piece and its fix."""
    found = probe()
    if found.problem:
        return Availability.no(found.problem, found.remedy)
    return Availability.yes(found.describe())


def open_device(binding: str) -> CudaDevice:
    """Device 0 through ``binding`` (a name from :data:`tg_ptx.gpu.probe.BINDINGS`)."""
    if binding == "pycuda":
        from tg_ptx.gpu.via_pycuda import PycudaDevice

        return PycudaDevice()
    from tg_ptx.gpu.via_bindings import BindingsDevice

    return BindingsDevice()


def _dims(sizes: tuple[int, ...]) -> tuple[int, int, int]:
    x, y, z = (*sizes, 1, 1, 1)[:3]
    return int(x), int(y), int(z)


class CudaRuntime(Runtime):
    language = "ptx"
    name = "ptx"
    priority = 300
    variable_dtypes = frozenset({"int32", "float32"})

    def __init__(self) -> None:
        self._device: CudaDevice | None = None

    def available(self) -> Availability:
        return check_available()

    def device(self) -> CudaDevice:
        """Device 0 (opened on first use, closed at exit), through the binding TG_PTX_DRIVER or the probe names."""
        if self._device is None:
            from tg.support.helpers import enable_early_exec

            enable_early_exec()  # before the driver starts: ptxas runs in a helper forked before CUDA
            binding, problem = choose_binding()
            if problem:
                raise CudaError(f"the ptx runtime cannot start: {problem}")
            self._device = open_device(binding)
            atexit.register(self._device.close)
            if self._device.sm >= MIN_SM:
                set_detected_arch(f"sm_{self._device.sm}")
        return self._device

    def compile(self, program: Program) -> Any:
        device = self.device()
        ptxas.verify(program.source, program.name)
        try:
            return device.load(program.source, program.name)
        except CudaError as exc:
            detail = ptxas.diagnose(program.source, target_arch(), program.name)
            raise CudaError(f"{exc}\n{detail}") from None

    def disassemble(self, program: Program, binary: Any) -> str | None:
        """SASS for the open GPU's target (TG_DEBUG=5), when ptxas and nvdisasm or cuobjdump are installed."""
        return ptxas.disassemble(program.source, target_arch(), program.name)

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int | float]) -> float | None:
        """Buffers (device pointers) then the variables' values as numpy scalars of their dtypes (int32, float32),
        in the Program's parameter order."""
        return self.device().launch(binary, _dims(program.global_size), _dims(program.local_size), buffers,
                                    variable_values(program, values))

    def alloc(self, nbytes: int) -> Any:
        return self.device().alloc(nbytes)

    def free(self, buffer: Any) -> None:
        if self._device is not None:
            self._device.free(buffer)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        self.device().copyin(buffer, host)

    def copyout(self, host: memoryview, buffer: Any) -> None:
        self.device().copyout(host, buffer)

    def synchronize(self) -> None:
        if self._device is not None:
            self._device.synchronize()
