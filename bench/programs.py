#!/usr/bin/env python
"""Whole training programs timed per step: tg beside PyTorch (CPU, one thread) when it is installed.

    python bench/programs.py                   # on TG_BACKEND's choice (numpy when unset)
    python bench/programs.py --device clang    # another tg backend
    python bench/programs.py --quick           # fewer steps: a smoke test
    python bench/programs.py --markdown        # the table as Markdown (for an issue or a PR)

Programs:

- ``mnist1d cnn``: the MNIST-1D paper's CNN on synthetic data of MNIST-1D's shape: input (100, 1, 40), three
  convolutions of 25 channels (kernel 5, stride 2, padding 1, ReLU), a Linear to 10, cross entropy, Adam
  (lr 1e-2), batch 100, eager steps.  tg has no Conv1d: the convolutions are Conv2d over (100, 1, 1, 40) with
  (1, 5) kernels, which is the same arithmetic.  The last column projects 3,000 steps.
- ``digits cnn``: one step of examples/train_digits.py's CNN (its model, loss and Adam, batch 64, under
  ``tg.jit`` as the example runs it).
- ``char gpt``: one training step of examples/train_gpt.py's GPT (its model: 2 blocks, 64 wide, 4 heads; AdamW;
  batch 32 of 64 tokens, random tokens of its vocabulary's size), eagerly and under ``tg.jit``, beside the same
  model written in PyTorch (eager).

Every figure is the median of the timed steps after warm-up steps (which compile the kernels).  PyTorch runs
with one thread, as the issue's reference does; it is a reference only (``pip install torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MNIST1D_STEPS = 3000


def step_ms(step: Callable[[], Any], steps: int, warmup: int) -> tuple[float, float]:
    """The median wall-clock and CPU milliseconds of a step (CPU time: this process's, all its threads; on a
    machine shared with other work it moves less than wall-clock time)."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def mnist1d_data(batch: int = 100) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, 1, 40), dtype=np.float32), rng.integers(0, 10, batch).astype(np.int32)


