"""The PTX target: which ``sm_XX`` the emitter writes for, and the PTX ISA version that target needs.

``TG_PTX_ARCH=sm_XX`` chooses it.  Unset, it is the compute capability of the GPU once the CUDA runtime
has opened one, else ``sm_80`` (the oldest target the emitter supports; the driver JIT-compiles sm_80
PTX for every newer GPU).
"""

from __future__ import annotations

import re

from tg.support.helpers import getenv

DEFAULT_ARCH = "sm_80"
MIN_SM = 80

#: The first PTX ISA version that knows each target (from the PTX ISA release notes).
_ISA_FOR_SM: dict[int, tuple[int, int]] = {80: (7, 0), 86: (7, 1), 87: (7, 4), 89: (7, 8), 90: (7, 8),
                                          100: (8, 6), 101: (8, 6), 103: (8, 8), 120: (8, 7), 121: (8, 8)}
#: Architecture-specific targets (``sm_90a``) need at least this ISA version.
_ISA_FOR_SUFFIX: dict[str, tuple[int, int]] = {"a": (8, 0), "f": (8, 8)}

_detected: str | None = None


def set_detected_arch(arch: str | None) -> None:
    """Called by the CUDA runtime once it has opened a device (``sm_86`` ...)."""
    global _detected
    _detected = arch


def parse_arch(arch: str) -> tuple[int, str]:
    """``"sm_90a"`` -> ``(90, "a")``; a malformed or too old target raises ValueError saying what is allowed."""
    m = re.fullmatch(r"sm_(\d+)([af]?)", arch.strip())
    if m is None:
        raise ValueError(f"{arch!r} is not a PTX target: expected sm_XX such as sm_80 or sm_90")
    sm = int(m.group(1))
    if sm < MIN_SM:
        raise ValueError(f"{arch!r} is too old: tg-ptx emits PTX for sm_{MIN_SM} and newer")
    return sm, m.group(2)


def target_arch() -> str:
    """The ``.target`` the emitter writes: TG_PTX_ARCH, else the open GPU's, else sm_80."""
    arch = getenv("TG_PTX_ARCH", "") or _detected or DEFAULT_ARCH
    try:
        parse_arch(arch)
    except ValueError as exc:
        raise ValueError(f"TG_PTX_ARCH: {exc}") from None
    return arch.strip()


def isa_version(arch: str) -> str:
    """The ``.version`` line's value for ``arch``: the oldest PTX ISA that knows it (``"7.0"`` for sm_80)."""
    sm, suffix = parse_arch(arch)
    version = _ISA_FOR_SM[max(k for k in _ISA_FOR_SM if k <= sm)]
    if suffix:
        version = max(version, _ISA_FOR_SUFFIX[suffix])
    return f"{version[0]}.{version[1]}"
