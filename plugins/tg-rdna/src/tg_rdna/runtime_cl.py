"""``rdna``: the runtime that runs the code objects on an AMD RDNA3 GPU through ROCm's OpenCL (pyopencl).

The linked code object (:mod:`tg_rdna.build`) is loaded as a binary program (``clCreateProgramWithBinary``), which
only AMD's own OpenCL (ROCm) can do: PoCL and Mesa (Clover, rusticl) compile OpenCL C and cannot load AMD code
objects, so they are not used.  Buffers are ``cl.Buffer`` s, copies are blocking, a launch is an NDRange of
``global_size * local_size`` work-items in groups of ``local_size``, timed by the queue's profiling events.

pyopencl is imported on first use; :meth:`OpenCLRuntime.available` says exactly what is missing (pyopencl, an
OpenCL platform, a gfx11 device, LLVM) and the fix, and points to ``rdna:emu``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from tg.backends.contract import Availability, Runtime
from tg.codegen.program import Program

from tg_rdna import build, toolchain, variables

EMU_HINT = "; without an AMD RDNA3 GPU, use TG_BACKEND=rdna:emu (the emulator)"
_NOT_AMD = ("portable computing language", "pocl", "clover", "rusticl", "mesa")


def find_device() -> tuple[Any, str | None, str]:
    """The gfx11 OpenCL device to use, or (None, problem, remedy)."""
    try:
        import pyopencl as cl
    except ImportError:
        return None, "pyopencl is not installed", "pip install './plugins/tg-rdna[opencl]'" + EMU_HINT
    try:
        platforms = cl.get_platforms()
    except Exception as exc:  # noqa: BLE001 - no ICD loader or no platform: pyopencl raises its own errors
        platforms, error = [], f" ({exc})"
    else:
        error = ""
    if not platforms:
        return None, f"no OpenCL platform{error}", "install ROCm's OpenCL runtime (rocm-opencl-runtime)" + EMU_HINT
    found, others = [], []
    for p in platforms:
        try:
            devices = p.get_devices()
        except Exception:  # noqa: BLE001 - a platform without devices raises
            devices = []
        for d in devices:
            label = f"{d.name} ({p.name})"
            if any(word in p.name.lower() for word in _NOT_AMD):
                others.append(label + ": cannot load AMD code objects")
            elif str(d.name).startswith("gfx11"):
                found.append(d)
            else:
                others.append(label + ": not gfx11")
    if not found:
        seen = "; ".join(others) or "no device"
        return None, f"no RDNA3 (gfx11) device on ROCm's OpenCL ({seen})", \
            "install ROCm's OpenCL runtime on a machine with an RDNA3 GPU" + EMU_HINT
    index = int(os.environ.get("TG_RDNA_DEVICE", "0") or 0)
    if index >= len(found):
        return None, f"TG_RDNA_DEVICE={index} but {len(found)} gfx11 device(s) found", "unset TG_RDNA_DEVICE"
    return found[index], None, ""


class OpenCLRuntime(Runtime):
    language = "rdna"
    name = "rdna"
    priority = 250
    variable_dtypes = frozenset(variables.FORMATS)

    def __init__(self) -> None:
        self._queue: Any = None

    def available(self) -> Availability:
        device, problem, remedy = find_device()
        if problem is not None:
            return Availability.no(problem, remedy)
        problem = toolchain.problem()
        if problem is not None:
            return Availability.no(problem, toolchain.PACKAGES)
        return Availability.yes(f"{device.name} through {device.platform.name}")

    @property
    def queue(self) -> Any:
        if self._queue is None:
            import pyopencl as cl

            device, problem, remedy = find_device()
            if problem is not None:
                from tg.support.errors import BackendError

                raise BackendError(f"tg-rdna: {problem} (fix: {remedy})")
            ctx = cl.Context([device])
            self._queue = cl.CommandQueue(ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
        return self._queue

    def compile(self, program: Program) -> Any:
        import pyopencl as cl

        binary = build.build(program.source, program.name)
        q = self.queue
        return cl.Program(q.context, [q.device], [binary]).build()

    def compile_many(self, programs: Sequence[Program]) -> list[Any]:
        """The programs of a schedule built together (:func:`tg_rdna.build.build_many`), one OpenCL program per code
        object."""
        import pyopencl as cl

        q = self.queue
        return build.load_many([(p.source, p.name) for p in programs],
                               lambda data: cl.Program(q.context, [q.device], [data]).build())

    def disassemble(self, program: Program, binary: Any) -> str | None:
        return build.disassemble(build.build(program.source, program.name), program.name)

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int | float]) -> float | None:
        import pyopencl as cl

        kernel = cl.Kernel(binary, program.name)
        # numpy scalars: pyopencl passes each as its dtype's bytes (np.float32: the float's bits exactly)
        kernel.set_args(*buffers, *variables.scalars(program, values))
        local = tuple(program.local_size)
        total = tuple(g * lo for g, lo in zip(program.global_size, local))
        event = cl.enqueue_nd_range_kernel(self.queue, kernel, total, local)
        event.wait()
        return float(event.profile.end - event.profile.start) * 1e-9

    def alloc(self, nbytes: int) -> Any:
        import pyopencl as cl

        return cl.Buffer(self.queue.context, cl.mem_flags.READ_WRITE, max(nbytes, 8))

    def free(self, buffer: Any) -> None:
        buffer.release()

    def copyin(self, buffer: Any, host: memoryview) -> None:
        import pyopencl as cl

        cl.enqueue_copy(self.queue, buffer, host, is_blocking=True)

    def copyout(self, host: memoryview, buffer: Any) -> None:
        import pyopencl as cl

        cl.enqueue_copy(self.queue, host, buffer, is_blocking=True)

    def synchronize(self) -> None:
        if self._queue is not None:
            self._queue.finish()
