"""``python -m tg_ptx.check``: prove tg-ptx on the GPU at hand in one command, and measure it beside PyTorch.

    python -m tg_ptx.check                 # on a machine with an NVIDIA GPU: the kit, then the benchmarks
    python -m tg_ptx.check --dry-run       # the same at small sizes on ptx:emu (no GPU; CI runs it)

It says which runtime and binding it used, runs tg's conformance kit on the ``ptx`` backend (in a
subprocess, under a time limit), then times matmuls (float32 and float16, 1024 to 4096), a fused
elementwise chain, a softmax and an MLP training step (eager and ``tg.jit``) beside PyTorch on the same GPU
from the same process, after checking each tg result against numpy.  Figures are medians; the markdown
table goes to stdout and to ``--out``.  The exit status is non-zero when the kit or a check fails.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Sizes:
    matmul: tuple[int, ...]
    chain: int
    softmax: tuple[int, int]
    batch: int


FULL = Sizes(matmul=(1024, 2048, 4096), chain=1 << 24, softmax=(4096, 1024), batch=256)
DRY = Sizes(matmul=(32,), chain=1 << 10, softmax=(16, 64), batch=8)


@dataclass
class Row:
    name: str
    unit: str  # "TFLOPS" / "GB/s": higher is better; "ms": lower is better
    figures: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    header: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = ["# tg-ptx check", "", *[f"- {h}" for h in self.header], ""]
        peers = [p for p in ("tg", "tg eager", "torch", "numpy") if any(p in r.figures for r in self.rows)]
        if self.rows:
            lines += ["| figure | unit | " + " | ".join(peers) + " | tg / " + (peers[-1] if len(peers) > 1 else "-")
                      + " |", "| --- | --- | " + " | ".join("---:" for _ in peers) + " | ---: |"]
            for r in self.rows:
                cells = [f"{r.figures[p]:.3g}" if p in r.figures else "—" for p in peers]
                ref = r.figures.get(peers[-1]) if len(peers) > 1 else None
                ratio = f"{r.figures['tg'] / ref:.2f}" if ref and "tg" in r.figures and peers[-1] != "tg" else "—"
                lines.append(f"| {r.name} | {r.unit} | " + " | ".join(cells) + f" | {ratio} |")
        if self.problems:
            lines += ["", "## Problems", *[f"- {p}" for p in self.problems]]
        return "\n".join(lines) + "\n"


def median_seconds(fn: Callable[[], Any], sync: Callable[[], None], repeat: int, warmup: int = 2,
                   budget: float = 5.0) -> float:
    """The median of ``repeat`` timed runs (fewer, but at least 3, once they have taken ``budget`` seconds)."""
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    while len(times) < repeat and (len(times) < 3 or sum(times) < budget):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_kit(backend: str, dry_run: bool, timeout: float, workers: int, log: Path, report: Report) -> None:
    """tg's conformance kit on ``backend`` in a subprocess (its own process group, killed at ``timeout``)."""
    argv = [sys.executable, "-m", "pytest", "--pyargs", "tg.testing.test_elementwise" if dry_run else "tg.testing",
            "-q", "-p", "no:cacheprovider", "-p", "tg_ptx.pytest_plugin"]
    if workers > 1:
        argv += ["-n", str(workers)]
    env = dict(os.environ, TG_BACKEND=backend)
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    text = log.read_text(errors="replace")
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", text.splitlines()[-1]
                                               if text.strip() else "")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no summary"
    took = time.perf_counter() - start
    report.header.append(f"conformance kit on `{backend}`: {summary} in {took:.0f} s (log: {log})")
    if code is None:
        report.problems.append(f"the conformance kit did not finish within {timeout:.0f} s")
    elif code != 0 or not counts.get("passed"):
        failed = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))][:20]
        report.problems.append(f"the conformance kit failed (exit {code}): " + "; ".join(failed))


class Peer:
    """The reference: PyTorch on the GPU when it has one, else numpy (the dry run)."""

    def __init__(self, want_gpu: bool) -> None:
        self.torch: Any = None
        if want_gpu:
            try:
                torch = importlib.import_module("torch")
                if torch.cuda.is_available():
                    self.torch = torch
            except ImportError:
                pass
        self.name = "torch" if self.torch is not None else "numpy"

    def describe(self) -> str:
        if self.torch is None:
            return "reference: numpy on the CPU (PyTorch with CUDA not found)"
        return f"reference: PyTorch {self.torch.__version__} on {self.torch.cuda.get_device_name(0)}"

    def put(self, x: np.ndarray) -> Any:
        return x if self.torch is None else self.torch.from_numpy(x).cuda()

    def sync(self) -> None:
        if self.torch is not None:
            self.torch.cuda.synchronize()


def close(got: np.ndarray, want: np.ndarray, what: str, report: Report, rtol: float) -> bool:
    err = float(np.max(np.abs(got.astype(np.float64) - want)) / max(float(np.max(np.abs(want))), 1e-30))
    if not np.isfinite(err) or err > rtol:
        report.problems.append(f"{what}: tg's result is off by {err:.2e} (relative to its largest value)")
        return False
    return True


