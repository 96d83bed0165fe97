"""Small helpers used everywhere: typed environment variables, debug levels, timing, process helpers.

Every environment variable core reads is prefixed ``TG_`` and listed in :data:`ENVIRONMENT`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from tg.support.lazy import lazy_attributes

if TYPE_CHECKING:
    from tg.support.cross_process import cross_process
    from tg.support.early_exec import EarlyExec, early_exec, enable_early_exec

__all__ = ["ENVIRONMENT", "EarlyExec", "Timing", "cross_process", "debug_level", "early_exec",
           "enable_early_exec", "getenv"]

#: Every environment variable core reads, with what it does (the README's table is made from this).  Plugins
#: declare their own through the tg_environment hook; ``tg env`` lists both.
ENVIRONMENT: dict[str, str] = {
    "TG_BACKEND": "Ordered backend preference, `name[:runtime][,name...]`; the first available wins. "
                  "Unset: the fastest available by priority, numpy last.",
    "TG_PLUGINS": "Comma list of plugins (entry point or distribution names) allowed to load; "
                  "empty: built-ins only. Unset: all installed plugins.",
    "TG_STRICT_PLUGINS": "1: a plugin that fails to load is an error instead of a warning.",
    "TG_DEBUG": "1: kernel count and time; 2: each kernel; 4: its source; 5: its disassembly; 6: its micro-ops.",
    "TG_NUMPY_CAPS": "Lowering capabilities the numpy backend pretends to need, to prove each rewrite: no_div, "
                     "no_pow, no_mod, no_sub, no_cmpeq, no_neg, no_recip (core decomposes the op), no_variables "
                     "(Python floats compiled in as constants), sin_is_sin2pi, "
                     "mulacc, tensor_cores, group_size=N, vector_width=N, upcast=N, unroll=N, launch_dims=N, "
                     "no_<dtype>. Any setting runs the backend's micro-op interpreter; `interpret` alone runs it "
                     "with the default capabilities. Unset or empty: the fast path (whole-array numpy, BLAS for "
                     "contractions), the interpreter for a kernel it does not fit.",
    "TG_FUZZ_EXAMPLES": "Random programs the conformance kit's differential fuzzer (tg.testing.test_fuzz) compares "
                        "with the numpy backend (default 40).",
    "TG_CACHE_DIR": "Where plugins cache compiled kernels (default $XDG_CACHE_HOME/tg, else ~/.cache/tg), "
                    "each under a folder of its own. Created 0700; a folder owned by another user or writable by "
                    "group or others is refused. `tg cache` shows it, `tg cache clear` empties it.",
    "TG_CACHE_MAX_MB": "Bound on the kernel cache in megabytes (default 512); past it, the kernels used least "
                       "recently are removed.",
    "TG_KERNELS_MAX": "Compiled kernels each backend keeps loaded in a process (default 2048); past it, the one "
                      "used least recently is let go (unloaded once nothing runs it; the disk cache brings it back).",
    "TG_SCHEDULE_CACHE": "0: every realize schedules its graph afresh (default 1: a graph of the structure of one "
                         "scheduled before, as an eager training step builds every step, reuses that schedule, "
                         "re-bound to the new graph's buffers and parameter values).",
    "TG_SCALAR_PARAMS": "0: a Python float in tensor arithmetic (`x * lr`) is compiled into each kernel as a "
                        "constant, a new kernel per value (default 1: it is a kernel parameter where the backend "
                        "takes float32 launch variables, so a value that changes every step reuses the kernel).",
    "TG_FUSE_ROWS": "0: a reduction read back over its own rows (a softmax's max and sum, a layernorm's mean and "
                    "variance) runs as a kernel of its own (default 1: on backends without work groups, it is fused "
                    "into the kernel that reads it, which runs one pass per reduction over each row of at most "
                    "16 KiB, then its own).",
    "TG_SYMBOLIC": "0: every kernel is compiled for its exact shape (default 1: where the backend's runtime takes "
                   "symbolic launches, a kernel is compiled once for every size of its outermost dimension when a "
                   "second size comes, so a new batch size or sequence length reuses it); verify: also run the exact "
                   "kernel after each reuse and raise if any bit differs (for tests and CI).",
    "TG_EXEC_JOBS": "External commands (compilers, assemblers) tg runs at once, e.g. compiling a schedule's new "
                    "kernels in parallel (default: one per CPU, at most 8).",
    "TG_EXEC_TIMEOUT": "Seconds an external command (a compiler, an assembler) may run before tg kills it with "
                       "every process it started and raises an error naming it (default 120; 0: no limit).",
    "TG_DIST_TIMEOUT": "Seconds a tg.distributed collective (allreduce, broadcast, barrier) may wait for the other "
                       "ranks before raising an error and aborting them all (default 300).",
    "TG_DIST_WATCHDOG": "0: no watchdog process beside each tg.distributed rank under MPICH's mpiexec (default 1: "
                        "a rank that dies without a word, by a signal or os._exit, is named by its rank).",
}

T = TypeVar("T", int, float, str, bool)


# ``os.environ.get`` of an unset name raises and catches KeyError twice (~1.5 us), and the hot paths read TG_DEBUG on
# every realize.  CPython's os.environ keeps its table as a dict of encoded names and values (``_data``, which every
# write through os.environ updates), read here at dict speed; os.environ.get wherever that table is not there.
_env_names: dict[str, Any] = {}  # name -> its encoded form, a key of that table


def environ_get(key: str) -> str | None:
    """``os.environ.get(key)``, faster."""
    environ = os.environ
    table: dict[Any, Any] | None = getattr(environ, "_data", None)
    if table is None:
        return environ.get(key)
    name = _env_names.get(key)
    if name is None:
        name = _env_names[key] = environ.encodekey(key)
    raw = table.get(name)
    return None if raw is None else environ.decodevalue(raw)


def getenv(key: str, default: T) -> T:
    """Read environment variable ``key`` converted to the type of ``default`` (``default`` if unset).

    A bool accepts 1/0, true/false, yes/no, on/off; a bad value raises ValueError naming the variable.
    """
    raw = environ_get(key)
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
    level = getenv("TG_DEBUG", 0)
    if not 0 <= level <= 6:
        raise ValueError(f"TG_DEBUG={level}: the debug level is 0 (off) to 6 (everything); see `tg env`")
    return level


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


__getattr__ = lazy_attributes(__name__, _PROCESS_HELPERS)
