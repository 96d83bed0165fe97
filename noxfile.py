"""One command for contributors: `nox` installs every package into fresh environments and runs all checks.

Sessions: lint (ruff), typecheck (mypy on core and the backend plugins), tests (core's suite), conformance (the kit
on the numpy backend, plain and with each lowering capability), plugins (plugin discovery against the test
distributions in tests/plugins/), one per backend plugin (ptx, clang; they also run 2,000 programs of the
differential fuzzer between them; rdna: LLVM assembles and links every kernel, the kit runs on rdna:emu), examples
(tg.nn and the digits example, which must reach 97%), and distributed (tg.distributed with MPI processes on this
machine).  `nox -s fuzz` (not run by plain `nox`) fuzzes for long.  `nox -s NAME` runs one; `nox -l` lists them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nox

ROOT = Path(__file__).parent
TEST_PLUGINS = sorted(str(p) for p in (ROOT / "tests" / "plugins").iterdir() if (p / "pyproject.toml").exists())

# Test folders that belong to a session of their own (they need a plugin or an extra installed).
PLUGIN_TEST_DIRS = ["plugin_system", "plugins", "ptx", "clang", "rdna", "distributed"]

nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False
# uv creates the environments and installs into them in seconds where pip takes ten or more; without uv installed,
# nox falls back to virtualenv and pip (session.install works the same on both)
nox.options.default_venv_backend = "uv|virtualenv"


def _installing_only(session: nox.Session) -> bool:
    """Whether nox runs with --install-only (session.run then runs nothing, and says so)."""
    return session.run("python", "-c", "", silent=True, log=False) is None


def _start(session: nox.Session, args: list[str], env: dict[str, str], what: str, tag: str
           ) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``args`` (a command of the session's environment, with the environment ``session.run`` would give it,
    ``env`` added) in the background, in a process group of its own, its output to the log ``<tag>.log`` in the
    session's tmp dir; the process and the log."""
    log = Path(session.create_tmp()) / f"{tag}.log"
    session.log(f"{what}, in the background: {' '.join(args)} (output: {log})")
    full = {**os.environ, **{k: v for k, v in session.env.items() if v is not None}}
    full["PATH"] = f"{session.bin}{os.pathsep}{full.get('PATH', '')}"
    location = getattr(session.virtualenv, "location", None)
    if location:
        full["VIRTUAL_ENV"] = location
    with log.open("wb") as out:
        job = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**full, **env},
                               start_new_session=True)
    return job, log


