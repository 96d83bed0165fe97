#!/usr/bin/env python
"""How fast tg-rdna's emulator runs gfx1100 code objects, beside the numpy backend running the same programs.

    python bench/rdna_emu.py            # every workload, 3 timed runs each (medians)
    python bench/rdna_emu.py --quick    # smaller sizes, 1 run: a smoke test

Each workload is built once on ``rdna:emu`` (LLVM assembles and links its kernels; not timed), then timed.  The
emulator's figures: "steps" are instructions run for all waves at one address together, "wave instr" the
instructions the waves issued (a step that runs k waves issues k), and their rate per second.  The numpy backend
(``numpy``, tg's embedded reference) runs the same program in the same process for scale.  Needs LLVM 19
(``apt-get install llvm-19 lld-19``) and tg-rdna installed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import tg
from cpu import median_seconds  # bench/cpu.py, beside this script
from tg import Tensor, nn, optim
from tg.engine.device import device_state

Workload = Callable[[str], Callable[[], object]]


def elementwise(n: int) -> Workload:
    def make(device: str) -> Callable[[], object]:
        x, y, z = (Tensor(np.random.default_rng(i).standard_normal(n).astype(np.float32), device=device)
                   for i in range(3))
        return lambda: ((x * y + z).relu() * 0.5).exp().numpy()
    return make


def matmul(n: int) -> Workload:
    def make(device: str) -> Callable[[], object]:
        a, b = (Tensor(np.random.default_rng(i).standard_normal((n, n)).astype(np.float32), device=device)
                for i in range(2))
        return lambda: (a @ b).numpy()
    return make


def softmax(rows: int, cols: int) -> Workload:
    def make(device: str) -> Callable[[], object]:
        x = Tensor(np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32), device=device)
        return lambda: x.softmax(-1).numpy()
    return make


def mlp_step(batch: int) -> Workload:
    """One Adam training step of the digits example's MLP (64-128-10), eager."""
    def make(device: str) -> Callable[[], object]:
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
        opt = optim.Adam(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        x = Tensor(rng.random((batch, 64), dtype=np.float32), device=device)
        y = Tensor(rng.integers(0, 10, batch).astype(np.int32), device=device)

        def step() -> object:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        return step
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one timed run")
    args = parser.parse_args()
    q = args.quick
    workloads = {
        f"exp(relu(x*y+z)*0.5), {4096 if q else 65536} floats": elementwise(4096 if q else 65536),
        f"matmul {32 if q else 128}x{32 if q else 128}": matmul(32 if q else 128),
        f"softmax ({16 if q else 256}, {128 if q else 1024})": softmax(16 if q else 256, 128 if q else 1024),
        f"MLP 64-128-10 Adam step, batch {16 if q else 64}": mlp_step(16 if q else 64),
    }
    runs = 1 if q else 3
    runtime = device_state("rdna:emu").backend.runtime
    print(f"tg {tg.__version__}: rdna:emu beside numpy, median of {runs} run(s)\n")
    print("| workload | rdna:emu ms | numpy ms | emu/numpy | steps | wave instr | M wave instr/s | us/step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, make in workloads.items():
        emu_fn = make("rdna:emu")
        emu_fn()  # build (LLVM) outside the counted and timed runs
        before = (runtime.steps, runtime.issued)
        emu = median_seconds(emu_fn, runs)
        steps = (runtime.steps - before[0]) / (runs + 1)
        issued = (runtime.issued - before[1]) / (runs + 1)
        ref = median_seconds(make("numpy"), runs)
        print(f"| {name} | {emu * 1e3:.1f} | {ref * 1e3:.2f} | {emu / ref:.0f}x | {steps:,.0f} | {issued:,.0f} | "
              f"{issued / emu / 1e6:.2f} | {emu / max(steps, 1) * 1e6:.1f} |")


if __name__ == "__main__":
    main()
