"""Autograd's backward walk: the graph of Functions behind a tensor, in reverse order, gradients accumulated.

Hooks registered with :func:`register_post_backward_hook` run at the end of every ``Tensor.backward`` (after
every leaf's ``.grad`` is set, still lazy: nothing is computed by the walk); ``tg.distributed`` averages
gradients across processes from one.

The walk computes nothing itself, but a gradient barrier (:mod:`tg.nn.grad`) computes a gradient on the way
(:func:`realize_gradient`); the first one also computes the value of the tensor whose backward runs when that is a
scalar (a loss) not computed yet.  The two share the forward's intermediates, and a training loop reads its loss
right after the step: computed later on its own, the loss would recompute its reductions in kernels of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from tg.engine.realize import realize
from tg.frontend import function as F
from tg.frontend.tensor_hooks import run_hooks
from tg.support.ops import Ops

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor
    from tg.graph.lazy import LazyBuffer


def toposort(root: Tensor) -> list[Tensor]:
    """The tensors ``root`` was computed from, each after its parents (iterative: no recursion per node)."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            stack.extend((p, False) for p in node._ctx.parents if id(p) not in seen)
    return order


_walk = threading.local()  # pending_root: the running backward's scalar root, until computed


def realize_gradient(grad: LazyBuffer) -> LazyBuffer:
    """Compute ``grad`` into a buffer now, together with the running backward's scalar root when that is not
    computed yet (see the module's doc); returns ``grad``."""
    root: LazyBuffer | None = getattr(_walk, "pending_root", None)
    _walk.pending_root = None
    realize([grad] if root is None or root.base.realized is not None else [grad, root])
    return grad


def accumulate_grads(root: Tensor, gradient: Tensor, retain_graph: bool) -> None:
    """Add d(root)/d(leaf) (``gradient`` being d(loss)/d(root)) into every leaf's ``.grad`` (and into the ``.grad`` of
    inner tensors that ``retain_grad()``), each tensor's hooks applied first (:mod:`tg.frontend.tensor_hooks`); free
    the graph as it goes unless ``retain_graph`` (a freed node raises if a later backward reaches it: see
    ``function.FREED``)."""
    outer = getattr(_walk, "pending_root", None)  # (a backward run by a hook of another)
    scalar = root.numel() == 1 and root.lazydata.base.realized is None  # (not a large output nobody may read)
    _walk.pending_root = root.lazydata if scalar else None
    try:
        _walk_back(root, gradient, retain_graph)
    finally:
        _walk.pending_root = outer


def _walk_back(root: Tensor, gradient: Tensor, retain_graph: bool) -> None:
    tensor = type(root)
    grads: dict[int, LazyBuffer] = {id(root): gradient.lazydata}
    for t in reversed(toposort(root)):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if t._hooks:
            g = run_hooks(t, g)
        if t._ctx is None or t._retains_grad:
            if t.requires_grad:
                t._grad = tensor(g) if t._grad is None else tensor(t._grad.lazydata.alu(Ops.ADD, g))
            if t._ctx is None:
                continue
        out = t._ctx.backward(g)
        outs = out if isinstance(out, tuple) else (out,)
        for parent, pg in zip(t._ctx.parents, outs):
            if pg is None or not parent.requires_grad:
                continue
            assert pg.shape == parent.shape, f"grad shape {pg.shape} != {parent.shape} in {t._ctx}"
            grads[id(parent)] = pg if id(parent) not in grads else grads[id(parent)].alu(Ops.ADD, pg)
        if not retain_graph:
            t._ctx = F.FREED


_POST_BACKWARD: dict[int, Callable[[], None]] = {}


def register_post_backward_hook(hook: Callable[[], None]) -> Callable[[], None]:
    """Call ``hook()`` at the end of every ``Tensor.backward``; returns a function that removes it again."""
    key = id(hook)
    _POST_BACKWARD[key] = hook
    return lambda: _POST_BACKWARD.pop(key, None) and None


def run_post_backward_hooks() -> None:
    for hook in list(_POST_BACKWARD.values()):
        hook()