def _stop(job: subprocess.Popen[bytes]) -> None:
    """End a background job and whatever it started (pytest's workers): asked first, then killed."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        try:
            os.killpg(job.pid, sig)
        except ProcessLookupError:
            return
        try:
            job.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def beside(session: nox.Session, args: list[str], env: dict[str, str], what: str) -> Iterator[None]:
    """Run ``args`` (a command of the session's environment) in the background while the block runs: a one-process
    job beside a pytest run that does not fill both cores.  Its output is shown after the block; the session fails
    if it fails, and it is stopped if the block fails."""
    if _installing_only(session):
        yield
        return
    job, log = _start(session, args, env, what, "beside-" + "".join(c if c.isalnum() else "-" for c in what))
    try:
        yield
    except BaseException:
        _stop(job)
        raise
    code = job.wait()
    print(log.read_text(errors="replace"), end="", flush=True)
    if code != 0:
        session.error(f"{what} failed (exit code {code}): {' '.join(args)}")


def together(session: nox.Session, jobs: list[tuple[str, list[str], dict[str, str]]]) -> None:
    """Run ``jobs`` (what, a command of the session's environment, its environment variables), one per core at a
    time: one-process pytest runs side by side keep the cores busier than one after another with a worker per core
    (xdist's start-up and its last, lone tests leave a core idle: two of the numpy kit's runs took 41 s one after
    the other, 25 s side by side).  Each job's output is shown when it ends; the session fails, naming every job
    that failed, once all have ended, and the jobs still running are stopped if this is interrupted."""
    if _installing_only(session):
        return
    waiting = list(enumerate(jobs))
    running: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    failed: list[str] = []
    at_once = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                index, (what, args, env) = waiting.pop(0)
                running.append((what, *_start(session, args, env, what, f"job{index}")))
            ended = [r for r in running if r[1].poll() is not None]
            if not ended:
                time.sleep(0.1)
                continue
            for what, job, log in ended:
                running.remove((what, job, log))
                print(log.read_text(errors="replace"), end="", flush=True)
                session.log(f"{what}: {'passed' if job.returncode == 0 else f'FAILED (exit code {job.returncode})'}")
                if job.returncode != 0:
                    failed.append(what)
    finally:
        for _, job, _ in running:
            _stop(job)
    if failed:
        session.error("failed: " + "; ".join(failed))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")


#: The backend plugins, type-checked with core (their optional GPU runtimes, absent here, are skipped by
#: pyproject.toml's [tool.mypy] overrides).
BACKEND_PLUGINS = ["plugins/tg-clang", "plugins/tg-ptx", "plugins/tg-rdna"]


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on core and the three backend plugins, in one run (core is analysed once for all of them)."""
    # tg.distributed is checked against mpi4py's types; the plugins are installed for their declared dependencies
    session.install("mypy==2.4.1", "./core[testing,distributed]", *(f"./{p}" for p in BACKEND_PLUGINS))
    # one worker process per core (mypy's own parallel checking: 16 -> 9 s on two cores)
    session.run("mypy", "-n", "auto", "core/src/tg", *(f"{p}/src" for p in BACKEND_PLUGINS))


@nox.session
def tests(session: nox.Session) -> None:
    """Core's test suite, with tg-core installed from the local path (not editable) into a fresh venv."""
    session.install("./core[testing]", "pytest-xdist")
    session.run("pytest", "tests", "-n", "auto", *[f"--ignore=tests/{d}" for d in PLUGIN_TEST_DIRS], *session.posargs)


# The conformance kit on the built-in numpy backend, plain and with each lowering capability switched on,
# so an assembly emitter only ever receives lowerings already proven correct.  "" runs its fast path (whole-array
# numpy); every other setting its micro-op interpreter ("interpret": with the default capabilities).
# (Independent capabilities share a run: each run of the kit costs about 20 s of CI.)
NUMPY_CAPABILITIES = ["", "interpret", "no_recip,launch_dims=3",
                      "launch_dims=2,group_size=8,vector_width=4,upcast=16",
                      "unroll=8,upcast=16,vector_width=4,no_div",
                      "group_size=4,vector_width=2,no_div,no_pow,no_mod,no_sub,no_cmpeq,no_neg,mulacc,sin_is_sin2pi",
                      "no_float64,no_int64,no_float16,no_variables", "tensor_cores,sin_is_sin2pi,no_pow,mulacc",
                      "tensor_cores,group_size=128,vector_width=4"]
#: Further settings of a run above: kernels reused across outermost sizes are checked bit for bit against the ones
#: built for each exact size (on the interpreter with register tiles, vector lanes and unrolling, where reuse applies).
NUMPY_ENV = {"unroll=8,upcast=16,vector_width=4,no_div": {"TG_SYMBOLIC": "verify"}}


@nox.session
def conformance(session: nox.Session) -> None:
    """`TG_BACKEND=numpy pytest --pyargs tg.testing`, once per TG_NUMPY_CAPS setting above, one process per run and
    one run per core at a time (:func:`together`); arguments after `--` go to every run."""
    session.install("./core[testing]")
    kit = ["pytest", "--pyargs", "tg.testing", "-q", "-p", "no:cacheprovider", *session.posargs]
    jobs = []
    for caps in NUMPY_CAPABILITIES:
        extra = NUMPY_ENV.get(caps, {})
        jobs.append((f"conformance kit on numpy with TG_NUMPY_CAPS={caps!r}{f' and {extra}' if extra else ''}", kit,
                     {"TG_BACKEND": "numpy", "TG_NUMPY_CAPS": caps, **extra}))
    together(session, jobs)


#: Random programs the differential fuzzer runs per backend in CI, 2,000 in all: most on ptx:emu, whose programs run
#: in milliseconds, fewer on clang, which compiles each.
FUZZ_CI_EXAMPLES = {"ptx:emu": "1500", "clang": "500"}


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """A long differential fuzzing run (not part of `nox`): random programs on clang and ptx:emu against the numpy
    backend, TG_FUZZ_EXAMPLES each (default 20,000; e.g. `TG_FUZZ_EXAMPLES=100000 nox -s fuzz`)."""
    session.install("./core[testing]", "./plugins/tg-clang", "./plugins/tg-ptx")
    examples = os.environ.get("TG_FUZZ_EXAMPLES", "20000")
    cache = str(Path(session.create_tmp()) / "tg-cache")
    for backend, plugin in (("clang", "clang"), ("ptx:emu", "ptx")):
        session.run("pytest", "--pyargs", "tg.testing.test_fuzz", "-q", "--hypothesis-show-statistics",
                    *session.posargs, env={"TG_BACKEND": backend, "TG_PLUGINS": plugin, "TG_CACHE_DIR": cache,
                                           "TG_FUZZ_EXAMPLES": examples})


@nox.session
def plugins(session: nox.Session) -> None:
    """Plugin discovery against real distributions: a good one and broken ones, installed with entry points."""
    session.install("./core[testing]", *TEST_PLUGINS)
    session.run("pytest", "tests/plugin_system", *session.posargs)


@nox.session
def ptx(session: nox.Session) -> None:
    """tg-ptx: its tests, the conformance kit on ptx:emu with every kernel assembled by ptxas (sm_80, sm_90), and
    the GPU check script's dry run (``python -m tg_ptx.check --dry-run``).

    The kit runs on the PTX emulator; every kernel it emits is also assembled by NVIDIA's ptxas for sm_80 and
    sm_90 (in batches).  Without a CUDA toolkit, ptxas comes from NVIDIA's wheel (the ``tg-ptx[ptxas]``
    extra); if even that cannot be had, the check is skipped, saying so (with CI set, the session fails).
    """
    session.install("./core[testing]", "./plugins/tg-ptx", "pytest-xdist")
    env = {"TG_PLUGINS": "ptx"}
    session.run("pytest", "tests/ptx", "-n", "auto", *session.posargs, env=env)

    def ptxas() -> str:
        found = session.run("python", "-c", "from tg_ptx.ptxas import find_tool; print(find_tool('ptxas') or '')",
                            silent=True, env=env)
        return found.strip() if isinstance(found, str) else ""

    found = ptxas()
    if not found:
        session.install("./plugins/tg-ptx[ptxas]", success_codes=[0, 1, 2])
        found = ptxas()
    verify = {"TG_PTX_VERIFY": "sm_80,sm_90", "TG_PTX_VERIFY_BATCH": "200"} if found else {}
    if not verify:
        message = ("ptxas not found: the kit runs on ptx:emu without the assembler check "
                   "(install the CUDA toolkit, or pip install './plugins/tg-ptx[ptxas]')")
        session.error(message) if os.environ.get("CI") else session.warn(message)
    fuzz = ["pytest", "--pyargs", "tg.testing.test_fuzz", "-q", "-p", "no:cacheprovider"]
    with beside(session, fuzz, {**env, "TG_BACKEND": "ptx:emu", "TG_FUZZ_EXAMPLES": FUZZ_CI_EXAMPLES["ptx:emu"]},
                "differential fuzzer on ptx:emu"):
        session.run("pytest", "--pyargs", "tg.testing", "-n", "auto", "-p", "tg_ptx.pytest_plugin",
                    *session.posargs, env={**env, "TG_BACKEND": "ptx:emu", **verify})
    # the one-command GPU check, at small sizes on the emulator, so that it never rots
    session.run("python", "-m", "tg_ptx.check", "--dry-run", "--out", f"{session.create_tmp()}/tg-ptx-check.md",
                env=env)


@nox.session
def rdna(session: nox.Session) -> None:
    """tg-rdna: its tests (every corpus kernel assembled and linked by LLVM, the emulator's instruction tests), then
    the conformance kit on rdna:emu (kernels built into code objects by llvm-mc + ld.lld, a schedule's new kernels
    together, and run by the emulator from LLVM's disassembly of them), and beside it the digits example's quick run
    trained on rdna:emu (both models must pass 50% test accuracy, where chance is 10%).

    Needs LLVM 15 or newer with lld (Debian 12: `apt-get install -y llvm-19 lld-19`; CI's .ci/run installs them).
    Without it the session fails under CI (CI set) and is skipped elsewhere.  Code objects are cached in the
    session's tmp dir.
    """
    session.install("./core[testing,examples]", "./plugins/tg-rdna", "pytest-xdist")
    env = {"TG_PLUGINS": "rdna", "TG_CACHE_DIR": f"{session.create_tmp()}/tg-cache"}
    problem = session.run("python", "-c", "from tg_rdna.toolchain import problem; print(problem() or '')",
                          silent=True, env=env)
    problem = problem.strip() if isinstance(problem, str) else ""
    if problem:
        session.error(problem) if os.environ.get("CI") else session.skip(problem)
    session.run("pytest", "tests/rdna", "-n", "auto", *session.posargs, env=env)
    digits = ["python", "examples/train_digits.py", "--quick", "--require-accuracy", "0.5", "--checkpoint-dir",
              f"{session.create_tmp()}/checkpoints"]
    with beside(session, digits, {**env, "TG_BACKEND": "rdna:emu"}, "digits example on rdna:emu"):
        session.run("pytest", "--pyargs", "tg.testing", "-q", "-n", "auto", "-p", "no:cacheprovider",
                    *session.posargs, env={**env, "TG_BACKEND": "rdna:emu"})


@nox.session
def clang(session: nox.Session) -> None:
    """The clang CPU backend: its own tests, the conformance kit on it, and a smoke run of bench/cpu.py.

    Needs clang (Debian 12: `apt-get install -y clang`, clang 14; CI's .ci/run installs it).  Without it the
    session fails under CI (CI set) and is skipped elsewhere.  Kernels are cached in the session's tmp dir.
    """
    import shutil

    compiler = os.environ.get("TG_CC") or "clang"
    if shutil.which(compiler) is None:
        message = f"{compiler} not found: apt-get install clang (or set TG_CC to a clang binary)"
        session.error(message) if os.environ.get("CI") else session.skip(message)
    session.install("./core[testing]", "./plugins/tg-clang", "pytest-xdist")
    env = {"TG_PLUGINS": "clang", "TG_CACHE_DIR": str(Path(session.create_tmp()) / "tg-cache")}
    session.run("pytest", "tests/clang", "-n", "auto", *session.posargs, env=env)
    # a cold kit run is mostly compiling ~1,700 kernels: one pytest worker per core compiles them in parallel
    fuzz = ["pytest", "--pyargs", "tg.testing.test_fuzz", "-q", "-p", "no:cacheprovider"]
    with beside(session, fuzz, {**env, "TG_BACKEND": "clang", "TG_FUZZ_EXAMPLES": FUZZ_CI_EXAMPLES["clang"]},
                "differential fuzzer on clang"):
        session.run("pytest", "--pyargs", "tg.testing", "-q", "-n", "auto", env={**env, "TG_BACKEND": "clang"})
    session.run("python", "bench/cpu.py", "--quick", "--no-peers", env={**env, "TG_BACKEND": "clang"})


@nox.session
def distributed(session: nox.Session) -> None:
    """tg.distributed over MPI (the tg-core[distributed] extra: mpi4py and MPICH's wheel, which brings mpiexec):
    tests/distributed launches 1 to 4 local processes per test under a timeout; one test also runs tg-clang when
    clang is installed.  Then the digits example trains its MLP data-parallel on 2 processes (at least 95%), and
a small run of bench/distributed.py."""
    session.install("./core[testing,distributed,examples]", "./plugins/tg-clang")
    env = {"TG_CACHE_DIR": str(Path(session.create_tmp()) / "tg-cache")}
    session.run("pytest", "tests/distributed", *session.posargs, env=env)
    session.run("mpiexec", "-n", "2", "python", "examples/train_digits.py", "--distributed", "--model", "mlp",
                "--require-accuracy", "0.95", "--checkpoint-dir", str(Path(session.create_tmp()) / "checkpoints"),
                env={**env, "TG_BACKEND": "numpy"})
    session.run("python", "bench/distributed.py", "--quick", "--hidden", "64", "--batch", "32", env=env)  # smoke


@nox.session
def examples(session: nox.Session) -> None:
    """tg.nn, optimizers and checkpoints (tests/nn), and beside them the digits example end to end on the default
    backend: it fails unless both the MLP and the CNN reach 97% test accuracy.  Checkpoints go to the session's tmp
    dir."""
    session.install("./core[testing,examples]")
    together(session, [("tests/nn", ["pytest", "tests/nn", *session.posargs], {}),
                       ("digits example", ["python", "examples/train_digits.py", "--require-accuracy", "0.97",
                                           "--checkpoint-dir", str(Path(session.create_tmp()) / "checkpoints")], {})])
