"""How many threads a launch runs on: TG_CLANG_THREADS, else the cores this process may run on.

The runtime splits a launch over that many threads, and the tiling plans work units for them (a launch with packed
panels makes fewer, taller units on a machine with few cores: ``cpu_shapes.UNITS_PER_THREAD``).
"""

from __future__ import annotations

import functools
import os

from tg.support.helpers import environ_get

_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


@functools.cache
def _cached_thread_count(raw: str, pid: int) -> int:
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"environment variable TG_CLANG_THREADS={raw!r} must be a positive integer")
        return int(raw)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def thread_count() -> int:
    """Threads per launch: TG_CLANG_THREADS, else the cores this process may run on (remembered per value of
    the variable and per process: asking the OS for the affinity would cost a system call per launch)."""
    return _cached_thread_count((environ_get("TG_CLANG_THREADS") or "").strip(), _pid)
