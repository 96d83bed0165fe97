"""The operation codes every stage shares: the ALU ops the lazy graph records, and the micro-ops kernels are made of.

:mod:`tg.codegen.uops` documents each micro-op's operands and exact semantics.
"""

from __future__ import annotations

import enum


class Ops(enum.Enum):
    # members are singletons compared by identity: hash them so too, in C (Enum's own __hash__ is a Python call,
    # and graph keys, schedule memos and rewrite tables hash thousands of them per step)
    __hash__ = object.__hash__

    DEFINE_GLOBAL = enum.auto()
    DEFINE_LOCAL = enum.auto()
    SPECIAL = enum.auto()
    DEFINE_VAR = enum.auto()  # a scalar parameter of the launch (only for targets that declare variables)
    CONST = enum.auto()
    RANGE = enum.auto()
    ENDRANGE = enum.auto()
    DEFINE_ACC = enum.auto()
    ASSIGN = enum.auto()
    LOAD = enum.auto()
    STORE = enum.auto()
    BARRIER = enum.auto()
    # unary
    NEG = enum.auto()
    EXP2 = enum.auto()
    LOG2 = enum.auto()
    SIN = enum.auto()
    SQRT = enum.auto()
    RECIP = enum.auto()
    TRUNC = enum.auto()
    # binary
    ADD = enum.auto()
    SUB = enum.auto()
    MUL = enum.auto()
    DIV = enum.auto()
    IDIV = enum.auto()
    MOD = enum.auto()
    MAX = enum.auto()
    POW = enum.auto()
    CMPLT = enum.auto()
    CMPNE = enum.auto()
    CMPEQ = enum.auto()
    AND = enum.auto()
    OR = enum.auto()
    XOR = enum.auto()
    # ternary
    WHERE = enum.auto()
    MULACC = enum.auto()
    # conversions and vectors
    CAST = enum.auto()
    BITCAST = enum.auto()
    VECTORIZE = enum.auto()
    GEP = enum.auto()
    # a work group's matrix multiply-accumulate (only for targets that declare tensor cores)
    WMMA = enum.auto()


UNARY = {Ops.NEG, Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIP, Ops.TRUNC}
BINARY = {Ops.ADD, Ops.SUB, Ops.MUL, Ops.DIV, Ops.IDIV, Ops.MOD, Ops.MAX, Ops.POW, Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ,
          Ops.AND, Ops.OR, Ops.XOR}
TERNARY = {Ops.WHERE, Ops.MULACC}
ALU = UNARY | BINARY | TERNARY
COMPARISONS = {Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ}
COMMUTATIVE = {Ops.ADD, Ops.MUL, Ops.MAX, Ops.CMPNE, Ops.CMPEQ, Ops.AND, Ops.OR, Ops.XOR}

#: Micro-ops an emitter renders only if its target declares them (``Capabilities.renders``); core decomposes
#: the others into required ones, or (MULACC) produces them only when declared.
OPTIONAL = frozenset({Ops.NEG, Ops.RECIP, Ops.SUB, Ops.CMPEQ, Ops.MOD, Ops.POW, Ops.DIV, Ops.MULACC})
