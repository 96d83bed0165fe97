"""The ``clang`` emitter: turns a lowered kernel's micro-ops into one C file with one exported function.

The function's signature is ``void NAME(bufs..., vars..., int32_t start, int32_t end)``: it runs the kernel's
*work units* ``[start, end)`` of the ``units`` that its first line declares, so a runtime may split a launch
across cores by giving each core a share of the units.  ``NAME_dyn(bufs..., vars..., int32_t *next, int32_t
end, int32_t chunk)`` does the same with dynamic shares: each caller claims ``chunk`` units at a time from the
shared counter ``*next`` until it reaches ``end``.  ``NAME_par(bufs..., vars..., run, end, chunk, threads)``
hands the launch to the native thread pool's ``run`` function (:mod:`tg_clang.pool`), which calls the kernel on
its threads through ``NAME_args``, a version that takes its buffers and variables as one array.  A unit is a
thread (``gidx0``), a work group, or a tile of threads, as the emitter chose; the first line is a C comment a
runtime parses::

    /* tg-clang kernel=NAME units=4096 cost=1024 vars= */

``cost`` estimates the operations one unit runs, so the runtime keeps small launches on one core.  The body
comes from the lane renderer (:mod:`tg_clang.spmd`: SIMD across threads or across a reduction) where
:mod:`tg_clang.tiling` finds a tiling, else from the scalar renderer (:mod:`tg_clang.scalar`).
"""

from __future__ import annotations

import os

from tg.backends.contract import Capabilities, Emitter
from tg.codegen.uops import UOp

from tg_clang.cfile import dynamic_entry, header, kernel_params, launch_shape, thread_cost
from tg_clang.cprelude import PRELUDE
from tg_clang.scalar import ScalarRenderer

ALL_DTYPES = frozenset({"bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"})


def _env_int(key: str, default: int) -> int:
    raw = os.environ.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"environment variable {key}={raw!r} must be a positive integer")
    return int(raw)


def clang_capabilities() -> Capabilities:
    """What the C target declares to core.

    ``vector_width`` stays 1 by default: the lane renderer vectorizes across threads (8 float32 lanes per
    AVX2 register, several registers per tile), which needs each thread to handle one element; core's
    per-thread vectors would turn those contiguous loads into strided ones.  TG_CLANG_VECTOR_WIDTH and
    TG_CLANG_GROUP_SIZE switch core's vector lanes and work groups on, to prove those paths.
    """
    group = _env_int("TG_CLANG_GROUP_SIZE", 1)
    return Capabilities(dtypes=ALL_DTYPES, vector_width=_env_int("TG_CLANG_VECTOR_WIDTH", 1), group_size=group,
                        local_memory=(1 << 16) if group > 1 else 0, has_mulacc=True,
                        extra={"lanes": _env_int("TG_CLANG_LANES", 16), "rows": _env_int("TG_CLANG_ROWS", 6)})


def render_scalar(name: str, uops: list[UOp]) -> str:
    """The kernel as one C function whose work units are work groups (threads when there are none)."""
    groups, group_size = launch_shape(uops)
    params, variables = kernel_params(uops)
    renderer = ScalarRenderer(uops, {"gidx0": "gidx0", "lidx0": "lidx0"}, group_size)
    decls, phases = renderer.render()
    lines = [header(name, groups, thread_cost(uops) * group_size, variables, "scalar"), PRELUDE,
             *sorted(renderer.typedefs),
             f"void {name}({', '.join([*params, 'int32_t start', 'int32_t end'])}) {{",
             "  for (int32_t gidx0 = start; gidx0 < end; gidx0++) {"]
    lines += ["    " + d for d in decls]
    for phase in phases:
        if group_size > 1:
            lines.append(f"    for (int32_t lidx0 = 0; lidx0 < {group_size}; lidx0++) {{")
            lines += ["    " + line for line in phase]
            lines.append("    }")
        else:
            lines += ["  " + line for line in phase]
    lines += ["  }", "}", dynamic_entry(name, params), ""]
    return "\n".join(lines)


class ClangEmitter(Emitter):
    """Micro-ops to C for clang (any C11 compiler with clang's vector extensions)."""

    target = "clang"
    language = "c"

    def __init__(self, capabilities: Capabilities | None = None):
        self.capabilities = capabilities or clang_capabilities()

    def render(self, name: str, uops: list[UOp]) -> str:
        from tg_clang.tiling import render_tiled

        if os.environ.get("TG_CLANG_SPMD", "1") != "0":
            extra = self.capabilities.extra
            source = render_tiled(name, uops, int(extra.get("lanes", 16)), int(extra.get("rows", 6)))
            if source is not None:
                return source
        return render_scalar(name, uops)

