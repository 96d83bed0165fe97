"""The pieces every C kernel file of tg-clang shares: its parameter list, its header line and the entries that
split a launch across threads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tg.codegen.program import LaunchVars, buffer_params, variable_params
from tg.codegen.uops import UOp, base_dtype

from tg_clang.cprelude import PRELUDE, storage_type

if TYPE_CHECKING:
    from tg_clang.dynamic_rows import LaneRule


@dataclass(frozen=True)
class CKernel:
    """A rendered C kernel file: its text, its work units, the estimated operations of one unit, and how the
    units were made (``scalar``, ``tiled6x16``...); the emitter hands these to the runtime in the Program."""

    source: str
    units: int
    cost: int
    strategy: str
    launch_vars: LaunchVars = ()  # the units follow a launch variable (see tg.codegen.program.SymbolicSize)
    lane_rule: LaneRule | None = None  # a kernel for every size: when it runs row lanes (tg_clang.dynamic_rows)


def kernel_params(uops: list[UOp]) -> list[str]:
    """The C parameter declarations, in the order a launch passes them: the buffers (core's buffer order), then the
    launch variables (``DEFINE_VAR``, each named as in the micro-op)."""
    params = [f"{'' if p.writable else 'const '}{storage_type(p.dtype)} *restrict {p.name}"
              for p in buffer_params(uops)]
    return params + [f"{_variable_c_type(v)} {v.arg[0]}" for v in variable_params(uops)]


def _variable_c_type(v: UOp) -> str:
    assert v.dtype is not None, v  # (a DEFINE_VAR always has its dtype)
    return _VARIABLE_C_TYPES[base_dtype(v.dtype).name]


_VARIABLE_C_TYPES = {"int32": "int32_t", "float32": "float"}


def launch_indices(flat: str, cols: int) -> str:
    """The C declaring a 2-D launch's ``gidx0`` (the column) and ``gidx1`` (the row) from the flat index ``flat``."""
    return f"int32_t gidx0 = {flat} % {cols}, gidx1 = {flat} / {cols};"


#: The line between what a kernel file shares with the files of other kernels of its gang width (the prelude, the
#: vector types and their helpers) and the kernel's own functions, all named after the kernel: the runtime builds
#: several kernels as one file of the shared part and each one's own part (see tg_clang.batch).
OWN_CODE = "/* the kernel's own code */"


def header(name: str, units: int, cost: int, strategy: str) -> str:
    """The file's first line, for a reader (TG_DEBUG=4): the runtime learns these from the Program."""
    return f"/* tg-clang kernel={name} units={units} cost={cost} vars= strategy={strategy} */"


def file_start(name: str, units: int, cost: int, strategy: str, typedefs: Sequence[str]) -> list[str]:
    """A kernel file's lines before the kernel's own functions: the :func:`header`, the C prelude, the vector
    types and helpers ``typedefs``, then :data:`OWN_CODE`."""
    return [header(name, units, cost, strategy), PRELUDE, *typedefs, OWN_CODE]


def dynamic_entry(name: str, params: list[str]) -> str:
    """The entries that split a launch across threads.

    ``NAME_dyn`` runs chunks of units claimed from a shared counter until none is left (load balancing without
    returning to Python: every thread of a Python pool calls it with the same counter).  ``NAME_par(bufs...,
    vars..., run, end, chunk, threads)`` hands the whole launch to the native pool's ``run`` (see
    :mod:`tg_clang.pool`), which calls ``NAME_args`` (the kernel on an array of its arguments) on its threads."""
    names = [p.rsplit(" ", 1)[1] for p in params]
    args = ", ".join(names)
    # the argument array holds pointers: an int32 travels as an intptr_t, a float as its bits (tg_f32_arg)
    unpack = ", ".join(f"({p.rsplit(' ', 1)[0]})a[{i}]" if "*" in p else f"tg_f32_of_arg(a[{i}])"
                       if p.startswith("float ") else f"(int32_t)(intptr_t)a[{i}]" for i, p in enumerate(params))
    pack = ", ".join(f"(void *){n}" if "*" in p else f"tg_f32_arg({n})" if p.startswith("float ") else
                     f"(void *)(intptr_t){n}" for n, p in zip(names, params))
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
