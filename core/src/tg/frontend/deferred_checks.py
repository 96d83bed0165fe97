"""Checks on values that only the device knows (an index past the end of a table, a class id past
``num_classes``): recorded when the op is built, computed with the next read of any tensor of this thread
(``numpy()``, ``item()``, ``tolist()``) and raised there (``IndexError`` unless the check names another error),
as PyTorch raises on its device.

Checking when the op is built would wait for the device at every index op; never checking gives silently wrong
results (an index past the end reads zeros).  At most ``FLUSH_AT`` checks wait: the next one computes them all
(not while ``tg.jit`` traces a call: the checks of a traced call are computed with its results, and every replay
of it computes them again and adds them here with :func:`defer_flag`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from tg.engine.realize import current_recorder, realize

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor
    from tg.graph.lazy import LazyBuffer

FLUSH_AT = 32
_local = threading.local()


def _pending() -> list[tuple[LazyBuffer, str, type[Exception]]]:
    if not hasattr(_local, "pending"):
        _local.pending = []
    pending: list[tuple[LazyBuffer, str, type[Exception]]] = _local.pending
    return pending


def defer(bad: Tensor, message: str, error: type[Exception] = IndexError) -> None:
    """At the next read, raise ``error(message)`` if any element of the bool tensor ``bad`` is true."""
    pending = _pending()
    pending.append((bad.any().lazydata, message, error))
    if len(pending) >= FLUSH_AT and current_recorder() is None:
        check([])


def defer_class_check(bad: Tensor, num_classes: int) -> None:
    """At the next read, raise IndexError if any of ``bad`` (class indices out of range) is true."""
    defer(bad, f"a class index is out of range for {num_classes} classes (valid: 0 to {num_classes - 1})")


#: A pending check: the one-element bool flag (true: failed), the message, the error to raise.
Check = tuple["LazyBuffer", str, type[Exception]]


def defer_flag(check: Check) -> None:
    """At the next read, raise the check's error if its one-element bool flag is true (a check that a ``tg.jit``
    replay computed)."""
    _pending().append(check)


def mark() -> int:
    """Where the pending checks end now (for :func:`since`)."""
    return len(_pending())


def since(position: int) -> list[Check]:
    """The checks added after :func:`mark` gave ``position`` (still pending)."""
    return list(_pending()[position:])


def check(reading: list[LazyBuffer]) -> None:
    """Realize ``reading`` together with every pending check (one schedule), then raise the first failed one."""
    pending, _local.pending = _pending(), []
    realize([*reading, *(flag for flag, _, _ in pending)])
    for flag, message, error in pending:
        if bool(flag.base.realized.numpy().reshape(-1)[0]):
            raise error(message)
