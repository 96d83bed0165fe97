"""Early exec: a helper process, started before any GPU runtime initialises, that runs commands (compilers,
assemblers) for this process, so that no large, GPU-initialised process ever has to fork.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence

import cloudpickle

from tg.support._frames import helper_env, read_frame, unpack_exception, write_payload

__all__ = ["EarlyExec", "EarlyExecError", "early_exec", "enable_early_exec"]

StrPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]


class EarlyExecError(subprocess.CalledProcessError):
    """A command run by the early exec helper failed; unlike CalledProcessError, str() includes its stderr."""

    def __str__(self) -> str:
        stderr = self.stderr.decode(errors="replace").strip() if isinstance(self.stderr, bytes) else ""
        return f"{super().__str__()}\n{stderr}" if stderr else super().__str__()


class EarlyExec:
    """One helper process (`python -m tg.support._early_exec_server`) and the lock that serialises requests to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._start()
        atexit.register(self.close)

    def _start(self) -> None:
        self._owner = os.getpid()  # a forked child must neither use nor close its parent's helper
        # A session of its own: Ctrl-C goes to this process, which then stops the helper (see __call__).
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tg.support._early_exec_server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=helper_env(), start_new_session=True,
        )

    @property
    def pid(self) -> int | None:
        """The helper's process id, None while none runs."""
        return None if self._proc is None else self._proc.pid

    def __call__(
        self, argv: Sequence[StrPath], input: bytes | None = None, cwd: StrPath | None = None,
        env: Mapping[str, str] | None = None, timeout: float | None = None,
    ) -> bytes:
        """Run argv in the helper like subprocess.run(..., check=True); return its stdout.

        cwd and env default to this process's current ones. A failing command raises EarlyExecError (a
        CalledProcessError); any other error in the helper is raised here as the same type and message.
        """
        request = cloudpickle.dumps((argv, input, os.getcwd() if cwd is None else cwd,
                                     dict(os.environ) if env is None else env, timeout))
        with self._lock:
            if self._proc is None or self._owner != os.getpid() or self._proc.poll() is not None:
                self._start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            try:
                write_payload(proc.stdin, request)
                reply = read_frame(proc.stdout)
            except (BrokenPipeError, EOFError) as exc:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)  # it is exiting: let it report its own exit code
                code = self._stop(kill=True)
                message = f"the early exec helper (pid {proc.pid}) died with exit code {code}"
                raise ChildProcessError(f"{message}; the next call starts a new one") from exc
            except BaseException:
                # Interrupted mid-request (Ctrl-C): the channel is out of step, so drop the helper.
                self._stop(kill=True)
                raise
        if reply[0] == "error":
            raise unpack_exception(reply[1])
        _, code, stdout, stderr = reply
        if code:
            raise EarlyExecError(code, list(argv), stdout, stderr)
        return stdout

    def _stop(self, kill: bool) -> int | None:
        """Close the pipes and reap the helper, killing its process group (with any command it runs) if kill
        or if it is not gone within a second; the helper's exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        code = proc.poll()  # before any kill, so that a helper that died reports its own code
        if code is None and not kill:
            try:
                code = proc.wait(timeout=1.0)  # the end of its stdin makes it exit
            except subprocess.TimeoutExpired:
                kill = True
        if kill:
            # The helper leads its own group, which holds the commands it started (alive, they keep its id).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        killed = proc.wait()
        return killed if code is None else code

    def close(self) -> None:
        """Stop the helper (it exits at the end of its stdin); a later call starts a new one."""
        if self._owner != os.getpid():
            return
        locked = self._lock.acquire(timeout=1.0)  # at exit a daemon thread may still hold it mid-request
        try:
            self._stop(kill=False)
        finally:
            if locked:
                self._lock.release()


_shared: EarlyExec | None = None
_shared_pid = 0
_shared_lock = threading.Lock()


def enable_early_exec() -> EarlyExec:
    """Start this process's early exec helper if it has none yet (a forked child gets its own); return it."""
    global _shared, _shared_pid
    with _shared_lock:
        if _shared is None or _shared_pid != os.getpid():
            _shared, _shared_pid = EarlyExec(), os.getpid()
        return _shared


def early_exec(
    argv: Sequence[StrPath], input: bytes | None = None, cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None, timeout: float | None = None,
) -> bytes:
    """Run argv in this process's early exec helper (started on first use); see EarlyExec.__call__."""
    return enable_early_exec()(argv, input=input, cwd=cwd, env=env, timeout=timeout)
