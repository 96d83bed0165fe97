"""Capability-driven rewrites: fit a micro-op list to what a target declares it renders.

Each rewrite replays the list through a fresh builder (:func:`replay`, the public rewrite API: a rule gets
the builder, the old op and its new operands, and returns a replacement or None), replacing what the target
lacks: every optional micro-op it does not declare in ``Capabilities.renders`` is decomposed into required
ones (float ``POW`` through exp2/log2 with the sign and zero rules of C's pow, integer ``POW`` by squarings,
``MOD``, float ``DIV`` as reciprocal then multiply, ``CMPEQ``, ``SUB``), ``sin_is_sin2pi`` divides sine
arguments by 2*pi, and a declared ``MULACC`` fuses ``a*b+c``.  :func:`eliminate_dead` then drops what nothing
uses: the one dead-code pass, which plugins' passes may call too.  :func:`check_dtypes` refuses a kernel that uses
a dtype the target does not declare, and :func:`check_rendered` one that still holds a micro-op the target does not
render.
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
PURE = ALU | {Ops.CONST, Ops.SPECIAL, Ops.DEFINE_VAR, Ops.CAST, Ops.BITCAST, Ops.VECTORIZE, Ops.GEP}


def replay(uops: list[UOp], rule: Rule) -> list[UOp]:
    """Rebuild ``uops`` in order; ``rule`` may return a replacement for an op (built with the builder)."""
    b = KernelBuilder()
    mapped: dict[int, UOp] = {}
    for u in uops:
        src = tuple(mapped[id(s)] for s in u.src)
        new = rule(b, u, src) if u.op in ALU else None
        if new is None:
            if u.op is Ops.RANGE:
                new = b.range(src[0], src[1])
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


def _pow(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    if u.op is not Ops.POW or not isinstance(u.dtype, DType) or u.dtype == dtypes.bool:
        return None
    return _int_pow(b, u.dtype, *src) if u.dtype.is_int else _pow_exp2_log2(b, u.dtype, *src)


def _int_pow(b: KernelBuilder, dt: DType, x: UOp, y: UOp) -> UOp:
    """``x ** y`` for integers, wrapping like MUL: a square-and-multiply over every bit a non-negative exponent of
    ``dt`` may have; a negative exponent gives 1 for x == 1, +-1 for x == -1 (by y's parity) and 0 otherwise."""
    zero, one = b.const(0, dt), b.const(1, dt)
    signed = dt.kind == "i"
    negative = b.alu(Ops.CMPLT, y, zero) if signed else None
    e = b.alu(Ops.WHERE, negative, zero, y) if negative is not None else y
    result, base = one, x
    bits = 8 * dt.itemsize - (1 if signed else 0)
    for bit in range(bits):  # (a bit is tested with a mask, not by halving: a 64-bit division is long on a GPU)
        is_set = b.alu(Ops.CMPNE, b.alu(Ops.AND, e, b.const(1 << bit, dt)), zero)
        result = b.alu(Ops.WHERE, is_set, b.alu(Ops.MUL, result, base), result)
        if bit + 1 < bits:
            base = b.alu(Ops.MUL, base, base)
    if negative is None:
        return result
    minus_one = b.const(-1, dt)
    y_odd = b.alu(Ops.CMPNE, b.alu(Ops.AND, y, one), zero)
    small = b.alu(Ops.WHERE, b.alu(Ops.CMPEQ, x, one), one,
                  b.alu(Ops.WHERE, b.alu(Ops.CMPEQ, x, minus_one), b.alu(Ops.WHERE, y_odd, minus_one, one), zero))
    return b.alu(Ops.WHERE, negative, small, result)


def _pow_exp2_log2(b: KernelBuilder, dt: DType, x: UOp, y: UOp) -> UOp:
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


def _sub(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    if u.op is not Ops.SUB or not isinstance(u.dtype, DType):
        return None
    if u.dtype == dtypes.bool:  # bool arithmetic is mod 2
        return b.alu(Ops.XOR, src[0], src[1])
    return b.alu(Ops.ADD, src[0], b.alu(Ops.NEG, src[1]))


def _neg(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    """``-x`` as ``x * -1`` (exact for every float, wraps like NEG for ints), NOT for bools."""
    if u.op is not Ops.NEG or not isinstance(u.dtype, DType):
        return None
    if u.dtype == dtypes.bool:
        return b.alu(Ops.XOR, src[0], b.const(True, dtypes.bool))
    return b.alu(Ops.MUL, src[0], b.const(-1, u.dtype))


def _recip(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    if u.op is not Ops.RECIP or not isinstance(u.dtype, DType):
        return None
    return b.alu(Ops.DIV, b.const(1.0, u.dtype), src[0])


def _cmpeq(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    if u.op is not Ops.CMPEQ:
        return None
    return b.alu(Ops.XOR, b.alu(Ops.CMPNE, src[0], src[1]), b.const(True, dtypes.bool))


def _mod(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    """``a % b`` as ``a - (a // b) * b`` (the dividend's sign, like C), and 0 where ``b`` is 0."""
    if u.op is not Ops.MOD or not isinstance(u.dtype, DType) or not u.dtype.is_int:
        return None
    a, d = src
    rest = b.alu(Ops.SUB, a, b.alu(Ops.MUL, b.alu(Ops.IDIV, a, d), d))
    if d.is_const and d.arg != 0:
        return rest
    zero = b.const(0, u.dtype)
    return b.alu(Ops.WHERE, b.alu(Ops.CMPNE, d, zero), rest, zero)


def _mulacc(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp | None:
    if u.op is Ops.ADD and isinstance(u.dtype, DType) and u.dtype.is_float:
        for prod_, other in ((src[0], src[1]), (src[1], src[0])):
            if prod_.op is Ops.MUL:
                return b.alu(Ops.MULACC, prod_.src[0], prod_.src[1], other)
    return None


def eliminate_dead(uops: list[UOp]) -> list[UOp]:
    """Drop values nothing uses (constants and index math left over by the lowering and the rewrites); a launch
    variable stays (a parameter of the entry even where unused: an emitter may size its work by it, and the entry's
    signature stays the same)."""
    removable = (PURE | {Ops.LOAD}) - {Ops.DEFINE_VAR}
    used: set[int] = set()
    keep: list[UOp] = []
    for u in reversed(uops):
        if u.op in removable and id(u) not in used:
            continue
        keep.append(u)
        used.update(id(s) for s in u.src)
    return keep[::-1]


#: Decompositions of the optional micro-ops, in the order they run (a later one may take apart what an earlier
#: one produced: MOD makes SUB, POW makes CMPEQ, SUB and POW make NEG; DIV and RECIP are never both missing).
DECOMPOSITIONS: list[tuple[Ops, Rule]] = [(Ops.POW, _pow), (Ops.MOD, _mod), (Ops.DIV, _no_div),
                                          (Ops.RECIP, _recip), (Ops.CMPEQ, _cmpeq), (Ops.SUB, _sub), (Ops.NEG, _neg)]


def apply_capabilities(uops: list[UOp], caps: Capabilities) -> list[UOp]:
    """``uops`` fitted to ``caps``: optional ops decomposed or fused, sines in turns, dead values dropped."""
    for op, rule in DECOMPOSITIONS:
        if not caps.rendered(op) and any(u.op is op for u in uops):
            uops = replay(uops, rule)
    if caps.sin_is_sin2pi:
        uops = replay(uops, _sin_2pi)
    if caps.rendered(Ops.MULACC):
        uops = replay(uops, _mulacc)
    return eliminate_dead(uops)


def check_rendered(uops: list[UOp], caps: Capabilities, backend: str) -> None:
    """Refuse a kernel that holds a micro-op the target does not render (a plugin pass may have made one)."""
    for u in uops:
        if not caps.rendered(u.op):
            raise BackendError(f"backend '{backend}': a lowering pass produced micro-op {u.op.name}, which its target "
                               f"does not render (Capabilities.renders: "
                               f"{', '.join(sorted(o.name for o in caps.renders)) or 'none'}); fix the pass, or "
                               f"declare {u.op.name} in the emitter's capabilities")


def check_dtypes(uops: list[UOp], caps: Capabilities, backend: str) -> None:
    for u in uops:
        dt = u.dtype.base if isinstance(u.dtype, (PtrDType, VecDType)) else u.dtype
        if dt is not None and dt.name not in caps.dtypes:
            raise BackendError(f"backend '{backend}' does not support dtype {dt.name} (it supports "
                               f"{', '.join(sorted(caps.dtypes))}); cast the tensor first, e.g. .float(), or choose "
                               "another backend")
