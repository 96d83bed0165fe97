"""The micro-op IR: a typed SSA list of low-level operations that every emitter renders.

A kernel is a list of :class:`UOp` in program order.  Each micro-op has an ``op`` (one of :class:`Ops`),
a result ``dtype`` (None for ops without a value), its operands ``src`` (earlier micro-ops) and an
``arg``.  The set is small on purpose:

========================  ========================================================================
``DEFINE_GLOBAL``         a kernel parameter: pointer to a buffer. arg = (index, name, writable)
``DEFINE_LOCAL``          a work-group local array. arg = (name, element count)
``SPECIAL``               a thread index. arg = (name, size): ``gidx0`` group id, ``lidx0`` lane id
``DEFINE_VAR``            a scalar the launch passes by value, after the buffers (only to a target that
                          declares ``Capabilities.variables``). arg = (name, lo, hi): an int32's bounds,
                          None for a float32
``CONST``                 a constant. arg = the value
``RANGE`` / ``ENDRANGE``  a loop ``for i in range(src[0], src[1])`` and its end (src = (RANGE,))
``DEFINE_ACC``            an accumulator, arg = initial value; updated by ``ASSIGN(acc, value)``
``LOAD``                  src = (buffer, index[, gate, alt]): reads buffer[index] where gate, else alt
``STORE``                 src = (buffer, index, value[, gate]): writes where gate
``BARRIER``               work-group barrier (after stores to local memory)
ALU ops                   NEG EXP2 LOG2 SIN SQRT RECIP TRUNC / ADD SUB MUL DIV IDIV MOD MAX POW
                          CMPLT CMPNE CMPEQ AND OR XOR / WHERE MULACC
``CAST`` / ``BITCAST``    convert / reinterpret to ``dtype``
``VECTORIZE`` / ``GEP``   build a vector of ``dtype.count`` lanes / take lane ``arg``
``WMMA``                  src = (a, b, c) fragments (vectors): the work group's ``D = A @ B + C`` on a tensor
                          core; arg = the :class:`~tg.codegen.tensor_cores.TensorCore`; result: this lane's D
========================  ========================================================================

What each micro-op computes, edge cases included, is section 5 of :mod:`tg.hooks` (the hook spec).

Indices are int32 expressions, simplified as they are built (constant folding, identities, and
range-based rules for ``//``, ``%`` and ``<``), so emitters receive clean address arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tg.support.dtype import DType
from tg.support.ops import ALU, BINARY, COMMUTATIVE, COMPARISONS, TERNARY, UNARY, Ops


@dataclass(frozen=True)
class PtrDType:
    """The type of a DEFINE_GLOBAL/DEFINE_LOCAL: a pointer to elements of ``base``."""

    base: DType
    local: bool = False

    @property
    def name(self) -> str:
        return f"{'local ' if self.local else ''}{self.base.name}*"


@dataclass(frozen=True)
class VecDType:
    """A vector of ``count`` lanes of ``base`` (float4, half4...), for VECTORIZE and vector loads/stores."""

    base: DType
    count: int

    @property
    def name(self) -> str:
        return f"{self.base.name}x{self.count}"


AnyDType = DType | PtrDType | VecDType


@dataclass(eq=False)
class UOp:
    """One micro-op.  Identity is by object: the builder de-duplicates equal pure ops."""

    op: Ops
    dtype: AnyDType | None
    src: tuple[UOp, ...] = ()
    arg: Any = None
    vmin: float = field(default=-math.inf, repr=False)
    vmax: float = field(default=math.inf, repr=False)

    def __repr__(self) -> str:
        dt = self.dtype.name if self.dtype is not None else "-"
        return f"UOp({self.op.name}, {dt}, arg={self.arg!r}, nsrc={len(self.src)})"

    @property
    def is_const(self) -> bool:
        return self.op is Ops.CONST


def format_uops(uops: list[UOp]) -> str:
    """A readable listing of a micro-op list (for TG_DEBUG and test failure messages)."""
    ids = {id(u): i for i, u in enumerate(uops)}
    lines = []
    for i, u in enumerate(uops):
        srcs = ", ".join(f"%{ids.get(id(s), '?')}" for s in u.src)
        dt = u.dtype.name if u.dtype is not None else ""
        lines.append(f"%{i:<4} {u.op.name:<14} {dt:<14} [{srcs}] {'' if u.arg is None else repr(u.arg)}")
    return "\n".join(lines)


def base_dtype(dtype: AnyDType) -> DType:
    """The element dtype of a value, vector or pointer dtype."""
    return dtype.base if isinstance(dtype, (PtrDType, VecDType)) else dtype


__all__ = ["ALU", "BINARY", "COMMUTATIVE", "COMPARISONS", "TERNARY", "UNARY", "AnyDType", "Ops", "PtrDType", "UOp",
           "VecDType", "base_dtype", "format_uops"]
