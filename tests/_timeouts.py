"""Time bounds for tests that start processes: a hang fails its test instead of blocking the run."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the body once it has run for seconds (SIGALRM: main thread, POSIX only)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; run unbounded rather than not at all
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def process_gone(pid: int, within: float = 5.0) -> bool:
    """Whether process pid has exited (a zombie counts as gone: PID 1 in a container may never reap it)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
