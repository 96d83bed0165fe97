"""Capability-driven rewrites: fit a micro-op list to what a backend declares it can do.

Each rewrite replays the list through a fresh builder, replacing the ops the target lacks:
``no_div`` (float division as reciprocal then multiply), ``sin_is_sin2pi`` (the hardware sine takes
turns, not radians), ``has_pow=False`` (pow through exp2/log2, with the sign and zero rules of C's
pow), ``has_mulacc`` (``a*b+c`` as one MULACC).  :func:`check_dtypes` refuses a kernel that uses a
dtype the backend does not declare.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tg.codegen.builder import KernelBuilder
from tg.codegen.capabilities import Capabilities
from tg.codegen.uops import ALU, Ops, PtrDType, UOp, VecDType
from tg.support.dtype import DType, dtypes
from tg.support.errors import BackendError

Rule = Callable[[KernelBuilder, UOp, tuple[UOp, ...]], UOp | None]
PURE = ALU | {Ops.CONST, Ops.SPECIAL, Ops.CAST, Ops.BITCAST, Ops.VECTORIZE, Ops.GEP}


def replay(uops: list[UOp], rule: Rule) -> list[UOp]:
    """Rebuild ``uops`` in order; ``rule`` may return a replacement for an op (built with the builder)."""
    b = KernelBuilder()
    mapped: dict[int, UOp] = {}
    for u in uops:
        src = tuple(mapped[id(s)] for s in u.src)
        new = rule(b, u, src) if u.op in ALU else None
        if new is None:
            if u.op is Ops.RANGE:
                new = b.range(src[0].arg, src[1].arg)
            elif u.op is Ops.ENDRANGE:
                b.end_range(src[0])
                continue
            elif u.op is Ops.CONST:
                new = b.const(u.arg, u.dtype) if isinstance(u.dtype, DType) else b._add(u.op, u.dtype, src, u.arg)
            elif u.op in ALU:
                new = b.alu(u.op, *src, dtype=u.dtype if isinstance(u.dtype, DType) else None)
            else:
                new = b._add(u.op, u.dtype, src, u.arg, pure=u.op in PURE)
        mapped[id(u)] = new
    return b.uops


def _no_div(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    if u.op is Ops.DIV and isinstance(u.dtype, DType) and u.dtype.is_float:
        return b.alu(Ops.MUL, src[0], b.alu(Ops.RECIP, src[1]))
    return None


def _sin_2pi(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    if u.op is Ops.SIN and isinstance(u.dtype, DType):
        return b._add(Ops.SIN, u.dtype, (b.alu(Ops.MUL, src[0], b.const(1 / (2 * math.pi), u.dtype)),), None,
                      pure=False)  # pure=False: never fold this SIN back into an ordinary one
    return None


def _pow_exp2_log2(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    if u.op is not Ops.POW or not isinstance(u.dtype, DType):
        return None
    dt = u.dtype
    x, y = src
    zero, one = b.const(0, dt), b.const(1, dt)
    ax = b.alu(Ops.MAX, x, b.alu(Ops.NEG, x))
    mag = b.alu(Ops.EXP2, b.alu(Ops.MUL, y, b.alu(Ops.LOG2, ax)))
    y_int = b.alu(Ops.CMPEQ, b.alu(Ops.TRUNC, y), y)
    half = b.alu(Ops.MUL, y, b.const(0.5, dt))
    y_odd = b.alu(Ops.AND, y_int, b.alu(Ops.CMPNE, b.alu(Ops.TRUNC, half), half))
    neg = b.alu(Ops.CMPLT, x, zero)
    signed = b.alu(Ops.WHERE, b.alu(Ops.AND, neg, y_odd), b.alu(Ops.NEG, mag), mag)
    nan = b.const(math.nan, dt)
    result = b.alu(Ops.WHERE, b.alu(Ops.AND, neg, b.alu(Ops.XOR, y_int, b.const(True, dtypes.bool))), nan, signed)
    return b.alu(Ops.WHERE, b.alu(Ops.CMPEQ, y, zero), one, result)  # pow(x, 0) == 1, even for 0 and nan


def _mulacc(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    if u.op is Ops.ADD and isinstance(u.dtype, DType) and u.dtype.is_float:
        for prod_, other in ((src[0], src[1]), (src[1], src[0])):
            if prod_.op is Ops.MUL:
                return b.alu(Ops.MULACC, prod_.src[0], prod_.src[1], other)
    return None


def eliminate_dead(uops: list[UOp]) -> list[UOp]:
    """Drop values nothing uses (constants and index math left over by the lowering and the rewrites)."""
    removable = PURE | {Ops.LOAD}
    used: set[int] = set()
    keep: list[UOp] = []
    for u in reversed(uops):
        if u.op in removable and id(u) not in used:
            continue
        keep.append(u)
        used.update(id(s) for s in u.src)
    return keep[::-1]


def apply_capabilities(uops: list[UOp], caps: Capabilities) -> list[UOp]:
    if not caps.has_pow:
        uops = replay(uops, _pow_exp2_log2)
    if caps.no_div:
        uops = replay(uops, _no_div)
    if caps.sin_is_sin2pi:
        uops = replay(uops, _sin_2pi)
    if caps.has_mulacc:
        uops = replay(uops, _mulacc)
    return eliminate_dead(uops)


def check_dtypes(uops: list[UOp], caps: Capabilities, backend: str) -> None:
    for u in uops:
        dt = u.dtype.base if isinstance(u.dtype, (PtrDType, VecDType)) else u.dtype
        if dt is not None and dt.name not in caps.dtypes:
            raise BackendError(f"backend '{backend}' does not support dtype {dt.name} (it supports "
                               f"{', '.join(sorted(caps.dtypes))}); cast the tensor first, e.g. .float(), or choose "
                               "another backend")
