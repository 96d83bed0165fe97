"""Run a generator function in a fresh child process and iterate its items in the parent.

The child is a plain `python -m tg.support._cross_process_child` (not multiprocessing: spawn would re-run an unguarded
__main__, fork is unsafe once a GPU runtime is up), so it is no daemon and may start processes of its own.
"""

from __future__ import annotations

import collections
import functools
import os
import pickle
import select
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any, Generic, ParamSpec, TypeVar

import cloudpickle

from tg.support._frames import RemoteTraceback, helper_env, split_frames, unpack_exception, write_payload

__all__ = ["ChildIterator", "RemoteTraceback", "cross_process"]

T = TypeVar("T")
P = ParamSpec("P")

_POLL_MS = 100  # how often a silent child is checked for being dead
_EXIT_GRACE_S = 5.0  # how long a child that sent its last frame may take to exit before it is terminated


class ChildIterator(Generic[T]):
    """The items of one call, read from the child's pipe; close() (or garbage collection) stops the child."""

    _proc: subprocess.Popen[bytes] | None = None

    def __init__(self, fn_blob: bytes, args: tuple[Any, ...], kwargs: dict[str, Any], name: str = "generator") -> None:
        self.name = name
        request = cloudpickle.dumps((sys.path, fn_blob, cloudpickle.dumps((args, kwargs))))
        self._fd, write_fd = os.pipe()
        try:
            command = [sys.executable, "-m", "tg.support._cross_process_child", str(write_fd)]
            env = helper_env()
            self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env)
        except BaseException:
            os.close(self._fd)
            raise
        finally:
            os.close(write_fd)  # the child holds the only write end, so its exit means EOF here
        self.pid = self._proc.pid
        self._poller = select.poll()
        self._poller.register(self._fd, select.POLLIN)
        self._buffer = bytearray()
        self._frames: collections.deque[bytes] = collections.deque()  # pickled, unpickled one at a time
        self._items = 0  # items returned so far
        assert self._proc.stdin is not None
        try:
            write_payload(self._proc.stdin, request)
            self._proc.stdin.close()
        except OSError:
            pass  # the child died at start; reading reports its exit code

    def __iter__(self) -> ChildIterator[T]:
        return self

    def __next__(self) -> T:
        while not self._frames:
            if self._proc is None:
                raise StopIteration
            self._fill()
        payload = self._frames.popleft()
        try:
            kind, *rest = pickle.loads(payload)
        except Exception as exc:
            self.close()  # like an exception in the child, this ends the iteration
            raise pickle.UnpicklingError(
                f"cross_process: item {self._items} of {self.name} (child pid {self.pid}) could not be unpickled "
                f"in this process: {type(exc).__name__}: {exc}. The {self._items} item(s) before it were "
                "returned; the child was stopped. Fix: yield objects this process can rebuild (classes "
                "importable here, working __reduce__/__setstate__), or plain data") from exc
        if kind == "item":
            self._items += 1
            item: T = rest[0]
            return item
        self._finish(_EXIT_GRACE_S)
        if kind == "done":
            raise StopIteration
        raise unpack_exception(rest[0])

    def _fill(self) -> None:
        assert self._proc is not None
        ready = self._poller.poll(_POLL_MS)
        if not ready:
            if self._proc.poll() is None:
                return
            # It exited, so all it wrote is in the pipe; nothing there means it died mid-way even without EOF
            # (a grandchild that inherited the write end can hold EOF off indefinitely).
            ready = self._poller.poll(0)
        if ready:
            chunk = os.read(self._fd, 1 << 20)
            if chunk:
                self._buffer += chunk
                self._frames.extend(split_frames(self._buffer))
                return
        code = self._finish(1.0)
        raise ChildProcessError(f"cross_process child (pid {self.pid}) died early, with exit code {code}")

    def _finish(self, grace: float) -> int | None:
        """Reap the child, terminating it if it is not gone within grace seconds; its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                return proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait()
        finally:
            os.close(self._fd)

    def close(self) -> None:
        """Stop early: terminate and reap the child, dropping the items it sent that were not read yet."""
        if self._proc is not None:
            self._frames.clear()
            self._finish(0.0)

    def __enter__(self) -> ChildIterator[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def cross_process(fn: Callable[P, Iterable[T]]) -> Callable[P, ChildIterator[T]]:
    """Wrap a generator function so that each call runs it in a new child process and iterates its items.

    fn is cloudpickled once, here (closures work); each call's arguments are pickled per call. An exception in
    the child reaches the parent, after the items before it, as the same type and message, with the child's
    traceback as __cause__; a child that dies raises ChildProcessError; an item that cannot be unpickled here
    raises pickle.UnpicklingError naming its index, after the items before it.  A child whose parent is gone
    stops quietly at its next item.
    """
    fn_blob = cloudpickle.dumps(fn)
    name = getattr(fn, "__qualname__", type(fn).__qualname__)

    @functools.wraps(fn)
    def gen(*args: P.args, **kwargs: P.kwargs) -> ChildIterator[T]:
        return ChildIterator(fn_blob, args, kwargs, name)

    return gen
