"""One lowered kernel for every value of a size: the integers of lowerings at several sizes, fitted as formulas in
that size, become arithmetic on the int32 launch variable ``n0``.

A kernel whose sizes, strides and loop lengths follow one size ``t`` anywhere (attention over ``t`` tokens: scores
``(1, H, t, t)`` with strides ``t*t`` and ``t``, softmax rows of ``t``, a reduction over ``t``) lowers at each ``t``
to micro-op lists that differ only in their integers: int32 constants, ``SPECIAL`` sizes and launch dims.
:func:`skeleton` splits a lowering into its structure (everything else, exactly) and those integers; :func:`fit`
writes each integer as a quadratic in ``t`` (or a quotient of one: work groups) from lowerings of one structure at
three sizes; :func:`generalize` rebuilds the micro-ops with each integer computed from ``n0`` instead, through the
:class:`~tg.codegen.builder.KernelBuilder` (whose value ranges then hold for every ``n0`` in the variable's bounds).

Whether the fit is the right guess does not decide correctness: core (:mod:`tg.engine.dynamic`) launches the
generalized kernel at a size only when that size's own lowering has the same structure and each of its integers
equals its formula there, so the kernel computes, micro-op for micro-op, what the exact lowering would.
"""

from __future__ import annotations

import math

from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel, SymbolicSize
from tg.codegen.uops import ALU, Ops, PtrDType, UOp
from tg.support.dtype import INDEX_LIMIT, DType, dtypes, exact_key

#: Where a skeleton's structure had an integer of the kernel's size.
SIZE = "#"

Poly = tuple[int, int, int, int]  # a, b, c, d: ceil((a*t*t + b*t + c) / d), d >= 1


def skeleton(kernel: LoweredKernel) -> tuple[tuple[object, ...], tuple[int, ...]]:
    """``kernel``'s structure and its integers.  The structure is every micro-op but the constants (op, dtype,
    argument, and operands: earlier micro-ops by position, constants in place), the launch, and :data:`SIZE` in place
    of each integer: an int32 constant where an operand is one, a ``SPECIAL``'s size and the launch's
    ``global_size``.  The integers are those, in that order.  Constants count where they are used, not as the
    shared micro-ops the builder made of equal values, so that two sizes coinciding at one ``t`` (``8*t`` and a
    literal 96 at ``t = 12``) do not change the structure."""
    position: dict[int, int] = {}
    parts: list[tuple[object, ...]] = []
    ints: list[int] = []
    for u in kernel.uops:
        if u.op is Ops.CONST:
            continue
        operands: list[object] = []
        for s in u.src:
            if s.op is not Ops.CONST:
                operands.append(position[id(s)])
            elif _is_size(s):
                ints.append(s.arg)
                operands.append(SIZE)
            else:
                operands.append((s.dtype, exact_key(s.arg)))
        arg = u.arg
        if u.op is Ops.SPECIAL:
            ints.append(arg[1])
            arg = (arg[0], SIZE)
        elif u.op is Ops.DEFINE_ACC:
            arg = exact_key(arg)
        position[id(u)] = len(parts)
        parts.append((u.op, u.dtype, tuple(operands), arg))
    ints.extend(kernel.global_size)
    return (tuple(parts), len(kernel.global_size), kernel.local_size, kernel.launch_vars), tuple(ints)


def _is_size(u: UOp) -> bool:
    return u.op is Ops.CONST and u.dtype == dtypes.int32 and type(u.arg) is int


