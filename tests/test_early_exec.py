"""Tests of tg.support.early_exec: commands run in the helper process, errors arrive as themselves, nothing hangs."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tg.support.early_exec import (
    DEFAULT_TIMEOUT,
    EarlyExec,
    EarlyExecError,
    EarlyExecTimeout,
    command_timeout,
    early_exec,
    enable_early_exec,
)
from tg.support.errors import TgError

sys.path.insert(0, str(Path(__file__).parent))  # tests/ is no package; import _timeouts in any import mode
from _timeouts import process_gone, time_limit

PY = sys.executable


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    with time_limit(30):
        yield


@pytest.fixture
def own_helper() -> Iterator[EarlyExec]:
    helper = EarlyExec()
    yield helper
    helper.close()


def test_output_comes_back() -> None:
    assert early_exec(["echo", "hi"]) == b"hi\n"
    every_byte = "import sys; sys.stdout.buffer.write(bytes(range(256)))"
    assert early_exec([PY, "-c", every_byte]) == bytes(range(256))


def test_input_reaches_stdin() -> None:
    reverse = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()[::-1])"
    assert early_exec([PY, "-c", reverse], input=b"abc") == b"cba"
    assert early_exec([PY, "-c", reverse], input=b"x" * (4 << 20)) == b"x" * (4 << 20)


def test_cwd_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = "import os; print(os.getcwd())"
    assert early_exec([PY, "-c", where], cwd=tmp_path).decode().strip() == str(tmp_path)
    monkeypatch.chdir(tmp_path)  # the default cwd is the caller's current one, not the helper's
    assert early_exec([PY, "-c", where]).decode().strip() == str(tmp_path)

    probe = "import os; print(os.environ.get('TG_EARLY_EXEC_PROBE'))"
    assert early_exec([PY, "-c", probe], env={"TG_EARLY_EXEC_PROBE": "given"}) == b"given\n"
    enable_early_exec()
    monkeypatch.setenv("TG_EARLY_EXEC_PROBE", "later")  # the default env is the caller's current one
    assert early_exec([PY, "-c", probe]) == b"later\n"


def test_failing_command_raises_called_process_error() -> None:
    argv = [PY, "-c", "import sys; print('partial'); sys.stderr.write('bad input on line 3'); sys.exit(5)"]
    with pytest.raises(subprocess.CalledProcessError) as info:
        early_exec(argv)
    exc = info.value
    assert isinstance(exc, EarlyExecError)
    assert (exc.returncode, exc.cmd, exc.output) == (5, argv, b"partial\n")
    assert exc.stderr == b"bad input on line 3"
    assert "exit status 5" in str(exc) and "bad input on line 3" in str(exc)


def test_errors_before_the_command_starts_arrive_as_themselves() -> None:
    with pytest.raises(TypeError) as local:
        subprocess.run([123], check=False)  # type: ignore[list-item]
    with pytest.raises(TypeError) as remote:
        early_exec([123])  # type: ignore[list-item]
    assert str(remote.value) == str(local.value)

    with pytest.raises(FileNotFoundError) as missing:
        early_exec(["tg-no-such-program-here", "--version"])
    assert missing.value.errno == errno.ENOENT and missing.value.filename == "tg-no-such-program-here"

    with pytest.raises(NotADirectoryError):
        early_exec(["echo"], cwd=__file__)


def test_timeout_raises_timeout_expired() -> None:
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        early_exec([PY, "-c", "import time; time.sleep(20)"], timeout=0.5)
    assert time.monotonic() - start < 10


# A command that starts a grandchild in its own process group, prints both pids, then sleeps.
_PARENT_OF_SLEEPER = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _pids(text: bytes | str | None) -> list[int]:
    return [int(word) for word in (text.decode() if isinstance(text, bytes) else text or "").split()]


def test_timeout_from_the_environment_kills_the_whole_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_EXEC_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(EarlyExecTimeout) as info:
        early_exec([PY, "-c", _PARENT_OF_SLEEPER])
    assert time.monotonic() - start < 10
    exc = info.value
    assert isinstance(exc, subprocess.TimeoutExpired) and isinstance(exc, TgError)
    message = str(exc)
    assert PY in message and "time.sleep(60)" in message, "the error names the command"
    assert "within 1 s" in message and "raise TG_EXEC_TIMEOUT" in message, message
    (grandchild,) = _pids(exc.output)  # what it printed before the limit comes back too
    assert process_gone(grandchild), "the command's child was killed with it"
    assert early_exec(["echo", "next"]) == b"next\n", "the helper serves on"


def test_timeout_of_the_caller_is_named_as_such() -> None:
    with pytest.raises(EarlyExecTimeout, match=r"within 0.5 s.*pass a larger timeout") as info:
        early_exec([PY, "-c", "import sys, time; sys.stderr.write('stuck'); sys.stderr.flush(); time.sleep(20)"],
                   timeout=0.5)
    assert "TG_EXEC_TIMEOUT" not in str(info.value) and "stuck" in str(info.value)


def test_command_timeout_reads_tg_exec_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TG_EXEC_TIMEOUT", raising=False)
    assert command_timeout() == (DEFAULT_TIMEOUT, True)
    assert command_timeout(3) == (3.0, False)
    assert command_timeout(0) == (None, False) and command_timeout(math.inf) == (None, False)
    monkeypatch.setenv("TG_EXEC_TIMEOUT", "0")
    assert command_timeout() == (None, True)
    assert early_exec(["echo", "unlimited"]) == b"unlimited\n"
    for bad in ("-1", "soon"):
        monkeypatch.setenv("TG_EXEC_TIMEOUT", bad)
        with pytest.raises(ValueError, match="TG_EXEC_TIMEOUT"):
            early_exec(["true"])


def test_a_child_left_in_the_background_does_not_block() -> None:
    start = time.monotonic()
    out = early_exec(["sh", "-c", "sleep 30 & echo $!"])  # the sleep holds the command's stdout and stderr
    (background,) = _pids(out)
    try:
        assert time.monotonic() - start < 10
        assert not process_gone(background, within=0), "a finished command's background children are its business"
    finally:
        os.kill(background, signal.SIGKILL)
    assert process_gone(background)


def test_output_written_before_exit_is_complete_while_a_background_child_holds_the_pipe() -> None:
    code = ("import subprocess, sys; subprocess.Popen(['sleep', '30']); "
            "sys.stdout.buffer.write(b'x' * (3 << 20)); sys.stdout.flush(); subprocess.run(['pgrep', '-g', '0'])")
    out = early_exec([PY, "-c", code])
    assert out[: 3 << 20] == b"x" * (3 << 20)
    group = _pids(out[3 << 20 :])
    for pid in group:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert all(process_gone(pid) for pid in group)


def test_helper_started_by_a_thread_that_ended_keeps_serving() -> None:
    # PR_SET_PDEATHSIG fires when the starting *thread* ends; the helper must tell that from its parent's death.
    made: list[EarlyExec] = []

    def start() -> None:
        made.append(EarlyExec())
        made[0](["true"])  # the helper is serving, so it watches its parent by now

    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
    (helper,) = made
    try:
        pid = helper.pid
        assert pid is not None and not process_gone(pid, within=1.0)
        assert helper(["echo", "alive"]) == b"alive\n" and helper.pid == pid
    finally:
        helper.close()


def _writes_pids_then_sleeps(path: Path) -> str:
    """A command that starts a grandchild, writes its own pid and the grandchild's into path, then sleeps."""
    return (f"import os, subprocess, sys, time\n"
            f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(path)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
            f"time.sleep(60)\n")


