"""Small helpers used everywhere: typed environment variables, debug levels, timing, process helpers.

Every environment variable tg reads is prefixed ``TG_`` and listed in :data:`ENVIRONMENT`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tg.support.cross_process import cross_process
    from tg.support.early_exec import EarlyExec, early_exec, enable_early_exec

__all__ = ["ENVIRONMENT", "EarlyExec", "Timing", "cross_process", "debug_level", "early_exec",
           "enable_early_exec", "getenv"]

#: Every environment variable tg reads, with what it does (the README's table is made from this).
ENVIRONMENT: dict[str, str] = {
    "TG_BACKEND": "Ordered backend preference, `name[:runtime][,name...]`; the first available wins. "
                  "Unset: the fastest available by priority, numpy last.",
    "TG_PLUGINS": "Comma list of plugins (entry point or distribution names) allowed to load; "
                  "empty: built-ins only. Unset: all installed plugins.",
    "TG_STRICT_PLUGINS": "1: a plugin that fails to load is an error instead of a warning.",
    "TG_DEBUG": "1: kernel count and time; 2: each kernel; 4: its source; 5: its disassembly; 6: its micro-ops.",
    "TG_NUMPY_CAPS": "Lowering capabilities the numpy backend pretends to need, to prove each rewrite: "
                     "no_div, sin_is_sin2pi, no_pow, mulacc, group_size=N, vector_width=N, upcast=N, no_<dtype>.",
    "TG_CC": "tg-clang: the C compiler (default clang); it must accept clang's vector extensions.",
    "TG_CACHE_DIR": "Where compiled kernels are cached (default $XDG_CACHE_HOME/tg, else ~/.cache/tg).",
    "TG_CLANG_THREADS": "tg-clang: threads per launch (default: every core).",
    "TG_CLANG_NATIVE_POOL": "tg-clang: 0 splits launches with Python threads instead of its native pthread pool.",
    "TG_CLANG_SPIN_US": "tg-clang: microseconds an idle pool thread spins (yielding) before it sleeps (default 1000).",
    "TG_CLANG_SPMD": "tg-clang: 0 renders every kernel one thread at a time (no SIMD across threads).",
    "TG_CLANG_LANES": "tg-clang: threads run together in SIMD lanes (default 16).",
    "TG_CLANG_ROWS": "tg-clang: rows of a register tile (default 6).",
    "TG_CLANG_VECTOR_WIDTH": "tg-clang: declare this vector width to core (default 1), to exercise its vector lanes.",
    "TG_CLANG_GROUP_SIZE": "tg-clang: declare this work-group size to core (default 1), to exercise work groups.",
    "TG_PTX_ARCH": "tg-ptx: the PTX target, sm_80 or newer (sets .target and .version). Unset: the GPU's, else sm_80.",
    "TG_PTX_VERIFY": "tg-ptx: comma list of targets (e.g. sm_80,sm_90); every kernel is also assembled by ptxas "
                     "for each, and a rejection fails with ptxas's message and the PTX around it.",
    "TG_PTX_VERIFY_BATCH": "tg-ptx: with TG_PTX_VERIFY, assemble N kernels per ptxas run in the background "
                           "(default 1: each kernel as it compiles).",
}

T = TypeVar("T", int, float, str, bool)


def getenv(key: str, default: T) -> T:
    """Read environment variable ``key`` converted to the type of ``default`` (``default`` if unset).

    A bool accepts 1/0, true/false, yes/no, on/off; a bad value raises ValueError naming the variable.
    """
    raw = os.environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return type(default)(raw.strip() if not isinstance(default, str) else raw)
    except ValueError:
        kind = type(default).__name__
        raise ValueError(f"environment variable {key}={raw!r} is not a valid {kind}") from None


def debug_level() -> int:
    """The TG_DEBUG level (read each call, so tests and notebooks may change it)."""
    return getenv("TG_DEBUG", 0)


class Timing:
    """Context manager that measures wall time; prints ``prefix`` and milliseconds when ``enabled``.

    ``with Timing("load ") as t: ...`` then ``t.seconds``.  ``on_exit`` receives the elapsed nanoseconds
    and returns a suffix to print after the time.
    """

    def __init__(self, prefix: str = "", on_exit: Callable[[int], str] | None = None, enabled: bool = True):
        self.prefix, self.on_exit, self.enabled = prefix, on_exit, enabled
        self.ns = 0

    def __enter__(self) -> Timing:
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.ns = time.perf_counter_ns() - self._start
        if self.enabled:
            suffix = self.on_exit(self.ns) if self.on_exit else ""
            print(f"{self.prefix}{self.ns * 1e-6:.2f} ms{suffix}", file=sys.stderr)

    @property
    def seconds(self) -> float:
        return self.ns * 1e-9


_PROCESS_HELPERS = {"cross_process": "tg.support.cross_process", "EarlyExec": "tg.support.early_exec",
                    "early_exec": "tg.support.early_exec", "enable_early_exec": "tg.support.early_exec"}


def __getattr__(name: str) -> Any:
    """Import the process helpers on first use: most programs never start a child process."""
    if name in _PROCESS_HELPERS:
        import importlib

        return getattr(importlib.import_module(_PROCESS_HELPERS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
