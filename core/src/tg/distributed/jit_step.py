"""A data-parallel training step through ``tg.jit``: :func:`jit_train_step`.

A jit replay runs kernels only, never the host-side MPI calls, so one step is three pieces: a jitted forward and
backward that returns the gradients, the allreduce (:meth:`DistributedDataParallel.sync_gradients`, outside any
jit), and a jitted optimizer step.  Two details make the replays see the right values:

* the parameters are passed to the jitted forward/backward as tensor *arguments*: the optimizer step gives them
  new buffers every step, and a replay reads an argument's current buffer (a tensor merely reached through the
  closure would be read from the buffer it had during the capture);
* the averaged gradients are written in place into buffers the DDP owns, which ``p.grad`` views, so the
  replayed optimizer step reads this step's gradients;
* rank 0's buffers (``broadcast_buffers``) are broadcast before the jitted forward/backward, into the tensors
  the forward assigns (BatchNorm's running statistics are jit *state*: a replay reads their current buffers).

:class:`tg.nn.SyncBatchNorm` in training mode cannot be part of the jitted forward on several ranks (its
statistics need an allreduce in the forward and the backward): it raises, saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tg.distributed.ddp import DistributedDataParallel
from tg.frontend.jit import jit
from tg.frontend.tensor import Tensor
from tg.optim import Optimizer


def jit_train_step(ddp: DistributedDataParallel, optimizer: Optimizer, loss_fn: Callable[..., Any]
                   ) -> Callable[..., Any]:
    """``step(*batch)``: ``loss_fn(*batch)`` (a loss, or a tuple whose first item is the loss, e.g. with the
    logits), backward, gradients averaged over the ranks, ``optimizer.step()``; returns what ``loss_fn``
    returned, detached.  Forward/backward and the optimizer step are jitted; later calls replay their kernels.
    ``loss_fn`` should call ``ddp`` (or its module) on the batch it is given."""
    params = ddp.parameters()
    count = len(params)

    @jit
    def forward_backward(*args: Tensor) -> Any:
        ddp._buffers_synced_outside = True  # step() broadcast them (a replay never runs this Python)
        try:
            out = loss_fn(*args[:len(args) - count])
        finally:
            ddp._buffers_synced_outside = False
        loss = out[0] if isinstance(out, tuple) else out
        optimizer.zero_grad()
        loss.backward()
        return out, [p.grad for p in params]

    @jit
    def update() -> None:
        optimizer.step()

    def step(*batch: Any) -> Any:
        ddp.sync_buffers()
        out, grads = forward_backward(*batch, *params)
        ddp.sync_gradients(grads)
        update()
        return out

    step.forward_backward = forward_backward  # type: ignore[attr-defined]
    step.update = update  # type: ignore[attr-defined]
    return step
