#!/usr/bin/env python
"""CPU benchmarks of tg's clang backend beside numpy, PyTorch (CPU) and tinygrad (CPU) when installed.

    python bench/cpu.py            # the full run (a few minutes)
    python bench/cpu.py --quick    # small sizes, two repeats: a smoke test for CI

Every figure is the median of several runs, all taken in this one process, in rounds that take the libraries in
turn (a shared machine whose load changes slows them alike); a result is checked against numpy's before it is
timed.  OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed before numpy loads, so numpy's BLAS picks its own
kernels for this CPU.  PyTorch and tinygrad are references only: nothing of tg depends on them
(``pip install torch==2.13.0 tinygrad==0.14.0`` to include them).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402


@dataclass
class Row:
    name: str
    unit: str  # "GFLOPS", "GB/s" (higher is better) or "ms", "us" (lower is better)
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        return self.unit not in ("ms", "us")


def run_times(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> float:
    return statistics.median(run_times(fn, repeat, warmup))


#: Rounds a row's runs are taken in, each implementation in turn per round: a machine whose load changes during a row
#: (a shared host) slows every implementation alike, so the ratios hold better than with each one's runs in a block.
ROUNDS = 3


class Peers:
    """The optional references: torch and tinygrad on the CPU, or None when not installed."""

    def __init__(self) -> None:
        self.torch: Any = None
        self.tiny: Any = None
        try:
            import torch

            torch.set_num_threads(os.cpu_count() or 1)
            self.torch = torch
        except ImportError:
            pass
        try:
            os.environ.setdefault("DEV", "CPU")  # tinygrad's device choice; set before it is imported
            from tinygrad import Device, Tensor

            self.tiny = Tensor
            self._tiny_device = Device
        except ImportError:
            pass

    def tiny_done(self, t: Any) -> Any:
        """Realize a tinygrad tensor and wait for the device."""
        t.realize()
        self._tiny_device[self._tiny_device.DEFAULT].synchronize()
        return t


def measure(rows: list[Row], name: str, unit: str, amount: float, impls: dict[str, Callable[[], Any]],
            repeat: int, show: bool = True) -> Row:
    """Time each implementation, ``repeat`` runs each taken in :data:`ROUNDS` rounds of every implementation in turn,
    and keep each one's median; ``amount`` is FLOPs or bytes per call (None for plain milliseconds)."""
    row = Row(name, unit)
    times: dict[str, list[float]] = {label: [] for label in impls}
    rounds = min(ROUNDS, repeat)
    for r in range(rounds):
        for label, fn in impls.items():
            time.sleep(0.2)  # let the previous library's worker threads stop spinning (OpenBLAS, OpenMP)
            times[label] += run_times(fn, repeat // rounds + (r < repeat % rounds))  # (a warm-up call each round)
    for label, runs in times.items():
        seconds = statistics.median(runs)
        row.figures[label] = {"ms": seconds * 1e3, "us": seconds * 1e6}.get(unit, amount / seconds / 1e9)
    rows.append(row)
    if show:
        print(f"  {name:<34} " + "  ".join(f"{k} {v:8.2f}" for k, v in row.figures.items()), file=sys.stderr)
    return row


def close(a: Any, b: Any, what: str, rtol: float = 1e-3) -> None:
    a = np.asarray(a, dtype=np.float64)
    err = np.max(np.abs(a - b)) / max(1e-30, np.max(np.abs(b)))
    if not err < rtol:
        raise AssertionError(f"{what}: relative error {err:.2e} against numpy")


def bench_matmul(rows: list[Row], peers: Peers, Tensor: Any, device: str, sizes: list[int], repeat: int) -> None:
    rng = np.random.default_rng(0)
    for n in sizes:
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        measure(rows, f"matmul fp32 {n}", "GFLOPS", 2.0 * n**3, _matmul_impls(a, b, peers, Tensor, device), repeat)


def _matmul_impls(a: np.ndarray, b: np.ndarray, peers: Peers, Tensor: Any, device: str) -> dict[str, Callable[[], Any]]:
    ta, tb = Tensor(a, device=device).realize(), Tensor(b, device=device).realize()
    close((ta @ tb).numpy(), a @ b, f"matmul {a.shape}")
    impls: dict[str, Callable[[], Any]] = {"tg": lambda: (ta @ tb).realize(), "numpy": lambda: a @ b}
    if peers.torch is not None:
        pa, pb = peers.torch.from_numpy(a), peers.torch.from_numpy(b)
        impls["torch"] = lambda: pa @ pb
    if peers.tiny is not None:
        xa, xb = peers.tiny(a).realize(), peers.tiny(b).realize()
        impls["tinygrad"] = lambda: peers.tiny_done(xa @ xb)
    return impls


def bench_elementwise(rows: list[Row], peers: Peers, Tensor: Any, device: str, n: int, repeat: int) -> None:
    rng = np.random.default_rng(1)
    x, y, z = (rng.standard_normal(n, dtype=np.float32) for _ in range(3))
    tx, ty, tz = (Tensor(v, device=device).realize() for v in (x, y, z))
    want = np.exp(np.maximum(x * y + z, 0) * 0.5)
    close(((tx * ty + tz).relu() * 0.5).exp().numpy(), want, "elementwise chain", 1e-5)
    impls: dict[str, Callable[[], Any]] = {
        "tg": lambda: ((tx * ty + tz).relu() * 0.5).exp().realize(),
        "numpy": lambda: np.exp(np.maximum(x * y + z, 0) * 0.5)}
    if peers.torch is not None:
        px, py, pz = (peers.torch.from_numpy(v) for v in (x, y, z))
        impls["torch"] = lambda: ((px * py + pz).relu() * 0.5).exp()
    if peers.tiny is not None:
        qx, qy, qz = (peers.tiny(v).realize() for v in (x, y, z))
        impls["tinygrad"] = lambda: peers.tiny_done(((qx * qy + qz).relu() * 0.5).exp())
    measure(rows, f"exp(relu(x*y+z)*0.5) {n >> 20}M", "GB/s", 16.0 * n, impls, repeat)
    dst = np.empty_like(x)
    measure(rows, f"copy bandwidth (np.copyto {n >> 20}M)", "GB/s", 8.0 * n,
            {"numpy": lambda: np.copyto(dst, x)}, repeat)


def bench_reductions(rows: list[Row], peers: Peers, Tensor: Any, device: str, n: int, softmax: tuple[int, int],
                     repeat: int) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(n, dtype=np.float32)
    tx = Tensor(x, device=device).realize()
    close(tx.sum().numpy(), np.sum(x, dtype=np.float64), "sum", 1e-4)
    impls: dict[str, Callable[[], Any]] = {"tg": lambda: tx.sum().realize(), "numpy": lambda: np.sum(x)}
    if peers.torch is not None:
        px = peers.torch.from_numpy(x)
        impls["torch"] = lambda: px.sum()
    if peers.tiny is not None:
        qx = peers.tiny(x).realize()
        impls["tinygrad"] = lambda: peers.tiny_done(qx.sum())
    measure(rows, f"sum {n >> 20}M floats", "GB/s", 4.0 * n, impls, repeat)

    s = rng.standard_normal(softmax, dtype=np.float32)
    ts = Tensor(s, device=device).realize()

    def np_softmax() -> np.ndarray:
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    close(ts.softmax(-1).numpy(), np_softmax(), "softmax", 1e-5)
    impls = {"tg": lambda: ts.softmax(-1).realize(), "numpy": np_softmax}
    if peers.torch is not None:
        ps = peers.torch.from_numpy(s)
        impls["torch"] = lambda: peers.torch.softmax(ps, -1)
    if peers.tiny is not None:
        qs = peers.tiny(s).realize()
        impls["tinygrad"] = lambda: peers.tiny_done(qs.softmax(-1))
    measure(rows, f"softmax {softmax}", "ms", 0, impls, repeat)


def bench_dispatch(rows: list[Row], peers: Peers, Tensor: Any, device: str, repeat: int) -> None:
    """The cost of one tiny op: a 16-element add, realized (tg: build the graph, schedule, find the kernel, launch)."""
    a, b = np.ones(16, np.float32), np.arange(16, dtype=np.float32)
    ta, tb = Tensor(a, device=device).realize(), Tensor(b, device=device).realize()
    close((ta + tb).numpy(), a + b, "tiny add")
    calls = 200  # per timed run: one op is too short for the clock

    def many(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(calls):
                fn()
        return run

    impls: dict[str, Callable[[], Any]] = {"tg": many(lambda: (ta + tb).realize()), "numpy": many(lambda: a + b)}
    if peers.torch is not None:
        pa, pb = peers.torch.from_numpy(a), peers.torch.from_numpy(b)
        impls["torch"] = many(lambda: pa + pb)
    if peers.tiny is not None:
        qa, qb = peers.tiny(a).realize(), peers.tiny(b).realize()
        impls["tinygrad"] = many(lambda: (qa + qb).realize())
    row = measure(rows, "tiny op: 16-element add (per op)", "us", 0, impls, repeat, show=False)
    row.figures = {k: v / calls for k, v in row.figures.items()}
    print(f"  {row.name:<34} " + "  ".join(f"{k} {v:8.2f}" for k, v in row.figures.items()), file=sys.stderr)


def bench_conv(rows: list[Row], peers: Peers, Tensor: Any, device: str, batch: int, repeat: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((batch, 16, 32, 32), dtype=np.float32)
    w = rng.standard_normal((32, 16, 3, 3), dtype=np.float32)
    tx, tw = Tensor(x, device=device).realize(), Tensor(w, device=device).realize()

    def np_conv() -> np.ndarray:
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # b c h w kh kw
        return np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)

    close(tx.conv2d(tw, padding=1).numpy(), np_conv(), "conv2d", 1e-4)
    impls: dict[str, Callable[[], Any]] = {"tg": lambda: tx.conv2d(tw, padding=1).realize(), "numpy": np_conv}
    if peers.torch is not None:
        px, pw = peers.torch.from_numpy(x), peers.torch.from_numpy(w)
        impls["torch"] = lambda: peers.torch.nn.functional.conv2d(px, pw, padding=1)
    if peers.tiny is not None:
        qx, qw = peers.tiny(x).realize(), peers.tiny(w).realize()
        impls["tinygrad"] = lambda: peers.tiny_done(qx.conv2d(qw, padding=1))
    flops = 2.0 * batch * 32 * 32 * 32 * 16 * 9
    measure(rows, f"conv2d ({batch},16,32,32)x(32,16,3,3) p1", "GFLOPS", flops, impls, repeat)


def bench_mlp(rows: list[Row], peers: Peers, Tensor: Any, device: str, batch: int, repeat: int) -> None:
    """One training step of 784-256-10 (ReLU, softmax cross-entropy, plain SGD), written out in each library.

    Two rows: the step replayed by ``tg.jit`` (beside tinygrad's TinyJit) and the step run eagerly (beside
    tinygrad without its jit); numpy and torch run eagerly in both, from the same measurement.
    """
    import tg
    from tg import no_grad

    rng = np.random.default_rng(4)
    x = rng.standard_normal((batch, 784), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    y = np.eye(10, dtype=np.float32)[labels]
    init = [rng.standard_normal((784, 256), dtype=np.float32) * 0.05, np.zeros(256, np.float32),
            rng.standard_normal((256, 10), dtype=np.float32) * 0.05, np.zeros(10, np.float32)]
    lr = 0.01
    tgx, tgy = Tensor(x, device=device).realize(), Tensor(y, device=device).realize()

    def tg_trainer() -> tuple[Callable[[], None], list[Any]]:
        params = [Tensor(p.copy(), device=device, requires_grad=True).realize() for p in init]

        def step() -> None:
            w1, b1, w2, b2 = params
            logits = (tgx @ w1 + b1).relu() @ w2 + b2
            loss = -(logits.log_softmax(-1) * tgy).sum() * (1.0 / batch)
            loss.backward()
            with no_grad():
                for p in params:
                    assert p.grad is not None
                    p.assign(p.detach() - p.grad * lr)
                    p.grad = None
                for p in params:
                    p.realize()

        return step, params

    def np_trainer() -> tuple[Callable[[], None], list[np.ndarray]]:
        npp = [p.copy() for p in init]

        def step() -> None:
            w1, b1, w2, b2 = npp
            pre = x @ w1 + b1
            h = np.maximum(pre, 0)
            logits = h @ w2 + b2
            e = np.exp(logits - logits.max(-1, keepdims=True))
            grad_logits = (e / e.sum(-1, keepdims=True) - y) / batch
            grad_h = (grad_logits @ w2.T) * (pre > 0)
            updates = [x.T @ grad_h, grad_h.sum(0), h.T @ grad_logits, grad_logits.sum(0)]
            for p, g in zip(npp, updates):
                np.subtract(p, lr * g, out=p)

        return step, npp

    tg_step, tg_params = tg_trainer()
    tg_jit_step, tg_jit_params = tg_trainer()
    tg_jit_step = tg.jit(tg_jit_step)
    np_step, np_params = np_trainer()
    for _ in range(6):  # the same steps from the same start must agree (the jit: 3 traced calls, 3 replays)
        tg_step()
        tg_jit_step()
        np_step()
    for p, q, r in zip(tg_params, tg_jit_params, np_params):
        close(p.numpy(), r, "MLP step", 1e-4)
        close(q.numpy(), r, "MLP step (tg.jit)", 1e-4)
    impls: dict[str, Callable[[], Any]] = {"tg": tg_jit_step, "tg eager": tg_step, "numpy": np_step}
    if peers.torch is not None:
        torch = peers.torch
        tparams = [torch.tensor(p, requires_grad=True) for p in init]
        px, plabels = torch.from_numpy(x), torch.from_numpy(labels)

        def torch_step() -> None:
            w1, b1, w2, b2 = tparams
            logits = torch.relu(px @ w1 + b1) @ w2 + b2
            loss = torch.nn.functional.cross_entropy(logits, plabels)
            loss.backward()
            with torch.no_grad():
                for p in tparams:
                    assert p.grad is not None
                    p.sub_(lr * p.grad)
                    p.grad = None

        impls["torch"] = torch_step
    if peers.tiny is not None:
        impls.update(_tiny_mlp_steps(peers, x, y, init, lr, batch))
    measured = measure(rows, f"MLP 784-256-10 train step b{batch}, tg.jit", "ms", 0, impls, repeat, show=False)
    figures = measured.figures
    eager = {"tg": figures.pop("tg eager"), **{k: figures[k] for k in ("numpy", "torch") if k in figures}}
    if "tinygrad eager" in figures:
        eager["tinygrad"] = figures.pop("tinygrad eager")
    rows.append(Row(f"MLP 784-256-10 train step b{batch}, eager", "ms", eager))
    for row in rows[-2:]:
        print(f"  {row.name:<34} " + "  ".join(f"{k} {v:8.2f}" for k, v in row.figures.items()), file=sys.stderr)


def _tiny_mlp_steps(peers: Peers, x: np.ndarray, y: np.ndarray, init: list[np.ndarray], lr: float,
                    batch: int) -> dict[str, Callable[[], Any]]:
    """tinygrad's step with its TinyJit ("tinygrad") and without ("tinygrad eager")."""
    T = peers.tiny

    def trainer() -> Callable[[], Any]:
        qparams = [T(p.copy()).realize() for p in init]
        qx, qy = T(x).realize(), T(y).realize()

        def step() -> Any:
            w1, b1, w2, b2 = qparams
            logits = (qx @ w1 + b1).relu() @ w2 + b2
            loss = -(logits.log_softmax(-1) * qy).sum() * (1.0 / batch)
            for p, g in zip(qparams, loss.gradient(*qparams)):
                p.assign(p - g * lr)
            T.realize(*qparams)
            return qparams[0]

        return step

    steps: dict[str, Callable[[], Any]] = {}
    try:
        from tinygrad import TinyJit

        eager, jitted = trainer(), TinyJit(trainer())
        for _ in range(3):
            peers.tiny_done(eager())
            peers.tiny_done(jitted())
        steps["tinygrad"] = lambda: peers.tiny_done(jitted())
        steps["tinygrad eager"] = lambda: peers.tiny_done(eager())
    except Exception as exc:  # a reference that cannot run is reported, not fatal
        print(f"  tinygrad MLP step failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return steps


_LOAD_SCRIPT = """
import sys, time
from pathlib import Path
from tg_clang.compiler import KernelCache
source = Path(sys.argv[1]).read_text()
cache = KernelCache(Path(sys.argv[2]))
start = time.perf_counter()
cache.load(source, sys.argv[3])
print(time.perf_counter() - start)
"""


def bench_compile(rows: list[Row], device: str, repeat: int) -> None:
    """Compile time of the kernels of the elementwise chain and a matmul (cold cache), and their load time
    from the disk cache in a fresh process."""
    from tg.engine.device import device_state
    from tg_clang.compiler import KernelCache

    runtime = device_state(device).backend.runtime
    sources = {b.name: key[1] for key, b in device_state(device).binaries.items() if hasattr(b, "strategy")}
    # one kernel of each kind a program is made of: the fused elementwise chain and a tiled matmul
    picks = [next((k, s) for k, s in sources.items() if k.startswith(prefix))
             for prefix in ("mul_add_max", "mul_r_add") if any(k.startswith(prefix) for k in sources)]
    if not picks or not hasattr(runtime, "cache"):
        return
    compile_ms, load_ms = Row("compile a kernel (cold cache)", "ms"), Row("load a cached kernel (new process)", "ms")
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in picks:
            times = []
            for i in range(max(1, repeat)):
                cache = KernelCache(directory=Path(tmp) / f"{name}{i}")
                start = time.perf_counter()
                cache.load(source, name)
                times.append(time.perf_counter() - start)
            compile_ms.figures[f"tg {name[:12]}"] = statistics.median(times) * 1e3
            src_file = Path(tmp) / f"{name}.c"
            src_file.write_text(source)
            argv = [sys.executable, "-c", _LOAD_SCRIPT, str(src_file), str(Path(tmp) / f"{name}0"), name]
            loads = [float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
                     for _ in range(max(3, repeat // 2))]
            load_ms.figures[f"tg {name[:12]}"] = statistics.median(loads) * 1e3
    rows += [compile_ms, load_ms]
    for row in (compile_ms, load_ms):
        print(f"  {row.name:<34} " + "  ".join(f"{k} {v:8.2f}" for k, v in row.figures.items()), file=sys.stderr)


def markdown_table(rows: list[Row]) -> str:
    """The figures as the README's markdown table: each library's figure, and tg's ratio to torch's (above 1: tg is
    faster)."""
    labels = ["tg", "numpy", "torch", "tinygrad"]
    lines = ["| benchmark | unit | " + " | ".join(labels) + " | tg vs torch |", "| --- " * (len(labels) + 3) + "|"]
    for row in rows:
        if not any(k in row.figures for k in labels):
            continue
        cells = [f"{row.figures[k]:.2f}" if k in row.figures else "—" for k in labels]
        ours, torch = row.figures.get("tg"), row.figures.get("torch")
        ratio = "—" if ours is None or torch is None else \
            f"{(ours / torch if row.higher_is_better else torch / ours):.2f}x"
        lines.append(f"| {row.name} | {row.unit} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def print_table(rows: list[Row]) -> None:
    labels = ["tg", "numpy", "torch", "tinygrad"]
    print(f"\n{'benchmark':<40} {'unit':<7}" + "".join(f"{lbl:>10}" for lbl in labels)
          + f"{'vs numpy':>10}{'vs torch':>10}{'vs tinyg':>10}")
    for row in rows:
        if not any(k in row.figures for k in labels):
            cells = "  ".join(f"{k} {v:.2f}" for k, v in row.figures.items())
            print(f"{row.name:<40} {row.unit:<7} {cells}")
            continue
        line = f"{row.name:<40} {row.unit:<7}" + "".join(
            f"{row.figures[k]:>10.2f}" if k in row.figures else f"{'-':>10}" for k in labels)
        ours = row.figures.get("tg")
        for ref in ("numpy", "torch", "tinygrad"):
            theirs = row.figures.get(ref)
            if ours is None or theirs is None:
                line += f"{'-':>10}"
            else:  # > 1 means tg is faster
                line += f"{(ours / theirs if row.higher_is_better else theirs / ours):>9.2f}x"
        print(line)
    print("\nratios: tg's speed over the reference's (above 1: tg is faster); medians of each measurement")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and two repeats (a CI smoke test)")
    parser.add_argument("--device", default="clang", help="the tg backend to measure (default: clang)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per figure (default 7, quick 2)")
    parser.add_argument("--no-peers", action="store_true", help="skip torch and tinygrad even when installed")
    parser.add_argument("--markdown", action="store_true", help="also print the figures as the README's table")
    args = parser.parse_args()
    repeat = args.repeat or (2 if args.quick else 7)
    from tg import Tensor

    peers = Peers() if not args.no_peers else Peers.__new__(Peers)
    if args.no_peers:
        peers.torch = peers.tiny = None
    print(f"tg backend {args.device}; numpy {np.__version__}; torch "
          f"{getattr(peers.torch, '__version__', 'not installed')}; tinygrad "
          f"{'installed' if peers.tiny is not None else 'not installed'}; {os.cpu_count()} CPUs", file=sys.stderr)
    rows: list[Row] = []
    q = args.quick
    bench_matmul(rows, peers, Tensor, args.device, [128, 256] if q else [512, 1024, 2048], repeat)
    bench_elementwise(rows, peers, Tensor, args.device, (1 << 20) if q else (16 << 20), repeat)
    bench_reductions(rows, peers, Tensor, args.device, (1 << 20) if q else (16 << 20),
                     (256, 1024) if q else (4096, 1024), repeat)
    bench_conv(rows, peers, Tensor, args.device, 4 if q else 32, repeat)
    bench_mlp(rows, peers, Tensor, args.device, 256, repeat)
    bench_dispatch(rows, peers, Tensor, args.device, repeat)
    if args.device.split(":")[0] == "clang":
        bench_compile(rows, args.device, repeat)
    print_table(rows)
    if args.markdown:
        print("\n" + markdown_table(rows))


if __name__ == "__main__":
    main()
