"""Tests of tg.support.cross_process: generators run in a child process, items and errors come back, nothing hangs."""

from __future__ import annotations

import gc
import importlib
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tg.support.cross_process import ChildIterator, RemoteTraceback, cross_process

sys.path.insert(0, str(Path(__file__).parent))  # tests/ is no package; import _timeouts in any import mode
from _timeouts import process_gone, time_limit


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    with time_limit(30):
        yield


def test_items_then_same_exception_with_remote_traceback() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("boom after 2")

    it = cross_process(items)()
    assert next(it) == 1
    assert next(it) == 2
    with pytest.raises(ValueError, match=r"^boom after 2$") as info:
        next(it)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "ValueError: boom after 2" in str(cause) and ", in items" in str(cause)
    assert list(it) == []


def test_unpicklable_exception_becomes_runtime_error_naming_it() -> None:
    class TwoArgError(Exception):
        def __init__(self, a: str, b: str) -> None:
            super().__init__(f"{a}-{b}")  # unpickling calls TwoArgError("x-y") and fails

    def items() -> Iterator[int]:
        yield 0
        raise TwoArgError("x", "y")

    it = cross_process(items)()
    assert next(it) == 0
    with pytest.raises(RuntimeError, match=r"TwoArgError: x-y") as info:
        next(it)
    assert isinstance(info.value.__cause__, RemoteTraceback)


def _refuse_to_unpickle(text: str) -> None:
    raise ValueError(f"refused: {text}")


