"""What each PTX instruction does, in numpy, for all active threads at once (semantics from the PTX ISA).

:func:`build` turns one parsed instruction into a function of the :class:`~.context.Context`; an opcode
or a modifier this module does not implement raises :class:`EmulatorError` naming it, at build time.
Control flow (``bra``, ``bar``, ``ret``, ``exit``) is the executor's; it is recognised here only so
that the error for an unknown instruction is uniform.

Notes on semantics chosen where the ISA leaves freedom or numpy lacks an operation:

- ``fma.rn.f64`` is computed with an error-free product and sum (Dekker/Knuth), which is exact or
  within one rounding of the fused result; ``fma.rn.f32``/``.f16`` go through float64.
- the ``.approx`` instructions (``ex2``, ``lg2``, ``sin``, ``cos``, ``rcp``, ``sqrt``, ``div``) return
  the correctly rounded value, which lies within every error bound the ISA gives;
- integer ``div``/``rem`` by zero (unspecified in the ISA) give all ones and the dividend;
- float-to-integer ``cvt`` saturates; NaN gives 0 from ``.f16``/``.f32`` to an integer of 32 bits or
  fewer, but the value with only the top bit set (the signed minimum; 128 for ``.u8``) from ``.f64`` or
  to a 64-bit integer.  That is what an H200 (sm_90) did, where the ISA text says NaN gives 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tg_ptx.emulator import matrix, sharedops
from tg_ptx.emulator.context import Context, reader, writer
from tg_ptx.emulator.errors import EmulatorError
from tg_ptx.emulator.numerics import bit_type, convert, flush, fma, int_div, int_rem
from tg_ptx.emulator.parser import Addr, Entry, Instruction, PredPair, Sym, Vec
from tg_ptx.emulator.ptxtypes import SIGNED, TYPES, UNSIGNED, PType, from_register, ptype

Run = Callable[[Context], None]
CONTROL = {"bra", "bar", "barrier", "ret", "exit"}

_IGNORED_MODS = {"uni", "volatile", "relaxed", "weak", "acquire", "release", "cta", "gpu", "sys", "ca", "cg", "cs",
                 "lu", "cv", "wb", "wt", "nc", "sync", "aligned"}


class _Spec:
    """The modifiers of one instruction, sorted into kinds, with a check that nothing is left unread."""

    def __init__(self, ins: Instruction):
        self.ins = ins
        self.types = [ptype(m) for m in ins.mods if m in TYPES]
        self.flags = {m for m in ins.mods if m not in TYPES}

    @property
    def type(self) -> PType:
        if not self.types:
            raise self.error("has no type")
        return self.types[-1]

    def take(self, *mods: str) -> set[str]:
        found = self.flags & set(mods)
        self.flags -= found
        return found

    def done(self) -> None:
        left = self.flags - _IGNORED_MODS - {m for m in self.flags if "::" in m}
        if left:
            raise self.error(f"modifier(s) {', '.join('.' + m for m in sorted(left))} not supported")

    def error(self, what: str) -> EmulatorError:
        return EmulatorError(f"instruction {self.ins.opcode}{''.join('.' + m for m in self.ins.mods)} {what}",
                             self.ins.line, self.ins.text)

    def operands(self, count: int) -> tuple[Any, ...]:
        if len(self.ins.operands) != count:
            raise self.error(f"takes {count} operands, not {len(self.ins.operands)}")
        return self.ins.operands


# -- floating point helpers ----------------------------------------------------------------------------------


def _float_rounding(spec: _Spec, allowed: tuple[str, ...] = ("rn",)) -> None:
    bad = spec.take("rz", "rm", "rp") - set(allowed)
    if bad:
        raise spec.error(f"rounding mode .{bad.pop()} is not supported (only round-to-nearest)")
    spec.take(*allowed)


def _post(spec: _Spec, t: PType) -> Callable[[Any], Any] | None:
    """The result modifiers .ftz (flush subnormals) and .sat (clamp to [0, 1], NaN to 0); None without them."""
    ftz = bool(spec.take("ftz")) and t.name == "f32"
    sat = bool(spec.take("sat")) and t.is_float
    if not (ftz or sat):
        return None

    def post(x: Any) -> Any:
        if ftz:
            x = flush(x)
        if sat:
            x = np.where(np.isnan(x), 0, np.clip(x, 0, 1)).astype(t.np)
        return x

    return post


# -- builders ------------------------------------------------------------------------------------------------


def _elementwise(spec: _Spec, entry: Entry, fn: Callable[..., Any], t: PType, n_inputs: int,
                 post: Callable[[Any], Any] | None = None, in_type: PType | None = None) -> Run:
    ops = spec.operands(n_inputs + 1)
    spec.done()
    out = writer(ops[0], t, entry)
    ins = [reader(op, in_type or t, entry) for op in ops[1:]]
    if post is not None:
        inner = fn

        def fn(*args: Any) -> Any:
            return post(inner(*args))

    if n_inputs == 1:
        a = ins[0]
        return lambda c: out(c, fn(a(c)))
    if n_inputs == 2:
        a, b = ins
        return lambda c: out(c, fn(a(c), b(c)))
    a, b, d = ins
    return lambda c: out(c, fn(a(c), b(c), d(c)))


def _arith(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    op = ins.opcode
    if t.is_float:
        _float_rounding(spec, ("rn",) if op in ("add", "sub", "mul", "fma", "mad") else ())
        post = _post(spec, t)
        table: dict[str, tuple[int, Callable[..., Any]]] = {
            "add": (2, np.add), "sub": (2, np.subtract), "mul": (2, np.multiply),
            "fma": (3, lambda a, b, d: fma(a, b, d, t)), "mad": (3, lambda a, b, d: fma(a, b, d, t)),
        }
        n, fn = table[op]
        if t.name == "f32" and "ftz" in ins.mods:  # subnormal inputs count as zero too
            exact = fn

            def fn(*args: Any) -> Any:
                return exact(*(flush(x) for x in args))

        return _elementwise(spec, entry, fn, t, n, post)
    width = spec.take("lo", "hi", "wide")
    if op in ("add", "sub"):
        spec.take("cc")
        sat = spec.take("sat")
        if sat:
            raise spec.error("with .sat is not supported")
        fn2 = (lambda a, b: a + b) if op == "add" else (lambda a, b: a - b)
        return _elementwise(spec, entry, fn2, t, 2)
    if "hi" in width:
        if t.size == 8:
            raise spec.error("(64-bit .hi) is not supported")
        wide = SIGNED[t.size * 2] if t.signed else UNSIGNED[t.size * 2]
        shift = 8 * t.size
        fn2 = lambda a, b: ((np.asarray(a, wide) * np.asarray(b, wide)) >> shift).astype(t.np)  # noqa: E731
        if op == "mad":
            return _elementwise(spec, entry, lambda a, b, d: fn2(a, b) + d, t, 3)
        return _elementwise(spec, entry, fn2, t, 2)
    if "wide" in width:
        if t.size == 8:
            raise spec.error("(64-bit .wide) is not supported")
        wt = ptype(("s" if t.signed else "u") + str(t.size * 16))
        ops = spec.operands(4 if op == "mad" else 3)
        spec.done()
        out = writer(ops[0], wt, entry)
        ra, rb = reader(ops[1], t, entry), reader(ops[2], t, entry)
        if op == "mad":
            rd = reader(ops[3], wt, entry)
            return lambda c: out(c, np.asarray(ra(c), wt.np) * np.asarray(rb(c), wt.np) + rd(c))
        return lambda c: out(c, np.asarray(ra(c), wt.np) * np.asarray(rb(c), wt.np))
    if op == "mad":
        return _elementwise(spec, entry, lambda a, b, d: a * b + d, t, 3)
    return _elementwise(spec, entry, lambda a, b: a * b, t, 2)


def _div_rem(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    if ins.opcode == "div" and t.is_float:
        spec.take("rn", "full", "approx")
        _float_rounding(spec, ())
        post = _post(spec, t)
        return _elementwise(spec, entry, lambda a, b: np.asarray(a) / np.asarray(b), t, 2, post)
    if t.is_float:
        raise spec.error("(rem) on floats does not exist")
    fn = int_div if ins.opcode == "div" else int_rem
    return _elementwise(spec, entry, lambda a, b: fn(a, b, t), t, 2)


def _unary(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    op = ins.opcode
    if t.is_float:
        approx = bool(spec.take("approx"))
        if op in ("rcp", "sqrt"):
            spec.take("rn")
            _float_rounding(spec, ())
        elif op in ("ex2", "lg2", "sin", "cos", "rsqrt", "tanh") and not approx:
            raise spec.error("exists only as .approx")
        post = _post(spec, t)
        ftz = "ftz" in ins.mods and t.name == "f32"
        table: dict[str, Callable[[Any], Any]] = {
            "neg": np.negative, "abs": np.abs, "rcp": lambda x: np.float64(1) / np.asarray(x, np.float64),
            "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x), "ex2": np.exp2, "lg2": np.log2, "sin": np.sin,
            "cos": np.cos, "tanh": np.tanh,
        }
        fn = table.get(op)
        if fn is None:
            raise spec.error("is not supported on floats")
        if op == "rcp":
            inner = fn

            def fn(x: Any) -> Any:
                return inner(x).astype(t.np)

        wrapped = (lambda x: fn(flush(x))) if ftz else fn
        return _elementwise(spec, entry, wrapped, t, 1, post)
    if op == "neg":
        return _elementwise(spec, entry, lambda a: (np.zeros_like(a) - a).astype(t.np), t, 1)
    if op == "abs":
        return _elementwise(spec, entry, lambda a: np.abs(a).astype(t.np), t, 1)
    if op == "not":
        if t.kind == "p":
            return _elementwise(spec, entry, np.logical_not, t, 1)
        return _elementwise(spec, entry, np.invert, t, 1)
    raise spec.error("is not supported on integers")


def _signed_zero_rule(fn: Callable[[Any, Any], Any], is_max: bool) -> Callable[[Any, Any], Any]:
    """The ISA orders +0.0 above -0.0 in min and max (numpy returns either zero)."""
    def minmax(a: Any, b: Any) -> Any:
        r = fn(a, b)
        zeros = (a == 0) & (b == 0)
        if not np.any(zeros):
            return r
        negative = np.signbit(a) & np.signbit(b) if is_max else np.signbit(a) | np.signbit(b)
        return np.where(zeros, np.where(negative, -np.abs(r), np.abs(r)), r)
    return minmax


def _minmax(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    is_max = ins.opcode == "max"
    if t.is_float:
        nan = bool(spec.take("NaN"))
        post = _post(spec, t)
        fn: Callable[[Any, Any], Any]
        if is_max:
            fn = np.maximum if nan else np.fmax
        else:
            fn = np.minimum if nan else np.fmin
        return _elementwise(spec, entry, _signed_zero_rule(fn, is_max), t, 2, post)
    return _elementwise(spec, entry, np.maximum if is_max else np.minimum, t, 2)


def _logic(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    fns: dict[str, Callable[[Any, Any], Any]]
    if t.kind == "p":
        fns = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}
    else:
        fns = {"and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}
    return _elementwise(spec, entry, fns[ins.opcode], t, 2)


def _shift(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    ops = spec.operands(3)
    spec.done()
    out = writer(ops[0], t, entry)
    a, b = reader(ops[1], t, entry), reader(ops[2], TYPES["u32"], entry)
    bits = 8 * t.size
    if ins.opcode == "shl":
        def run(c: Context) -> None:
            amount = np.asarray(b(c)).astype(np.uint64)
            x = np.asarray(a(c)).view(bit_type(t)) if np.ndim(a(c)) else np.asarray(a(c)).astype(t.np).view(bit_type(t))
            shifted = np.where(amount >= bits, 0, x << np.minimum(amount, bits - 1).astype(bit_type(t)))
            out(c, np.asarray(shifted, bit_type(t)).view(t.np))
        return run

    def run_right(c: Context) -> None:
        amount = np.asarray(b(c)).astype(np.uint64)
        x = np.asarray(a(c), t.np)
        if t.signed:
            out(c, x >> np.minimum(amount, bits - 1).astype(t.np))
        else:
            ux = x.view(bit_type(t)) if x.ndim else x.astype(bit_type(t))
            out(c, np.asarray(np.where(amount >= bits, 0, ux >> np.minimum(amount, bits - 1).astype(bit_type(t))),
                              bit_type(t)).view(t.np))
    return run_right


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
}


def _setp(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    cmp = next((m for m in ins.mods if m not in TYPES), "")
    spec.take(cmp)
    boolop = spec.take("and", "or", "xor")
    spec.take("ftz")
    spec.done()
    base = {"lo": "lt", "ls": "le", "hi": "gt", "hs": "ge"}.get(cmp, cmp)
    unordered = t.is_float and base.endswith("u") and base[:-1] in _COMPARE
    name = base[:-1] if unordered else base
    if name not in _COMPARE and not (t.is_float and name in ("num", "nan")):
        raise spec.error(f"has an unknown comparison .{cmp}")

    def compare(a: Any, b: Any) -> Any:
        if t.is_float and name in ("num", "nan"):
            either = np.isnan(a) | np.isnan(b)
            return either if name == "nan" else ~either
        result = _COMPARE[name](a, b)
        if t.is_float:
            either = np.isnan(a) | np.isnan(b)
            result = (result | either) if unordered else (result & ~either)
        return result

    ops = ins.operands
    n = 4 if boolop else 3
    if len(ops) != n:
        raise spec.error(f"takes {n} operands")
    dest = ops[0]
    first = dest.first if isinstance(dest, PredPair) else dest
    second = dest.second if isinstance(dest, PredPair) else None
    out1 = writer(first, TYPES["pred"], entry)
    out2 = writer(second, TYPES["pred"], entry) if second is not None else None
    ra, rb = reader(ops[1], t, entry), reader(ops[2], t, entry)
    rc = reader(ops[3], TYPES["pred"], entry) if boolop else None
    combine = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}[boolop.pop()] if boolop else None

    def run(c: Context) -> None:
        r = np.asarray(compare(ra(c), rb(c)))
        if combine is not None and rc is not None:
            p = rc(c)
            out1(c, combine(r, p))
            if out2 is not None:
                out2(c, combine(~r, p))
        else:
            out1(c, r)
            if out2 is not None:
                out2(c, ~r)
    return run


def _selp(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    ops = spec.operands(4)
    spec.done()
    out = writer(ops[0], t, entry)
    ra, rb, rc = reader(ops[1], t, entry), reader(ops[2], t, entry), reader(ops[3], TYPES["pred"], entry)
    return lambda c: out(c, np.where(rc(c), ra(c), rb(c)))


def _mov(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    ops = spec.operands(2)
    spec.done()
    if isinstance(ops[1], Vec) and not isinstance(ops[0], Vec):
        return matrix.mov_pack(ins, entry)
    if isinstance(ops[0], Vec) or isinstance(ops[1], Vec):
        raise spec.error("(vector unpack) is not supported")
    if isinstance(ops[1], Sym) and ops[1].name not in entry.shared:
        raise spec.error(f"reads symbol {ops[1].name}, which is not a .shared variable of this entry")
    out = writer(ops[0], t, entry)
    src = reader(ops[1], t, entry)
    return lambda c: out(c, src(c))


def _cvta(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    spec.take("to")
    space = spec.take("global", "shared", "local", "const", "param")
    if space != {"global"}:
        raise spec.error("supports only the global state space")
    t = spec.type
    ops = spec.operands(2)
    spec.done()
    out, src = writer(ops[0], t, entry), reader(ops[1], t, entry)
    return lambda c: out(c, src(c))


def _cvt(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    if len(spec.types) != 2:
        raise spec.error("needs a destination and a source type")
    dst, src = spec.types
    irnd_set = spec.take("rni", "rzi", "rmi", "rpi")
    frnd = spec.take("rn", "rz", "rm", "rp")
    if frnd - {"rn"}:
        raise spec.error(f"rounding .{(frnd - {'rn'}).pop()} is not supported")
    if src.is_float and not dst.is_float and not irnd_set:
        raise spec.error("converts a float to an integer without an integer rounding modifier")
    if src.is_float and dst.is_float and dst.size < src.size and not frnd:
        raise spec.error("narrows a float without a rounding modifier")
    sat = bool(spec.take("sat"))
    ftz = bool(spec.take("ftz"))
    irnd = irnd_set.pop() if irnd_set else ""
    ops = spec.operands(2)
    spec.done()
    out, a = writer(ops[0], dst, entry, wider=True), reader(ops[1], src, entry, wider=True)
    return lambda c: out(c, convert(a(c), src, dst, irnd, sat, ftz))


def _testp(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    t = spec.type
    kind = spec.take("finite", "infinite", "number", "notanumber", "normal", "subnormal")
    if len(kind) != 1:
        raise spec.error("needs one test")
    test = kind.pop()
    tiny = np.finfo(t.np).tiny

    tests: dict[str, Callable[[Any], Any]] = {
        "finite": np.isfinite, "infinite": np.isinf, "number": lambda v: ~np.isnan(v), "notanumber": np.isnan,
        "normal": lambda v: np.isfinite(v) & (np.abs(v) >= tiny), "subnormal": lambda v: (np.abs(v) < tiny) & (v != 0)}
    fn = tests[test]

    ops = spec.operands(2)
    spec.done()
    out, a = writer(ops[0], TYPES["pred"], entry), reader(ops[1], t, entry)
    return lambda c: out(c, fn(a(c)))


# -- memory --------------------------------------------------------------------------------------------------


def _space(spec: _Spec) -> str:
    spaces = spec.take("global", "shared", "param", "local", "const")
    if len(spaces) > 1:
        raise spec.error("names two state spaces")
    space = spaces.pop() if spaces else "generic"
    if space in ("local", "const"):
        raise spec.error(f"uses the .{space} state space, which is not supported")
    return space


def _vector(spec: _Spec) -> int:
    vec = spec.take("v2", "v4", "v8")
    return int(vec.pop()[1:]) if vec else 1


def _address(op: Any, spec: _Spec, entry: Entry, shared: bool) -> Callable[[Context], np.ndarray]:
    if not isinstance(op, Addr):
        raise spec.error("needs an [address] operand")
    offset = op.offset
    if op.base is None:
        return lambda c: np.full(c.n, offset, np.int64)
    if isinstance(op.base, Sym):
        if shared and op.base.name in entry.shared:
            base = entry.shared[op.base.name].offset + offset
            return lambda c: np.full(c.n, base, np.int64)
        raise spec.error(f"addresses symbol {op.base.name}, which is not a .shared variable of this entry")
    narrow = op.base.name in entry.registers and entry.registers[op.base.name].size == 4
    t = TYPES["u32"] if shared and narrow else TYPES["u64"]
    read = reader(op.base, t, entry)
    if shared:
        return lambda c: np.asarray(read(c)).astype(np.int64) + offset
    return lambda c: np.asarray(read(c)).astype(np.uint64) + np.uint64(offset % (1 << 64))


def _lanes(op: Any, spec: _Spec, count: int) -> list[Any]:
    if count == 1:
        if isinstance(op, Vec):
            raise spec.error("has a vector operand without .v2/.v4")
        return [op]
    if not isinstance(op, Vec) or len(op.items) != count:
        raise spec.error(f"needs a {{vector}} of {count} elements")
    return list(op.items)


def _ld(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    space = _space(spec)
    count = _vector(spec)
    t = spec.type
    ops = spec.operands(2)
    spec.done()
    outs = [writer(op, t, entry, wider=True) for op in _lanes(ops[0], spec, count)]
    if space == "param":
        addr = ops[1]
        if not isinstance(addr, Addr) or not isinstance(addr.base, Sym) or addr.offset or count != 1:
            raise spec.error("reads a parameter other than by [name]")
        pname = addr.base.name
        if pname not in {p.name for p in entry.params}:
            raise spec.error(f"reads {pname}, which is not a parameter of {entry.name}")
        return lambda c: outs[0](c, from_register(c.params[pname], t))
    shared = space == "shared"
    address = _address(ops[1], spec, entry, shared)
    dtype = t.np

    def run(c: Context) -> None:
        if c.mask is None:  # every thread: no gathering of the active ones
            where = address(c)
            blocks = c.block
        else:
            who = np.nonzero(c.mask)[0]
            where, blocks = address(c)[who], c.block[who]
        if shared:
            values = c.shared.load(blocks, where, dtype, count, None if c.mask is None else who)
        else:
            values = c.memory.load(where, dtype, count)
        for out, v in zip(outs, values):
            if c.mask is None:
                out(c, v)
            else:
                full = np.zeros(c.n, dtype)
                full[who] = v
                out(c, full)
    return run


def _st(ins: Instruction, entry: Entry) -> Run:
    spec = _Spec(ins)
    space = _space(spec)
    count = _vector(spec)
    t = spec.type
    ops = spec.operands(2)
    spec.done()
    if space == "param":
        raise spec.error("writes to a kernel parameter")
    shared = space == "shared"
    address = _address(ops[0], spec, entry, shared)
    lanes = [reader(op, t, entry, wider=True) for op in _lanes(ops[1], spec, count)]
    dtype = t.np

    def run(c: Context) -> None:
        values = [np.broadcast_to(np.asarray(r(c), dtype), (c.n,)) for r in lanes]
        where, blocks = address(c), c.block
        if c.mask is not None:
            who = np.nonzero(c.mask)[0]
            where, blocks, values = where[who], blocks[who], [v[who] for v in values]
        if shared:
            c.shared.store(blocks, where, values, dtype, None if c.mask is None else who)
        else:
            c.memory.store(where, values, dtype)
    return run


_BUILDERS: dict[str, Callable[[Instruction, Entry], Run]] = {
    "add": _arith, "sub": _arith, "mul": _arith, "mad": _arith, "fma": _arith,
    "div": _div_rem, "rem": _div_rem,
    "neg": _unary, "abs": _unary, "not": _unary, "rcp": _unary, "sqrt": _unary, "rsqrt": _unary, "ex2": _unary,
    "lg2": _unary, "sin": _unary, "cos": _unary, "tanh": _unary,
    "min": _minmax, "max": _minmax,
    "and": _logic, "or": _logic, "xor": _logic,
    "shl": _shift, "shr": _shift,
    "setp": _setp, "selp": _selp, "mov": _mov, "cvt": _cvt, "cvta": _cvta, "testp": _testp,
    "ld": _ld, "st": _st, "mma": matrix.mma, "ldmatrix": sharedops.ldmatrix, "cp": sharedops.cp,
}


def build(ins: Instruction, entry: Entry) -> Run:
    """The function that runs ``ins`` (not a control-flow instruction) for the active threads."""
    builder = _BUILDERS.get(ins.opcode)
    if builder is None:
        raise EmulatorError(f"unsupported instruction '{ins.opcode}'", ins.line, ins.text)
    try:
        return builder(ins, entry)
    except EmulatorError as exc:
        if exc.line is None:
            raise EmulatorError(str(exc).removeprefix("ptx emulator: "), ins.line, ins.text) from None
        raise

