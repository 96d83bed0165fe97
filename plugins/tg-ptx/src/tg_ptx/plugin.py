"""tg-ptx's hook implementations: the PTX emitter and its two runtimes (``ptx`` on a GPU, ``ptx:emu`` on the CPU).

tg imports this module only when a ptx backend is selected or probed; it imports no CUDA binding and does not
touch the driver (the GPU runtime does so on first use).
"""

from __future__ import annotations

from tg.backends.contract import Emitter, Runtime
from tg.hooks import hookimpl

from tg_ptx.emitter import PTXEmitter
from tg_ptx.runtime_cuda import CudaRuntime
from tg_ptx.runtime_emu import EmulatorRuntime


@hookimpl
def tg_emitters() -> list[Emitter]:
    return [PTXEmitter()]


@hookimpl
def tg_runtimes() -> list[Runtime]:
    return [CudaRuntime(), EmulatorRuntime()]


#: The environment variables this plugin reads (``tg env`` lists them).
ENVIRONMENT: dict[str, str] = {
    "TG_PTX_ARCH": "The PTX target, sm_80 or newer (sets .target and .version). Unset: the GPU's, else sm_80.",
    "TG_PTX_DRIVER": "The Python binding the ptx runtime drives the GPU through: cuda-bindings or pycuda. Unset: "
                     "pycuda when installed, else cuda-bindings.",
    "TG_PTX_VERIFY": "Comma list of targets (e.g. sm_80,sm_90): every kernel is also assembled by ptxas for each, and "
                     "a rejection fails with ptxas's message and the PTX around it.",
    "TG_PTX_VERIFY_BATCH": "With TG_PTX_VERIFY, assemble N kernels per ptxas run in the background (default 1: each "
                           "kernel as it compiles).",
}


@hookimpl
def tg_environment() -> dict[str, str]:
    return dict(ENVIRONMENT)