def fit(samples: list[tuple[int, tuple[int, ...]]], divisors: tuple[int, ...] = ()) -> tuple[Poly, ...] | None:
    """Each integer position of ``samples`` ((size, integers) of one structure, at three or more distinct sizes) as
    one formula through every sample, or None when a position has none: a polynomial ``a*t*t + b*t + c`` with integer
    coefficients; else ``ceil(p(t) / d)`` for such a polynomial ``p`` (coefficients at least 0) of another position
    and a ``d`` of ``divisors`` (a launch's work groups: ``ceil(threads / group)``); else, where the coefficients are
    at least 0, the quotient of such a polynomial by their common denominator."""
    distinct = dict(samples)
    if len(distinct) < 3:
        return None
    sizes = list(distinct)
    t1, t2, t3 = sizes[:3]
    d1, d2, d3 = (t1 - t2) * (t1 - t3), (t2 - t1) * (t2 - t3), (t3 - t1) * (t3 - t2)
    columns = list(zip(*distinct.values()))
    from fractions import Fraction  # (here, not at import: fractions brings decimal, ~5 ms of every start-up)

    exact: list[tuple[Fraction, Fraction, Fraction]] = []
    for v1, v2, v3, *_ in columns:
        w1, w2, w3 = Fraction(v1, d1), Fraction(v2, d2), Fraction(v3, d3)
        exact.append((w1 + w2 + w3, -(w1 * (t2 + t3) + w2 * (t1 + t3) + w3 * (t1 + t2)),
                      w1 * t2 * t3 + w2 * t1 * t3 + w3 * t1 * t2))

    def through(poly: Poly, column: tuple[int, ...]) -> bool:
        return all(evaluate((poly,), t)[0] == v for t, v in zip(sizes, column))

    whole = [(int(a), int(b), int(c), 1) if a.denominator == b.denominator == c.denominator == 1 else None
             for a, b, c in exact]
    plain = [p if p is not None and through(p, column) else None for p, column in zip(whole, columns)]
    quotients = sorted({(a, b, c, d) for p in plain if p is not None for a, b, c, _ in [p] if min(a, b, c) >= 0 and
                        (a or b) for d in divisors if d > 1})
    polys: list[Poly] = []
    for first, coefs, column in zip(plain, exact, columns):
        found = first if first is not None else next((q for q in quotients if through(q, column)), None)
        if found is None and min(coefs) >= 0:
            d = math.lcm(*(c.denominator for c in coefs))
            rational = (int(coefs[0] * d), int(coefs[1] * d), int(coefs[2] * d), d)
            found = rational if through(rational, column) else None
        if found is None:
            return None
        polys.append(found)
    return tuple(polys)


