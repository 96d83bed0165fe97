"""NVIDIA's ``ptxas``: finding it, assembling a kernel with it, and disassembling the result.

Every command runs through tg's early-exec helper (:func:`tg.support.helpers.early_exec`), a small process
started before any GPU runtime, so the (possibly CUDA-initialised) main process never forks.

``TG_PTX_VERIFY=sm_80,sm_90`` makes every runtime of this plugin assemble each kernel with ptxas for
those targets before running it; a rejected kernel fails with ptxas's message and the PTX lines around
the line it names.  ``TG_PTX_VERIFY_BATCH=N`` assembles N kernels per ptxas run instead (see
:class:`Verifier`).  ptxas is looked for on PATH, in ``$CUDA_HOME/bin``, ``/usr/local/cuda/bin`` and in
NVIDIA's wheels (``pip install 'tg-ptx[ptxas]'``).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tg.support.errors import BackendError
from tg.support.helpers import getenv

from tg_ptx.arch import parse_arch

REMEDY = "install the CUDA toolkit's ptxas, or pip install 'tg-ptx[ptxas]' (NVIDIA's nvidia-cuda-nvcc-cu12 wheel)"


class PtxasError(BackendError):
    """ptxas rejected a kernel; the message holds its diagnostics and the PTX around the line it names."""


def _candidates(tool: str) -> list[Path]:
    dirs: list[Path] = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            dirs.append(Path(os.environ[var]) / "bin")
    dirs.append(Path("/usr/local/cuda/bin"))
    for root in _nvidia_wheel_roots():
        for sub in ("cuda_nvcc", "cu13", "cu12", "cuda_nvdisasm", "cuda_cuobjdump"):
            dirs.append(root / sub / "bin")
    return [d / tool for d in dirs]


def _nvidia_wheel_roots() -> list[Path]:
    """The directories of the ``nvidia`` namespace package that NVIDIA's wheels install into."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def find_tool(tool: str) -> str | None:
    """The path of an NVIDIA command-line tool (``ptxas``, ``nvdisasm``, ``cuobjdump``), or None."""
    found = shutil.which(tool)
    if found:
        return found
    for path in _candidates(tool):
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def verify_targets() -> list[str]:
    """The targets named by TG_PTX_VERIFY (empty when unset)."""
    raw = getenv("TG_PTX_VERIFY", "")
    targets = [t.strip() for t in raw.split(",") if t.strip()]
    for t in targets:
        try:
            parse_arch(t)
        except ValueError as exc:
            raise BackendError(f"TG_PTX_VERIFY={raw!r}: {exc}") from None
    return targets


def assemble(source: str, arch: str, name: str = "kernel") -> bytes:
    """Assemble ``source`` with ptxas for ``arch``; the cubin's bytes, or PtxasError with the diagnostics."""
    from tg.support.early_exec import EarlyExecError
    from tg.support.helpers import early_exec

    ptxas = find_tool("ptxas")
    if ptxas is None:
        raise PtxasError(f"ptxas was not found (needed to check kernel {name} for {arch}). Fix: {REMEDY}")
    with tempfile.TemporaryDirectory(prefix="tg-ptx-") as tmp:
        ptx, cubin = Path(tmp) / f"{name}.ptx", Path(tmp) / f"{name}.cubin"
        ptx.write_text(source)
        try:
            early_exec([ptxas, f"-arch={arch}", "-o", str(cubin), str(ptx)])
        except EarlyExecError as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr)
            raise PtxasError(f"ptxas -arch={arch} rejected kernel {name}:\n{stderr.strip()}\n"
                             f"{excerpt(source, stderr)}") from None
        return cubin.read_bytes()


def diagnose(source: str, arch: str, name: str) -> str:
    """Why the driver may have refused ``source``: ptxas's message for ``arch`` when ptxas is installed."""
    if find_tool("ptxas") is None:
        return f"(ptxas is not installed, so there is no detail; fix: {REMEDY})"
    try:
        assemble(source, arch, name)
    except PtxasError as exc:
        return str(exc)
    return f"(ptxas accepts the kernel for {arch}: the driver's refusal is not a PTX error)"


def excerpt(source: str, diagnostics: str, context: int = 3) -> str:
    """The PTX lines around each line number ptxas names in ``diagnostics`` (marked with ``>``)."""
    lines = source.split("\n")
    numbers = sorted({int(n) for n in re.findall(r"line (\d+)", diagnostics)})
    if not numbers:
        return ""
    out = []
    for n in numbers[:3]:
        for i in range(max(1, n - context), min(len(lines), n + context) + 1):
            out.append(f"{'>' if i == n else ' '}{i:5d}  {lines[i - 1]}")
        out.append("")
    return "\n".join(out)


