"""Tests of tg.support.early_exec: commands run in the helper process, errors arrive as themselves, nothing hangs."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tg.support.early_exec import EarlyExec, EarlyExecError, early_exec, enable_early_exec

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
