"""The lane renderer: C for a *gang* of G threads at once, SIMD across them (the way ISPC runs SPMD code).

Its input is a micro-op list in which one SPECIAL, ``lane`` (0..G-1), stands for the thread within the gang
(:mod:`tg_clang.tiling` builds it).  A value that does not depend on ``lane`` is *uniform*: one C scalar,
rendered exactly like the scalar renderer does.  A value that does is *varying*: a clang vector of G lanes.
Integer values of the form ``base + stride*lane`` are tracked as such, so a load or store whose index has
stride 1 reads or writes G consecutive elements at once, one at another constant stride reads each lane at a
fixed offset from lane 0's address, and any other varying index gathers lane by lane from its index vector.
Inside loops, an index that is a sum of terms changing at different loop depths is added in 64 bits (see
:meth:`LaneRenderer._offset`), so that the compiler can hoist the invariant part and step one pointer.
Each lane computes exactly what its thread would, in the same order, so results are bit-identical to the
scalar rendering; masked-off lanes never touch memory.

Varying bools are int32 masks (-1 true, 0 false), converted to the element width where a select needs it.
``(vector type)(scalar)`` splats a scalar; a cast between vector types of one size reinterprets the bits.
"""

from __future__ import annotations

from tg.codegen.uops import Ops, PtrDType, UOp
from tg.support.dtype import DType, dtypes

from tg_clang.cprelude import INT_RANGE, LANE_TYPE, MATH_SUFFIX, literal, value_type
from tg_clang.crender import FULL_UNROLL, CRenderer
from tg_clang.scalar import scalar_alu, scalar_cast

_INFIX = {Ops.ADD: "+", Ops.SUB: "-", Ops.MUL: "*", Ops.DIV: "/", Ops.AND: "&", Ops.OR: "|", Ops.XOR: "^"}
_CMP = {Ops.CMPLT: "<", Ops.CMPNE: "!=", Ops.CMPEQ: "=="}
_LANE_MATH = {Ops.EXP2: "exp2", Ops.LOG2: "log2", Ops.SIN: "sin", Ops.SQRT: "sqrt", Ops.TRUNC: "trunc"}
#: Functions with a vector version in glibc's libmvec (used when the compiler flags say it is there).
_VECTOR_MATH = {Ops.EXP2, Ops.LOG2, Ops.SIN}
_MASK_INT = {1: "int8_t", 2: "int16_t", 4: "int32_t", 8: "int64_t"}
_UNSUPPORTED = {Ops.VECTORIZE, Ops.GEP, Ops.BARRIER, Ops.DEFINE_LOCAL}


def lane_supported(uops: list[UOp]) -> bool:
    """Whether the lane renderer can take this kernel (no core vectors, local memory, or float16)."""
    for u in uops:
        if u.op in _UNSUPPORTED or (u.op is Ops.SPECIAL and u.arg[0] == "lidx0"):
            return False
        dt = u.dtype.base if isinstance(u.dtype, PtrDType) else u.dtype
        if dt is not None and (not isinstance(dt, DType) or dt.name == "float16"):
            return False
    return True


def vector_typedefs(lanes: int) -> list[str]:
    types = sorted({*LANE_TYPE.values(), "int16_t"})
    lines = [f"typedef {t} tg_{t}_v __attribute__((ext_vector_type({lanes})));" for t in types]
    iota = ", ".join(str(i) for i in range(lanes))
    lines.append(f"static const tg_int32_t_v tg_iota = {{{iota}}};")
    lines += _vector_math(lanes)
    if lanes % 8 == 0:
        lines += _masked_loads(lanes)
    lines.append("TG_INLINE int tg_all(tg_int32_t_v m) { int32_t r = -1; "
                 f"for (int l = 0; l < {lanes}; l++) r &= m[l]; return r != 0; }}")
    lines.append("TG_INLINE int tg_any(tg_int32_t_v m) { int32_t r = 0; "
                 f"for (int l = 0; l < {lanes}; l++) r |= m[l]; return r != 0; }}")
    return lines


