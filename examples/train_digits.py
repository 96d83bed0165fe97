"""Train an MLP and a small CNN on scikit-learn's handwritten digits with tg, then save and reload checkpoints.

The data (1,797 8x8 grayscale digits) ships inside scikit-learn: nothing is downloaded.  It runs on
whatever backend tg selects (``TG_BACKEND=clang``, ``TG_BACKEND=ptx:emu``, ...); ``--quick`` makes a
small run for slow backends such as emulators.

    python examples/train_digits.py                  # both models, default settings
    python examples/train_digits.py --model cnn --epochs 5 --checkpoint-dir /tmp/ckpt
    mpiexec -n 4 python examples/train_digits.py --distributed   # data-parallel over 4 processes (tg.distributed)

With ``--distributed`` (``pip install './core[distributed]'``), every process draws the same global batches and
trains on its own slice of each (the global batch size stays the same; it must divide by the number of
processes), gradients are averaged across processes after each backward, and rank 0 alone shows progress,
evaluates and writes the checkpoints.  BatchNorm's running statistics are rank 0's: DistributedDataParallel
broadcasts them before each step (``broadcast_buffers``, as in PyTorch); each rank normalizes with its own batch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tg
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tg import Tensor, checkpoint, nn, no_grad, optim
from tqdm import tqdm


@dataclass
class Data:
    x_train: np.ndarray  # (N, 1, 8, 8) float32 in [0, 1]
    y_train: np.ndarray  # (N,) int32
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class Recipe:
    """How one model trains by default."""

    epochs: int
    lr: float
    batch_size: int
    label_smoothing: float = 0.1  # the true class aims at 0.91 and the others at 0.01: less overconfident


RECIPES = {"mlp": Recipe(epochs=10, lr=3e-3, batch_size=64), "cnn": Recipe(epochs=5, lr=1e-2, batch_size=64)}


def load_data(seed: int, limit: int | None = None) -> Data:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    return Data(x_train, y_train, x_test, y_test)


class Standardize(nn.Module):
    """Shifts and scales each pixel by statistics of the training images.

    ``mean`` and ``std`` are buffers (no gradient): in the state dict, so a checkpoint carries them.
    """

    def __init__(self) -> None:
        self.mean = Tensor.zeros(1, 1, 8, 8)
        self.std = Tensor.ones(1, 1, 8, 8)

    def fit(self, images: np.ndarray) -> Standardize:
        self.mean.assign(Tensor(images.mean(0, keepdims=True)))
        self.std.assign(Tensor(images.std(0, keepdims=True) + 0.1))  # + 0.1: border pixels are almost constant
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def make_model(kind: str, standardize: Standardize | None = None) -> nn.Sequential:
    """The MLP or the CNN; without ``standardize`` its statistics are placeholders (a checkpoint fills them)."""
    first = standardize or Standardize()
    if kind == "mlp":
        return nn.Sequential(first, nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.2),
                             nn.Linear(256, 10))
    return nn.Sequential(
        first,
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # 16 x 4 x 4
        nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.ReLU(),                            # 32 x 2 x 2
        nn.Flatten(), nn.Linear(128, 10))


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    with no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(Tensor(x[start:start + batch_size]))
            correct += int((logits.numpy().argmax(-1) == y[start:start + batch_size]).sum())
    return correct / len(x)


def train(kind: str, data: Data, recipe: Recipe, seed: int, distributed: bool = False) -> tuple[nn.Module, float]:
    """Train one model; returns it and the seconds it took.  ``distributed``: this process is one rank of
    several (tg.distributed initialised); it trains on its slice of every global batch."""
    Tensor.manual_seed(seed)
    rng = np.random.default_rng(seed)  # the same batches on every rank
    model = make_model(kind, Standardize().fit(data.x_train))
    opt = optim.Adam(model.parameters(), lr=recipe.lr)
    steps = len(data.x_train) // recipe.batch_size  # full batches only: one kernel shape, compiled once
    rank, world = 0, 1
    forward: Callable[[Tensor], Tensor] = model

    def loss_and_logits(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = forward(x)
        return logits.cross_entropy(y, label_smoothing=recipe.label_smoothing), logits

    if distributed:
        import tg.distributed as dist

        rank, world = dist.get_rank(), dist.get_world_size()
        if recipe.batch_size % world:
            raise SystemExit(f"--batch-size {recipe.batch_size} does not divide among {world} processes")
        forward = ddp = dist.DistributedDataParallel(model)  # rank 0's initial values everywhere
        Tensor.manual_seed(seed + 1 + rank)  # each rank its own dropout masks
        # a jitted forward/backward, the gradients averaged across ranks, then a jitted optimizer step
        step = dist.jit_train_step(ddp, opt, loss_and_logits)
    else:
        @tg.jit  # after two ordinary calls and one traced call, each step replays the traced call's kernels
        def step(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            loss, logits = loss_and_logits(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss, logits

    per_rank = recipe.batch_size // world
    start = time.perf_counter()
    with tqdm(total=recipe.epochs * steps, desc=f"{kind} train", unit="step", file=sys.stdout,
              dynamic_ncols=True, disable=rank != 0) as bar:
        for epoch in range(recipe.epochs):
            model.train()
            order = rng.permutation(len(data.x_train))
            seen = correct = 0
            loss_sum = 0.0
            for i in range(steps):
                idx = order[i * recipe.batch_size:(i + 1) * recipe.batch_size][rank * per_rank:(rank + 1) * per_rank]
                loss, logits = step(Tensor(data.x_train[idx]), Tensor(data.y_train[idx]))
                loss_sum += loss.item() * len(idx)
                correct += int((logits.numpy().argmax(-1) == data.y_train[idx]).sum())
                seen += len(idx)
                bar.set_postfix(epoch=f"{epoch + 1}/{recipe.epochs}", loss=f"{loss_sum / seen:.3f}",
                                acc=f"{correct / seen:.1%}", refresh=False)
                bar.update()
    return model, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
    def per_model(field: str) -> str:
        return ", ".join(f"{name} {getattr(recipe, field)}" for name, recipe in RECIPES.items())

    parser.add_argument("--epochs", type=int,
                        help=f"epochs for every model (default: per model, {per_model('epochs')})")
    parser.add_argument("--batch-size", type=int,
                        help=f"images per step (default: per model, {per_model('batch_size')})")
    parser.add_argument("--lr", type=float, help=f"Adam's learning rate (default: per model, {per_model('lr')})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"))
    parser.add_argument("--quick", action="store_true",
                        help="a small run (1 epoch on 320 images) for slow backends such as emulators")
    parser.add_argument("--require-accuracy", type=float, metavar="FRACTION",
                        help="exit with status 1 if a model's test accuracy is below this (e.g. 0.97)")
    parser.add_argument("--distributed", action="store_true",
                        help="one rank of several: launch with mpiexec -n N (needs tg-core[distributed])")
    args = parser.parse_args(argv)

    rank = 0
    if args.distributed:
        import tg.distributed as dist

        dist.init()
        rank = dist.get_rank()
    say = print if rank == 0 else (lambda *_, **__: None)  # rank 0 alone reports
    say(f"tg {tg.__version__} on backend {tg.default_backend_name()}" +
        (f", {dist.get_world_size()} processes (MPI)" if args.distributed else ""))
    data = load_data(args.seed, limit=320 if args.quick else None)
    say(f"digits: {len(data.x_train)} training and {len(data.x_test)} test images of 8x8")
    kinds = ["mlp", "cnn"] if args.model == "both" else [args.model]
    failed = False
    for kind in kinds:
        default = RECIPES[kind]
        recipe = Recipe(epochs=args.epochs or (1 if args.quick else default.epochs), lr=args.lr or default.lr,
                        batch_size=args.batch_size or default.batch_size)
        model, seconds = train(kind, data, recipe, args.seed, args.distributed)
        if rank != 0:
            continue  # rank 0 evaluates and writes the checkpoint
        acc = accuracy(model, data.x_test, data.y_test)
        print(f"{kind}: test accuracy {acc:.2%} ({round(acc * len(data.y_test))}/{len(data.y_test)}) "
              f"after {recipe.epochs} epochs in {seconds:.1f} s")
        path = checkpoint.save(model, args.checkpoint_dir / f"digits_{kind}.safetensors",
                               metadata={"model": kind, "test_accuracy": f"{acc:.4f}"})
        restored = make_model(kind)
        checkpoint.load(restored, path)
        again = accuracy(restored, data.x_test, data.y_test)
        print(f"{kind}: checkpoint {path} reloaded, test accuracy {again:.2%}")
        if again != acc:
            print(f"{kind}: the reloaded model disagrees with the trained one", file=sys.stderr)
            failed = True
        if args.require_accuracy is not None and acc < args.require_accuracy:
            print(f"{kind}: test accuracy {acc:.2%} is below the required {args.require_accuracy:.2%}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
