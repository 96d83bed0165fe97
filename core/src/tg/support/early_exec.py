"""Early exec: a helper process, started before any GPU runtime initialises, that runs commands (compilers,
assemblers) for this process, so that no large, GPU-initialised process ever has to fork.

Nothing run this way can hang tg: each command has a time limit (``TG_EXEC_TIMEOUT`` seconds, 120 unless set;
0 for none), after which it is killed with every process it started and :class:`EarlyExecTimeout` names it.
tg waits for the command itself, not for children it leaves in the background.  The helper, and the command
it runs, die with this process whatever ends it (see :mod:`tg.support._early_exec_server`).  There are
``TG_EXEC_JOBS`` helpers (one per CPU, at most 8), all started together, so that commands from several threads
(parallel compiles) run at once.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import pickle
import queue
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tg.support._frames import helper_env, read_frame, unpack_exception, write_payload
from tg.support.errors import TgError
from tg.support.helpers import getenv

__all__ = ["DEFAULT_TIMEOUT", "EarlyExec", "EarlyExecError", "EarlyExecTimeout", "early_exec", "enable_early_exec",
           "exec_jobs"]

#: The helper's script, run by its path: ``python -m`` would import the tg package first, most of its start-up.
_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_early_exec_server.py")
#: Seconds a command may run when neither the caller nor TG_EXEC_TIMEOUT says otherwise.
DEFAULT_TIMEOUT = 120.0
_HELPER_GRACE_S = 10.0  # beyond a command's limit, how long the helper may take to kill it and answer

StrPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]


class EarlyExecError(subprocess.CalledProcessError):
    """A command run by the early exec helper failed; unlike CalledProcessError, str() includes its stderr."""

    def __str__(self) -> str:
        stderr = self.stderr.decode(errors="replace").strip() if isinstance(self.stderr, bytes) else ""
        return f"{super().__str__()}\n{stderr}" if stderr else super().__str__()


class EarlyExecTimeout(TgError, subprocess.TimeoutExpired):
    """A command ran past its time limit and was killed with every process it started (its process group)."""

    def __init__(self, cmd: list[Any], timeout: float, output: bytes | None = None, stderr: bytes | None = None,
                 from_environment: bool = True, unanswered: bool = False) -> None:
        subprocess.TimeoutExpired.__init__(self, cmd, timeout, output, stderr)
        self.from_environment, self.unanswered = from_environment, unanswered

    def __str__(self) -> str:
        command = shlex.join(os.fsdecode(a) for a in self.cmd)
        what = (f"the early exec helper did not answer within {self.timeout:g} s (+{_HELPER_GRACE_S:g} s grace) "
                f"while running {command}; tg killed it" if self.unanswered else
                f"{command} did not finish within {self.timeout:g} s; tg killed it and every process it started")
        if self.from_environment:
            fix = (f"if it only needs longer, raise TG_EXEC_TIMEOUT (seconds; now {self.timeout:g}, "
                   "0 means no limit)")
        else:
            fix = f"if it only needs longer, pass a larger timeout than {self.timeout:g} s to the call that ran it"
        stderr = self.stderr.decode(errors="replace").strip() if isinstance(self.stderr, bytes) else ""
        return f"{what}. Fix: {fix}." + (f"\nIts stderr so far:\n{stderr}" if stderr else "")


def command_timeout(timeout: float | None = None) -> tuple[float | None, bool]:
    """(the limit in seconds, None for none; whether it came from TG_EXEC_TIMEOUT or its default).

    ``timeout`` is the caller's (None: TG_EXEC_TIMEOUT's); 0 and infinity mean no limit."""
    from_environment = timeout is None
    if timeout is None:
        timeout = getenv("TG_EXEC_TIMEOUT", DEFAULT_TIMEOUT)
        if timeout < 0 or math.isnan(timeout):
            raise ValueError(f"TG_EXEC_TIMEOUT={timeout} is not a number of seconds >= 0 (0 means no limit)")
    elif timeout < 0 or math.isnan(timeout):
        raise ValueError(f"timeout={timeout} is not a number of seconds >= 0 (0 means no limit)")
    return (None if timeout == 0 or math.isinf(timeout) else float(timeout)), from_environment


class EarlyExec:
    """One helper process (`python tg/support/_early_exec_server.py`) and the lock that serialises its requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._command: int | None = None  # the process group of the command the helper is running
        self._start()
        atexit.register(self.close)

    def _start(self) -> None:
        self._owner = os.getpid()  # a forked child must neither use nor close its parent's helper
        # A session of its own: Ctrl-C goes to this process, which then stops the helper (see __call__).
        self._proc = subprocess.Popen(
            [sys.executable, _SERVER, str(self._owner)],
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

        cwd and env default to this process's current ones; timeout (seconds) to TG_EXEC_TIMEOUT, 0 for no limit.
        A failing command raises EarlyExecError (a CalledProcessError), one that runs too long EarlyExecTimeout
        (a TimeoutExpired); any other error in the helper is raised here as the same type and message.
        """
        limit, from_environment = command_timeout(timeout)
        # plain data, so the standard pickle (cloudpickle is not imported by a process that only runs commands)
        request = pickle.dumps((argv, input, os.getcwd() if cwd is None else cwd,
                                dict(os.environ if env is None else env), limit))
        with self._lock:
            if self._proc is None or self._owner != os.getpid() or self._proc.poll() is not None:
                self._start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            try:
                write_payload(proc.stdin.fileno(), request)
                reply = self._reply(proc, None if limit is None else time.monotonic() + limit + _HELPER_GRACE_S)
            except (BrokenPipeError, EOFError) as exc:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)  # it is exiting: let it report its own exit code
                code = self._stop(kill=True)
                message = f"the early exec helper (pid {proc.pid}) died with exit code {code}"
                raise ChildProcessError(f"{message}; the next call starts a new one") from exc
            except TimeoutError:
                self._stop(kill=True)
                raise EarlyExecTimeout(list(argv), limit or 0.0, from_environment=from_environment,
                                       unanswered=True) from None
            except BaseException:
                # Interrupted mid-request (Ctrl-C): the channel is out of step, so drop the helper.
                self._stop(kill=True)
                raise
        if reply[0] == "error":
            raise unpack_exception(reply[1])
        if reply[0] == "timeout":
            raise EarlyExecTimeout(list(argv), limit or 0.0, reply[1], reply[2], from_environment)
        _, code, stdout, stderr = reply
        if code:
            raise EarlyExecError(code, list(argv), stdout, stderr)
        return stdout

    def _reply(self, proc: subprocess.Popen[bytes], deadline: float | None) -> Any:
        """The helper's final frame for the current request, noting the command it started on the way;
        TimeoutError when nothing comes by deadline (raw reads on the descriptor: no buffer hides a frame)."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if deadline is not None:
                while not poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                    if time.monotonic() >= deadline:
                        raise TimeoutError
            frame = read_frame(fd)
            if frame[0] != "started":
                self._command = None
                return frame
            self._command = frame[1]

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
        command, self._command = self._command, None
        if kill:
            # The helper leads its own group; each command it runs leads another, with whatever that started.
            for group in (command, proc.pid):
                if group is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(group, signal.SIGKILL)
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


#: Helpers that may run commands at once when TG_EXEC_JOBS does not say (and at most this many by default).
MAX_DEFAULT_JOBS = 8

_shared: EarlyExec | None = None
_extra: list[EarlyExec] = []
_idle: queue.SimpleQueue[EarlyExec] = queue.SimpleQueue()
_shared_pid = 0
_shared_lock = threading.Lock()


def exec_jobs() -> int:
    """How many commands may run at once: ``TG_EXEC_JOBS``, else the CPUs this process may use (at most 8)."""
    jobs = getenv("TG_EXEC_JOBS", 0)
    if jobs < 0:
        raise ValueError(f"TG_EXEC_JOBS={jobs} must be a positive number of commands run at once (0 or unset: one "
                         "per CPU, at most 8)")
    if jobs == 0:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        jobs = min(MAX_DEFAULT_JOBS, cpus)
    return jobs


def enable_early_exec() -> EarlyExec:
    """Start this process's early exec helpers if it has none yet (a forked child gets its own): ``exec_jobs()`` of
    them, all now, so that none is ever started from a process a GPU runtime has initialised.  Return the first."""
    global _shared, _shared_pid, _idle
    with _shared_lock:
        if _shared is None or _shared_pid != os.getpid():
            _shared, _shared_pid = EarlyExec(), os.getpid()
            _extra.clear()
            _extra.extend(EarlyExec() for _ in range(exec_jobs() - 1))
            _idle = queue.SimpleQueue()
            for helper in (_shared, *_extra):
                _idle.put(helper)
        return _shared


def early_exec(
    argv: Sequence[StrPath], input: bytes | None = None, cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None, timeout: float | None = None,
) -> bytes:
    """Run argv in one of this process's early exec helpers that is free (started on first use; several commands
    from several threads run at once, up to ``exec_jobs()``); see EarlyExec.__call__."""
    enable_early_exec()
    idle = _idle
    helper = idle.get()
    try:
        return helper(argv, input=input, cwd=cwd, env=env, timeout=timeout)
    finally:
        idle.put(helper)