class _UnpicklesNowhere:
    """Pickles fine in the child; unpickling it (in the parent) raises ValueError."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return _refuse_to_unpickle, ("third item",)


def test_an_item_that_fails_to_unpickle_names_its_index_after_the_items_before_it() -> None:
    def items() -> Iterator[object]:
        yield 0
        yield "one"
        yield _UnpicklesNowhere()
        yield 3
        time.sleep(60)

    it = cross_process(items)()
    time.sleep(1.0)  # all four frames are in the pipe, so one read takes them together
    assert next(it) == 0
    assert next(it) == "one"
    with pytest.raises(pickle.UnpicklingError) as info:
        next(it)
    message = str(info.value)
    assert "item 2 of" in message and "items" in message and "ValueError: refused: third item" in message, message
    assert "Fix:" in message
    assert isinstance(info.value.__cause__, ValueError)
    assert process_gone(it.pid, within=2), "the child was stopped"
    assert list(it) == []


def test_child_of_a_killed_parent_exits_quietly() -> None:
    parent_code = (
        "import os, time\n"
        "from tg.support.cross_process import cross_process\n"
        "def items():\n"
        "    for _ in range(400):\n"
        "        yield os.getpid()\n"
        "        time.sleep(0.05)\n"
        "it = cross_process(items)()  # kept: collecting it would stop the child\n"
        "print(next(it), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env)
    try:
        assert parent.stdout is not None and parent.stderr is not None
        child = int(parent.stdout.readline())
        assert parent.wait(timeout=10) == -signal.SIGKILL
        assert process_gone(child, within=5), "the child kept running for its parent's 20 s of items"
        stderr = parent.stderr.read().decode()  # the child shares the pipe: it is closed once the child is gone
        assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    finally:
        parent.kill()
        parent.wait()


def test_closure_over_locals() -> None:
    offset, words = 100, ["even", "odd"]

    def items(n: int) -> Iterator[tuple[int, str]]:
        for i in range(n):
            yield i + offset, words[i % 2]

    assert list(cross_process(items)(3)) == [(100, "even"), (101, "odd"), (102, "even")]


def test_args_and_kwargs_pass_through() -> None:
    def items(a: int, b: list[int], *, scale: int = 1, **extra: object) -> Iterator[object]:
        yield a * scale
        yield [x * scale for x in b]
        yield extra

    gen = cross_process(items)
    assert list(gen(2, [3, 4], scale=10, name="n")) == [20, [30, 40], {"name": "n"}]
    assert list(gen(1, [])) == [1, [], {}]
    assert gen.__name__ == "items"


def test_function_is_pickled_once_not_per_call_or_item() -> None:
    reductions: list[int] = []

    class Source:
        def __reduce__(self) -> tuple[type, tuple[()]]:
            reductions.append(1)
            return Source, ()

        def __call__(self, n: int) -> Iterator[int]:
            yield from range(n)

    gen = cross_process(Source())
    assert list(gen(10)) == list(range(10))
    assert list(gen(10)) == list(range(10))
    assert len(reductions) == 1


def test_parent_sys_path_reaches_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tg_xp_probe_module.py").write_text("def items(n):\n    yield from range(n)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("tg_xp_probe_module")  # pickled by reference: the child must import it

    try:
        assert list(cross_process(module.items)(3)) == [0, 1, 2]
    finally:
        del sys.modules["tg_xp_probe_module"]


def test_child_is_no_daemon_and_starts_processes() -> None:
    def items() -> Iterator[object]:
        import multiprocessing

        yield multiprocessing.current_process().daemon
        yield subprocess.check_output([sys.executable, "-c", "print(6 * 7)"], text=True).strip()
        proc = multiprocessing.Process(target=sys.exit, args=(7,))
        proc.start()
        proc.join()
        yield proc.exitcode

    assert list(cross_process(items)()) == [False, "42", 7]


@pytest.mark.parametrize("how", ["os._exit", "SIGKILL"])
def test_child_dying_abruptly_raises_child_process_error(how: str) -> None:
    def items() -> Iterator[str]:
        yield "before"
        if how == "os._exit":
            os._exit(3)
        os.kill(os.getpid(), 9)
        time.sleep(60)

    it = cross_process(items)()
    assert next(it) == "before"
    start = time.monotonic()
    with pytest.raises(ChildProcessError, match=r"code 3\b" if how == "os._exit" else r"code -9\b"):
        next(it)
    assert time.monotonic() - start < 5
    assert process_gone(it.pid, within=0)


def test_silent_death_is_noticed_while_a_grandchild_holds_the_pipe() -> None:
    def items() -> Iterator[str]:
        import multiprocessing

        # A forked grandchild inherits the item pipe's write end, so no EOF comes when the child dies.
        multiprocessing.get_context("fork").Process(target=time.sleep, args=(5,)).start()
        yield "before"
        os._exit(4)

    it = cross_process(items)()
    assert next(it) == "before"
    start = time.monotonic()
    with pytest.raises(ChildProcessError, match=r"code 4\b"):
        next(it)
    assert time.monotonic() - start < 3


def test_closing_early_terminates_child() -> None:
    def endless() -> Iterator[int]:
        yield os.getpid()
        while True:
            yield 0

    it = cross_process(endless)()
    pid = next(it)
    for _ in range(1000):
        next(it)
    it.close()
    assert process_gone(pid, within=0)
    assert list(it) == []


def test_garbage_collected_iterator_terminates_child() -> None:
    def items() -> Iterator[int]:
        yield os.getpid()
        while True:
            yield 0

    gen = cross_process(items)
    for first in gen():
        pid = first
        break
    gc.collect()
    assert process_gone(pid, within=2)

    never_started = gen()
    pid = never_started.pid
    del never_started
    gc.collect()
    assert process_gone(pid, within=2)


def test_context_manager_stops_child() -> None:
    def items() -> Iterator[int]:
        yield os.getpid()
        time.sleep(60)
        yield 0

    it: ChildIterator[int]
    with cross_process(items)() as it:
        pid = next(it)
    assert process_gone(pid, within=0)


def test_printing_in_child_does_not_corrupt_items(capfd: pytest.CaptureFixture[str]) -> None:
    def items() -> Iterator[int]:
        for i in range(5):
            print("noise", i, flush=True)
            os.write(1, b"\x00\xff raw bytes on fd 1\n")
            print("more noise", file=sys.stderr, flush=True)
            yield i

    assert list(cross_process(items)()) == [0, 1, 2, 3, 4]
    out, err = capfd.readouterr()
    assert "noise 4" in out and "more noise" in err


def test_large_items_and_empty_generator() -> None:
    def items(size: int) -> Iterator[bytes]:
        yield bytes(range(256)) * (size // 256)
        yield b"tail"

    big, tail = cross_process(items)(8 << 20)
    assert len(big) == 8 << 20 and big[:3] == b"\x00\x01\x02" and tail == b"tail"
    assert list(cross_process(lambda: iter(()))()) == []


def test_import_is_light() -> None:
    code = (
        "import sys, tg; before = set(sys.modules); import tg.support.cross_process; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in {'numpy', 'torch'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == "[]"
