"""The built-in numpy backend: runs the micro-ops themselves, vectorized across a launch's threads.

The emitter renders a kernel's micro-op list as a Python function.  Two renderings:

- the interpreter (:class:`NumpyRenderer`): every value is a numpy array holding that value for all threads at
  once (work groups and lanes included), loops are Python loops (every thread runs the same trip count), and gated
  loads and stores mask per thread.  All threads run in lockstep, so a barrier holds by construction.  Its job is
  to prove the micro-op IR, with every lowering capability;
- the fast path (:mod:`tg.backends.numpy_fast`), the default: the same micro-ops as whole-array numpy over the
  kernel's own axes, loops as reductions or matrix products.  A kernel it cannot prove fits runs on the
  interpreter.

Neither looks at the tensor graph.  ``TG_NUMPY_CAPS`` switches lowering capabilities on so the conformance kit can
prove each rewrite, e.g. ``TG_NUMPY_CAPS=no_div,sin_is_sin2pi,mulacc,group_size=8,vector_width=4,no_float64``;
any setting runs the interpreter, and ``TG_NUMPY_CAPS=interpret`` runs it with the default capabilities.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tg.backends.contract import Availability, Capabilities, Emitter, NotSymbolic, Runtime
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.tensor_cores import MMA_16x8x16_F16_F32
from tg.codegen.uops import Ops
from tg.hooks import hookimpl
from tg.support.helpers import getenv
from tg.support.ops import OPTIONAL

LANGUAGE = "numpy-python"


@functools.cache
def _prelude() -> dict[str, Any]:
    """What the rendered functions call.  (The renderers and their helpers are imported when the numpy backend
    first renders or compiles: the plugin is loaded by every process that chooses a backend by priority.)"""
    from tg.backends.numpy_fast_ops import PRELUDE as FAST_PRELUDE
    from tg.backends.numpy_interpreter import PRELUDE as INTERPRETER_PRELUDE

    return {**INTERPRETER_PRELUDE, **FAST_PRELUDE}


class NumpyEmitter(Emitter):
    target = "numpy"
    language = LANGUAGE

    def __init__(self, capabilities: Capabilities, fast: bool = False):
        self.capabilities, self.fast = capabilities, fast

    def render(self, kernel: LoweredKernel) -> Program:
        """The kernel on the fast path when ``fast`` and it fits (``attributes["path"] == "fast"``), else on the
        interpreter (``"interpreter"``, with ``attributes["not_fast"]`` saying why not when ``fast``)."""
        if self.fast:
            from tg.backends.numpy_fast import render_fast
            from tg.backends.numpy_fast_plan import NotFast

            if kernel.launch_vars:  # the fast path plans its arrays from the launch's size
                raise NotSymbolic("the numpy fast path renders a kernel for its exact size")
            try:
                return Program.of(kernel, render_fast(kernel, self.capabilities.sin_is_sin2pi), path="fast")
            except NotFast as reason:
                return Program.of(kernel, self.source(kernel), path="interpreter", not_fast=str(reason))
        return Program.of(kernel, self.source(kernel), path="interpreter")

    def source(self, kernel: LoweredKernel) -> str:
        """The interpreter's Python function ``name(bufs, vals, n, _g)``: the kernel's micro-ops for every thread at
        once (``vals``: the launch variables by name; ``n``: how many threads the launch runs and ``_g`` its groups
        per launch dimension, read at each launch, so a launch whose dimensions follow a variable runs at every
        size)."""
        from tg.backends.numpy_interpreter import NumpyRenderer

        name = kernel.name
        renderer = NumpyRenderer(kernel.uops, kernel.global_size, kernel.local_size, self.capabilities.sin_is_sin2pi)
        lines = [f"def {name}(bufs, vals, n={renderer.n_threads}, _g={kernel.global_size}):",
                 "  _t = np.arange(n, dtype=np.int32)",
                 *renderer.render_uops()]
        return "\n".join(lines) + "\n"


class NumpyRuntime(Runtime):
    language = LANGUAGE
    name = "numpy"
    priority = 0
    variable_dtypes = frozenset({"int32", "float32"})
    symbolic_launch = True  # the interpreter's thread count comes with each launch; the fast path refuses

    def __init__(self) -> None:
        # the interpreter computes every index, loop end and gate from the micro-ops at each launch; the fast path
        # renders exact sizes only, so without TG_NUMPY_CAPS there is nothing to gain
        self.dynamic_shapes = not fast_path_from_env()

    def available(self) -> Availability:
        return Availability.yes()

    def compile(self, program: Program) -> Any:
        namespace = dict(_prelude())
        code = compile(program.source, f"<tg kernel {program.name}>", "exec")
        exec(code, namespace)  # noqa: S102 - our own generated code
        return namespace[program.name]

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any],
               values: Mapping[str, int | float]) -> float | None:
        with np.errstate(all="ignore"):  # the device semantics (wrap-around, inf, nan) are intended
            if program.attributes.get("path") == "fast":
                binary(buffers, values)
            else:  # the interpreter: the launch's threads (global_size is resolved at each launch)
                binary(buffers, values, math.prod(program.global_size) * math.prod(program.local_size),
                       program.global_size)
        return None

    def alloc(self, nbytes: int) -> Any:
        return np.empty(nbytes, dtype=np.uint8)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        buffer[: host.nbytes] = np.frombuffer(host, dtype=np.uint8)

    def copyout(self, host: memoryview, buffer: Any) -> None:
        np.frombuffer(host, dtype=np.uint8)[:] = buffer[: host.nbytes]


def capabilities_from_env() -> Capabilities:
    """The numpy backend's capabilities, with the lowerings named in TG_NUMPY_CAPS switched on.

    It renders every optional micro-op but MULACC; ``no_<op>`` (``no_div``, ``no_pow``, ``no_mod``, ``no_sub``,
    ``no_cmpeq``, ``no_neg``, ``no_recip``) makes core decompose that op instead, and ``mulacc`` asks for fused
    multiply-adds, ``tensor_cores`` contractions on the 16x8x16 float16 core NVIDIA's ``mma`` has, ``no_variables``
    compiles Python floats into kernels as constants (no launch variables, as a target without them).
    """
    flags: dict[str, Any] = {"sin_is_sin2pi": False, "vector_width": 1, "group_size": 1, "upcast": 1,
                             "variables": frozenset({"int32", "float32"})}
    renders = set(OPTIONAL - {Ops.MULACC})
    all_dtypes = {"bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"}
    for item in getenv("TG_NUMPY_CAPS", "").split(","):
        key, _, value = item.strip().partition("=")
        if not key:
            continue
        if key == "interpret":  # the interpreter (any setting runs it): see fast_path_from_env
            continue
        if key == "sin_is_sin2pi":
            flags[key] = True
        elif key.startswith("no_") and key[3:].upper() in Ops.__members__ and Ops[key[3:].upper()] in renders:
            renders.discard(Ops[key[3:].upper()])
        elif key == "mulacc":
            renders.add(Ops.MULACC)
        elif key == "no_variables":
            flags["variables"] = frozenset()
        elif key == "tensor_cores":
            flags["tensor_cores"] = (MMA_16x8x16_F16_F32,)
        elif key in ("group_size", "upcast", "vector_width", "launch_dims", "unroll") and value.isdigit():
            flags[key] = int(value)
        elif key.startswith("no_") and key[3:] in all_dtypes - {"bool", "int32"}:
            all_dtypes.discard(key[3:])
        else:
            raise ValueError(f"TG_NUMPY_CAPS: unknown capability {item!r}; known: interpret, sin_is_sin2pi, mulacc, "
                             "no_div, no_pow, no_mod, no_sub, no_cmpeq, no_neg, no_recip, no_variables, tensor_cores, "
                             "group_size=N, "
                             "vector_width=N, upcast=N, unroll=N, launch_dims=N, no_<dtype>")
    return Capabilities(dtypes=frozenset(all_dtypes), renders=frozenset(renders), local_memory=1 << 16, **flags)


def fast_path_from_env() -> bool:
    """The fast path renders kernels unless TG_NUMPY_CAPS says anything (``interpret``: the interpreter, default
    capabilities): the conformance kit proves each lowering on the interpreter."""
    return not getenv("TG_NUMPY_CAPS", "").strip()


@hookimpl
def tg_emitters() -> list[Emitter]:
    return [NumpyEmitter(capabilities_from_env(), fast=fast_path_from_env())]


@hookimpl
def tg_runtimes() -> list[Runtime]:
    return [NumpyRuntime()]