def _product(a: Any, b: Any) -> Any:
    return a @ b


def _realized_product(a: Any, b: Any) -> Any:
    return (a @ b).realize()


def bench_matmul(report: Report, peer: Peer, device: str, sizes: tuple[int, ...], repeat: int) -> None:
    from tg import Tensor, dtypes

    rng = np.random.default_rng(0)
    for n in sizes:
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        for dt, rtol in ((dtypes.float32, 1e-4), (dtypes.float16, 2e-2)):
            ta, tb = Tensor(a, device=device).cast(dt).realize(), Tensor(b, device=device).cast(dt).realize()
            want = a.astype(dt.np).astype(np.float64) @ b.astype(dt.np).astype(np.float64)
            row = Row(f"matmul {dt.name} {n}", "TFLOPS")
            if close((ta @ tb).numpy(), want, row.name, report, rtol):
                row.figures["tg"] = 2 * n**3 / median_seconds(partial(_realized_product, ta, tb), lambda: None,
                                                             repeat) / 1e12
            pa, pb = peer.put(a.astype(dt.np)), peer.put(b.astype(dt.np))
            row.figures[peer.name] = 2 * n**3 / median_seconds(partial(_product, pa, pb), peer.sync, repeat) / 1e12
            report.rows.append(row)


def bench_chain(report: Report, peer: Peer, device: str, n: int, repeat: int) -> None:
    from tg import Tensor

    rng = np.random.default_rng(1)
    x, y, z = (rng.standard_normal(n, dtype=np.float32) for _ in range(3))
    tx, ty, tz = (Tensor(v, device=device).realize() for v in (x, y, z))
    want = np.exp(np.maximum(x.astype(np.float64) * y + z, 0) * 0.5)
    row = Row(f"exp(relu(x*y+z)*0.5), {n} floats", "GB/s")
    if close(((tx * ty + tz).relu() * 0.5).exp().numpy(), want, row.name, report, 1e-5):
        row.figures["tg"] = 16 * n / median_seconds(lambda: ((tx * ty + tz).relu() * 0.5).exp().realize(),
                                                    lambda: None, repeat) / 1e9
    px, py, pz = (peer.put(v) for v in (x, y, z))
    if peer.torch is not None:
        torch = peer.torch
        row.figures["torch"] = 16 * n / median_seconds(lambda: torch.exp(torch.relu(px * py + pz) * 0.5), peer.sync,
                                                       repeat) / 1e9
    else:
        row.figures["numpy"] = 16 * n / median_seconds(lambda: np.exp(np.maximum(px * py + pz, 0) * 0.5), peer.sync,
                                                       repeat) / 1e9
    report.rows.append(row)


def bench_softmax(report: Report, peer: Peer, device: str, shape: tuple[int, int], repeat: int) -> None:
    from tg import Tensor

    x = np.random.default_rng(2).standard_normal(shape, dtype=np.float32)
    tx = Tensor(x, device=device).realize()
    e = np.exp(x - x.max(-1, keepdims=True))
    row = Row(f"softmax {shape}", "ms")
    if close(tx.softmax(-1).numpy(), e / e.sum(-1, keepdims=True), row.name, report, 1e-5):
        row.figures["tg"] = median_seconds(lambda: tx.softmax(-1).realize(), lambda: None, repeat) * 1e3
    px = peer.put(x)
    if peer.torch is not None:
        row.figures["torch"] = median_seconds(lambda: peer.torch.softmax(px, -1), peer.sync, repeat) * 1e3
    else:
        row.figures["numpy"] = median_seconds(lambda: np.exp(px - px.max(-1, keepdims=True)), peer.sync, repeat) * 1e3
    report.rows.append(row)


