"""tg.distributed with real MPI processes: each test runs ``mpiexec -n K python worker.py MODE`` under a timeout
(the whole process group is killed if it runs over) and checks what the ranks computed or printed.

Needs mpi4py and mpiexec (``pip install 'tg-core[distributed]'``); skipped, saying so, without them.  The
kernels run on the numpy backend unless a test says otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
INSTALL = "pip install 'tg-core[distributed]'"
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
try:
    import mpi4py  # noqa: F401
except ImportError:
    pytest.skip(f"mpi4py is not installed: {INSTALL}", allow_module_level=True)
if MPIEXEC is None:
    pytest.skip(f"no mpiexec on PATH or beside {sys.executable}: {INSTALL} (MPICH's wheel brings one)",
                allow_module_level=True)

LIMIT = 180  # seconds any one mpiexec run may take (a cold clang cache compiles a few dozen kernels)
TOLERANCE = 1e-5  # on parameters of order 0.1-1 after 8 SGD steps: float32 sums in another order


def _processes_marked(marker: str) -> list[int]:
    """The processes whose environment holds ``marker`` (every process a run started inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def mpirun(n: int, *args: str, env: dict[str, str] | None = None, limit: float = LIMIT
           ) -> tuple[int, str, float]:
    """Run the worker on n ranks; return (exit status, output, seconds).  Past ``limit``, every process of the run
    is killed and the test fails; a process of the run still alive after mpiexec ended fails the test too.
    (MPICH's proxies and ranks each get a session of their own, so they are found by a marker in their
    environment, not by process group.)"""
    marker = f"TG_TEST_MPI_RUN=run-{os.getpid()}-{time.monotonic_ns()}"
    full_env = {**os.environ, "TG_BACKEND": "numpy", **(env or {}), "TG_TEST_MPI_RUN": marker.split("=")[1]}
    began = time.monotonic()
    proc = subprocess.Popen([str(MPIEXEC), "-n", str(n), sys.executable, str(WORKER), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=full_env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *_processes_marked(marker)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {' '.join(args)} still ran after {limit} s (killed):\n{out[-3000:]}")
    seconds = time.monotonic() - began
    deadline = time.monotonic() + 5  # ranks ended by an abort may take a moment to be reaped
    while (left := _processes_marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes {left} of the run outlived mpiexec"
    return proc.returncode, out, seconds


LAST_OUTPUT = ""  # what the last trained() run printed


def trained(tmp_path: Path, n: int, mode: str = "train", env: dict[str, str] | None = None
            ) -> list[dict[str, np.ndarray]]:
    out_dir = tmp_path / f"{mode}-{n}-{(env or {}).get('TG_BACKEND', 'numpy')}"
    out_dir.mkdir()
    rc, out, seconds = mpirun(n, mode, str(out_dir), "--steps", "8", "--bucket-mb", "0.0005", env=env)
    assert rc == 0, out
    print(f"{mode} on {n} processes: {seconds:.1f} s\n{out}")
    global LAST_OUTPUT
    LAST_OUTPUT = out
    ranks = []
    for r in range(n):
        with np.load(out_dir / f"rank{r}.npz") as z:
            ranks.append({k: z[k] for k in z.files})
    return ranks


def max_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    return trained(tmp_path_factory.mktemp("one"), 1)[0]


@pytest.mark.parametrize("n", [2, 4])
def test_the_same_global_batch_gives_the_same_parameters(tmp_path: Path, one_process: dict[str, np.ndarray],
                                                         n: int) -> None:
    """Each rank starts from other random values (the broadcast must fix them) and takes 1/n of every global
    batch; after 8 steps of SGD with momentum every rank holds the 1-process parameters."""
    ranks = trained(tmp_path, n)
    assert LAST_OUTPUT.count(": 4 buckets, allreduce") == n  # gradients went in 4 messages per step (cap 0.0005 MB)
    for r, params in enumerate(ranks):
        assert max_difference(params, ranks[0]) == 0.0, f"rank {r} differs from rank 0"
    difference = max_difference(ranks[0], one_process)
    print(f"1 vs {n} processes: largest parameter difference {difference:.3g}")
    assert difference < TOLERANCE
    moved = max_difference(one_process, {k: v * 0 for k, v in one_process.items()})
    assert moved > 0.1  # the tolerance is small next to the values it compares


def test_jit_train_step_replays_and_matches(tmp_path: Path, one_process: dict[str, np.ndarray]) -> None:
    """tg.distributed.jit_train_step: jitted forward/backward, allreduce outside, jitted optimizer step; 5 of 8
    steps are replays (the worker asserts it) and the result is the eager one."""
    ranks = trained(tmp_path, 2, mode="train-jit")
    assert max_difference(ranks[0], ranks[1]) == 0.0
    difference = max_difference(ranks[0], one_process)
    print(f"jit on 2 processes vs eager on 1: largest parameter difference {difference:.3g}")
    assert difference < TOLERANCE


def test_clang_backend(tmp_path: Path, one_process: dict[str, np.ndarray]) -> None:
    """Buffers cross through host memory, so a compiled backend averages the same way (2 ranks on tg-clang)."""
    probe = subprocess.run([sys.executable, "-c", "import tg; from tg.engine.device import device_state; "
                            "device_state('clang')"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "TG_BACKEND": "clang"})
    if probe.returncode != 0:
        pytest.skip(f"the clang backend is not available here: {probe.stderr.strip().splitlines()[-1:]}")
    ranks = trained(tmp_path, 2, env={"TG_BACKEND": "clang"})
    assert max_difference(ranks[0], ranks[1]) == 0.0
    assert max_difference(ranks[0], one_process) < TOLERANCE


def test_averaging_inside_a_jitted_step_is_refused(tmp_path: Path) -> None:
    rc, out, _ = mpirun(2, "jit-inside", str(tmp_path))
    assert rc == 0, out
    for r in range(2):
        assert f"rank {r} refused at call 2: DistributedDataParallel: the gradients of the previous forward were " \
               "never averaged" in out
    assert "jit_train_step" in out


def test_explicit_averaging_inside_jit_is_refused(tmp_path: Path) -> None:
    rc, out, _ = mpirun(2, "jit-sync", str(tmp_path))
    assert rc == 0, out
    assert out.count("refused: DistributedDataParallel.sync_gradients inside a tg.jit function") == 2, out
    assert out.count("refused: tg.distributed.all_reduce inside a tg.jit function") == 2, out
    assert out.count("refused: DistributedDataParallel: a forward inside a tg.jit function cannot broadcast rank 0's "
                     "buffers (broadcast_buffers=True)") == 2, out


def test_no_sync_accumulates_then_averages(tmp_path: Path) -> None:
    """2 ranks each take 12 of a global batch of 24 as 3 micro-batches: the first 2 under no_sync (the worker checks
    that no collective runs), the third outside, whose backward averages the accumulated sum; after 8 steps every
    rank holds what a plain model trained on the whole batch of 24 holds."""
    ranks = trained(tmp_path, 2, mode="no-sync")
    model = {k: v for k, v in ranks[0].items() if not k.startswith("reference.")}
    reference = {k.removeprefix("reference."): v for k, v in ranks[0].items() if k.startswith("reference.")}
    assert max_difference(model, {k: ranks[1][k] for k in model}) == 0.0
    difference = max_difference(model, reference)
    print(f"no_sync on 2 processes vs the whole batch on 1: largest parameter difference {difference:.3g}")
    assert difference < TOLERANCE


def _part(saved: dict[str, np.ndarray], prefix: str, running_only: bool = False) -> dict[str, np.ndarray]:
    return {k.removeprefix(prefix): v for k, v in saved.items()
            if k.startswith(prefix) and ("running" in k or not running_only)}


def test_broadcast_buffers_gives_every_rank_rank_zeros_running_statistics(tmp_path: Path) -> None:
    """BatchNorm under DDP, as in PyTorch: each rank's running statistics follow its own batches, and each forward
    first broadcasts rank 0's (the eval forward after training does); eager and jit_train_step agree; with
    broadcast_buffers=False the ranks keep their own."""
    r0, r1 = trained(tmp_path, 2, mode="buffers")
    assert max_difference(_part(r0, "before.", True), _part(r1, "before.", True)) > 1e-3  # each rank's own batches
    for prefix in ("eager.", "jit."):
        assert max_difference(_part(r0, prefix), _part(r1, prefix)) == 0.0, prefix
    assert max_difference(_part(r0, "eager.", True), _part(r0, "before.", True)) == 0.0  # rank 0's values
    difference = max_difference(_part(r0, "eager."), _part(r0, "jit."))
    print(f"BatchNorm under DDP, jit_train_step vs eager: largest difference {difference:.3g}")
    assert difference < TOLERANCE
    local0, local1 = _part(r0, "local."), _part(r1, "local.")
    assert max_difference({k: local0[k] for k in local0 if "running" in k},
                          {k: local1[k] for k in local1 if "running" in k}) > 1e-3
    assert max_difference({k: local0[k] for k in local0 if "running" not in k},
                          {k: local1[k] for k in local1 if "running" not in k}) == 0.0  # gradients still averaged


@pytest.fixture(scope="module")
def syncbn_one_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, np.ndarray], str]:
    return trained(tmp_path_factory.mktemp("syncbn"), 1, mode="syncbn")[0], LAST_OUTPUT


@pytest.mark.parametrize("n", [2, 4])
def test_sync_batchnorm_on_split_batches_matches_one_process(
        tmp_path: Path, syncbn_one_process: tuple[dict[str, np.ndarray], str], n: int) -> None:
    """SyncBatchNorm (BatchNorm1d and 2d converted): the global batch split over n ranks gives the parameters and
    running statistics of the whole batch on 1 process, where SyncBatchNorm is BatchNorm (the worker compares
    them); on several ranks it is refused inside tg.jit, saying why."""
    one, one_output = syncbn_one_process
    assert "SyncBatchNorm vs BatchNorm on 1 process: largest difference 0" in one_output, one_output
    ranks = trained(tmp_path, n, mode="syncbn")
    for r, saved in enumerate(ranks):
        assert max_difference(saved, ranks[0]) == 0.0, f"rank {r} differs from rank 0"
    difference = max_difference(ranks[0], one)
    print(f"SyncBatchNorm on {n} processes vs 1: largest difference {difference:.3g} (running statistics included)")
    assert difference < TOLERANCE
    assert max_difference({k: v for k, v in one.items() if "num_batches" not in k},
                          {k: v * 0 for k, v in one.items() if "num_batches" not in k}) > 0.1
    assert LAST_OUTPUT.count("refused: SyncBatchNorm: training on ") == n, LAST_OUTPUT


BOUND = 20.0  # seconds from launch to every rank gone, for a fault found by notice or abort (measured: ~2 s)


def test_a_rank_that_raises_stops_the_others(tmp_path: Path) -> None:
    rc, out, seconds = mpirun(4, "raise", str(tmp_path))
    print(f"rank 1 raised: all 4 ranks gone after {seconds:.1f} s (launch included)")
    assert rc != 0, out
    assert "tg.distributed: rank 1 (" in out and "raised ValueError: deliberate failure on rank 1" in out, out
    assert "aborting all 4 ranks" in out
    assert "stops: rank 1 (" in out, out  # another rank, waiting in an allreduce, said why it stopped
    assert seconds < BOUND


def test_a_rank_that_exits_early_is_named(tmp_path: Path) -> None:
    rc, out, seconds = mpirun(2, "exit", str(tmp_path))
    print(f"rank 1 exited: rank 0 stopped after {seconds:.1f} s (launch included)")
    assert rc != 0, out
    assert "rank 0 stops: rank 1 exited after" in out and "before joining gradient allreduce" in out, out
    assert seconds < BOUND


@pytest.mark.parametrize(("mode", "how"), [("kill", "killed by signal 9 (SIGKILL)"),
                                         ("os-exit", "exited with status 3 without telling tg.distributed")])
def test_a_rank_that_dies_without_a_word_is_named(tmp_path: Path, mode: str, how: str) -> None:
    """Rank 1 of 3 is killed by SIGKILL (or calls os._exit) in the middle of training: it cannot tell anyone, so its
    watchdog names it, then mpiexec ends the others at once; no process of the run is left (mpirun checks)."""
    rc, out, seconds = mpirun(3, mode, str(tmp_path))
    print(f"rank 1 {how}: all ranks gone after {seconds:.1f} s (launch included)")
    assert rc != 0, out
    assert "tg.distributed: rank 1 (pid " in out and f") died: {how}" in out, out
    assert out.count(") died: ") == 1, out  # the others, ended by mpiexec, are not reported as dead ranks
    assert seconds < BOUND


def test_a_hung_rank_times_out(tmp_path: Path) -> None:
    rc, out, seconds = mpirun(2, "hang", str(tmp_path), env={"TG_DIST_TIMEOUT": "3"})
    print(f"rank 1 hung: the others gave up after {seconds:.1f} s (timeout 3 s, launch included)")
    assert rc != 0, out
    assert ("rank 0: gradient allreduce (bucket 1 of 1) (collective 5) did not complete within 3 s "
            "(TG_DIST_TIMEOUT): rank 1 did not answer within 2 s (hung, or busy outside tg.distributed)") in out, out
    assert 3 < seconds < 3 + BOUND


def test_a_hung_rank_is_named_among_waiting_ones(tmp_path: Path) -> None:
    """Ranks 0, 2 and 3 wait in the allreduce; each asks the others where they are: only rank 1 is silent."""
    rc, out, seconds = mpirun(4, "hang", str(tmp_path), env={"TG_DIST_TIMEOUT": "3"})
    print(f"rank 1 hung among 4: the others gave up after {seconds:.1f} s (launch included)")
    assert rc != 0, out
    assert "did not complete within 3 s (TG_DIST_TIMEOUT): rank 1 did not answer within 2 s" in out, out
    assert "ranks 1," not in out and "rank 2 did not answer" not in out and "rank 3 did not answer" not in out
    assert seconds < 3 + BOUND


def test_a_shape_mismatch_is_found_at_start(tmp_path: Path) -> None:
    rc, out, _ = mpirun(2, "mismatch", str(tmp_path))
    assert rc != 0, out
    assert ("the model differs between ranks: rank 1 has '0.weight' with shape (17, 8) float32, rank 0 has (16, 8) "
            "float32") in out, out


def test_collectives_and_rank_zero_helpers(tmp_path: Path) -> None:
    rc, out, _ = mpirun(3, "ops", str(tmp_path))
    assert rc == 0, out
    assert out.count("print0 from rank") == 1 and "print0 from rank 0" in out
    assert all(f"rank {r} of 3, local rank {r}: ops ok" in out for r in range(3)), out
    assert (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize(("length", "flags"), [(10, []), (10, ["--drop-last"]), (9, ["--no-shuffle"])])
def test_sampler_shards_from_the_world(tmp_path: Path, length: int, flags: list[str]) -> None:
    rc, out, _ = mpirun(3, "sampler", str(tmp_path), "--length", str(length), *flags)
    assert rc == 0, out
    shards = [np.load(tmp_path / f"rank{r}.npz") for r in range(3)]
    for epoch in range(2):
        parts = [s[f"arr_{epoch}"] for s in shards]
        assert len({len(p) for p in parts}) == 1
        together = np.concatenate(parts)
        if "--drop-last" in flags:
            assert len(set(together.tolist())) == len(together) == length // 3 * 3
        else:
            assert set(together.tolist()) == set(range(length))
    if "--no-shuffle" not in flags:
        assert any((s["arr_0"] != s["arr_1"]).any() for s in shards)  # set_epoch changes the order


def test_one_process_without_mpiexec(tmp_path: Path) -> None:
    """Run directly with python, a script is a world of one: every collective is the identity."""
    rc = subprocess.run([sys.executable, str(WORKER), "ops", str(tmp_path)], capture_output=True, text=True,
                        timeout=LIMIT, env={**os.environ, "TG_BACKEND": "numpy"})
    assert rc.returncode == 0, rc.stdout + rc.stderr
    assert "rank 0 of 1, local rank 0: ops ok" in rc.stdout
