#!/usr/bin/env python
"""Data-parallel training speed: steps per second of one MLP on 1 and on 2 processes, and the time in allreduce.

    python bench/distributed.py                 # the default backend, 1 and 2 processes, side by side
    python bench/distributed.py --quick         # fewer steps: a smoke test
    python bench/distributed.py --processes 1 2 4 --hidden 1024

It launches itself under ``mpiexec -n K`` (MPICH's, from ``pip install 'tg-core[distributed]'``) once per K.
Every run trains the same MLP on the same global batch (each rank takes its slice) through
``tg.distributed.jit_train_step``; after warm-up steps (compiling and jit capture), rank 0 times ``--steps``
steps.  "allreduce" is the time from the first gradient bucket's copy to the host to the last one's return
(``DistributedDataParallel.allreduce_seconds``), per step, waiting for slower ranks included; on 1 process it
is the host round trip alone.  "allreduce alone" times 20 allreduces of all the gradients as one message
after a barrier: the transport's own cost.  All
processes share this machine's cores: on a small machine 2 processes compete with each other.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    """One rank: build, warm up, time; rank 0 prints one JSON line."""
    import numpy as np
    import tg.distributed as dist
    from tg import Tensor, nn, optim

    dist.init()
    rank, world = dist.get_rank(), dist.get_world_size()
    Tensor.manual_seed(0)
    model = nn.Sequential(nn.Linear(args.features, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden),
                          nn.ReLU(), nn.Linear(args.hidden, 10))
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = dist.jit_train_step(ddp, opt, lambda x, y: ddp(x).cross_entropy(y))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.features)).astype(np.float32)
    y = rng.integers(0, 10, args.batch).astype(np.int32)
    per = args.batch // world
    xs, ys = Tensor(x[rank * per:(rank + 1) * per]).realize(), Tensor(y[rank * per:(rank + 1) * per]).realize()
    for _ in range(args.warmup):
        step(xs, ys)
    dist.barrier()
    before = ddp.allreduce_seconds
    began = time.perf_counter()
    for _ in range(args.steps):
        loss = step(xs, ys)
    loss.numpy()
    seconds = time.perf_counter() - began
    from tg.distributed.group import all_reduce_array

    flat = np.ones(sum(p.numel() for p in ddp.parameters()), np.float32)  # the gradients' size, in one message
    dist.barrier()
    began = time.perf_counter()
    for _ in range(20):
        all_reduce_array(flat)
    alone = (time.perf_counter() - began) / 20
    if rank == 0:
        params = sum(p.numel() for p in ddp.parameters())
        print(json.dumps({"processes": world, "steps_per_s": args.steps / seconds,
                          "allreduce_ms": 1e3 * (ddp.allreduce_seconds - before) / args.steps,
                          "step_ms": 1e3 * seconds / args.steps, "alone_ms": 1e3 * alone, "buckets": len(ddp.buckets),
                          "grad_mb": params * 4 / 2**20, "backend": __import__("tg").default_backend_name()}),
              flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256, help="global batch (default 256)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--bucket-mb", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="20 steps")
    parser.add_argument("--timeout", type=float, default=600, help="seconds each run may take")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps = 20
    if args.worker:
        worker(args)
        return 0
    mpiexec = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                             os.environ.get("PATH", "")]))
    if mpiexec is None:
        print("no mpiexec: pip install 'tg-core[distributed]'", file=sys.stderr)
        return 1
    forwarded = [a for a in sys.argv[1:] if a != "--quick"] + (["--steps", "20"] if args.quick else [])
    results = []
    for n in args.processes:
        if args.batch % n:
            print(f"skipping {n} processes: the batch {args.batch} does not divide among them", file=sys.stderr)
            continue
        command = [mpiexec, "-n", str(n), sys.executable, __file__, "--worker", *forwarded]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{n} processes: still running after {args.timeout} s (killed)", file=sys.stderr)
            return 1
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            print(f"{n} processes failed ({done.returncode}):\n{done.stdout}\n{done.stderr}", file=sys.stderr)
            return 1
        results.append(json.loads(lines[-1]))
    first = results[0]
    print(f"MLP {args.features}-{args.hidden}-{args.hidden}-10 ({first['grad_mb']:.2f} MB of gradients in "
          f"{first['buckets']} buckets), global batch {args.batch}, {args.steps} timed steps, backend "
          f"{first['backend']}, {os.cpu_count()} CPU cores")
    print(f"{'processes':>9}  {'steps/s':>8}  {'ms/step':>8}  {'allreduce ms/step':>17}  {'allreduce share':>15}  "
          f"{'speed-up':>8}  {'allreduce alone ms':>18}")
    for r in results:
        print(f"{r['processes']:>9}  {r['steps_per_s']:>8.1f}  {r['step_ms']:>8.2f}  {r['allreduce_ms']:>17.3f}  "
              f"{r['allreduce_ms'] / r['step_ms']:>15.1%}  {r['steps_per_s'] / first['steps_per_s']:>7.2f}x  "
              f"{r['alone_ms']:>18.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