def bench_mlp(report: Report, peer: Peer, device: str, batch: int, repeat: int) -> None:
    """A 784-256-10 training step (ReLU, softmax cross-entropy, SGD): tg eager, tg.jit, and the reference."""
    import tg
    from tg import Tensor, no_grad

    rng = np.random.default_rng(3)
    x = rng.standard_normal((batch, 784), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    y = np.eye(10, dtype=np.float32)[labels]
    init = [rng.standard_normal((784, 256), dtype=np.float32) * 0.05, np.zeros(256, np.float32),
            rng.standard_normal((256, 10), dtype=np.float32) * 0.05, np.zeros(10, np.float32)]
    tx, ty = Tensor(x, device=device).realize(), Tensor(y, device=device).realize()
    lr = 0.01

    def trainer() -> tuple[Callable[[], None], list[Any]]:
        params = [Tensor(p.copy(), device=device, requires_grad=True).realize() for p in init]

        def step() -> None:
            w1, b1, w2, b2 = params
            logits = (tx @ w1 + b1).relu() @ w2 + b2
            (-(logits.log_softmax(-1) * ty).sum() * (1.0 / batch)).backward()
            with no_grad():
                for p in params:
                    assert p.grad is not None
                    p.assign(p.detach() - p.grad * lr)
                    p.grad = None
                for p in params:
                    p.realize()

        return step, params

    def numpy_steps(count: int) -> list[np.ndarray]:
        w1, b1, w2, b2 = (p.copy() for p in init)
        for _ in range(count):
            pre = x @ w1 + b1
            h = np.maximum(pre, 0)
            e = np.exp((logits := h @ w2 + b2) - logits.max(-1, keepdims=True))
            g = (e / e.sum(-1, keepdims=True) - y) / batch
            gh = (g @ w2.T) * (pre > 0)
            w1, b1, w2, b2 = w1 - lr * (x.T @ gh), b1 - lr * gh.sum(0), w2 - lr * (h.T @ g), b2 - lr * g.sum(0)
        return [w1, b1, w2, b2]

    eager, eager_params = trainer()
    jitted, jit_params = trainer()
    jitted = tg.jit(jitted)
    for _ in range(4):  # 4 steps from the same start must agree with numpy's (the jit: traced, then replayed)
        eager()
        jitted()
    want = numpy_steps(4)
    ok = all(close(p.numpy(), w, "MLP step (eager)", report, 1e-4) for p, w in zip(eager_params, want))
    ok = all(close(p.numpy(), w, "MLP step (tg.jit)", report, 1e-4) for p, w in zip(jit_params, want)) and ok
    row = Row(f"MLP 784-256-10 train step b{batch}", "ms")
    if ok:
        row.figures["tg"] = median_seconds(jitted, lambda: None, repeat) * 1e3
        row.figures["tg eager"] = median_seconds(eager, lambda: None, repeat) * 1e3
    if peer.torch is not None:
        torch = peer.torch
        tparams = [torch.tensor(p, requires_grad=True, device="cuda") for p in init]
        px, plabels = peer.put(x), peer.put(labels)

        def torch_step() -> None:
            w1, b1, w2, b2 = tparams
            torch.nn.functional.cross_entropy(torch.relu(px @ w1 + b1) @ w2 + b2, plabels).backward()
            with torch.no_grad():
                for p in tparams:
                    p.sub_(lr * p.grad)
                    p.grad = None

        row.figures["torch"] = median_seconds(torch_step, peer.sync, repeat) * 1e3
    else:
        row.figures["numpy"] = median_seconds(lambda: numpy_steps(1), peer.sync, repeat) * 1e3
    report.rows.append(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tg_ptx.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="small sizes on ptx:emu (no GPU needed)")
    parser.add_argument("--out", type=Path, default=Path("tg-ptx-check.md"), help="where to write the table")
    parser.add_argument("--skip-kit", action="store_true", help="only the benchmarks")
    parser.add_argument("--kit-timeout", type=float, default=300.0, help="seconds the kit may take (default 300)")
    parser.add_argument("--kit-workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="pytest-xdist workers for the kit (default: up to 8; 1 runs it in one process)")
    parser.add_argument("--repeat", type=int, default=0, help="timed runs per figure (default 20; dry run 2)")
    args = parser.parse_args(argv)
    backend = "ptx:emu" if args.dry_run else "ptx"
    os.environ["TG_BACKEND"] = backend
    from tg.support.helpers import enable_early_exec

    enable_early_exec()  # ptxas runs in a helper forked now, before any CUDA library starts
    import tg
    from tg.backends.selection import select
    from tg.support.errors import BackendError

    report = Report()
    try:
        chosen = select(backend)
    except BackendError as exc:
        print(f"tg_ptx.check: {exc}", file=sys.stderr)
        return 2
    status = chosen.runtime.available()
    report.header += [f"backend `{chosen.name}`" + (f": {status.detail}" if status.detail else ""),
                      f"tg-core {tg.__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
                      f"{platform.machine()} with {os.cpu_count()} CPUs"]
    workers = args.kit_workers if importlib.util.find_spec("xdist") is not None else 1
    if not args.skip_kit:
        run_kit(backend, args.dry_run, args.kit_timeout, workers, args.out.with_suffix(".kit.log"), report)
    peer = Peer(want_gpu=not args.dry_run)
    report.header.append(peer.describe())
    sizes = DRY if args.dry_run else FULL
    repeat = args.repeat or (2 if args.dry_run else 20)
    stages: list[tuple[str, Callable[[], None]]] = [
        ("matmul", lambda: bench_matmul(report, peer, backend, sizes.matmul, repeat)),
        ("elementwise chain", lambda: bench_chain(report, peer, backend, sizes.chain, repeat)),
        ("softmax", lambda: bench_softmax(report, peer, backend, sizes.softmax, repeat)),
        ("MLP step", lambda: bench_mlp(report, peer, backend, sizes.batch, repeat))]
    for name, stage in stages:
        start = time.perf_counter()
        try:
            stage()
        except Exception as exc:  # one failing benchmark must not hide the others' figures
            report.problems.append(f"{name} raised {type(exc).__name__}: {exc}"[:2000])
        print(f"tg_ptx.check: {name} took {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    text = report.markdown()
    args.out.write_text(text)
    print(text)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
