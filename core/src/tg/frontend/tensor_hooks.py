"""Gradient hooks on a tensor, as PyTorch's: ``register_hook``, ``retain_grad``, and the ``.grad`` property.

``t.register_hook(fn)`` calls ``fn(grad)`` when ``backward`` has summed the gradient with respect to ``t``
(every path to ``t`` included); a tensor returned by ``fn`` replaces that gradient: it is what flows on to the
tensors ``t`` was computed from, and what a leaf accumulates into ``.grad``.  Several hooks run in the order
they were registered, each given the gradient the one before returned.  The returned handle's ``remove()``
unregisters the hook.  Hooks run with gradient recording off (as PyTorch's do without ``create_graph``); a
hook that returns a tensor of another shape or dtype is refused, as in PyTorch.

``.grad`` is set by ``backward`` on leaf tensors (inputs and parameters) only; a tensor computed from others
keeps None there (reading it warns, as PyTorch does) unless ``retain_grad()`` was called on it, after which
every backward adds its gradient into its ``.grad``, the hooks' replacement included.

In-place updates (:mod:`tg.frontend.inplace`) follow PyTorch: hooks registered before ``y.add_(1)`` see the
gradient with respect to ``y``'s earlier value, hooks registered after it the gradient with respect to the new
one, and ``retain_grad`` keeps the gradient with respect to the newest.  Under ``tg.jit`` a hook runs while the
step is traced, so what it computes is replayed, while its other effects (printing, appending to a list) happen
on the traced calls only.  Hooks are not pickled (nor deep-copied) with their tensor.
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tg.frontend.grad_mode import no_grad

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor
    from tg.graph.lazy import LazyBuffer

Hook = Callable[["Tensor"], "Tensor | None"]
_ids = itertools.count()


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` unregisters the hook (again is harmless); as a context manager
    it removes the hook when the block ends."""

    def __init__(self, hooks: dict[int, Hook]):
        self.id = next(_ids)
        self._hooks = hooks

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.remove()


class TensorHooksMixin:
    """Tensor's gradient hooks and ``.grad`` (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def register_hook(self: Tensor, hook: Hook) -> RemovableHandle:
        """Call ``hook(grad)`` whenever the gradient with respect to this tensor has been computed; a tensor it
        returns replaces the gradient.  Returns a handle whose ``remove()`` unregisters the hook."""
        if not callable(hook):
            raise TypeError(f"register_hook needs a callable taking the gradient, got {type(hook).__name__}")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad: create it with "
                               "requires_grad=True (or call requires_grad_()) first")
        hooks = _hook_table(self)
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def retain_grad(self: Tensor) -> None:
        """Make ``backward`` fill this tensor's ``.grad`` although it is computed from others (a leaf's ``.grad``
        is filled anyway: then this does nothing)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad: it gets no gradient")
        if self._ctx is not None:
            self._retains_grad = True

    @property
    def retains_grad(self: Tensor) -> bool:
        """Whether ``retain_grad()`` made this non-leaf tensor keep its gradient (False for a leaf, as PyTorch)."""
        return self._retains_grad and self._ctx is not None

    @property
    def grad(self: Tensor) -> Tensor | None:
        """The gradient ``backward`` accumulated for this tensor (None until then, and for a non-leaf tensor
        without ``retain_grad()``)."""
        if self._grad is None and self._ctx is not None and not self._retains_grad:
            warnings.warn("reading .grad of a tensor computed from others (not a leaf): backward() does not fill "
                          "it, so it is None. Call t.retain_grad() before backward() to keep its gradient, or read "
                          ".grad of the leaf tensors", UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self: Tensor, value: Tensor | None) -> None:
        if value is not None:
            if not isinstance(value, type(self)):
                raise TypeError(f"a tensor's .grad must be a Tensor or None, got {type(value).__name__}")
            if value.shape != self.shape or value.dtype != self.dtype:
                raise ValueError(f"assigned grad of shape {value.shape} and dtype {value.dtype.name} to a tensor of "
                                 f"shape {self.shape} and dtype {self.dtype.name}: they must match")
        self._grad = value


def _hook_table(t: Tensor) -> dict[int, Hook]:
    if t._hooks is None:
        t._hooks = {}
    return t._hooks


def move_hooks(source: Tensor, target: Tensor) -> None:
    """Give ``source``'s hooks to ``target`` (the node for a tensor's value before an in-place update)."""
    target._hooks, source._hooks = source._hooks, None


def run_hooks(t: Tensor, grad: LazyBuffer) -> LazyBuffer:
    """The gradient with respect to ``t`` after ``t``'s hooks (each given the previous one's result)."""
    assert t._hooks is not None
    current = grad
    for hook in list(t._hooks.values()):
        with no_grad():
            out = hook(type(t)(current))
        if out is None:
            continue
        if not isinstance(out, type(t)):
            raise TypeError(f"a tensor hook must return a Tensor or None, {_name(hook)} returned "
                            f"{type(out).__name__}")
        if out.shape != t.shape or out.dtype != current.dtype or out.device != t.device:
            raise ValueError(f"a tensor hook must return a gradient like the one it was given ({t.shape}, "
                             f"{current.dtype.name}, on {t.device}); {_name(hook)} returned {out.shape}, "
                             f"{out.dtype.name}, on {out.device}")
        current = out.lazydata
    return current


def _name(hook: Any) -> str:
    return f"hook {getattr(hook, '__qualname__', repr(hook))!r}"
