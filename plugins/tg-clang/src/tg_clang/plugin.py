"""tg's hook implementations for the ``clang`` backend: the C emitter and the ctypes runtime.

Core imports this module only when the backend is selected or probed; it imports nothing heavy (the
emitter and runtime modules import numpy and ctypes, which core has loaded already).
"""

from __future__ import annotations

from tg.backends.contract import Emitter, Runtime
from tg.hooks import hookimpl


@hookimpl
def tg_emitters() -> list[Emitter]:
    from tg_clang.emitter import ClangEmitter

    return [ClangEmitter()]


@hookimpl
def tg_runtimes() -> list[Runtime]:
    from tg_clang.runtime import ClangRuntime

    return [ClangRuntime()]