def _wait_for_pids(path: Path) -> list[int]:
    deadline = time.monotonic() + 20
    while not (path.exists() and len(path.read_text().split()) == 2) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _pids(path.read_text())


def test_helper_killed_mid_command_takes_the_command_with_it(own_helper: EarlyExec, tmp_path: Path) -> None:
    own_helper(["true"])
    helper = own_helper.pid
    assert helper is not None
    pids = tmp_path / "pids"
    threading.Thread(target=lambda: (_wait_for_pids(pids), os.kill(helper, signal.SIGKILL))).start()
    with pytest.raises(ChildProcessError):
        own_helper([PY, "-c", _writes_pids_then_sleeps(pids)])
    command, grandchild = _pids(pids.read_text())
    assert process_gone(command) and process_gone(grandchild), "the command's process group outlived the helper"


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_helper_and_its_command_die_with_the_parent(how: signal.Signals, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    command = _writes_pids_then_sleeps(pids)
    parent_code = ("import sys; from tg.support.early_exec import early_exec, enable_early_exec\n"
                   "print(enable_early_exec().pid, flush=True)\n"
                   f"early_exec([sys.executable, '-c', {command!r}])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([PY, "-c", parent_code], stdout=subprocess.PIPE, env=env)
    try:
        assert parent.stdout is not None
        helper = int(parent.stdout.readline())
        command_pid, grandchild = _wait_for_pids(pids)
        parent.send_signal(how)
        parent.wait(timeout=10)
        assert process_gone(helper), "the helper outlived its parent"
        assert process_gone(command_pid) and process_gone(grandchild), "the command outlived the helper's parent"
    finally:
        parent.kill()
        parent.wait()


def test_helper_keeps_serving_after_errors() -> None:
    helper = enable_early_exec()
    pid = helper.pid
    for bad in ([123], ["tg-no-such-program-here"], [PY, "-c", "raise SystemExit(1)"]):
        with pytest.raises((TypeError, OSError, subprocess.CalledProcessError)):
            early_exec(bad)  # type: ignore[arg-type]
    assert early_exec(["echo", "still here"]) == b"still here\n"
    assert helper.pid == pid


def test_enable_is_idempotent_and_pid_is_a_separate_process() -> None:
    assert enable_early_exec() is enable_early_exec()
    assert enable_early_exec().pid not in (None, os.getpid())


def test_thread_safe() -> None:
    results: dict[int, list[bytes]] = {}

    def worker(n: int) -> None:
        results[n] = [early_exec(["echo", f"{n}-{k}"]) for k in range(5)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: [f"{n}-{k}\n".encode() for k in range(5)] for n in range(8)}


def test_helper_dying_mid_call_raises_then_restarts(own_helper: EarlyExec) -> None:
    assert own_helper(["true"]) == b""
    pid = own_helper.pid
    assert pid is not None
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    start = time.monotonic()
    with pytest.raises(ChildProcessError, match=r"exit code -9"):
        own_helper([PY, "-c", "import time; time.sleep(20)"])
    assert time.monotonic() - start < 5
    assert own_helper(["echo", "back"]) == b"back\n"
    assert own_helper.pid not in (None, pid)


def test_helper_dead_between_calls_is_restarted(own_helper: EarlyExec) -> None:
    pid = own_helper.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert process_gone(pid)
    assert own_helper(["echo", "again"]) == b"again\n"


def test_interrupted_call_drops_helper_and_its_command(own_helper: EarlyExec, tmp_path: Path) -> None:
    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    helper_pid = own_helper.pid
    pid_file = tmp_path / "pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(20)"

    def interrupt_once_running() -> None:
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)  # stands for Ctrl-C, which only reaches this process
    try:
        threading.Thread(target=interrupt_once_running).start()
        with pytest.raises(Interrupted):
            own_helper([PY, "-c", sleeper])
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert helper_pid is not None and process_gone(helper_pid)
    assert process_gone(int(pid_file.read_text()))
    assert own_helper(["echo", "fresh"]) == b"fresh\n"


@pytest.mark.parametrize("ending", ["exit", "SIGKILL"])
def test_helper_stops_when_parent_exits(ending: str) -> None:
    code = "from tg.support.early_exec import enable_early_exec; print(enable_early_exec().pid, flush=True)"
    if ending == "SIGKILL":  # no atexit handler runs: the helper must notice the end of its stdin by itself
        code += "; import os; os.kill(os.getpid(), 9)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.run([PY, "-c", code], stdout=subprocess.PIPE, env=env, timeout=20, check=False)
    pid = int(parent.stdout)
    assert process_gone(pid, within=5)


def test_import_is_light() -> None:
    code = (
        "import sys, tg; before = set(sys.modules); import tg.support.early_exec; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in {'numpy', 'torch'}))"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == "[]"


def test_the_helper_starts_without_importing_tg_or_cloudpickle() -> None:
    # its start-up is on the path of a program's first compile: the package (pluggy, typing, ...) and cloudpickle
    # would be most of it; an error it has to send still arrives (plain pickle)
    from tg.support import early_exec as module

    out = subprocess.run([sys.executable, "-X", "importtime", module._SERVER, str(os.getpid())],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time")}
    assert "subprocess" in imported, out.stderr  # the listing is what it claims to be
    assert not {m for m in imported if m == "tg" or m.startswith(("tg.", "cloudpickle"))}, sorted(imported)
    with pytest.raises(FileNotFoundError):
        EarlyExec()(["/nonexistent/tool"])