def tg_mnist1d_step(x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
    from tg import Tensor, nn, optim

    Tensor.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 25, (1, 5), stride=(1, 2), padding=(0, 1)), nn.ReLU(),    # 25 x 19
        nn.Conv2d(25, 25, (1, 5), stride=(1, 2), padding=(0, 1)), nn.ReLU(),   # 25 x 9
        nn.Conv2d(25, 25, (1, 5), stride=(1, 2), padding=(0, 1)), nn.ReLU(),   # 25 x 4
        nn.Flatten(), nn.Linear(100, 10))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    tx, ty = Tensor(x.reshape(-1, 1, 1, 40)).realize(), Tensor(y).realize()

    def step() -> float:
        loss = model(tx).cross_entropy(ty)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_mnist1d_step(torch: Any, x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
                          nn.Conv1d(25, 25, 5, stride=2, padding=1), nn.ReLU(),
                          nn.Conv1d(25, 25, 5, stride=2, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(100, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y).long()

    def step() -> float:
        loss = nn.functional.cross_entropy(model(tx), ty)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def load_example(name: str) -> Any:
    """``examples/<name>.py`` as a module (its dataclasses look their module up, so it is registered)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def tg_digits_step(batch: int = 64) -> Callable[[], Any]:
    import tg
    from tg import Tensor, optim

    ex = load_example("train_digits")
    data = ex.load_data(0)
    recipe = ex.RECIPES["cnn"]
    Tensor.manual_seed(0)
    model = ex.make_model("cnn", ex.Standardize().fit(data.x_train))
    model.train()
    opt = optim.Adam(model.parameters(), lr=recipe.lr)

    @tg.jit
    def train_step(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = model(x)
        loss = logits.cross_entropy(y, label_smoothing=recipe.label_smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss, logits

    rng = np.random.default_rng(0)

    def step() -> float:
        idx = rng.choice(len(data.x_train), batch, replace=False)
        loss, logits = train_step(Tensor(data.x_train[idx]), Tensor(data.y_train[idx]))
        logits.numpy()
        return loss.item()

    return step


def torch_digits_step(torch: Any, batch: int = 64) -> Callable[[], Any]:
    nn = torch.nn
    ex = load_example("train_digits")
    data = ex.load_data(0)
    torch.manual_seed(0)
    mean, std = data.x_train.mean(0, keepdims=True), data.x_train.std(0, keepdims=True) + 0.1
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)

    def step() -> float:
        idx = rng.choice(len(data.x_train), batch, replace=False)
        x, y = torch.from_numpy((data.x_train[idx] - mean) / std), torch.from_numpy(data.y_train[idx]).long()
        loss = nn.functional.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


GPT = {"vocab": 96, "block": 64, "embd": 64, "heads": 4, "layers": 2, "batch": 32, "lr": 3e-3}


def gpt_batches(seed: int = 0) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        tokens = rng.integers(0, GPT["vocab"], (GPT["batch"], GPT["block"] + 1)).astype(np.int32)
        return tokens[:, :-1], tokens[:, 1:]

    return draw


def tg_gpt_step(jit: bool) -> Callable[[], Any]:
    import tg
    from tg import Tensor, optim

    ex = load_example("train_gpt")
    tg.manual_seed(0)
    model = ex.GPT(GPT["vocab"], GPT["block"], GPT["embd"], GPT["heads"], GPT["layers"])
    opt = optim.AdamW(model.parameters(), lr=GPT["lr"], weight_decay=0.01)
    train_step = ex.make_train_step(model, opt)
    run = tg.jit(train_step) if jit else train_step
    draw = gpt_batches()

    def step() -> float:
        x, y = draw()
        return float(run(Tensor(x), Tensor(y)).item())

    return step


def torch_gpt_step(torch: Any) -> Callable[[], Any]:
    """examples/train_gpt.py's model written in PyTorch: the same layers, sizes and optimizer."""
    nn, F = torch.nn, torch.nn.functional
    embd, heads = GPT["embd"], GPT["heads"]

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(embd), nn.LayerNorm(embd)
            self.qkv, self.proj = nn.Linear(embd, 3 * embd), nn.Linear(embd, embd)
            self.fc, self.out = nn.Linear(embd, 4 * embd), nn.Linear(4 * embd, embd)

        def forward(self, x: Any) -> Any:
            b, t, c = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
            q, k, v = (z.reshape(b, t, heads, c // heads).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
            return x + self.out(F.gelu(self.fc(self.ln2(x))))

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(GPT["vocab"], embd), nn.Embedding(GPT["block"], embd)
            self.blocks = nn.ModuleList([Block() for _ in range(GPT["layers"])])
            self.ln, self.head = nn.LayerNorm(embd), nn.Linear(embd, GPT["vocab"])

        def forward(self, idx: Any) -> Any:
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    torch.manual_seed(0)
    model = Model()
    opt = torch.optim.AdamW(model.parameters(), lr=GPT["lr"], weight_decay=0.01)
    draw = gpt_batches()

    def step() -> float:
        x, y = (torch.from_numpy(a).long() for a in draw())
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="the tg backend (default: TG_BACKEND's choice, else numpy)")
    parser.add_argument("--quick", action="store_true", help="few steps: a smoke test")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per program (default 30, quick 3)")
    parser.add_argument("--no-peers", action="store_true", help="skip PyTorch even when installed")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    if args.device:
        os.environ["TG_BACKEND"] = args.device
    os.environ.setdefault("TG_BACKEND", "numpy")
    steps, warmup = (args.steps or (3 if args.quick else 30)), 3
    torch: Any = None
    if not args.no_peers:
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
    import tg

    print(f"tg {tg.__version__} on {tg.default_backend_name()} (TG_NUMPY_CAPS={os.environ.get('TG_NUMPY_CAPS')!r}); "
          f"numpy {np.__version__}; torch {getattr(torch, '__version__', 'not installed')} (1 thread); "
          f"{steps} timed steps after {warmup}", file=sys.stderr)
    x, y = mnist1d_data()
    programs: list[tuple[str, Callable[[], Any], Callable[[], Any] | None]] = [
        ("mnist1d cnn, eager (b100)", lambda: tg_mnist1d_step(x, y),
         (lambda: torch_mnist1d_step(torch, x, y)) if torch is not None else None),
        ("digits cnn, tg.jit (b64)", tg_digits_step, (lambda: torch_digits_step(torch)) if torch is not None else None),
        ("char gpt, eager (b32, T64)", lambda: tg_gpt_step(jit=False),
         (lambda: torch_gpt_step(torch)) if torch is not None else None),
        ("char gpt, tg.jit (b32, T64)", lambda: tg_gpt_step(jit=True),
         (lambda: torch_gpt_step(torch)) if torch is not None else None),
    ]
    lines = []
    for name, make_tg, make_torch in programs:
        ours, ours_cpu = step_ms(make_tg(), steps, warmup)
        theirs = step_ms(make_torch(), steps, warmup)[0] if make_torch is not None else None
        print(f"  {name:<28} tg {ours:9.2f} ms (cpu {ours_cpu:.2f})"
              + (f"  torch {theirs:9.2f} ms" if theirs is not None else ""), file=sys.stderr)
        projected = f"{ours * MNIST1D_STEPS / 1e3:.0f} s" if name.startswith("mnist1d") else "-"
        lines.append([name, f"{ours:.2f}", f"{ours_cpu:.2f}", f"{theirs:.2f}" if theirs else "-",
                      f"{ours / theirs:.1f}x" if theirs else "-", projected])
    header = ["program", "tg ms/step", "tg cpu ms/step", "torch ms/step", "tg / torch", f"tg {MNIST1D_STEPS:,} steps"]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        print(f"\n{header[0]:<30}" + "".join(f"{h:>16}" for h in header[1:]))
        for line in lines:
            print(f"{line[0]:<30}" + "".join(f"{c:>16}" for c in line[1:]))


if __name__ == "__main__":
    main()
