"""Checks on values that only the device knows (an index past the end of a table, a class id past
``num_classes``): recorded when the op is built, computed with the next read of any tensor of this thread
(``numpy()``, ``item()``, ``tolist()``) and raised there (``IndexError`` unless the check names another error),
as PyTorch raises on its device.

Checking when the op is built would wait for the device at every index op; never checking gives silently wrong
results (an index past the end reads zeros).  At most ``FLUSH_AT`` checks wait: the next one computes them all.
A function replayed by ``tg.jit`` runs its kernels without its Python code, so its checks are made only while
it is traced.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from tg.engine.realize import realize

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
    if len(pending) >= FLUSH_AT:
        check([])


def check(reading: list[LazyBuffer]) -> None:
    """Realize ``reading`` together with every pending check (one schedule), then raise the first failed one."""
    pending, _local.pending = _pending(), []
    realize([*reading, *(flag for flag, _, _ in pending)])
    for flag, message, error in pending:
        if bool(flag.base.realized.numpy().reshape(-1)[0]):
            raise error(message)