class Verifier:
    """Assembles kernels with ptxas for the TG_PTX_VERIFY targets, one at a time or in batches.

    With a batch size of 1 (the default) :meth:`add` assembles each kernel at once and raises
    :class:`PtxasError` for a rejected one.  With ``TG_PTX_VERIFY_BATCH=N`` it keeps kernels until it has
    ``N``, then assembles them as one module per target (ptxas starts once instead of N times) in a
    background thread while the program goes on; when a batch is rejected, its kernels are assembled one
    by one so that the error names the kernel, with ptxas's line and the PTX around it.  That error is
    raised by the next :meth:`add` or by :meth:`flush`, which checks everything still pending (tg-ptx's
    pytest plugin calls it at the end of a run, an exit handler otherwise).
    """

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []  # (kernel name, PTX)
        self.counts: dict[str, int] = {}  # kernels accepted per target
        self._running: Future[None] | None = None

    def add(self, source: str, name: str) -> None:
        targets = verify_targets()
        if not targets:
            return
        batch = getenv("TG_PTX_VERIFY_BATCH", 1)
        if batch <= 1:
            self._wait()
            self._check([(name, source)], targets)
            return
        _register_exit_check()
        self.pending.append((name, source))
        if len(self.pending) >= batch:
            self._wait()
            kernels, self.pending = self.pending, []
            self._running = _pool().submit(self._check, kernels, targets)

    def flush(self) -> None:
        """Assemble every pending kernel now; PtxasError for the first one ptxas rejects."""
        self._wait()
        kernels, self.pending = self.pending, []
        self._check(kernels, verify_targets())

    def _wait(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def _check(self, kernels: list[tuple[str, str]], targets: list[str]) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        for name, source in kernels:
            groups.setdefault(_header(source), []).append((name, source))
        for header, group in groups.items():
            if len(group) == 1:
                module, label = group[0][1], group[0][0]
            else:
                module = header + "\n".join(_renamed_entry(source, i) for i, (_, source) in enumerate(group))
                label = f"batch_of_{len(group)}"
            for arch in targets:
                try:
                    assemble(module, arch, label)
                except PtxasError:
                    for name, source in group:  # find the kernel at fault, and report it
                        assemble(source, arch, name)
                    raise
                self.counts[arch] = self.counts.get(arch, 0) + len(group)


def summary(counts: dict[str, int]) -> str:
    """What ptxas accepted, from the kernels accepted per target."""
    if not counts:
        return "ptxas checked no kernels"
    return "ptxas accepted " + ", ".join(f"{n} kernels for {arch}" for arch, n in sorted(counts.items()))


_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tg-ptxas")
    return _executor


_ENTRY = re.compile(r"^\s*(\.visible\s+|\.weak\s+)?\.entry\s", flags=re.M)


def _header(source: str) -> str:
    """The module directives (.version, .target, .address_size) of a one-kernel module."""
    head = source[: m.start()] if (m := _ENTRY.search(source)) else source
    return "".join(line + "\n" for line in head.splitlines() if line.strip().startswith((".version", ".target",
                                                                                         ".address_size")))


def _renamed_entry(source: str, index: int) -> str:
    """The entry of a one-kernel module, renamed ``b<index>_<name>`` so a batch has no duplicate names."""
    m = _ENTRY.search(source)
    body = source[m.start():] if m else source
    return re.sub(r"\.entry\s+([A-Za-z_$][\w$]*)", lambda m: f".entry b{index}_{m.group(1)}", body, count=1)


_exit_check_registered = False


def _register_exit_check() -> None:
    global _exit_check_registered
    if not _exit_check_registered:
        _exit_check_registered = True
        atexit.register(_check_at_exit)


def _check_at_exit() -> None:
    try:
        verifier.flush()
    except BackendError as exc:
        print(f"tg-ptx: TG_PTX_VERIFY: {exc}", file=sys.stderr)


#: The process's verifier, shared by both runtimes.
verifier = Verifier()


def verify(source: str, name: str) -> None:
    """Check ``source`` with ptxas for the TG_PTX_VERIFY targets (nothing when the variable is unset)."""
    verifier.add(source, name)


def disassemble(source: str, arch: str, name: str = "kernel") -> str | None:
    """SASS for ``source`` on ``arch`` (ptxas, then nvdisasm or cuobjdump), or None without those tools."""
    from tg.support.helpers import early_exec

    tool = find_tool("nvdisasm") or find_tool("cuobjdump")
    if find_tool("ptxas") is None or tool is None:
        return None
    cubin = assemble(source, arch, name)
    with tempfile.TemporaryDirectory(prefix="tg-ptx-") as tmp:
        path = Path(tmp) / f"{name}.cubin"
        path.write_bytes(cubin)
        argv = [tool, "-c", str(path)] if tool.endswith("nvdisasm") else [tool, "-sass", str(path)]
        return early_exec(argv).decode(errors="replace")
