"""tg.jit keeps its tracing state in one Recorder per thread, reached through tg.engine.realize.current_recorder()."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import tg
from tg import Tensor
from tg.engine import realize
from tg.engine.realize import Recorder, current_recorder, recording
from tg.frontend import jit as replay


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in another thread (this one waits) and return its result, or raise what it raised."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # re-raised below, in the test's thread
            out["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_the_recorder_exists_only_while_a_call_is_traced() -> None:
    w = Tensor(np.ones(3, dtype=np.float32)).realize()
    seen: list[tuple[Recorder | None, str | None, bool]] = []

    @tg.jit
    def step(x: Tensor) -> Tensor:
        w.assign(w + x)
        recorder = current_recorder()
        assert recorder is not None
        seen.append((recorder, recorder.refuse_reads_for, id(w) in recorder.assigned))
        return w * 2

    assert current_recorder() is None
    for _ in range(5):
        step(Tensor(np.ones(3, dtype=np.float32)))
        assert current_recorder() is None
    assert len(seen) == 3, "the two warm-up calls and the capture run the function; replays do not"
    assert all(isinstance(r, Recorder) and assigned for r, _, assigned in seen)
    assert [name for _, name, _ in seen] == [None, None, step.fn.__qualname__]
    assert len({id(r) for r, _, _ in seen}) == 3, "each traced call has its own recorder"
    np.testing.assert_allclose(w.numpy(), np.full(3, 6.0))


def test_a_recording_collects_the_items_of_its_block() -> None:
    with recording() as recorder:
        assert current_recorder() is recorder and recorder.refuse_reads_for is None
        (Tensor(np.arange(4, dtype=np.float32)) + 1).realize()
        with pytest.raises(RuntimeError, match="already active"):
            with recording():
                pass
        assert current_recorder() is recorder
    assert current_recorder() is None
    kinds = [type(item).__name__ for item in recorder.items]
    assert kinds == ["RecordedCopy", "RecordedKernel"]


def test_another_thread_does_not_see_this_threads_recorder() -> None:
    @tg.jit
    def g(x: Tensor) -> Tensor:
        return x * 3

    def elsewhere() -> tuple[Recorder | None, list[float], int]:
        before = current_recorder()
        value = Tensor(np.ones(2, dtype=np.float32)) + 1  # a value read, refused in the capturing thread
        read = value.numpy().tolist()
        for _ in range(4):
            g(Tensor(np.ones(2, dtype=np.float32)))
        with recording() as own:  # no "already active": this thread has none
            (Tensor(np.ones(2, dtype=np.float32)) * 2).realize()
        return before, read, len(own.items)

    with recording("captured") as mine:
        seen, read, own_items = _in_thread(elsewhere)
        (Tensor(np.ones(2, dtype=np.float32)) * 5).realize()
        with pytest.raises(tg.JitError, match="captured reads a tensor's value"):
            Tensor(np.ones(2, dtype=np.float32)).numpy()
    assert seen is None and read == [2.0, 2.0] and own_items == 2
    assert g.replays == 1, "g was traced and replayed in its own thread, not folded into this thread's trace"
    assert [type(i).__name__ for i in mine.items] == ["RecordedCopy", "RecordedKernel"], "this thread's work only"


def test_no_module_or_class_level_mutable_jit_state() -> None:
    def mutable(namespace: Mapping[str, Any]) -> list[str]:
        return [name for name, value in namespace.items() if not name.startswith("__")
                and isinstance(value, (list, dict, set, Recorder))]

    assert mutable(vars(realize)) == [] and mutable(vars(replay)) == [] and mutable(vars(Tensor)) == []
    assert isinstance(realize._active, threading.local)  # the one holder, per thread
