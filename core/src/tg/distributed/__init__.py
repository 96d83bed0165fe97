"""Data-parallel training over MPI: one process per device, gradients averaged by allreduce.

Launch with ``mpiexec -n N python train.py``; in the script::

    import tg.distributed as dist
    dist.init()                                   # rank, world size, local rank from MPI
    ddp = dist.DistributedDataParallel(model)     # same model everywhere? then rank 0's values everywhere
    sampler = dist.DistributedSampler(len(data), shuffle=True, seed=0)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        ...loss = loss_fn(ddp(x_shard), y_shard); opt.zero_grad(); loss.backward()  # gradients averaged
        opt.step()
    dist.print0("done"); dist.save_checkpoint(model, "model.safetensors")

Needs mpi4py and an MPI (``pip install 'tg-core[distributed]'``: mpi4py and MPICH's wheel, with ``mpiexec``);
``import tg`` never imports it.  With ``tg.jit``, gradient accumulation (``ddp.no_sync()``) and BatchNorm
(``broadcast_buffers``; statistics over all ranks: :class:`tg.nn.SyncBatchNorm`), see :mod:`tg.distributed.ddp`;
on faults, :mod:`tg.distributed.group`.
"""

from __future__ import annotations

from tg.distributed.ddp import DistributedDataParallel, all_reduce, broadcast_parameters, check_same_model
from tg.distributed.group import (
    DistributedError,
    barrier,
    get_local_rank,
    get_rank,
    get_world_size,
    init,
    is_initialized,
    is_main_process,
)
from tg.distributed.jit_step import jit_train_step
from tg.distributed.main_process import print0, save_checkpoint
from tg.distributed.sampler import DistributedSampler

__all__ = ["DistributedDataParallel", "DistributedError", "DistributedSampler", "all_reduce", "barrier",
           "broadcast_parameters", "check_same_model", "get_local_rank", "get_rank", "get_world_size", "init",
           "is_initialized", "is_main_process", "jit_train_step", "print0", "save_checkpoint"]