def _vector_math(lanes: int) -> list[str]:
    """tg_vexp2f & co on G lanes: with libmvec (the prelude's ``TG_MV_BYTES``), its function for the target's widest
    vector on each slice of that many lanes, the last one padded with zeros when G is not a multiple of it (the
    same function as the scalar ``tg_exp2f``: the same bits in any lane); libm lane by lane otherwise."""
    out = ["#if defined(TG_MV_BYTES)"]
    for fn in ("exp2", "log2", "sin"):
        for suffix, ctype, part in (("f", "float", "tg_mvf"), ("", "double", "tg_mvd")):
            vt, width = f"tg_{ctype}_v", f"(int)(sizeof({part}) / sizeof({ctype}))"
            out.append(f"TG_INLINE {vt} tg_v{fn}{suffix}({vt} x) {{ {vt} r; "
                       f"for (int i = 0; i < {lanes}; i += {width}) {{ {part} p = {{0}}; "
                       f"int n = {lanes} - i < {width} ? {lanes} - i : {width}; "
                       f"memcpy(&p, (char *)&x + i * sizeof({ctype}), n * sizeof({ctype})); p = tg_mv_{fn}{suffix}(p); "
                       f"memcpy((char *)&r + i * sizeof({ctype}), &p, n * sizeof({ctype})); }} return r; }}")
    out.append("#else")
    for fn in ("exp2", "log2", "sin"):
        for suffix, ctype in (("f", "float"), ("", "double")):
            out.append(f"TG_INLINE tg_{ctype}_v tg_v{fn}{suffix}(tg_{ctype}_v x) {{ tg_{ctype}_v r; "
                       f"for (int l = 0; l < {lanes}; l++) r[l] = {fn}{suffix}(x[l]); return r; }}")
    return [*out, "#endif"]


def _masked_loads(lanes: int) -> list[str]:
    """tg_mload4/8: AVX2 masked loads of G elements of 4 or 8 bytes; masked-off lanes are not read (no fault)."""
    return ["#if defined(__AVX2__)",
            "#define TG_MASKLOAD 1",
            "typedef float tg_mf8 __attribute__((vector_size(32)));",
            "typedef int tg_mi8 __attribute__((vector_size(32)));",
            "typedef double tg_md4 __attribute__((vector_size(32)));",
            "typedef long long tg_ml4 __attribute__((vector_size(32)));",
            "TG_INLINE tg_float_v tg_mload4(const void *p, tg_int32_t_v m) { tg_float_v r; "
            f"for (int i = 0; i < {lanes}; i += 8) {{ tg_mi8 mm; memcpy(&mm, (const char *)&m + 4 * i, 32); "
            "tg_mf8 x = __builtin_ia32_maskloadps256((const tg_mf8 *)((const char *)p + 4 * i), mm); "
            "memcpy((char *)&r + 4 * i, &x, 32); } return r; }",
            "TG_INLINE tg_double_v tg_mload8(const void *p, tg_int32_t_v m) { tg_double_v r; "
            "tg_int64_t_v m8 = __builtin_convertvector(m, tg_int64_t_v); "
            f"for (int i = 0; i < {lanes}; i += 4) {{ tg_ml4 mm; memcpy(&mm, (const char *)&m8 + 8 * i, 32); "
            "tg_md4 x = __builtin_ia32_maskloadpd256((const tg_md4 *)((const char *)p + 8 * i), mm); "
            "memcpy((char *)&r + 8 * i, &x, 32); } return r; }",
            "#endif"]


def _has_avx2() -> bool:
    """Whether clang compiles for a CPU with AVX2 (-march=native), where the prelude defines TG_MASKLOAD."""
    from tg_clang.compiler import _host_cpu

    return " avx2" in _host_cpu()


def vtype(dtype: DType) -> str:
    """The vector type of a varying value of ``dtype`` (bools are int32 masks)."""
    return "tg_int32_t_v" if dtype.name == "bool" else f"tg_{LANE_TYPE[dtype.name]}_v"


def _mask_type(width: int) -> str:
    return f"tg_{_MASK_INT[width]}_v"


