"""Capabilities: what a target declares it can do, and so what the lowering and the rewrites fit a kernel to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Capabilities:
    """What an emitter's target can do; core's lowering rewrites micro-ops to fit these.

    ``dtypes`` names the dtypes the target computes in (e.g. ``{"float32", "int32", "bool"}``);
    ``no_div`` asks for division as reciprocal-then-multiply; ``sin_is_sin2pi`` means the hardware
    sine computes sin(2*pi*x); ``vector_width`` is the widest float vector type (1 = none);
    ``local_memory`` is the bytes of shared/local memory per work group (0 = none);
    ``upcast`` is how many outputs of a reduction one thread may compute (a register tile: loads are
    shared across it; 1 = one output per thread);
    ``group_size`` is how many threads the lowering puts in a work group (1: no work groups, every
    thread is ``gidx0``; above 1, ``gidx0`` is the group and ``lidx0`` the thread within it);
    ``has_pow`` is False when pow must be lowered through exp2/log2; ``has_mulacc`` asks for ``a*b+c``
    as one MULACC micro-op.
    ``extra`` carries target-specific settings that only the plugin's own passes read.
    """

    dtypes: frozenset[str] = frozenset({"float32", "int32", "bool"})
    no_div: bool = False
    sin_is_sin2pi: bool = False
    vector_width: int = 1
    local_memory: int = 0
    group_size: int = 1
    upcast: int = 1
    has_pow: bool = True
    has_mulacc: bool = False
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
