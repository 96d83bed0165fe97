"""Grad mode: whether operations record the autograd graph, kept per thread (and per asyncio task).

The flag is a :class:`contextvars.ContextVar`, so ``with tg.no_grad():`` in one thread leaves another thread
that trains at the same time recording its graph.  ``Tensor.no_grad`` reads and sets the same flag for the
caller's context (tinygrad's ``Tensor.no_grad = True`` keeps working, for the calling thread only).  A new
thread starts with recording on whatever the thread that started it had, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_disabled: ContextVar[bool] = ContextVar("tg_no_grad", default=False)


def grad_enabled() -> bool:
    """Whether operations in the calling thread (or task) record the autograd graph."""
    return not _disabled.get()


@contextmanager
def no_grad() -> Iterator[None]:
    """Within this block (in the calling thread or task only), operations record no autograd graph."""
    previous = _disabled.get()
    _disabled.set(True)
    try:
        yield
    finally:
        _disabled.set(previous)  # not a token reset: a generator may resume the block in another context


class GradModeMeta(type):
    """Metaclass of Tensor: ``Tensor.no_grad`` is the calling context's grad-mode flag, not a class attribute."""

    @property
    def no_grad(cls) -> bool:
        return _disabled.get()

    @no_grad.setter
    def no_grad(cls, value: bool) -> None:
        _disabled.set(bool(value))