class LaneRenderer(CRenderer):
    """Renders a tile's micro-ops (see the module docstring) as C statements; ``specials`` names the
    tile's uniform coordinates (``row0``, ``col0``).  Each ``render_<op>`` method (ALU ops: :meth:`from_table`)
    renders a uniform value as the scalar renderer would and a varying one as a vector."""

    def __init__(self, uops: list[UOp], lanes: int, specials: dict[str, str], streaming: bool = False):
        super().__init__(uops, margin=1)
        self.lanes, self.specials, self.streaming = lanes, specials, streaming
        self.bases: dict[int, str] = {}  # varying affine int32: the C scalar of lane 0's value
        self.strides: dict[int, int] = {}
        self.varying = _varying(uops)
        self.levels = _loop_levels(uops)
        #: the lane-by-lane element operations the compiler will generate, fully unrolled loops counted out (each
        #: loop over the lanes is unrolled: see :meth:`_each_lane`): what makes a small kernel's compile long
        self.unrolled_lane_ops = 0

    # -- helpers -------------------------------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        return self._new(prefix)

    def _new(self, prefix: str = "v") -> str:
        return f"{prefix}{len(self.lines)}_{len(self.names)}"

    def _is_var(self, u: UOp) -> bool:
        return id(u) in self.varying

    def vec(self, u: UOp, dtype: DType | None = None) -> str:
        """``u`` as a vector expression (a uniform value is splatted)."""
        if self._is_var(u):
            return self.names[id(u)]
        dt = dtype or u.dtype
        assert isinstance(dt, DType)
        if dt.name == "bool":
            return f"((tg_int32_t_v)(-(int32_t)({self.names[id(u)]})))"
        return f"(({vtype(dt)})(({LANE_TYPE[dt.name]})({self.names[id(u)]})))"

    def lane(self, u: UOp, lane: str = "l") -> str:
        """``u``'s value in lane ``lane`` as a scalar C expression (of the scalar renderer's value type)."""
        if not self._is_var(u):
            return self.names[id(u)]
        if u.dtype == dtypes.bool:
            return f"({self.names[id(u)]}[{lane}] != 0)"
        return f"{self.names[id(u)]}[{lane}]"

    def _define_vec(self, u: UOp, expr: str, prefix: str = "v") -> None:
        assert isinstance(u.dtype, DType)
        var = self._new(prefix)
        self.names[id(u)] = var
        self.emit(f"{vtype(u.dtype)} {var} = {expr};")

    def _per_lane(self, u: UOp, lane_expr: str) -> None:
        """A varying value computed lane by lane (``lane_expr`` uses ``l``)."""
        assert isinstance(u.dtype, DType)
        var = self._new()
        self.names[id(u)] = var
        value = f"-(int32_t)({lane_expr})" if u.dtype.name == "bool" else lane_expr
        self.emit(f"{vtype(u.dtype)} {var}; {self._each_lane()} {var}[l] = {value};")

    def _each_lane(self, counted: bool = True) -> str:
        """A loop over the lanes (a gather, a scatter, a masked load or store, a value without SIMD), fully
        unrolled: a loop that indexes vectors by its counter makes clang keep them in memory and reload them lane by
        lane (on AVX-512, a masked gang of three live lanes 13x slower, a gather and scatter 3x), where constant
        lanes read registers and fold a mask known at compile time.  ``counted``: it adds to
        :attr:`unrolled_lane_ops` (not a loop the preprocessor drops on this CPU)."""
        if counted:
            self.unrolled_lane_ops += self.lanes * self.copies[-1]
        return f"{FULL_UNROLL}for (int l = 0; l < {self.lanes}; l++)"

    # -- rendering: one method per kind of micro-op ---------------------------------------------------------------

    def render(self) -> list[str]:
        return self.render_uops()

    def render_special(self, u: UOp) -> None:
        if self._is_var(u):  # the lane itself
            self.strides[id(u)], self.bases[id(u)] = 1, "0"
            self._define_vec(u, "tg_iota")
        else:
            self.names[id(u)] = self.specials[u.arg[0]]

    def render_define_acc(self, u: UOp) -> None:
        dt = u.dtype
        assert isinstance(dt, DType)
        var = self._new("acc")
        self.names[id(u)] = var
        if self._is_var(u):
            splat = f"-(int32_t){literal(u.arg, dt)}" if dt.name == "bool" else literal(u.arg, dt)
            self.emit(f"{vtype(dt)} {var} = ({vtype(dt)})({splat});")
        else:
            self.emit(f"{value_type(dt)} {var} = {literal(u.arg, dt)};")

    def render_assign(self, u: UOp) -> None:
        acc = self.names[id(u.src[0])]
        self.names[id(u)] = acc
        value = self.vec(u.src[1], u.dtype) if self._is_var(u) else self.names[id(u.src[1])]  # type: ignore[arg-type]
        self.emit(f"{acc} = {value};")

    def render_load(self, u: UOp) -> None:
        if self._is_var(u):
            self._load(u)
            return
        dt = u.dtype
        assert isinstance(dt, DType)
        s = self.operands(u)
        read = f"{s[0]}[{self._offset(u.src[1])}]"
        var = self._new()
        self.names[id(u)] = var
        self.emit(f"{value_type(dt)} {var} = {f'({s[2]} ? {read} : {s[3]})' if len(s) > 2 else read};")

    def render_store(self, u: UOp) -> None:
        self._store(u)

    def render_gep(self, u: UOp) -> None:
        """One lane of a varying value, as a uniform scalar (a gang combining its lanes' partial results)."""
        self._define_scalar(u, self.lane(u.src[0], str(u.arg)))

    def render_cast(self, u: UOp) -> None:
        dt, src = u.dtype, u.src[0].dtype
        assert isinstance(dt, DType) and isinstance(src, DType)
        if self._is_var(u):
            self._cast(u, dt)
        else:
            self._define_scalar(u, scalar_cast(self.names[id(u.src[0])], src, dt))

    def render_bitcast(self, u: UOp) -> None:
        dt = u.dtype
        assert isinstance(dt, DType)
        if self._is_var(u):
            self._cast(u, dt)
            return
        var = self._new()
        self.emit(f"{value_type(dt)} {var}; memcpy(&{var}, &{self.names[id(u.src[0])]}, sizeof({var}));")
        self.names[id(u)] = var

    def from_table(self, u: UOp) -> None:
        """ALU ops: a vector expression for a varying value, the scalar renderer's for a uniform one."""
        dt = u.dtype
        assert isinstance(dt, DType)
        if self._is_var(u):
            self._alu(u, dt)
        else:
            self._define_scalar(u, scalar_alu(u.op, dt, self.operands(u), [x.dtype for x in u.src]))  # type: ignore[misc]

    def _define_scalar(self, u: UOp, expr: str) -> None:
        assert isinstance(u.dtype, DType)
        var = self._new()
        self.names[id(u)] = var
        self.emit(f"{value_type(u.dtype)} {var} = {expr};")

    def _affine(self, u: UOp) -> None:
        """Record ``u`` (an int32 ADD/SUB/MUL/NEG of affine values) as base + stride*lane when it is one."""
        if u.dtype != dtypes.int32 or u.op not in (Ops.ADD, Ops.SUB, Ops.MUL, Ops.NEG):
            return
        parts = []
        for x in u.src:
            if not self._is_var(x):
                parts.append((0, self.names[id(x)], x))
            elif id(x) in self.strides:
                parts.append((self.strides[id(x)], self.bases[id(x)], x))
            else:
                return
        if u.op is Ops.NEG:
            stride, base = -parts[0][0], f"(-{parts[0][1]})"
        elif u.op in (Ops.ADD, Ops.SUB):
            sign = 1 if u.op is Ops.ADD else -1
            stride, base = parts[0][0] + sign * parts[1][0], f"({parts[0][1]} {'+' if sign > 0 else '-'} {parts[1][1]})"
        else:
            (sa, ba, xa), (sb, bb, xb) = parts
            if sa and sb:
                return
            factor = xb if sa else xa
            if factor.op is not Ops.CONST:
                return
            stride, base = (sa or sb) * int(factor.arg), f"({ba} * {bb})"
        var = self._new("b")
        self.emit(f"int32_t {var} = {base};")
        self.strides[id(u)], self.bases[id(u)] = stride, var

    def _alu(self, u: UOp, dt: DType) -> None:
        op, src = u.op, u.src
        self._affine(u)
        if id(u) in self.strides:
            self._define_vec(u, f"({self.bases[id(u)]} + tg_iota * {self.strides[id(u)]})")
            return
        arg_dt = src[1].dtype if op is Ops.WHERE else src[0].dtype
        assert isinstance(arg_dt, DType)
        v = [self.vec(x) for x in src]
        if arg_dt.name == "bool" and op in (Ops.ADD, Ops.MUL, Ops.MAX, Ops.CMPLT, Ops.CMPNE, Ops.CMPEQ, Ops.NEG):
            expr = {Ops.ADD: f"({v[0]} | {v[-1]})", Ops.MAX: f"({v[0]} | {v[-1]})",
                    Ops.MUL: f"({v[0]} & {v[-1]})", Ops.CMPLT: f"(~{v[0]} & {v[-1]})",
                    Ops.CMPNE: f"({v[0]} ^ {v[-1]})", Ops.CMPEQ: f"(~({v[0]} ^ {v[-1]}))", Ops.NEG: f"(~{v[0]})"}[op]
            self._define_vec(u, expr)
        elif op in _INFIX:
            self._define_vec(u, f"({v[0]} {_INFIX[op]} {v[1]})")
        elif op in _CMP:
            self._define_vec(u, self._to_mask(f"({v[0]} {_CMP[op]} {v[1]})", arg_dt))
        elif op is Ops.NEG:
            self._define_vec(u, f"(-{v[0]})")
        elif op is Ops.MULACC:
            self._define_vec(u, f"({v[0]} * {v[1]} + {v[2]})")
        elif op is Ops.RECIP:
            self._define_vec(u, f"({literal(1.0, dt)} / {v[0]})")
        elif op is Ops.MAX and dt.is_float:
            self._define_vec(u, f"((({v[0]} >= {v[1]}) | ({v[0]} != {v[0]})) ? {v[0]} : {v[1]})")
        elif op is Ops.MAX:
            self._define_vec(u, f"(({v[0]} > {v[1]}) ? {v[0]} : {v[1]})")
        elif op is Ops.WHERE:
            cond = self.names[id(src[0])] if self._is_var(src[0]) else None
            if cond is None:
                self._define_vec(u, f"({self.names[id(src[0])]} ? {v[1]} : {v[2]})")
            else:
                self._define_vec(u, f"({self._mask_as(cond, dt)} ? {v[1]} : {v[2]})")
        elif op in (Ops.IDIV, Ops.MOD) and _positive_const(src[1]) and dt.name in ("int32", "int64"):
            self._define_vec(u, f"({v[0]} {'/' if op is Ops.IDIV else '%'} {v[1]})")
        elif op in _VECTOR_MATH and dt.name in ("float32", "float64"):
            self._define_vec(u, f"tg_v{_LANE_MATH[op]}{MATH_SUFFIX[dt.name]}({v[0]})")
        elif op in _LANE_MATH:
            self._per_lane(u, f"{_LANE_MATH[op]}{MATH_SUFFIX[dt.name]}({self.lane(src[0])})")
        else:  # POW, IDIV/MOD with a varying divisor...: the scalar expression, lane by lane
            lanes = [self.lane(x) for x in src]
            self._per_lane(u, scalar_alu(op, dt, lanes, [x.dtype for x in src]))  # type: ignore[misc]

    def _to_mask(self, expr: str, operand: DType) -> str:
        """A comparison result (a mask as wide as the operands' elements) as an int32 mask."""
        width = 4 if operand.name == "bool" else operand.itemsize
        return expr if width == 4 else f"__builtin_convertvector({expr}, tg_int32_t_v)"

    def _mask_as(self, mask: str, dtype: DType) -> str:
        """An int32 mask converted to the element width of ``dtype``, for a select on its vectors."""
        width = 4 if dtype.name == "bool" else dtype.itemsize
        return mask if width == 4 else f"__builtin_convertvector({mask}, {_mask_type(width)})"

    def _cast(self, u: UOp, dt: DType) -> None:
        x = u.src[0]
        src = x.dtype
        assert isinstance(src, DType)
        a = self.vec(x)
        if u.op is Ops.BITCAST:
            self._define_vec(u, f"(({vtype(dt)}){a})")
        elif dt.name == "bool":
            self._define_vec(u, a if src.name == "bool" else self._to_mask(f"({a} != 0)", src))
        elif src.name == "bool":
            self._define_vec(u, f"__builtin_convertvector(-{a}, {vtype(dt)})")
        elif src.is_float and dt.is_int:
            self._define_vec(u, self._float_to_int(a, src, dt))
        else:
            self._define_vec(u, f"__builtin_convertvector({a}, {vtype(dt)})")

    def _float_to_int(self, a: str, src: DType, dt: DType) -> str:
        """Float lanes to int lanes like ``tg_f2i``: NaN -> 0, then clamped in double to the int's range (so the
        conversion is defined), and int64's maximum, which no double holds, selected where x >= 2**63."""
        lo, top, limit = INT_RANGE[dt.name]
        w = self._new("w")
        wide = a if src.name == "float64" else f"__builtin_convertvector({a}, tg_double_v)"
        self.emit(f"tg_double_v {w} = {wide};")
        big = ""
        if dt.name == "int64":
            big = self._new("big")
            self.emit(f"tg_int64_t_v {big} = {w} >= {limit};")
        self.emit(f"{w} = ({w} != {w}) ? (tg_double_v)0.0 : {w}; {w} = ({w} < {lo}) ? (tg_double_v){lo} : {w}; "
                   f"{w} = ({w} > {top}) ? (tg_double_v){top} : {w};")
        out = f"__builtin_convertvector({w}, {vtype(dt)})"
        return f"({big} ? (tg_int64_t_v)INT64_MAX : {out})" if big else out

    # -- memory ---------------------------------------------------------------------------------------------------

    def _contiguous(self, idx: UOp) -> str | None:
        """The C expression of lane 0's index when the lanes' indices are consecutive, else None."""
        if not self._is_var(idx) or self.strides.get(id(idx)) != 1:
            return None
        return self._offset(idx)

    def _lane_index(self, idx: UOp) -> str:
        """Lane ``l``'s index of a gather or scatter: lane 0's plus a constant stride times ``l`` when the index is
        affine (the unrolled lanes become fixed offsets from one address), else the lane of the index vector."""
        if self._is_var(idx) and id(idx) in self.strides:
            return f"{self._offset(idx)} + l * {self.strides[id(idx)]}"
        return self.lane(idx)

    def _terms(self, u: UOp, limit: int = 6) -> list[tuple[int, str]]:
        """The int32 index ``u`` (lane 0's value when it varies) as a sum of C terms, each with its loop level."""
        if u.op is Ops.ADD and u.dtype == dtypes.int32 and limit > 1 and \
                (not self._is_var(u) or id(u) in self.strides):
            left = self._terms(u.src[0], limit - 1)
            return left + self._terms(u.src[1], limit - len(left))
        level = self.levels.get(id(u), 0)
        return [(level, self.bases[id(u)] if self._is_var(u) else self.names[id(u)])]

    def _offset(self, idx: UOp) -> str:
        """The C index of a memory access (lane 0's, when it varies).

        In a loop, a sum of terms that change at different loop levels is added in 64 bits, outermost level first:
        the compiler then hoists the loop-invariant part into a pointer and steps one induction variable, instead of
        sign-extending every int32 sum anew (``-fwrapv`` forbids it to split those).  The value is the same: an index
        in bounds never needed the wrap-around."""
        whole = self.bases[id(idx)] if self._is_var(idx) else self.names[id(idx)]
        if self.depth == 0 or idx.op is not Ops.ADD or idx.dtype != dtypes.int32:
            return whole
        terms = self._terms(idx)
        if len(terms) < 2 or len({level for level, _ in terms}) < 2:
            return whole
        terms.sort(key=lambda t: t[0])
        return "(" + " + ".join(f"(int64_t){term}" for _, term in terms) + ")"

    def _load(self, u: UOp) -> None:
        dt = u.dtype
        assert isinstance(dt, DType)
        buf, idx = u.src[0], u.src[1]
        gate = u.src[2] if len(u.src) > 2 else None
        bname, vt = self.names[id(buf)], vtype(dt)
        var = self._new()
        self.names[id(u)] = var
        base = self._contiguous(idx)
        alt = self.vec(u.src[3], dt) if gate is not None else ""
        lane_read = f"{bname}[{self._lane_index(idx)}]"
        per_lane = f"-(int32_t){lane_read}" if dt.name == "bool" else lane_read
        if base is not None:
            if dt.name == "bool":
                fast = (f"{{ tg_uint8_t_v b_; memcpy(&b_, {bname} + {base}, sizeof(b_)); "
                        f"{var} = -__builtin_convertvector(b_, tg_int32_t_v); }}")
            else:
                fast = f"memcpy(&{var}, {bname} + {base}, sizeof({var}));"
        else:
            fast = f"{self._each_lane()} {var}[l] = {per_lane};"
        self.emit(f"{vt} {var};")
        if gate is None:
            self.emit(fast)
        elif not self._is_var(gate):
            self.emit(f"if ({self.names[id(gate)]}) {{ {fast} }} else {var} = {alt};")
        else:
            g = self.names[id(gate)]
            maskload = base is not None and dt.name != "bool" and dt.itemsize in (4, 8) and self.lanes % 8 == 0
            # (with a masked load, the lane loop is compiled only on a CPU without AVX2: counted only there)
            slow = (f"{{ {vt} a_ = {alt}; {self._each_lane(counted=not maskload or not _has_avx2())} "
                    f"{var}[l] = {g}[l] ? {per_lane} : a_[l]; }}")
            if maskload:
                width = dt.itemsize
                masked = (f"{var} = ({vt})tg_mload{width}({bname} + {base}, {g}); "
                          f"{var} = {self._mask_as(g, dt)} ? {var} : {alt};")
                self.emit(f"if (tg_all({g})) {{ {fast} }} else {{")
                self.emit(f"#if defined(TG_MASKLOAD)\n{masked}\n#else\n{slow}\n#endif\n}}")
            else:
                self.emit(f"if (tg_all({g})) {{ {fast} }} else {slow}")

    def _store(self, u: UOp) -> None:
        buf, idx, val = u.src[0], u.src[1], u.src[2]
        gate = u.src[3] if len(u.src) > 3 else None
        assert isinstance(buf.dtype, PtrDType)
        bt = buf.dtype.base
        bname = self.names[id(buf)]
        if not self._is_var(idx) and not self._is_var(val):  # every lane writes the same value to one place
            cond = "" if gate is None else (f"if (tg_any({self.names[id(gate)]})) " if self._is_var(gate)
                                            else f"if ({self.names[id(gate)]}) ")
            self.emit(f"{cond}{bname}[{self._offset(idx)}] = {self.names[id(val)]};")
            return
        base = self._contiguous(idx)
        lane_write = f"{bname}[{self._lane_index(idx)}] = {self.lane(val)};"
        if base is not None:
            v = self.vec(val, bt)
            if bt.name == "bool":
                fast = f"{{ tg_uint8_t_v b_ = __builtin_convertvector(-{v}, tg_uint8_t_v); " \
                       f"memcpy({bname} + {base}, &b_, sizeof(b_)); }}"
            elif self.streaming:  # bypass the cache (no read for ownership) where the address is aligned
                fast = (f"{{ {vtype(bt)} s_ = {v}; if (((uintptr_t)({bname} + {base}) & 63) == 0) "
                        f"__builtin_nontemporal_store(s_, ({vtype(bt)} *)({bname} + {base})); "
                        f"else memcpy({bname} + {base}, &s_, sizeof(s_)); }}")
            else:
                fast = f"{{ {vtype(bt)} s_ = {v}; memcpy({bname} + {base}, &s_, sizeof(s_)); }}"
        else:
            fast = f"{self._each_lane()} {lane_write}"
        if gate is None:
            self.emit(fast)
        elif not self._is_var(gate):
            self.emit(f"if ({self.names[id(gate)]}) {fast}")
        else:
            g = self.names[id(gate)]
            self.emit(f"if (tg_all({g})) {fast} else {self._each_lane()} if ({g}[l]) {lane_write}")