def evaluate(polys: tuple[Poly, ...], t: int) -> tuple[int, ...]:
    """The integers the formulas give at size ``t``."""
    return tuple(-(-((a * t + b) * t + c) // d) for a, b, c, d in polys)


def bound(polys: tuple[Poly, ...], lo: int, launch: int, launch_limits: tuple[int, ...] = ()) -> int:
    """The largest size ``hi`` (``lo - 1`` when even ``lo`` fails) at which each formula's terms, summed in absolute
    value, fit int32 (so that no step of computing one from ``n0`` wraps) and the ``launch`` dims (the last integers
    of a skeleton) fit the target's ``launch_limits``."""
    limits = [INDEX_LIMIT] * len(polys)
    for dim, most in enumerate(launch_limits[:launch]):
        limits[len(polys) - launch + dim] = min(INDEX_LIMIT, most)

    def fits(t: int) -> bool:
        return all(abs(a) * t * t + abs(b) * t + abs(c) + d <= INDEX_LIMIT and -(-((a * t + b) * t + c) // d) <= most
                   for (a, b, c, d), most in zip(polys, limits))

    if not fits(lo):
        return lo - 1
    good, bad = lo, INDEX_LIMIT + 1
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def generalize(kernel: LoweredKernel, polys: tuple[Poly, ...], lo: int, hi: int, name: str) -> LoweredKernel:
    """``kernel`` (one lowering of the structure ``polys`` were fitted to, at any size) rebuilt for every size
    ``lo..hi``: each integer follows ``n0`` by its formula, a ``SPECIAL``'s size and each launch dim are the
    largest their formula reaches on ``lo..hi`` (a bound: the launch at ``n0`` comes from ``launch_vars``)."""
    b = KernelBuilder()
    i32 = dtypes.int32
    n0: UOp | None = None
    made: dict[int, UOp] = {}
    at = 0  # the next integer position of the skeleton

    def variable() -> UOp:
        nonlocal n0
        if n0 is None:
            n0 = b.define_var("n0", i32, lo, hi)
        return n0

    def value(poly: Poly) -> UOp:
        a, c1, c0, d = poly
        if a == 0 and c1 == 0:
            return b.const(-(-c0 // d), i32)
        n = variable()
        out = b.alu(Ops.MUL, n, b.const(c1, i32)) if c1 else b.const(0, i32)
        if a:
            out = b.alu(Ops.ADD, b.alu(Ops.MUL, b.alu(Ops.MUL, n, n), b.const(a, i32)), out)
        out = b.alu(Ops.ADD, out, b.const(c0, i32))
        # a quotient's coefficients are at least 0 (see fit): its value is too, and it rounds up
        return b.alu(Ops.IDIV, b.alu(Ops.ADD, out, b.const(d - 1, i32)), b.const(d, i32)) if d > 1 else out

    def largest(poly: Poly) -> int:
        """The formula's largest value on lo..hi (a quadratic's largest is at an end, or at its vertex)."""
        a, c1 = poly[0], poly[1]
        points = {lo, hi} | ({min(hi, max(lo, -c1 // (2 * a) + k)) for k in (0, 1)} if a < 0 else set())
        return max(1, *(evaluate((poly,), t)[0] for t in points))

    for u in kernel.uops:
        if u.op is Ops.CONST:
            continue  # built where used (see skeleton)
        if n0 is None and u.op not in (Ops.DEFINE_GLOBAL, Ops.DEFINE_VAR):
            variable()  # after the buffers and the float parameters, before anything that may use it
        src = []
        for s in u.src:
            if s.op is not Ops.CONST:
                src.append(made[id(s)])
            elif _is_size(s):
                src.append(value(polys[at]))
                at += 1
            else:
                assert isinstance(s.dtype, DType)
                src.append(b.const(s.arg, s.dtype))
        if u.op is Ops.SPECIAL:
            made[id(u)] = b.special(u.arg[0], largest(polys[at]))
            at += 1
        else:
            made[id(u)] = _replay(b, u, tuple(src))
    launch = polys[at:]
    global_size = tuple(largest(p) for p in launch)
    launch_vars = tuple((axis, SymbolicSize("n0", c1, d, 1, a, c0)) for axis, (a, c1, c0, d) in enumerate(launch)
                        if a or c1)
    return LoweredKernel(name, b.uops, global_size, kernel.local_size, kernel.bytes_moved, launch_vars, dynamic=True)


def _replay(b: KernelBuilder, u: UOp, src: tuple[UOp, ...]) -> UOp:
    """Micro-op ``u`` (not a constant) built again on ``b`` over the rebuilt operands ``src``."""
    op, dtype, arg = u.op, u.dtype, u.arg
    if op is Ops.DEFINE_GLOBAL:
        assert isinstance(dtype, PtrDType)
        return b.define_global(arg[0], dtype.base, arg[2], arg[1])
    if op is Ops.DEFINE_LOCAL:
        assert isinstance(dtype, PtrDType)
        return b.define_local(arg[0], dtype.base, arg[1])
    if op is Ops.DEFINE_VAR:
        assert isinstance(dtype, DType)
        return b.define_var(arg[0], dtype, arg[1], arg[2])
    if op is Ops.RANGE:
        return b.range(src[0], src[1])
    if op is Ops.ENDRANGE:
        b.end_range(src[0])
        return src[0]
    if op is Ops.DEFINE_ACC:
        assert isinstance(dtype, DType)
        return b.define_acc(arg, dtype)
    if op is Ops.ASSIGN:
        return b.assign(src[0], src[1])
    if op is Ops.LOAD:
        assert dtype is not None
        return b.load(src[0], src[1], dtype, *src[2:])
    if op is Ops.STORE:
        b.store(src[0], src[1], src[2], src[3] if len(src) > 3 else None)
        return src[0]
    if op is Ops.BARRIER:
        b.barrier()
        return b.uops[-1]
    if op is Ops.CAST:
        assert isinstance(dtype, DType)
        return b.cast(src[0], dtype)
    if op is Ops.BITCAST:
        assert isinstance(dtype, DType)
        return b.bitcast(src[0], dtype)
    if op in ALU:
        assert isinstance(dtype, DType)
        return b.alu(op, *src, dtype=dtype)
    if op in (Ops.VECTORIZE, Ops.GEP, Ops.WMMA):
        return b._add(op, dtype, src, arg)
    raise AssertionError(f"generalize: no rebuild for {op}")
