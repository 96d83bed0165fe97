"""What each MPI rank of the distributed tests runs: ``mpiexec -n K python worker.py MODE OUT_DIR [options]``.

Modes: ``train`` (N steps of data-parallel SGD with momentum on a fixed global batch; each rank saves its final
parameters to OUT_DIR/rank<R>.npz), ``train-jit`` (the same through tg.jit: a jitted forward/backward, the
allreduce, a jitted optimizer step), ``jit-inside`` (a jitted step that averages inside: must be refused),
``jit-sync`` (likewise, explicitly), ``no-sync`` (gradient accumulation: 2 micro-batches under no_sync, 1
outside, beside a plain model trained on the whole batch), ``buffers`` (BatchNorm models: running statistics from
rank 0 with broadcast_buffers, eagerly and through jit_train_step, and without), ``syncbn`` (SyncBatchNorm
training; on 1 process beside plain BatchNorm, on several also refused inside tg.jit), ``raise`` (rank 1 raises
after one step), ``exit`` (rank 1 leaves early with sys.exit), ``hang`` (rank 1 sleeps), ``kill`` (rank 1 is
killed by SIGKILL), ``os-exit`` (rank 1 calls os._exit(3)), ``mismatch`` (rank 1 builds a wider layer),
``sampler`` (each rank saves its indices), ``ops`` (all_reduce, broadcast, barrier, print0, save_checkpoint).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import tg
import tg.distributed as dist
from tg import Tensor, nn, optim

GLOBAL_BATCH, FEATURES, CLASSES = 16, 8, 4


def make_model(width: int = 16) -> nn.Sequential:
    return nn.Sequential(nn.Linear(FEATURES, width), nn.ReLU(), nn.Linear(width, width), Tensor.tanh,
                         nn.Linear(width, CLASSES))


def make_bn_model() -> nn.Sequential:
    """BatchNorm2d over (N, 4, 2, 2) and BatchNorm1d over (N, 16) between linear layers."""
    return nn.Sequential(nn.Linear(FEATURES, 16), lambda x: x.reshape(-1, 4, 2, 2), nn.BatchNorm2d(4),
                         lambda x: x.reshape(-1, 16), nn.ReLU(), nn.Linear(16, 16), nn.BatchNorm1d(16), Tensor.tanh,
                         nn.Linear(16, CLASSES))


def global_batch(step: int, rows: int = GLOBAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 + step)
    return (rng.standard_normal((rows, FEATURES)).astype(np.float32) + 0.5,
            rng.integers(0, CLASSES, rows).astype(np.int32))


def shard(step: int, rows: int = GLOBAL_BATCH) -> tuple[Tensor, Tensor]:
    """This rank's contiguous slice of the step's global batch."""
    x, y = global_batch(step, rows)
    per = rows // dist.get_world_size()
    lo = dist.get_rank() * per
    return Tensor(x[lo:lo + per]), Tensor(y[lo:lo + per])


def sgd_step(model: nn.Module, opt: optim.Optimizer, x: Tensor, y: Tensor) -> None:
    loss = model(x).cross_entropy(y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def state(model: nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    return {prefix + k: v.numpy() for k, v in model.state_dict().items()}


def save_params(model: nn.Module, out: Path, initial: dict[str, np.ndarray]) -> None:
    final = {k: v.numpy() for k, v in model.state_dict().items()}
    moved = max(float(np.abs(final[k] - initial[k]).max()) for k in final)
    print(f"rank {dist.get_rank()}: parameters moved by up to {moved:.4f} from their broadcast values", flush=True)
    np.savez(out / f"rank{dist.get_rank()}.npz", **final)


def train(out: Path, steps: int, bucket_mb: float) -> None:
    Tensor.manual_seed(dist.get_rank())  # different initial values per rank: the broadcast must fix them
    model = make_model()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_mb)
    initial = {k: v.numpy() for k, v in model.state_dict().items()}
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert ddp.eval() is ddp and not model.training
    ddp(shard(0)[0]).numpy()  # a forward without backward (a metric, say) changes nothing
    assert ddp.train().module.training
    for step in range(steps):
        x, y = shard(step)
        loss = ddp(x).cross_entropy(y)
        opt.zero_grad()
        loss.backward()  # averages the gradients over the ranks
        opt.step()
    print(f"rank {dist.get_rank()}: {len(ddp.buckets)} buckets, allreduce {ddp.allreduce_seconds:.4f} s", flush=True)
    save_params(model, out, initial)


def train_jit(out: Path, steps: int, bucket_mb: float) -> None:
    Tensor.manual_seed(dist.get_rank())
    model = make_model()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_mb)
    initial = {k: v.numpy() for k, v in model.state_dict().items()}
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    step = dist.jit_train_step(ddp, opt, lambda x, y: ddp(x).cross_entropy(y))
    for i in range(steps):
        step(*shard(i))
    replays = (step.forward_backward.replays, step.update.replays)
    assert replays == (steps - 3, steps - 3), replays
    print(f"rank {dist.get_rank()}: replays {replays}", flush=True)
    save_params(model, out, initial)


def no_sync(out: Path, steps: int, bucket_mb: float) -> None:
    """Each step: this rank's share of a global batch of 24 in 3 micro-batches, the first 2 under no_sync (no
    collective at all), each loss divided by 3; rank 0 also trains a plain copy on the whole global batch."""
    Tensor.manual_seed(dist.get_rank())
    model = make_model()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_mb)
    reference = make_model()
    reference.load_state_dict(model.state_dict())
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    reference_opt = optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    group = dist.group.group()
    for step in range(steps):
        x, y = shard(step, rows=24)
        opt.zero_grad()
        per = x.shape[0] // 3
        before = group.collectives
        with ddp.no_sync():
            for i in range(2):
                (ddp(x[i * per:(i + 1) * per]).cross_entropy(y[i * per:(i + 1) * per]) / 3).backward()
        assert group.collectives == before, "a collective ran under no_sync"
        (ddp(x[2 * per:]).cross_entropy(y[2 * per:]) / 3).backward()  # averages all three micro-batches' sum
        assert group.collectives > before
        opt.step()
        if dist.get_rank() == 0:
            sgd_step(reference, reference_opt, *(Tensor(a) for a in global_batch(step, rows=24)))
    np.savez(out / f"rank{dist.get_rank()}.npz", **state(model), **state(reference, "reference."))


def buffers(out: Path, steps: int) -> None:
    """Three BatchNorm models from the same values: DDP (broadcast_buffers=True) eagerly, the same through
    jit_train_step, and DDP(broadcast_buffers=False).  After training, an eval forward without gradients."""
    Tensor.manual_seed(dist.get_rank())
    eager, jitted, local = make_bn_model(), make_bn_model(), make_bn_model()
    ddps = [dist.DistributedDataParallel(eager)]
    for twin in (jitted, local):
        twin.load_state_dict(eager.state_dict())
    ddps += [dist.DistributedDataParallel(jitted), dist.DistributedDataParallel(local, broadcast_buffers=False)]
    opts = [optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (eager, jitted, local)]
    step = dist.jit_train_step(ddps[1], opts[1], lambda x, y: ddps[1](x).cross_entropy(y))
    for i in range(steps):
        x, y = shard(i)
        sgd_step(ddps[0], opts[0], x, y)
        step(x, y)
        sgd_step(ddps[2], opts[2], x, y)
    assert step.forward_backward.replays == steps - 3, step.forward_backward.replays
    saved = {**state(eager, "before.")}
    with tg.no_grad():
        for ddp in ddps:
            ddp.eval()(shard(0)[0]).numpy()
    saved |= {**state(eager, "eager."), **state(jitted, "jit."), **state(local, "local.")}
    np.savez(out / f"rank{dist.get_rank()}.npz", **saved)


def syncbn(out: Path, steps: int, bucket_mb: float) -> None:
    Tensor.manual_seed(dist.get_rank())
    model = nn.SyncBatchNorm.convert_sync_batchnorm(make_bn_model())
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == 2
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_mb)
    initial = state(model)
    plain = make_bn_model()
    plain.load_state_dict(model.state_dict())
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    plain_opt = optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    for i in range(steps):
        sgd_step(ddp, opt, *shard(i))
        if dist.get_world_size() == 1:
            sgd_step(plain, plain_opt, *shard(i))
    if dist.get_world_size() == 1:  # a world of one: SyncBatchNorm is BatchNorm
        mine, theirs = state(model), state(plain)
        difference = max(float(np.abs(mine[k] - theirs[k]).max()) for k in mine)
        print(f"SyncBatchNorm vs BatchNorm on 1 process: largest difference {difference:.3g}", flush=True)
        assert difference < 1e-6
    save_params(model, out, initial)
    if dist.get_world_size() > 1:
        jitted = dist.jit_train_step(ddp, opt, lambda x, y: ddp(x).cross_entropy(y))
        try:
            jitted(*shard(0))
        except tg.JitError as exc:
            print(f"rank {dist.get_rank()} refused: {exc}", flush=True)
        else:
            raise AssertionError("SyncBatchNorm trained on several ranks inside tg.jit")


def jit_inside() -> None:
    model = make_model()
    ddp = dist.DistributedDataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.1)

    @tg.jit
    def step(x: Tensor, y: Tensor) -> Tensor:
        loss = ddp(x).cross_entropy(y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for i in range(4):
        try:
            step(*shard(i))
        except dist.DistributedError as exc:
            print(f"rank {dist.get_rank()} refused at call {i + 1}: {exc}", flush=True)
            return
    raise AssertionError("a jitted step with DDP inside ran without error")


def jit_sync() -> None:
    """Averaging or broadcasting inside a jitted function is refused at once (a replay would skip it)."""
    model = make_model()
    ddp = dist.DistributedDataParallel(model)

    @tg.jit
    def inside(x: Tensor) -> Tensor:
        out = ddp(x)
        out.sum().backward()
        ddp.sync_gradients()
        return out

    @tg.jit
    def reduce_inside(x: Tensor) -> Tensor:
        return dist.all_reduce(x * 2)

    bn = dist.DistributedDataParallel(make_bn_model())

    @tg.jit
    def buffers_inside(x: Tensor) -> Tensor:  # a BatchNorm forward would broadcast rank 0's running statistics
        return bn(x)

    for fn in (inside, reduce_inside, buffers_inside):
        try:
            fn(shard(0)[0])
        except dist.DistributedError as exc:
            print(f"refused: {exc}", flush=True)
        else:
            raise AssertionError(f"{fn.__name__} averaged inside tg.jit")


def faulty(mode: str) -> None:
    model = make_model()
    ddp = dist.DistributedDataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.1)
    for step in range(1000):
        if dist.get_rank() == 1 and step == 1:
            if mode == "raise":
                raise ValueError("deliberate failure on rank 1")
            if mode == "exit":
                sys.exit(3)
            if mode == "hang":
                time.sleep(3600)
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "os-exit":
                os._exit(3)
        loss = ddp(shard(step)[0]).cross_entropy(shard(step)[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    raise AssertionError("rank survived 1000 steps")


def mismatch() -> None:
    dist.DistributedDataParallel(make_model(width=16 if dist.get_rank() != 1 else 17))
    raise AssertionError("a mismatched model was accepted")


def sampler(out: Path, length: int, shuffle: bool, drop_last: bool) -> None:
    s = dist.DistributedSampler(length, shuffle=shuffle, seed=5, drop_last=drop_last)
    epochs = []
    for epoch in range(2):
        s.set_epoch(epoch)
        epochs.append(np.array(list(s)))
    np.savez(out / f"rank{dist.get_rank()}.npz", *epochs)


def ops(out: Path) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    t = Tensor(np.full((2, 3), rank + 1, dtype=np.float32))
    dist.all_reduce(t)
    assert np.all(t.numpy() == world * (world + 1) / 2), t.numpy()
    m = dist.all_reduce(Tensor(np.array([rank], dtype=np.int32)), op="max")
    assert m.numpy().tolist() == [world - 1]
    holder = [Tensor(np.full(4, float(rank), dtype=np.float32)), Tensor(np.arange(3, dtype=np.int32) + rank)]
    dist.broadcast_parameters(holder)
    assert holder[0].numpy().tolist() == [0.0] * 4 and holder[1].numpy().tolist() == [0, 1, 2]
    dist.barrier()
    dist.print0(f"print0 from rank {rank}")
    written = dist.save_checkpoint(make_model(), out / "model.safetensors")
    assert (written is not None) == (rank == 0) and (out / "model.safetensors").exists()
    print(f"rank {rank} of {world}, local rank {dist.get_local_rank()}: ops ok", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--bucket-mb", type=float, default=25.0)
    parser.add_argument("--length", type=int, default=10)
    parser.add_argument("--no-shuffle", action="store_true")
    parser.add_argument("--drop-last", action="store_true")
    args = parser.parse_args()
    dist.init()
    if args.mode == "train":
        train(args.out, args.steps, args.bucket_mb)
    elif args.mode == "train-jit":
        train_jit(args.out, args.steps, args.bucket_mb)
    elif args.mode == "no-sync":
        no_sync(args.out, args.steps, args.bucket_mb)
    elif args.mode == "buffers":
        buffers(args.out, args.steps)
    elif args.mode == "syncbn":
        syncbn(args.out, args.steps, args.bucket_mb)
    elif args.mode == "jit-inside":
        jit_inside()
    elif args.mode == "jit-sync":
        jit_sync()
    elif args.mode in ("raise", "exit", "hang", "kill", "os-exit"):
        faulty(args.mode)
    elif args.mode == "mismatch":
        mismatch()
    elif args.mode == "sampler":
        sampler(args.out, args.length, not args.no_shuffle, args.drop_last)
    elif args.mode == "ops":
        ops(args.out)
    else:
        raise SystemExit(f"unknown mode {args.mode}")


if __name__ == "__main__":
    main()
