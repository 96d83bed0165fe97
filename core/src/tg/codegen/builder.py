"""KernelBuilder: builds a micro-op list in program order, folding constants, de-duplicating pure ops and
simplifying integer index arithmetic by value ranges (so emitters receive clean address arithmetic).
"""

from __future__ import annotations

import math
from typing import Any

from tg.codegen.uops import ALU, COMMUTATIVE, COMPARISONS, AnyDType, Ops, PtrDType, UOp, base_dtype
from tg.support.dtype import DType, as_value, dtypes, exact_key


def _int_bounds(op: Ops, src: tuple[UOp, ...], arg: Any) -> tuple[float, float]:
    """Conservative value range of an integer op from its operands' ranges."""
    if op is Ops.CONST:
        return float(arg), float(arg)
    if op is Ops.SPECIAL:
        return 0, arg[1] - 1
    if op is Ops.DEFINE_VAR:
        return arg[1], arg[2]
    if op is Ops.RANGE:
        return src[0].vmin, src[1].vmax - 1
    if not src:
        return -math.inf, math.inf
    a = src[0]
    if op is Ops.NEG:
        return -a.vmax, -a.vmin
    if len(src) < 2:
        return -math.inf, math.inf
    b = src[1]
    if op is Ops.ADD:
        return a.vmin + b.vmin, a.vmax + b.vmax
    if op is Ops.SUB:
        return a.vmin - b.vmax, a.vmax - b.vmin
    if op is Ops.MUL:
        corners = [x * y for x in (a.vmin, a.vmax) for y in (b.vmin, b.vmax) if not (math.isinf(x) or math.isinf(y))]
        if len(corners) < 4:
            return -math.inf, math.inf
        return min(corners), max(corners)
    if op is Ops.IDIV and b.is_const and b.arg > 0 and a.vmin >= 0:
        return a.vmin // b.arg, a.vmax // b.arg
    if op is Ops.MOD and b.is_const and b.arg > 0 and a.vmin >= 0:
        return 0, min(a.vmax, b.arg - 1)
    if op is Ops.MAX:
        return max(a.vmin, b.vmin), max(a.vmax, b.vmax)
    if op in COMPARISONS:
        return 0, 1
    return -math.inf, math.inf


