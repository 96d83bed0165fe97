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


#: The environment variables this plugin reads (``tg env`` lists them).
ENVIRONMENT: dict[str, str] = {
    "TG_CC": "The C compiler (default clang); it must accept clang's vector extensions.",
    "TG_CLANG_THREADS": "Threads per launch (default: every core); kernels with packed panels are tiled for it.",
    "TG_CLANG_NATIVE_POOL": "0 splits launches with Python threads instead of the native pthread pool.",
    "TG_CLANG_SPIN_US": "Microseconds an idle pool thread spins (yielding) before it sleeps (default 1000).",
    "TG_CLANG_DIRECT_LINK": "0 lets clang's driver link each kernel (default: the linker runs directly, ld.gold "
                            "where installed).",
    "TG_CLANG_SPMD": "0 renders every kernel one thread at a time (no SIMD across threads).",
    "TG_CLANG_LANES": "Threads run together in SIMD lanes (default 16).",
    "TG_CLANG_ROWS": "Rows of a register tile (default 6).",
    "TG_CLANG_VECTOR_WIDTH": "Declare this vector width to core (default 1), to exercise its vector lanes.",
    "TG_CLANG_GROUP_SIZE": "Declare this work-group size to core (default 1), to exercise work groups.",
}


@hookimpl
def tg_environment() -> dict[str, str]:
    return dict(ENVIRONMENT)
