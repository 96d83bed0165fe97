"""Child side of tg.support.cross_process: `python -m tg.support._cross_process_child FD` runs a generator,
framing its items to FD.  When the parent is gone (the pipe is broken) it closes the generator and exits
quietly: nobody is left to read a traceback."""

from __future__ import annotations

import contextlib
import pickle
import sys
from collections.abc import Iterator
from typing import Any

import cloudpickle

from tg.support._frames import pack_exception, read_frame, write_payload


class _ParentGone(Exception):
    pass


def _send(out: int, frame: tuple[Any, ...]) -> None:
    """Write one frame (pickled before anything is written, so a pickling error leaves no half frame)."""
    payload = cloudpickle.dumps(frame)
    try:
        write_payload(out, payload)
    except BrokenPipeError:
        raise _ParentGone from None


def main() -> None:
    out = int(sys.argv[1])
    parent_path, fn_blob, args_blob = read_frame(sys.stdin.buffer)
    sys.path[:] = parent_path  # before unpickling, so what the parent pickled by reference imports here
    items: Iterator[Any] | None = None
    try:
        try:
            fn = pickle.loads(fn_blob)
            args, kwargs = pickle.loads(args_blob)
            items = iter(fn(*args, **kwargs))
            for item in items:
                _send(out, ("item", item))
        except _ParentGone:
            raise
        except Exception as exc:  # noqa: BLE001 - every error goes to the parent (an unpicklable item's too)
            _send(out, ("error", pack_exception(exc)))
        else:
            _send(out, ("done",))
    except _ParentGone:
        close = getattr(items, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()  # the generator's own cleanup (its finally blocks) still runs


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it, not us
        sys.exit(130)
