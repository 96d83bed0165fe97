"""Capabilities: what a target declares it can do, and so what the lowering and the rewrites fit a kernel to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tg.codegen.tensor_cores import TensorCore
from tg.support.ops import OPTIONAL, Ops

#: The dtypes a ``DEFINE_VAR`` may have.
VARIABLE_DTYPES = frozenset({"int32", "float32"})


@dataclass(frozen=True)
class Capabilities:
    """What an emitter's target can do; core's lowering and rewrites fit micro-ops to these.

    - ``dtypes``: the dtypes the target computes in (e.g. ``{"float32", "int32", "bool"}``); a kernel using
      another is refused with an error naming the dtype;
    - ``renders``: the optional micro-ops the target renders itself (see :data:`tg.support.ops.OPTIONAL`).
      Core decomposes every optional op a target does not declare: ``SUB`` into ``ADD``/``NEG``, ``CMPEQ`` into
      ``CMPNE``/``XOR``, ``MOD`` into ``IDIV``/``MUL``/``SUB``, ``POW`` through ``EXP2``/``LOG2`` with C's
      rules for signs and zero, float ``DIV`` into ``RECIP`` then ``MUL`` (faster, not exact: declare ``DIV`` for
      IEEE division), ``RECIP`` into ``DIV(1, x)`` (a target renders at least one of the two) and ``NEG`` into a
      ``MUL`` by -1 (``XOR`` with true on bools).  ``MULACC`` goes the other way: declared, core fuses
      ``a*b+c`` into one;
    - ``sin_is_sin2pi``: the hardware sine computes sin(2*pi*x) (core divides by 2*pi first);
    - ``vector_width``: the widest vector of lanes loads and stores may use (1: none; then the emitter never
      sees ``VECTORIZE`` or ``GEP``);
    - ``local_memory``: bytes of memory shared by a work group (0: none; then no ``DEFINE_LOCAL``/``BARRIER``);
    - ``group_size``: threads the lowering puts in a work group (1: no work groups, every thread is
      ``gidx0``; above 1, ``gidx0`` is the group and ``lidx0`` the thread within it);
    - ``launch_dims``: how many launch dimensions the target takes (1 to 3).  With 1, core flattens the outputs
      into ``gidx0``; above 1 it keeps the output's shape: ``gidx0`` walks the innermost output dimension (in
      work groups, with ``lidx0``), ``gidx1`` the next, and the outer ones fold into the last.  Output dims of
      one thread (size 1, or covered by a register tile) take none, and a kernel whose innermost rows are narrower
      than 32 threads (a warp, a wave32) or ``group_size`` is launched flat: its work groups stay full;
    - ``launch_limits``: the most work groups the target launches along each launch dimension (x, y, z; CUDA:
      2^31-1, 65535, 65535).  A kernel whose shaped launch would pass one takes fewer launch dimensions (down to
      the flat one) instead.  Empty: no limit but tg's 32-bit indices;
    - ``upcast``: how many outputs of a reduction one thread may compute (a register tile whose loads are
      shared; 1: one output per thread);
    - ``unroll``: how many iterations of a reduction's innermost loop core may write out per trip (the largest
      power of two up to it that divides the loop; 1: loops stay rolled).  The accumulation order is kept;
    - ``tensor_cores``: the matrix multiply-accumulate units of a work group (:class:`TensorCore`); core lowers a
      contraction of their input dtype onto the first that fits it, with the micro-op ``WMMA`` (never sent to
      a target that declares none);
    - ``variables``: the dtypes of scalar launch parameters (``DEFINE_VAR``) the emitter renders: ``"float32"``
      lets core pass a Python float of a float32/float16 expression (a learning rate that changes every step) by
      value instead of compiling it into the kernel; empty: never sent a ``DEFINE_VAR``.  Core uses a variable
      dtype only where the runtime also declares it (``Runtime.variable_dtypes``);
    - ``extra``: target-specific settings only the plugin's own passes read.
    """

    dtypes: frozenset[str] = frozenset({"float32", "int32", "bool"})
    renders: frozenset[Ops] = frozenset({Ops.DIV, Ops.RECIP, Ops.NEG})
    sin_is_sin2pi: bool = False
    vector_width: int = 1
    local_memory: int = 0
    group_size: int = 1
    launch_dims: int = 1
    launch_limits: tuple[int, ...] = ()
    upcast: int = 1
    unroll: int = 1
    tensor_cores: tuple[TensorCore, ...] = ()
    variables: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.renders) - OPTIONAL
        if unknown:
            raise ValueError(f"Capabilities.renders: {sorted(o.name for o in unknown)} are not optional micro-ops "
                             f"(every emitter renders them); the optional ones are "
                             f"{', '.join(sorted(o.name for o in OPTIONAL))}")
        for name in ("vector_width", "group_size", "upcast", "unroll"):
            if getattr(self, name) < 1:
                raise ValueError(f"Capabilities.{name} must be at least 1, not {getattr(self, name)}")
        if not 1 <= self.launch_dims <= 3:
            raise ValueError(f"Capabilities.launch_dims must be 1, 2 or 3, not {self.launch_dims}")
        if not self.variables <= VARIABLE_DTYPES:
            raise ValueError(f"Capabilities.variables: {sorted(self.variables - VARIABLE_DTYPES)} cannot be a "
                             f"launch variable's dtype; the ones core passes are {sorted(VARIABLE_DTYPES)}")
        if Ops.DIV not in self.renders and Ops.RECIP not in self.renders:
            raise ValueError("Capabilities.renders: declare DIV or RECIP (or both): core makes each from the other")

    def rendered(self, op: Ops) -> bool:
        """Whether an emitter of this target ever receives micro-op ``op``."""
        if op is Ops.WMMA:
            return bool(self.tensor_cores)
        if op is Ops.DEFINE_VAR:
            return bool(self.variables)
        return op not in OPTIONAL or op in self.renders


class NotSymbolic(Exception):
    """What ``Emitter.render`` raises when it cannot render a kernel whose launch follows a launch variable
    (``LoweredKernel.launch_vars``: a kernel lowered once for every size of its outermost dimension) without baking
    the size into its code, e.g. a renderer that plans its work units from the row count.  Core then lowers and
    renders the kernel for its exact size instead, as it does on a target whose runtime has no
    ``symbolic_launch``."""
