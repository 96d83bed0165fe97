"""The ``clang`` emitter: turns a lowered kernel's micro-ops into one C file with one exported function.

The function's signature is ``void NAME(bufs..., int32_t start, int32_t end)``: it runs the kernel's *work
units* ``[start, end)`` of the ``units`` that the Program's ``global_size`` gives, so a runtime may split a launch
across cores by giving each core a share of the units.  ``NAME_dyn(bufs..., int32_t *next, int32_t end,
int32_t chunk)`` does the same with dynamic shares: each caller claims ``chunk`` units at a time from the
shared counter ``*next`` until it reaches ``end``.  ``NAME_par(bufs..., run, end, chunk, threads)``
hands the launch to the native thread pool's ``run`` function (:mod:`tg_clang.pool`), which calls the kernel on
its threads through ``NAME_args``, a version that takes its buffers as one array.  A unit is a
thread (``gidx0``), a work group, or a tile of threads, as the emitter chose.  The Program's attribute ``cost``
estimates the operations one unit runs, so the runtime keeps small launches on one core (the file's first line
repeats units, cost and strategy for a reader).  The body
comes from the lane renderer (:mod:`tg_clang.spmd`: SIMD across threads or across a reduction) where
:mod:`tg_clang.tiling` finds a tiling, else from the scalar renderer (:mod:`tg_clang.scalar`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping

from tg.backends.contract import Capabilities, Emitter, NotSymbolic
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.tiles import thread_cost
from tg.codegen.uops import Ops

from tg_clang.cfile import CKernel, dynamic_entry, file_start, kernel_params, launch_indices
from tg_clang.dynamic import refusal, same_order
from tg_clang.dynamic_rows import render_dynamic_rows
from tg_clang.scalar import ScalarRenderer

ALL_DTYPES = frozenset({"bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"})
#: C has every optional micro-op; fused multiply-adds keep a*b+c in one rounding.
RENDERS = frozenset({Ops.NEG, Ops.RECIP, Ops.SUB, Ops.CMPEQ, Ops.MOD, Ops.POW, Ops.DIV, Ops.MULACC})


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
                        launch_dims=2,
                        local_memory=(1 << 16) if group > 1 else 0, renders=RENDERS,
                        variables=frozenset({"int32", "float32"}),
                        extra={"lanes": _env_int("TG_CLANG_LANES", 16), "rows": _env_int("TG_CLANG_ROWS", 6)})


def render_scalar(kernel: LoweredKernel) -> CKernel:
    """The kernel as one C function whose work units are core's work groups (threads when there are none)."""
    name, uops = kernel.name, kernel.uops
    groups, group_size = math.prod(kernel.global_size), math.prod(kernel.local_size)
    params = kernel_params(uops)
    renderer = ScalarRenderer(uops, {"gidx0": "gidx0", "gidx1": "gidx1", "lidx0": "lidx0"}, group_size)
    decls, phases = renderer.render()
    cost = thread_cost(uops) * group_size
    # its vector types (named by lane type and count: equal names are equal types, which C11 lets a file define
    # twice) go with its own code, so that scalar kernels of any vectors build together
    lines = [*file_start(name, groups, cost, "scalar", []), *sorted(renderer.typedefs),
             f"void {name}({', '.join([*params, 'int32_t start', 'int32_t end'])}) {{"]
    if len(kernel.global_size) == 1:
        lines.append("  for (int32_t gidx0 = start; gidx0 < end; gidx0++) {")
    else:  # work unit u is group u % G0 of row u / G0 of the launch
        g0 = kernel.global_size[0]
        lines += ["  for (int32_t u = start; u < end; u++) {", "    " + launch_indices("u", g0)]
    lines += ["    " + d for d in decls]
    for phase in phases:
        if group_size > 1:
            lines.append(f"    for (int32_t lidx0 = 0; lidx0 < {group_size}; lidx0++) {{")
            lines += ["    " + line for line in phase]
            lines.append("    }")
        else:
            lines += ["  " + line for line in phase]
    lines += ["  }", "}", dynamic_entry(name, params), ""]
    return CKernel("\n".join(lines), groups, cost, "scalar")


class ClangEmitter(Emitter):
    """Micro-ops to C for clang (any C11 compiler with clang's vector extensions)."""

    target = "clang"
    language = "c"

    def __init__(self, capabilities: Capabilities | None = None):
        self.capabilities = capabilities or clang_capabilities()

    def render(self, kernel: LoweredKernel) -> Program:
        """The kernel's C file; its launch is ``units`` work units (``global_size``), each ``cost`` operations."""
        from tg_clang.tiling import render_tiled

        rendered = None
        spmd = os.environ.get("TG_CLANG_SPMD", "1") != "0"
        if kernel.dynamic:  # built for every value of a size: one thread at a time, if its bits are the exact ones
            reason = refusal(kernel)
            if reason is not None:
                raise NotSymbolic(f"tg-clang builds {kernel.name} for its exact sizes: {reason}")
            if spmd:  # a row-pass kernel (a softmax over the size): the exact kernels' row lanes where they take them
                rendered = render_dynamic_rows(kernel, self._gang()[0])
        elif spmd:
            rendered = render_tiled(kernel, *self._gang())
            if kernel.launch_vars and (rendered is None or not rendered.launch_vars):
                # the exact kernel may take lanes (tiles, lanes across a loop) this one would lose
                raise NotSymbolic(f"tg-clang renders {kernel.name} in lanes for its exact size only")
        launch_vars = rendered.launch_vars if rendered is not None else ()
        if rendered is None:
            rendered = render_scalar(kernel)
            # the scalar renderer's unit is a work group of core's launch: the one launch dim that follows a variable
            # times the others
            if len(kernel.launch_vars) == 1:
                (axis, size), = kernel.launch_vars
                others = math.prod(kernel.global_size) // kernel.global_size[axis]
                launch_vars = ((0, dataclasses.replace(size, blocks=size.blocks * others)),)
        program = Program.of(kernel, rendered.source, cost=rendered.cost, strategy=rendered.strategy,
                             lane_rule=rendered.lane_rule)
        return program.launched_as((rendered.units,), (1,), launch_vars)

    def same_bits(self, dynamic: Program, exact: LoweredKernel, values: Mapping[str, int]) -> bool:
        """A kernel for every size runs each reduction one thread at a time, or a row-pass kernel's loops across the
        exact kernels' narrowest gang at the sizes where those take row lanes (:mod:`tg_clang.dynamic_rows`): the
        exact kernel of a size gives its bits where it sums in that same order (lanes across a loop are chosen by
        the loop's length and a cost estimate)."""
        if os.environ.get("TG_CLANG_SPMD", "1") == "0":
            return True
        return same_order(dynamic, exact, values["n0"], *self._gang())

    def _gang(self) -> tuple[int, int]:
        """The lane renderer's gang and micro-tile rows (``TG_CLANG_LANES``, ``TG_CLANG_ROWS``)."""
        extra = self.capabilities.extra
        return int(extra.get("lanes", 16)), int(extra.get("rows", 6))