class KernelBuilder:
    """Builds a micro-op list in program order, folding constants and de-duplicating pure ops.

    Values defined inside a loop are forgotten by the de-duplication when the loop ends, so nothing
    is reused outside the scope that computed it.  Its public methods are also the API for plugins that
    rewrite a kernel (a tiler rebuilding the micro-ops with other thread indices gets the same
    range-based simplification core uses).
    """

    def __init__(self) -> None:
        self.uops: list[UOp] = []
        self._cache: dict[tuple[Any, ...], UOp] = {}
        self._scopes: list[list[tuple[Any, ...]]] = [[]]

    def _add(self, op: Ops, dtype: AnyDType | None, src: tuple[UOp, ...] = (), arg: Any = None,
             pure: bool = True) -> UOp:
        # (the hottest function of a lowering: written for speed)
        if pure:
            key = (op, dtype, tuple(map(id, src)), exact_key(arg) if op is Ops.CONST else arg)  # -0.0 is not 0.0
            found = self._cache.get(key)
            if found is not None:
                return found
        if dtype.__class__ is DType and dtype.kind in "iub":  # integers and bools
            vmin, vmax = _int_bounds(op, src, arg)
        else:
            vmin, vmax = -math.inf, math.inf
        u = UOp(op, dtype, src, arg, vmin, vmax)
        self.uops.append(u)
        if pure:
            self._cache[key] = u
            self._scopes[-1].append(key)
        return u

    # -- definitions and control flow -------------------------------------------------------------

    def define_global(self, index: int, dtype: DType, writable: bool, name: str | None = None) -> UOp:
        """Buffer argument ``index`` (named ``data<index>`` unless ``name`` says otherwise)."""
        return self._add(Ops.DEFINE_GLOBAL, PtrDType(dtype), (), (index, name or f"data{index}", writable),
                         pure=False)

    def define_local(self, name: str, dtype: DType, size: int) -> UOp:
        return self._add(Ops.DEFINE_LOCAL, PtrDType(dtype, local=True), (), (name, size), pure=False)

    def special(self, name: str, size: int) -> UOp:
        return self._add(Ops.SPECIAL, dtypes.int32, (), (name, size))

    def define_var(self, name: str, dtype: DType, lo: int | None = None, hi: int | None = None) -> UOp:
        """Scalar launch parameter ``name`` (int32 between ``lo`` and ``hi``, or float32); define it at the top level,
        before any ``range``."""
        assert (dtype == dtypes.int32 and lo is not None and hi is not None) or (dtype == dtypes.float32 and
                                                                                 lo is None and hi is None)
        return self._add(Ops.DEFINE_VAR, dtype, (), (name, lo, hi))

    def const(self, value: Any, dtype: DType) -> UOp:
        return self._add(Ops.CONST, dtype, (), as_value(value, dtype))

    def range(self, start: int | UOp, end: int | UOp) -> UOp:
        """A loop from ``start`` to ``end`` (constants, or int32 values defined outside it)."""
        bounds = tuple(x if isinstance(x, UOp) else self.const(x, dtypes.int32) for x in (start, end))
        u = self._add(Ops.RANGE, dtypes.int32, bounds, len([x for x in self.uops if x.op is Ops.RANGE]), pure=False)
        self._scopes.append([])
        return u

    def end_range(self, rng: UOp) -> None:
        for key in self._scopes.pop():
            self._cache.pop(key, None)
        self._add(Ops.ENDRANGE, None, (rng,), pure=False)

    def define_acc(self, value: Any, dtype: DType) -> UOp:
        return self._add(Ops.DEFINE_ACC, dtype, (), value, pure=False)

    def assign(self, acc: UOp, value: UOp) -> UOp:
        return self._add(Ops.ASSIGN, acc.dtype, (acc, value), pure=False)

    def load(self, buf: UOp, idx: UOp, dtype: AnyDType, gate: UOp | None = None, alt: UOp | None = None) -> UOp:
        if gate is not None and gate.is_const:
            if gate.arg:
                gate = None
            else:
                assert alt is not None
                return alt
        src: tuple[UOp, ...] = (buf, idx)
        if gate is not None:
            src = (buf, idx, gate, alt if alt is not None else self.const(0, base_dtype(dtype)))
        read_only = buf.op is Ops.DEFINE_GLOBAL and not buf.arg[2]  # no store can change it: loads may be shared
        return self._add(Ops.LOAD, dtype, src, pure=read_only)

    def store(self, buf: UOp, idx: UOp, value: UOp, gate: UOp | None = None) -> None:
        if gate is not None and gate.is_const:
            if not gate.arg:
                return
            gate = None
        self._add(Ops.STORE, None, (buf, idx, value) if gate is None else (buf, idx, value, gate), pure=False)

    def barrier(self) -> None:
        self._add(Ops.BARRIER, None, (), pure=False)

    # -- values ---------------------------------------------------------------------------------------

    def cast(self, x: UOp, dtype: DType) -> UOp:
        if x.dtype == dtype:
            return x
        if x.is_const:  # as_value converts like the device: float -> int truncates, saturates, NaN -> 0
            return self.const(x.arg, dtype)
        return self._add(Ops.CAST, dtype, (x,))

    def bitcast(self, x: UOp, dtype: DType) -> UOp:
        return self._add(Ops.BITCAST, dtype, (x,))

    def alu(self, op: Ops, *src: UOp, dtype: DType | None = None) -> UOp:
        """An ALU op; the result dtype is bool for comparisons, else the first operand's (or ``dtype``)."""
        out = dtype or (dtypes.bool if op in COMPARISONS else src[-1].dtype if op is Ops.WHERE else src[0].dtype)
        assert isinstance(out, DType), f"{op} on {[s.dtype for s in src]}"
        folded = self._simplify(op, src, out)
        if folded is not None:
            return folded
        if op in COMMUTATIVE and src[0].is_const and not src[1].is_const:
            src = (src[1], src[0])
        return self._add(op, out, src)

    def _simplify(self, op: Ops, src: tuple[UOp, ...], out: DType) -> UOp | None:
        """Algebraic and range-based rewrites; None when nothing applies."""
        if src[0].op is Ops.CONST and all(s.op is Ops.CONST for s in src) and op in ALU:
            try:
                value = fold(op, [s.arg for s in src], out)
            except (ArithmeticError, ValueError):
                value = None
            if value is not None:
                return self.const(value, out)
        if out.kind not in "iub":  # (integers and bools)
            return None
        a = src[0]
        b = src[1] if len(src) > 1 else None
        if op is Ops.WHERE:
            if a.is_const:
                return src[1] if a.arg else src[2]
            return src[1] if src[1] is src[2] else None
        if b is None:
            return None
        if op is Ops.ADD:
            if b.is_const and b.arg == 0:
                return a
            if a.is_const and a.arg == 0:
                return b
            if b.is_const and a.op is Ops.ADD and a.src[1].is_const:  # (x + c1) + c2
                return self.alu(Ops.ADD, a.src[0], self.const(a.src[1].arg + b.arg, out))
        if op is Ops.SUB and b.is_const and b.arg == 0:
            return a
        if op is Ops.MUL:
            for x, y in ((a, b), (b, a)):
                if y.is_const and y.arg == 1:
                    return x
                if y.is_const and y.arg == 0:
                    return self.const(0, out)
            if b.is_const and a.op is Ops.MUL and a.src[1].is_const:  # (x * c1) * c2
                return self.alu(Ops.MUL, a.src[0], self.const(a.src[1].arg * b.arg, out))
        if op in (Ops.IDIV, Ops.MOD) and b.is_const and b.arg > 0 and a.vmin >= 0:
            return self._divmod(op, a, b.arg, out)
        if op is Ops.CMPLT:
            if a.vmax < b.vmin:
                return self.const(True, dtypes.bool)
            if a.vmin >= b.vmax:
                return self.const(False, dtypes.bool)
        if op is Ops.AND and out == dtypes.bool:
            for x, y in ((a, b), (b, a)):
                if y.is_const:
                    return x if y.arg else self.const(False, dtypes.bool)
        return None

    def _divmod(self, op: Ops, a: UOp, c: int, out: DType) -> UOp | None:
        """``a // c`` and ``a % c`` for a >= 0: drop terms that are multiples of c or too small to matter."""
        if c == 1:
            return a if op is Ops.IDIV else self.const(0, out)
        if a.vmax < c:
            return self.const(0, out) if op is Ops.IDIV else a
        if op is Ops.IDIV and a.vmin // c == a.vmax // c:
            return self.const(int(a.vmin // c), out)
        terms = _sum_terms(a)
        if any(t.vmin < 0 for t in terms) or len(terms) < 1:
            return None
        multiples, rest = [], []
        for t in terms:  # x*k with k > c is x*(k - k % c) (a multiple of c) plus x*(k % c)
            k = _coefficient(t)
            if k % c == 0:
                multiples.append(t)
            elif k > c:
                multiples.append(self._rescaled(t, k - k % c, out))
                rest.append(self._rescaled(t, k % c, out))
            else:
                rest.append(t)
        if not multiples and (scaled := self._common_factor(op, terms, c, out)) is not None:
            return scaled
        if op is Ops.MOD:
            if not multiples:
                if a.op is Ops.MOD and a.src[1].is_const and a.src[1].arg % c == 0:  # (x % kc) % c
                    return self.alu(Ops.MOD, a.src[0], self.const(c, out))
                return None
            return self.alu(Ops.MOD, self._sum(rest, out), self.const(c, out))
        # IDIV: sum(multiples)/c + rest // c, valid because every term is >= 0
        if not multiples:
            if a.op is Ops.IDIV and a.src[1].is_const:  # (x // c1) // c2
                return self.alu(Ops.IDIV, a.src[0], self.const(a.src[1].arg * c, out))
            return None
        quotient = [self._div_exact(t, c, out) for t in multiples]
        rest_sum = self._sum(rest, out)
        return self._sum([*quotient, self.alu(Ops.IDIV, rest_sum, self.const(c, out))], out)

    def _common_factor(self, op: Ops, terms: list[UOp], c: int, out: DType) -> UOp | None:
        """``(g*x + y) // c`` as ``x // (c/g)`` and ``(g*x + y) % c`` as ``(x % (c/g))*g + y``, where ``g`` (above 1)
        divides ``c`` and the coefficients of the terms of ``g*x``, ``y`` is the sum of the other terms, between 0
        and ``g - 1`` by their ranges, and ``x >= 0``: a row of a register tile (``g*tile + r``) whose tile height
        divides the period of the index, or a row of a view (``row*g + col``, ``col < g``) unravelled by a multiple of
        its length (None otherwise)."""
        variable = [t for t in terms if not t.is_const]
        for g in sorted({math.gcd(abs(_coefficient(t)), c) for t in variable}, reverse=True):
            if g < 2:
                break
            big = [t for t in variable if _coefficient(t) % g == 0]
            small = [t for t in terms if t.is_const or _coefficient(t) % g]
            if sum(t.vmin for t in small) < 0 or sum(t.vmax for t in small) >= g:
                continue
            x = self._sum([self._rescaled(t, _coefficient(t) // g, out) for t in big], out)
            if op is Ops.IDIV:
                return self.alu(Ops.IDIV, x, self.const(c // g, out))
            y = self._sum(small, out)
            return self.alu(Ops.ADD, self.alu(Ops.MUL, self.alu(Ops.MOD, x, self.const(c // g, out)),
                                              self.const(g, out)), y)
        return None

    def _rescaled(self, t: UOp, k: int, out: DType) -> UOp:
        """Term ``t`` (a constant, x*k0 or x) with its constant factor replaced by ``k``."""
        if t.is_const:
            return self.const(k, out)
        return self.alu(Ops.MUL, t.src[0] if t.op is Ops.MUL and t.src[1].is_const else t, self.const(k, out))

    def _div_exact(self, t: UOp, c: int, out: DType) -> UOp:
        if t.is_const:
            return self.const(t.arg // c, out)
        if t.op is Ops.MUL and t.src[1].is_const:
            return self.alu(Ops.MUL, t.src[0], self.const(t.src[1].arg // c, out))
        raise AssertionError("not a multiple")  # pragma: no cover - _coefficient guarantees it

    def _sum(self, terms: list[UOp], out: DType) -> UOp:
        total = self.const(0, out)
        for t in terms:
            total = self.alu(Ops.ADD, total, t)
        return total


def _sum_terms(u: UOp) -> list[UOp]:
    """The terms of a tree of ADDs, left to right."""
    terms, stack = [], [u]
    while stack:
        x = stack.pop()
        if x.op is Ops.ADD:
            stack += (x.src[1], x.src[0])
        else:
            terms.append(x)
    return terms


def _coefficient(u: UOp) -> int:
    """The constant factor of a term: c for a const, k for x*k, 1 otherwise."""
    if u.is_const:
        return int(u.arg) if u.arg != 0 else 0
    if u.op is Ops.MUL and u.src[1].is_const:
        return int(u.src[1].arg)
    return 1


def fold(op: Ops, args: list[Any], dtype: DType) -> Any:
    """Evaluate an ALU op on Python constants as the device does (see :mod:`tg.testing.test_semantics`):
    C's truncating division, ``x / 0 == x % 0 == 0``, wrap-around; bool NEG is NOT.  None if unsure."""
    if dtype.is_int or dtype == dtypes.bool or op in COMPARISONS:
        rule = _INT_FOLDS.get(op)
        if rule is None:
            return None
        value = rule(args, dtype)
        if value is None or op in COMPARISONS or dtype == dtypes.bool:
            return value
        return as_value(value, dtype)  # wraps like the hardware (MIN / -1 == MIN)
    return None  # floats are left to the device, whose rounding the oracle checks


_INT_FOLDS: dict[Ops, Any] = {  # op -> (operands, dtype) -> value, for integers, bools and comparisons
    Ops.NEG: lambda x, dt: -x[0] if dt != dtypes.bool else not x[0], Ops.ADD: lambda x, dt: x[0] + x[1],
    Ops.SUB: lambda x, dt: x[0] - x[1], Ops.MUL: lambda x, dt: x[0] * x[1], Ops.MAX: lambda x, dt: max(x[0], x[1]),
    Ops.IDIV: lambda x, dt: _idiv(int(x[0]), int(x[1])), Ops.MOD: lambda x, dt: _mod(int(x[0]), int(x[1])),
    Ops.CMPLT: lambda x, dt: x[0] < x[1], Ops.CMPNE: lambda x, dt: x[0] != x[1], Ops.CMPEQ: lambda x, dt: x[0] == x[1],
    Ops.AND: lambda x, dt: x[0] & x[1], Ops.OR: lambda x, dt: x[0] | x[1], Ops.XOR: lambda x, dt: x[0] ^ x[1],
    Ops.WHERE: lambda x, dt: x[1] if x[0] else x[2], Ops.MULACC: lambda x, dt: x[0] * x[1] + x[2],
}


def _idiv(a: int, b: int) -> int:
    """C's integer division (toward zero), exact for every int64, with ``a / 0 == 0``."""
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _mod(a: int, b: int) -> int:
    """C's remainder (the dividend's sign), with ``a % 0 == 0``."""
    return a - b * _idiv(a, b) if b != 0 else 0
