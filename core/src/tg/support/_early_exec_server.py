"""Server side of tg.support.early_exec: runs each command read from stdin, answers on stdout, ends with stdin.

``python -m tg.support._early_exec_server PARENT_PID``.  Each command runs in a process group of its own, so
that a timeout kills it together with everything it started.  The reply to a request is a ``("started", pid)``
frame once the command runs (the parent then knows which group to kill if this helper dies), then one final
frame.  The helper waits for the command itself, not for the end of its output pipes: a child the command
leaves running in the background (a compiler server, say) may hold them open for as long as it likes.

The helper dies with its parent, however the parent ends: on Linux the kernel signals it when its parent dies
(``PR_SET_PDEATHSIG``), and everywhere the end of the request pipe while a command runs means the parent is
gone.  Either way the running command's process group is killed first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import signal
import subprocess
import sys
import time

TYPE_CHECKING = False  # not typing's own: importing typing is what this avoids
if TYPE_CHECKING:  # (typing is a tenth of this helper's start-up)
    from typing import IO, Any

if __package__:  # python -m tg.support._early_exec_server
    from tg.support._frames import pack_exception, read_payload, write_plain_frame
else:  # run by its path (tg.support.early_exec does): _frames is loaded from beside it, and the tg package, whose
    # import would be most of this helper's start-up (on the path of a program's first compile), is not imported
    import importlib.util

    if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
        del sys.path[0]  # so that unpickling a request never imports one of tg/support's modules by a bare name
    _spec = importlib.util.spec_from_file_location(
        "_tg_early_exec_frames", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_frames.py"))
    assert _spec is not None and _spec.loader is not None
    _frames = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_frames)
    pack_exception, read_payload, write_plain_frame = (_frames.pack_exception, _frames.read_payload,
                                                       _frames.write_plain_frame)

_PR_SET_PDEATHSIG = 1
_PARENT_DIED = signal.SIGUSR1  # sent by the kernel when the thread that started us ends (see _watch_parent)
_DRAIN_LIMIT = 4 << 20  # bytes read from a pipe after the command exited (a background child may keep writing)

_parent_pid = 0
_running: int | None = None  # the process group of the command being run


def _die(code: int) -> None:
    """Kill the running command's process group and exit at once (from a signal handler too)."""
    if _running is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(_running, signal.SIGKILL)
    os._exit(code)


def _on_parent_signal(signum: int, frame: object) -> None:
    # PR_SET_PDEATHSIG fires when the *thread* that started us ends; only a new parent process means ours is gone.
    if os.getppid() != _parent_pid:
        _die(0)


def _on_terminate(signum: int, frame: object) -> None:
    _die(128 + signum)


def _watch_parent(parent_pid: int) -> None:
    """Die with the parent (Linux: the kernel tells us; elsewhere the end of the request pipe does)."""
    global _parent_pid
    _parent_pid = parent_pid
    signal.signal(signal.SIGTERM, _on_terminate)
    signal.signal(signal.SIGHUP, _on_terminate)
    if parent_pid and sys.platform.startswith("linux"):
        import ctypes

        signal.signal(_PARENT_DIED, _on_parent_signal)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(_PARENT_DIED), 0, 0, 0)
    if parent_pid and os.getppid() != parent_pid:  # the parent died before the watch was set up
        _die(0)


def run(argv: Any, input_: bytes | None, cwd: Any, env: Any, timeout: float | None, requests: int,
        replies: IO[bytes]) -> tuple[object, ...]:
    """Run one command; ("ran", code, stdout, stderr) or ("timeout", stdout, stderr) after killing its group."""
    global _running
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE if input_ else subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
    )
    _running = proc.pid
    try:
        try:
            write_plain_frame(replies, ("started", proc.pid))
        except OSError:  # BrokenPipeError: the parent is gone
            _die(0)
        out, err, finished = _communicate(proc, input_ or b"", timeout, requests)
    finally:
        if proc.returncode is None:  # timed out, or interrupted by an error of ours: leave nothing behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _running = None
    return ("ran", proc.returncode, out, err) if finished else ("timeout", out, err)


def _communicate(proc: subprocess.Popen[bytes], input_: bytes, timeout: float | None,
                 requests: int) -> tuple[bytes, bytes, bool]:
    """Feed input_, collect stdout and stderr until the command exits; (stdout, stderr, whether it exited)."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    outputs = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    poller = select.poll()
    for fd in outputs:
        poller.register(fd, select.POLLIN)
    poller.register(requests, select.POLLIN)  # the parent writes nothing while a command runs: any event is its end
    stdin = proc.stdin.fileno() if proc.stdin is not None else None
    view = memoryview(input_)
    if stdin is not None:
        os.set_blocking(stdin, False)
        poller.register(stdin, select.POLLOUT)
    exited = _exit_fd(proc.pid)
    if exited is not None:
        poller.register(exited, select.POLLIN)
    tick = 0.001  # without a pidfd, how often to look whether the command exited (grows to 50 ms)
    try:
        while proc.poll() is None:
            wait = None if exited is not None else tick
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return bytes(out), bytes(err), False
                wait = left if wait is None else min(wait, left)
            tick = min(tick * 2, 0.05)
            for fd, _ in poller.poll(None if wait is None else max(1, int(wait * 1000))):
                if fd == requests:
                    _die(0)
                elif fd == stdin:
                    try:
                        view = view[os.write(stdin, view[: 1 << 16]) :]
                    except BrokenPipeError:
                        view = view[:0]  # it stopped reading: like subprocess.run, not an error
                    if not view:
                        poller.unregister(stdin)
                        proc.stdin.close()  # type: ignore[union-attr]
                        stdin = None
                elif fd in outputs:
                    chunk = os.read(fd, 1 << 16)
                    outputs[fd] += chunk
                    if not chunk:
                        poller.unregister(fd)
        for fd, data in outputs.items():  # what the command wrote before it exited is in the pipes now
            _drain(fd, data)
    finally:
        if exited is not None:
            os.close(exited)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    return bytes(out), bytes(err), True


def _exit_fd(pid: int) -> int | None:
    """A descriptor that becomes readable when process pid exits (Linux >= 5.3), or None."""
    try:
        return os.pidfd_open(pid)  # type: ignore[attr-defined,no-any-return,unused-ignore]
    except (AttributeError, OSError):
        return None


def _drain(fd: int, data: bytearray) -> None:
    """Read what fd holds now, without waiting for writers that outlive the command."""
    with contextlib.suppress(OSError):
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    start = len(data)
    while len(data) - start < _DRAIN_LIMIT:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:  # BlockingIOError: nothing more for now
            return
        if not chunk:
            return
        data += chunk


def main() -> None:
    _watch_parent(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    requests = os.dup(0)
    replies = os.fdopen(os.dup(1), "wb")
    # Neither commands nor stray prints may touch the frame channels: fd 0 becomes /dev/null, fd 1 stderr.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    while True:
        try:
            payload = read_payload(requests)
        except EOFError:  # the parent closed the pipe or exited
            return
        try:
            argv, input_, cwd, env, timeout = pickle.loads(payload)
            reply = run(argv, input_, cwd, env, timeout, requests, replies)
        except Exception as exc:  # noqa: BLE001 - every error goes to the caller
            reply = ("error", pack_exception(exc))
        try:
            write_plain_frame(replies, reply)
        except OSError:  # the parent is gone (BrokenPipeError): nobody is left to answer
            return


if __name__ == "__main__":
    main()
