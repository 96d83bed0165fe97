"""Data parallelism: broadcast a model's state from rank 0, check every rank holds the same model, and average
gradients across ranks with bucketed, non-blocking allreduces (:class:`DistributedDataParallel`).

Tensors cross between processes through host memory as numpy arrays, so every backend works the same way.

When gradients go out: tg's backward only builds lazy gradient graphs; no gradient has a value before it is
realized, so there is no moment *during* backward when a bucket is ready.  The reduction therefore starts
right after backward: all gradients are realized in one schedule (fusion intact, nothing computed twice),
then each bucket is copied to the host and its ``Iallreduce`` started at once, so bucket k travels while
bucket k+1 is copied; results are copied back bucket by bucket as they arrive.

With ``tg.jit``: a replay runs kernels only, never the host-side MPI calls, so the allreduce cannot sit inside a
jitted function.  :func:`tg.distributed.jit_train_step` jits the forward and backward (returning the
gradients), calls :meth:`DistributedDataParallel.sync_gradients` with them, then runs a jitted optimizer step:
the averaged gradients are written *in place* into buffers the DDP owns (``p.grad`` views them), which a
replayed optimizer step reads.  A DDP forward whose gradients were never averaged (its backward ran inside a
jitted function) is refused at the next forward, on the second call of such a jitted step, before any replay.
Buffers (BatchNorm's running statistics) are broadcast from rank 0 at the start of a forward, as in PyTorch; inside
a jitted function that broadcast cannot run either, so ``jit_train_step`` runs it before the jitted forward
(:meth:`DistributedDataParallel.sync_buffers`), and a jitted forward that needs one otherwise is refused.

Gradient accumulation: a forward under :meth:`DistributedDataParallel.no_sync` leaves its backward's gradients
local (summed into ``.grad`` as without DDP); the next backward of a forward outside it averages the sum.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tg.distributed import group as G
from tg.distributed.group import DistributedError
from tg.engine.realize import current_recorder, realize
from tg.frontend.autograd import register_post_backward_hook
from tg.frontend.grad_mode import grad_enabled, no_grad
from tg.frontend.tensor import Tensor
from tg.nn.state import get_state_dict, named_tensors

_JIT_FIX = ("a replay of a tg.jit function runs kernels only, never MPI. Fix: use "
            "tg.distributed.jit_train_step(ddp, optimizer, loss_fn), which jits the forward and backward, averages "
            "the gradients outside the jit, then runs a jitted optimizer step")


def _unique(tensors: Iterable[Tensor]) -> list[Tensor]:
    seen: dict[int, Tensor] = {}
    for t in tensors:
        seen.setdefault(id(t), t)
    return list(seen.values())


def _wire_dtype(t: Tensor) -> np.dtype[Any]:
    """The numpy dtype a tensor crosses in (MPI has no 16-bit floats: those travel as float32)."""
    dtype = np.dtype(t.dtype.np)
    return np.dtype(np.float32) if dtype.kind == "f" and dtype.itemsize < 4 else dtype


def broadcast_parameters(obj: Any, root: int = 0) -> None:
    """Give every rank ``root``'s values of every tensor ``obj`` holds (parameters and buffers; a module, a
    list of tensors, any object :func:`tg.nn.state.get_state_dict` walks).  One message per dtype."""
    tensors = _unique(obj if isinstance(obj, (list, tuple)) else get_state_dict(obj).values())
    by_dtype: dict[str, list[Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(_wire_dtype(t).str, []).append(t)
    rank = G.get_rank()
    for wire, group in by_dtype.items():
        if rank == root:
            flat = np.concatenate([t.numpy().astype(wire).reshape(-1) for t in group]) if group else np.empty(0)
        else:
            flat = np.empty(sum(t.numel() for t in group), dtype=wire)
        G.broadcast_array(flat, root)
        if rank == root:
            continue
        offset = 0
        for t in group:
            values = flat[offset:offset + t.numel()].reshape(t.shape)
            offset += t.numel()
            t.assign(Tensor(np.array(values, order="C"), dtype=t.dtype, device=t.device))
            t.realize()


def all_reduce(tensor: Tensor, op: str = "sum") -> Tensor:
    """Replace ``tensor``'s value, in place, by ``op`` (sum, mean, max, min, prod) of its values on every rank;
    returns it.  Collective: every rank calls it, in the same order."""
    if current_recorder() is not None:
        raise DistributedError(f"tg.distributed.all_reduce inside a tg.jit function: {_JIT_FIX}")
    out = G.all_reduce_array(tensor.numpy().astype(_wire_dtype(tensor)), op)
    tensor.assign(Tensor(out.reshape(tensor.shape), dtype=tensor.dtype, device=tensor.device))
    return tensor.realize()


def check_same_model(named: Sequence[tuple[str, Tensor]], what: str = "model") -> None:
    """Raise DistributedError on every rank unless every rank holds the same tensor names, shapes and dtypes."""
    mine = [[name, list(t.shape), t.dtype.name] for name, t in named]
    every = G.all_gather_json(mine)
    reference = {name: (shape, dtype) for name, shape, dtype in every[0]}
    for rank, theirs in enumerate(every[1:], start=1):
        own = {name: (shape, dtype) for name, shape, dtype in theirs}
        for name in [*reference, *(n for n in own if n not in reference)]:
            if name not in own:
                problem = f"has no tensor {name!r} (rank 0 has {reference[name][0]} {reference[name][1]})"
            elif name not in reference:
                problem = f"has tensor {name!r}, which rank 0 lacks"
            elif own[name] != reference[name]:
                problem = (f"has {name!r} with shape {tuple(own[name][0])} {own[name][1]}, rank 0 has "
                           f"{tuple(reference[name][0])} {reference[name][1]}")
            else:
                continue
            raise DistributedError(f"the {what} differs between ranks: rank {rank} {problem}")


@dataclass
class _Bucket:
    params: list[Tensor]
    send: np.ndarray
    recv: np.ndarray
    device: Tensor  # the averaged gradients, on the parameters' device; p.grad views it
    views: list[Tensor]


class DistributedDataParallel:
    """Wrap a module for data-parallel training, as PyTorch's ``DistributedDataParallel``.

    At construction: checks that every rank has the same parameter and buffer names, shapes and dtypes (a
    mismatch raises on every rank, naming the rank and the tensor), then broadcasts rank 0's values.  Calling
    it calls the module; the next ``backward`` averages the gradients over all ranks (a hook at the end of
    backward), so an optimizer steps identically everywhere.  Gradients travel in buckets of at most
    ``bucket_cap_mb`` megabytes, last parameters first, one non-blocking allreduce each.

    ``broadcast_buffers`` (PyTorch's default, True): each forward first gives every rank rank 0's buffers (the
    tensors that are no parameters, such as BatchNorm's running statistics) unless the forward before it ran
    without gradients or under :meth:`no_sync`, as PyTorch decides it.  (Batch statistics over all ranks:
    :class:`tg.nn.SyncBatchNorm`.)
    """

    def __init__(self, module: Any, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = True):
        G.group()  # initialised?
        self.module = module
        named = list(named_tensors(module))
        check_same_model(named)
        broadcast_parameters(module)
        self.broadcast_buffers = broadcast_buffers
        self._buffers = [t for t in _unique(t for _, t in named) if not t.requires_grad]
        self.require_backward_grad_sync = True  # False under no_sync()
        self.require_forward_param_sync = True  # the next forward broadcasts the buffers (PyTorch's names)
        self._buffers_synced_outside = False  # set while jit_train_step traces: it broadcasts before the jit
        self.params = [t for t in _unique(t for _, t in named) if t.requires_grad]
        if not self.params:
            raise ValueError("DistributedDataParallel: the module has no parameters (tensors with requires_grad)")
        cap = max(1, int(bucket_cap_mb * 2**20))
        self.buckets: list[_Bucket] = []
        pending: list[Tensor] = []
        for p in reversed(self.params):  # the last layers' gradients come first in backward, as in PyTorch
            size = (sum(q.numel() for q in pending) + p.numel()) * _wire_dtype(p).itemsize
            if pending and (_wire_dtype(p) != _wire_dtype(pending[0]) or p.device != pending[0].device or size > cap):
                self._add_bucket(pending)
                pending = []
            pending.append(p)
        self._add_bucket(pending)
        self.unsynced = False  # a forward with gradients ran since gradients were last averaged
        self._unsynced_in_jit = False  # ... and it ran inside a tg.jit function
        self.allreduce_seconds = 0.0  # time from the first bucket's start to the last one's arrival, all steps
        ref = weakref.ref(self)

        def after_backward() -> None:
            ddp = ref()
            if ddp is not None:
                ddp._after_backward()

        weakref.finalize(self, register_post_backward_hook(after_backward))

    def _add_bucket(self, params: list[Tensor]) -> None:
        size = sum(p.numel() for p in params)
        wire = _wire_dtype(params[0])
        device = Tensor(np.zeros(size, wire), dtype=params[0].dtype, device=params[0].device).realize()  # a real buffer
        views, offset = [], 0
        for p in params:
            views.append(device.shrink(((offset, offset + p.numel()),)).reshape(p.shape))
            offset += p.numel()
        self.buckets.append(_Bucket(params, np.empty(size, wire), np.empty(size, wire), device, views))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._unsynced_in_jit:
            self._unsynced_in_jit = False
            raise DistributedError(
                "DistributedDataParallel: the gradients of the previous forward were never averaged across ranks "
                "(its backward ran inside a tg.jit function, where no allreduce can run). "
                f"Fix: {_JIT_FIX[_JIT_FIX.index('use '):]}")
        if self._will_sync_buffers() and not self._buffers_synced_outside:
            if current_recorder() is not None:
                raise DistributedError(
                    "DistributedDataParallel: a forward inside a tg.jit function cannot broadcast rank 0's buffers "
                    f"(broadcast_buffers=True): {_JIT_FIX[:_JIT_FIX.index('. Fix')]}. Fix: "
                    "tg.distributed.jit_train_step(ddp, optimizer, loss_fn) broadcasts them before its jitted "
                    "forward; or DistributedDataParallel(..., broadcast_buffers=False)")
            self.sync_buffers()
        sync = grad_enabled() and self.require_backward_grad_sync
        if sync:
            self.unsynced = True  # the next backward's hook averages the gradients
            self._unsynced_in_jit = current_recorder() is not None  # it cannot there: sync_gradients must follow
        out = self.module(*args, **kwargs)
        self.require_forward_param_sync = sync
        return out

    def _will_sync_buffers(self) -> bool:
        return self.broadcast_buffers and bool(self._buffers) and self.require_forward_param_sync

    def sync_buffers(self) -> None:
        """Broadcast rank 0's buffers now if the next forward would (a no-op otherwise): what a forward does first,
        and what ``jit_train_step`` does before its jitted forward.  Collective: every rank calls it."""
        if current_recorder() is not None:
            raise DistributedError(f"DistributedDataParallel.sync_buffers inside a tg.jit function: {_JIT_FIX}")
        if self._will_sync_buffers():
            broadcast_parameters(self._buffers)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Gradient accumulation without communication, as PyTorch's ``no_sync``: the backward of a forward run
        inside leaves its gradients on this rank (summed into ``.grad``); the first backward of a forward outside
        averages everything accumulated::

            with ddp.no_sync():
                for x, y in micro_batches[:-1]:
                    (ddp(x).cross_entropy(y) / k).backward()   # local
            (ddp(x_last).cross_entropy(y_last) / k).backward()   # averages the sum over the ranks
            opt.step()
        """
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def _after_backward(self) -> None:
        if self.unsynced and current_recorder() is None:
            self.sync_gradients()

    def parameters(self) -> list[Tensor]:
        return list(self.params)

    def buffers(self) -> list[Tensor]:
        """The module's tensors that are no parameters (what ``broadcast_buffers`` broadcasts)."""
        return list(self._buffers)

    def state_dict(self) -> dict[str, Tensor]:
        """The wrapped module's (names without a ``module.`` prefix: a checkpoint loads into the bare model)."""
        return get_state_dict(self.module)

    def train(self, mode: bool = True) -> DistributedDataParallel:
        self.module.train(mode)
        return self

    def eval(self) -> DistributedDataParallel:
        return self.train(False)

    def sync_gradients(self, grads: Sequence[Tensor | None] | None = None) -> None:
        """Average gradients over every rank and make each parameter's ``.grad`` the result.

        ``grads``: one per parameter, in :meth:`parameters` order (what a jitted forward/backward returned);
        default: each parameter's ``.grad``.  A missing gradient counts as zeros.  Collective: every rank calls it.
        """
        if current_recorder() is not None:
            raise DistributedError(f"DistributedDataParallel.sync_gradients inside a tg.jit function: {_JIT_FIX}")
        given = list(grads) if grads is not None else [p.grad for p in self.params]
        if len(given) != len(self.params):
            raise ValueError(f"sync_gradients: got {len(given)} gradients for {len(self.params)} parameters")
        of = {id(p): g for p, g in zip(self.params, given)}
        with no_grad():
            flats = []
            for b in self.buckets:
                pieces = []
                for p in b.params:
                    g = of[id(p)]
                    if g is not None and g.shape != p.shape:
                        raise ValueError(f"sync_gradients: a gradient of shape {g.shape} for a parameter of {p.shape}")
                    g = Tensor.zeros(*p.shape, dtype=p.dtype, device=p.device) if g is None else g.detach()
                    pieces.append(g.reshape(-1))
                flats.append(pieces[0] if len(pieces) == 1 else Tensor.cat(*pieces))
            realize([f.lazydata for f in flats])  # every gradient in one schedule
        began = time.perf_counter()
        requests = []
        for b, flat in zip(self.buckets, flats):
            b.send[...] = flat.numpy().reshape(-1)
            requests.append(G.start("Iallreduce", b.send, b.recv, G.MPI.SUM))
            for r in requests[:-1]:
                r.Test()  # drives the earlier buckets' progress while this one is copied
        world = G.get_world_size()
        for i, (b, request) in enumerate(zip(self.buckets, requests)):
            G.wait(request, f"gradient allreduce (bucket {i + 1} of {len(self.buckets)})")
            np.divide(b.recv, world, out=b.recv)
            b.device.lazydata.base.realized.copyin(b.recv.astype(b.device.dtype.np, copy=False))
        seconds = time.perf_counter() - began
        self.allreduce_seconds += seconds
        G.group().allreduce_seconds += seconds
        for b in self.buckets:
            for p, view in zip(b.params, b.views):
                p.grad = view
        self.unsynced = self._unsynced_in_jit = False