def _positive_const(u: UOp) -> bool:
    return u.op is Ops.CONST and isinstance(u.arg, int) and not isinstance(u.arg, bool) and u.arg > 0


def _loop_levels(uops: list[UOp]) -> dict[int, int]:
    """How deep in the loop nest each value changes: 0 outside every loop, a loop's depth for its counter and for
    what is computed from it; an accumulator counts as changing in the innermost loop."""
    levels: dict[int, int] = {}
    depth = 0
    for u in uops:
        if u.op is Ops.RANGE:
            depth += 1
            levels[id(u)] = depth
        elif u.op is Ops.ENDRANGE:
            depth -= 1
        elif u.op is Ops.DEFINE_ACC:
            levels[id(u)] = 1 << 20
        else:
            levels[id(u)] = max((levels.get(id(x), 0) for x in u.src), default=0)
    return levels


def _varying(uops: list[UOp]) -> set[int]:
    """The values that depend on the lane: the lane itself, anything computed from a varying value (but one
    lane taken out of it, GEP), and an accumulator that is ever assigned one (to a fixed point, as assignments
    come after their uses)."""
    varying: set[int] = set()
    changed = True
    while changed:
        changed = False
        for u in uops:
            if id(u) in varying:
                continue
            hit = (u.op is Ops.SPECIAL and u.arg[0] == "lane") or any(id(s) in varying for s in u.src)
            if u.op is Ops.GEP:  # one lane's value is the same for the whole gang
                hit = False
            elif u.op is Ops.STORE:
                hit = any(id(s) in varying for s in u.src[1:])
            if hit:
                varying.add(id(u))
                changed = True
                if u.op is Ops.ASSIGN and id(u.src[0]) not in varying:
                    varying.add(id(u.src[0]))
    return varying

