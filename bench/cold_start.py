#!/usr/bin/env python
"""Cold starts: how many kernels a program compiles, and how long it waits, from an empty kernel cache.

    python bench/cold_start.py                 # the default backend (TG_BACKEND), every case
    python bench/cold_start.py --gpt-steps 20  # also examples/train_gpt.py's first 20 steps (minutes on clang)

Each case runs in a fresh process with an empty ``TG_CACHE_DIR``, and counts the kernels compiled (the
``tg_kernel_compiled`` hook, compiles that were not already in the process):

- ``lr as a Python float``: 20 steps of hand-written SGD on a 2-layer MLP, ``p.sub_(lr * p.grad)`` with a learning rate
  that decays as a Python float.  Each new value is a new constant today, so a new kernel per parameter shape.
- ``new sequence lengths``: a causal self-attention block run eagerly on sequences of length 1..24, as text
  generation with a growing context does.  Each new length is a new shape, so new kernels, unless the backend takes
  dynamic shapes (``Runtime.dynamic_shapes``: numpy's interpreter, ``TG_NUMPY_CAPS=interpret``), where the kernels
  whose sizes follow the length are built for every length at the third one.
- ``first matmul``: a fresh process's first 1024x1024 float32 matmul read back to numpy, ``import numpy`` and
  ``import tg`` included (its "seconds"), checked against numpy's product afterwards.  A third of a second, so one
  process is at the mercy of a shared host: the figure is the median of ``--repeats`` fresh processes (each with
  an empty cache), and the row says their range.
- ``new batch sizes``: a 2-layer MLP and a softmax run eagerly on batches of 1..24 rows (serving requests of any
  size).
- ``GPT training``: ``examples/train_gpt.py --steps N`` (with ``--gpt-steps N``): the issue's cold start.

The steady state ("per later step": kernels compiled per step over the second half of the case) is the figure
symbolic shapes and scalar parameters should bring to 0.  Each case runs three times: with Python floats compiled
into kernels as constants and every kernel built for its exact shape (``TG_SCALAR_PARAMS=0 TG_SYMBOLIC=0``, the old
way), with floats as kernel parameters (``TG_SYMBOLIC=0``), and with both defaults (floats as parameters, kernels
reused across outermost sizes where the backend can).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _counting() -> list[bool]:
    """Register an observer of compiles; the list gets one entry (cached or not) per compile."""
    from tg import hooks
    from tg.backends.discovery import registry

    events: list[bool] = []

    class Counter:
        @hooks.hookimpl
        def tg_kernel_compiled(self, event: hooks.KernelCompiled) -> None:
            events.append(event.cached)

    registry().manager.register(Counter(), "bench-cold-start")
    return events


def _figures(events: list[bool], start: float, per_step: list[int]) -> dict[str, float]:
    """The case's figures: kernels compiled in all, in its first step, and per step over its second half (the
    steady state, once the warm-up's kernels exist)."""
    late = per_step[len(per_step) // 2:]
    return {"kernels": len(events), "seconds": time.perf_counter() - start, "first step": per_step[0],
            "per extra step": sum(late) / max(1, len(late))}


def case_lr(steps: int) -> dict[str, float]:
    import numpy as np
    from tg import Tensor, nn, no_grad

    events = _counting()
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    x = Tensor(np.random.default_rng(0).random((16, 32), dtype=np.float32))
    y = Tensor(np.random.default_rng(1).integers(0, 10, 16).astype(np.int32))
    per_step = []
    start = time.perf_counter()
    for step in range(steps):
        before = len(events)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        lr = 0.1 * 0.95 ** step
        with no_grad():
            for p in model.parameters():
                p.sub_(lr * p.grad)
                p.grad = None
        loss.item()
        per_step.append(len(events) - before)
    return _figures(events, start, per_step)


def case_lengths(longest: int) -> dict[str, float]:
    import numpy as np
    import tg.nn.functional as F
    from tg import Tensor, nn, no_grad

    events = _counting()
    qkv = nn.Linear(32, 96)
    per_length = []
    start = time.perf_counter()
    with no_grad():
        for t in range(1, longest + 1):
            before = len(events)
            x = Tensor(np.random.default_rng(t).random((1, t, 32), dtype=np.float32))
            q, k, v = qkv(x).reshape(1, t, 3, 4, 8).permute(2, 0, 3, 1, 4)
            F.scaled_dot_product_attention(q, k, v, is_causal=True).numpy()
            per_length.append(len(events) - before)
    return _figures(events, start, per_length)


def case_first_matmul(n: int) -> dict[str, float]:
    start = time.perf_counter()
    import numpy as np
    import tg

    events = _counting()
    x = np.full((n, n), 0.5, dtype=np.float32)
    y = np.arange(n * n, dtype=np.float32).reshape(n, n) % 7
    out = (tg.Tensor(x) @ tg.Tensor(y)).numpy()
    seconds = time.perf_counter() - start
    if not np.allclose(out, x @ y, rtol=1e-5):
        raise RuntimeError("the first matmul's result differs from numpy's")
    return {"kernels": len(events), "seconds": seconds, "first step": len(events), "per extra step": float("nan")}


def case_batches(largest: int) -> dict[str, float]:
    import numpy as np
    from tg import Tensor, nn, no_grad

    events = _counting()
    mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    per_batch = []
    start = time.perf_counter()
    with no_grad():
        for b in range(1, largest + 1):
            before = len(events)
            x = Tensor(np.random.default_rng(b).random((b, 32), dtype=np.float32))
            mlp(x).softmax(axis=-1).numpy()
            per_batch.append(len(events) - before)
    return _figures(events, start, per_batch)


def case_gpt(steps: int) -> dict[str, float]:
    import contextlib
    import io

    events = _counting()
    sys.path.insert(0, str(ROOT / "examples"))
    import train_gpt

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = train_gpt.main(["--steps", str(steps), "--sample-length", "0"])
    if status:
        raise RuntimeError(f"examples/train_gpt.py exited with {status}")
    return {"kernels": len(events), "seconds": time.perf_counter() - start, "first step": float("nan"),
            "per extra step": float("nan")}


CASES = {"lr as a Python float (20 SGD steps)": (case_lr, 20),
         "new sequence lengths (attention, T = 1..24)": (case_lengths, 24),
         "new batch sizes (MLP forward and softmax, B = 1..24)": (case_batches, 24),
         "first matmul (1024, import included)": (case_first_matmul, 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpt-steps", type=int, default=0, help="also time examples/train_gpt.py for N steps")
    parser.add_argument("--repeats", type=int, default=7,
                        help="fresh processes per setting for the first matmul (the median is its figure)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()
    if args.case:
        cases = {**CASES, "gpt": (case_gpt, args.gpt_steps)}
        fn, n = cases[args.case]
        print(json.dumps(fn(n)))
        return
    import tg

    names = list(CASES) + ([f"GPT training ({args.gpt_steps} steps)"] if args.gpt_steps else [])
    backend = os.environ.get("TG_BACKEND", "the default backend")
    print(f"tg {tg.__version__} on {backend}, an empty kernel cache per case\n")
    print("| case | Python floats, shapes | kernels compiled | first step | per later step | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        case = name if name in CASES else "gpt"
        repeats = max(1, args.repeats) if CASES.get(case, (None,))[0] is case_first_matmul else 1
        for floats, switch, symbolic in (("constants, exact", "0", "0"), ("parameters, exact", "1", "0"),
                                         ("parameters, symbolic", "1", "1")):
            runs, failed = [], None
            for _ in range(repeats):
                with tempfile.TemporaryDirectory() as cache:
                    out = subprocess.run([sys.executable, __file__, "--case", case, "--gpt-steps",
                                          str(args.gpt_steps)],
                                         env={**os.environ, "TG_CACHE_DIR": cache, "TG_SCALAR_PARAMS": switch,
                                              "TG_SYMBOLIC": symbolic},
                                         capture_output=True, text=True)
                if out.returncode:
                    failed = out.stderr.strip().splitlines()[-1:]
                    break
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            if failed is not None:
                print(f"| {name} | {floats} | failed: {failed} | | | |")
                continue
            r = runs[0]
            seconds = sorted(run["seconds"] for run in runs)
            spread = f" ({seconds[0]:.2f}-{seconds[-1]:.2f}, median of {len(runs)})" if len(runs) > 1 else ""
            print(f"| {name} | {floats} | {r['kernels']:.0f} | {r['first step']:.0f} | "
                  f"{r['per extra step']:.1f} | {statistics.median(seconds):.2f}{spread} |")


if __name__ == "__main__":
    main()
