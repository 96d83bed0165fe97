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

from tg.backend_types import Capabilities, Emitter
from tg.uops import Ops, PtrDType, UOp

from tg_clang.cprelude import PRELUDE, storage_type
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


def kernel_params(uops: list[UOp]) -> tuple[list[str], list[str]]:
    """(C parameter declarations, names of integer variables) in the order a launch passes them."""
    params: list[tuple[int, str]] = []
    variables: list[str] = []
    for u in uops:
        if u.op is Ops.DEFINE_GLOBAL:
            assert isinstance(u.dtype, PtrDType)
            index, name, writable = u.arg
            const = "" if writable else "const "
            params.append((index, f"{const}{storage_type(u.dtype.base)} *restrict {name}"))
        elif u.op is Ops.DEFINE_VAR and u.arg not in variables:
            variables.append(u.arg)
    return [p for _, p in sorted(params)] + [f"int32_t {v}" for v in variables], variables


def launch_shape(uops: list[UOp]) -> tuple[int, int]:
    """(number of work groups, threads per group) that the micro-ops' SPECIALs declare."""
    sizes = {u.arg[0]: u.arg[1] for u in uops if u.op is Ops.SPECIAL}
    return sizes.get("gidx0", 1), sizes.get("lidx0", 1)


def thread_cost(uops: list[UOp]) -> int:
    """Rough operation count of one thread: ops weighted by the trip counts of their loops."""
    cost, trips = 0, [1]
    for u in uops:
        if u.op is Ops.RANGE:
            lo, hi = (s.arg if s.op is Ops.CONST else 0 for s in u.src)
            trips.append(trips[-1] * max(1, hi - lo))
        elif u.op is Ops.ENDRANGE:
            trips.pop()
        elif u.op not in (Ops.CONST, Ops.DEFINE_GLOBAL, Ops.DEFINE_VAR, Ops.SPECIAL, Ops.DEFINE_LOCAL):
            cost += trips[-1] * (8 if u.op in (Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.POW) else 1)
    return max(cost, 1)


def header(name: str, units: int, cost: int, variables: list[str], strategy: str) -> str:
    return f"/* tg-clang kernel={name} units={units} cost={cost} vars={','.join(variables)} strategy={strategy} */"


def dynamic_entry(name: str, params: list[str]) -> str:
    """The entries that split a launch across threads.

    ``NAME_dyn`` runs chunks of units claimed from a shared counter until none is left (load balancing without
    returning to Python: every thread of a Python pool calls it with the same counter).  ``NAME_par(bufs...,
    vars..., run, end, chunk, threads)`` hands the whole launch to the native pool's ``run`` (see
    :mod:`tg_clang.pool`), which calls ``NAME_args`` (the kernel on an array of its arguments) on its threads."""
    names = [p.rsplit(" ", 1)[1] for p in params]
    args = ", ".join(names)
    unpack = ", ".join(f"({p.rsplit(' ', 1)[0]})a[{i}]" if "*" in p else f"(int32_t)(intptr_t)a[{i}]"
                       for i, p in enumerate(params))
    pack = ", ".join(f"(void *){n}" if "*" in p else f"(void *)(intptr_t){n}" for n, p in zip(names, params))
    task = "void (*)(void *const *, int32_t, int32_t)"
    par_params = ", ".join([*params, "void *run", "int32_t end", "int32_t chunk", "int32_t threads"])
    return (f"void {name}_dyn({', '.join([*params, 'int32_t *next', 'int32_t end', 'int32_t chunk'])}) {{\n"
            f"  for (;;) {{ int32_t s = __atomic_fetch_add(next, chunk, __ATOMIC_RELAXED); if (s >= end) break;\n"
            f"    {name}({args}{', ' if args else ''}s, s + chunk < end ? s + chunk : end); }}\n}}\n"
            f"static void {name}_args(void *const *a, int32_t start, int32_t end) {{\n"
            f"  {name}({unpack}{', ' if unpack else ''}start, end);\n}}\n"
            f"void {name}_par({par_params}) {{\n"
            f"  void *a[] = {{{pack or '0'}}};\n"
            f"  ((void (*)({task}, void *const *, int32_t, int32_t, int32_t))run)\n"
            f"    ({name}_args, a, end, chunk, threads);\n}}")


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

