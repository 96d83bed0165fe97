"""LLVM's tools for AMDGPU: finding ``llvm-mc``, ``ld.lld`` and ``llvm-objdump``, and checking they can build gfx1100.

Each tool is looked for as ``TG_RDNA_LLVM_<TOOL>`` (a path or a name) if set, else under ``TG_RDNA_LLVM_BIN`` (a
folder) if set, else on PATH by its versioned Debian names, newest first (``llvm-mc-19`` ... ``llvm-mc-15``),
then the plain name.  LLVM 15 is the oldest that assembles gfx11.  Finding a tool is a PATH lookup; the version
check runs ``<tool> --version`` once per process, through tg's early-exec helper, with a timeout.  A missing or
too old LLVM raises :class:`ToolchainError`, naming the Debian packages that fix it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from tg.support.errors import BackendError

#: The oldest LLVM major version whose assembler knows gfx1100.
MIN_VERSION = 15
#: The versioned names tried, newest first.
VERSIONS = tuple(range(19, MIN_VERSION - 1, -1))
#: What to install on Debian/Ubuntu.
PACKAGES = "apt-get install llvm-19 lld-19"
#: How long one tool run may take before it is abandoned (seconds).
TIMEOUT = 120.0
#: The tools, by the name tg calls them, and the variable naming each one.
TOOLS = {"llvm-mc": "TG_RDNA_LLVM_MC", "ld.lld": "TG_RDNA_LLVM_LLD", "llvm-objdump": "TG_RDNA_LLVM_OBJDUMP",
         "llvm-readelf": "TG_RDNA_LLVM_READELF"}
_PACKAGE_OF = {"llvm-mc": "llvm-19", "ld.lld": "lld-19", "llvm-objdump": "llvm-19", "llvm-readelf": "llvm-19"}


class ToolchainError(BackendError):
    """LLVM's AMDGPU tools are missing, too old, or cannot build gfx1100; the message says what to install."""


@dataclass(frozen=True)
class Tool:
    """A found tool: its path and its LLVM version (major, minor, patch)."""

    name: str
    path: str
    version: tuple[int, int, int]

    @property
    def identity(self) -> str:
        """What a cache key needs to tell two builds apart: the tool's real path, size, time stamp and version."""
        real = os.path.realpath(self.path)
        st = os.stat(real)
        return f"{real}:{st.st_size}:{st.st_mtime_ns}:{'.'.join(map(str, self.version))}"


def _candidates(tool: str) -> list[str]:
    override = os.environ.get(TOOLS[tool], "").strip()
    if override:
        return [override]
    names = [f"{tool}-{v}" for v in VERSIONS] + [tool]
    folder = os.environ.get("TG_RDNA_LLVM_BIN", "").strip()
    if folder:
        return [os.path.join(folder, n) for n in names]
    return names


def find(tool: str) -> str | None:
    """The path of ``tool`` (``llvm-mc``, ``ld.lld``, ``llvm-objdump``), or None; cheap (PATH lookups only)."""
    for candidate in _candidates(tool):
        found = shutil.which(candidate)
        if found:
            return found
    return None


def missing_message(tool: str) -> str:
    origin = TOOLS[tool]
    where = (f" ({origin}={os.environ[origin]!r} names nothing runnable)" if os.environ.get(origin, "").strip()
             else f" (looked for {', '.join(_candidates(tool)[:2])} ... {_candidates(tool)[-1]})")
    return (f"tg-rdna: LLVM's {tool} was not found{where}. tg-rdna builds gfx1100 code objects with LLVM "
            f"{MIN_VERSION} or newer: install it (Debian/Ubuntu: {PACKAGES}; {tool} is in {_PACKAGE_OF[tool]}), "
            f"or set {origin} to the tool, or TG_RDNA_LLVM_BIN to the folder that holds it")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """The LLVM version in a tool's ``--version`` output (``LLVM version 19.1.7``, ``LLD 19.1.7``)."""
    m = re.search(r"(?:LLVM version|LLD)\s+(\d+)\.(\d+)(?:\.(\d+))?", text)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def run(argv: list[str], input: bytes | None = None, timeout: float = TIMEOUT) -> bytes:
    """Run an LLVM command in tg's early-exec helper; its stdout.  Failures raise ``CalledProcessError``."""
    from tg.support.helpers import early_exec

    return early_exec(argv, input=input, timeout=timeout)


@functools.cache
def _checked(tool: str, path: str) -> Tool:
    try:
        out = run([path, "--version"], timeout=30.0).decode(errors="replace")
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolchainError(f"tg-rdna: {path} --version failed ({exc}); {missing_message(tool)}") from exc
    version = parse_version(out)
    if version is None:
        raise ToolchainError(f"tg-rdna: cannot read the LLVM version of {path} from {out.strip()[:200]!r}; "
                             f"install LLVM {MIN_VERSION} or newer ({PACKAGES})")
    if version[0] < MIN_VERSION:
        raise ToolchainError(f"tg-rdna: {path} is LLVM {'.'.join(map(str, version))}, too old for gfx1100 (needs "
                             f"LLVM {MIN_VERSION} or newer): {PACKAGES}")
    if tool == "llvm-mc" and "amdgcn" not in out:
        raise ToolchainError(f"tg-rdna: {path} was built without the AMDGPU target (its --version lists no amdgcn); "
                             f"install Debian's LLVM ({PACKAGES})")
    return Tool(tool, path, version)


def require(tool: str) -> Tool:
    """``tool`` found and checked (LLVM >= 15 with AMDGPU); raises :class:`ToolchainError` otherwise."""
    path = find(tool)
    if path is None:
        raise ToolchainError(missing_message(tool))
    return _checked(tool, path)


def problem() -> str | None:
    """Why LLVM cannot build code objects here, or None when it can (for ``available()``)."""
    try:
        require("llvm-mc")
        require("ld.lld")
    except ToolchainError as exc:
        return str(exc)
    return None
