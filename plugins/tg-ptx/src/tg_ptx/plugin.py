"""tg-ptx's hook implementations: the PTX emitter and its two runtimes (``ptx`` on a GPU, ``ptx:emu`` on the CPU).

tg imports this module only when a ptx backend is selected or probed; it imports neither pycuda nor the
driver (the GPU runtime does so on first use).
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
