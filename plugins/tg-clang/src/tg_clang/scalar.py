"""Renders a micro-op list as the C statements of one thread: every value is a C scalar of its dtype.

This is the reference rendering: always correct, used for every kernel the lane renderer (:mod:`tg_clang.spmd`)
does not take, and for the threads left over at the edges of the lane renderer's tiles.  Work groups with
barriers run their lanes one phase at a time (a phase ends at a barrier); a value that crosses a barrier lives
in a per-lane array.  Core's vector lanes (VECTORIZE/GEP, vector loads and stores) become clang vector types.
"""

from __future__ import annotations

from tg.codegen.uops import Ops, PtrDType, UOp, VecDType
from tg.support.dtype import DType, dtypes

from tg_clang.cprelude import LANE_TYPE, MATH_SUFFIX, literal, storage_type, value_type
from tg_clang.crender import CRenderer

_INFIX = {Ops.ADD: "+", Ops.SUB: "-", Ops.MUL: "*", Ops.DIV: "/", Ops.CMPLT: "<", Ops.CMPNE: "!=",
          Ops.CMPEQ: "==", Ops.AND: "&", Ops.OR: "|", Ops.XOR: "^"}
_MATH = {Ops.EXP2: "exp2", Ops.LOG2: "log2", Ops.SIN: "sin", Ops.SQRT: "sqrt", Ops.TRUNC: "trunc"}
#: Functions the prelude defines once for scalar code and SIMD lanes (libmvec where the compiler has it, see
#: :data:`tg_clang.cprelude.PRELUDE`): ``tg_exp2f(x)`` and the vector ``tg_vexp2f(v)`` give the same bits.
SHARED_MATH = frozenset({Ops.EXP2, Ops.LOG2, Ops.SIN})


def vec_type(base: DType, count: int) -> str:
    """The name of the clang vector type of ``count`` lanes of ``base`` (declared by :func:`vec_typedef`)."""
    return f"tg_{LANE_TYPE[base.name]}x{count}"


def vec_typedef(base: DType, count: int) -> str:
    lane = LANE_TYPE[base.name]
    return f"typedef {lane} {vec_type(base, count)} __attribute__((ext_vector_type({count})));"


def scalar_alu(op: Ops, dtype: DType, srcs: list[str], src_dtypes: list[DType]) -> str:
    """The C expression of an ALU micro-op on scalars (before float16 rounding)."""
    a = srcs[0]
    arg_dt = src_dtypes[0] if op is not Ops.WHERE else src_dtypes[1]
    if op in _INFIX:
        return f"({a} {_INFIX[op]} {srcs[1]})"
    if op is Ops.NEG:
        return f"(-{a})" if dtype.name != "bool" else f"(!{a})"
    if op in _MATH:
        # exp2, log2, sin: the prelude's tg_ versions, which SIMD lanes share (float16 is never in lanes: libm)
        prefix = "tg_" if op in SHARED_MATH and dtype.name in ("float32", "float64") else ""
        return f"{prefix}{_MATH[op]}{MATH_SUFFIX[dtype.name]}({a})"
    if op is Ops.RECIP:
        return f"({literal(1.0, dtypes.float64 if dtype.name == 'float64' else dtypes.float32)} / {a})"
    if op is Ops.MAX:
        if arg_dt.is_float:
            return f"tg_max{'d' if arg_dt.name == 'float64' else 'f'}({a}, {srcs[1]})"
        return f"({a} > {srcs[1]} ? {a} : {srcs[1]})"
    if op is Ops.POW:
        if arg_dt.is_float:
            return f"pow{MATH_SUFFIX[arg_dt.name]}({a}, {srcs[1]})"
        return f"tg_pow_{value_type(arg_dt)}({a}, {srcs[1]})"
    if op in (Ops.IDIV, Ops.MOD):
        if arg_dt.is_float:  # not produced by core; keep C's meaning on floats
            return f"trunc{MATH_SUFFIX[arg_dt.name]}({a} / {srcs[1]})" if op is Ops.IDIV else \
                f"fmod{MATH_SUFFIX[arg_dt.name]}({a}, {srcs[1]})"
        return f"tg_{'idiv' if op is Ops.IDIV else 'mod'}_{value_type(arg_dt)}({a}, {srcs[1]})"
    if op is Ops.WHERE:
        return f"({a} ? {srcs[1]} : {srcs[2]})"
    if op is Ops.MULACC:
        return f"({a} * {srcs[1]} + {srcs[2]})"
    raise NotImplementedError(f"tg-clang cannot render micro-op {op.name}")


def scalar_cast(x: str, src: DType, dst: DType) -> str:
    """C conversion with the IR's meaning: float to int truncates and saturates (NaN -> 0), anything to bool is
    ``!= 0``."""
    if dst.name == "bool":
        return f"({x} != 0)"
    if dst.name == "float16":
        return f"tg_h2f(tg_d2h({x}))" if src.name == "float64" else f"tg_rh((float){x})"
    if src.is_float and dst.is_int:
        return f"tg_f2i_{value_type(dst)}({x})"
    return f"(({value_type(dst)}){x})"


def is_half(dtype: object) -> bool:
    return isinstance(dtype, DType) and dtype.name == "float16"


class ScalarRenderer(CRenderer):
    """Renders the body of one thread.  ``specials`` maps the threads' SPECIALs (and anything else fixed from
    outside) to C expressions; every other value gets a C variable.  ALU ops go through :func:`scalar_alu`."""

    def __init__(self, uops: list[UOp], specials: dict[str, str], group_size: int = 1):
        super().__init__(uops, margin=1)
        self.specials, self.group_size = specials, group_size
        self.typedefs: set[str] = set()
        self.crossing: set[int] = set()  # values that live across a barrier: per-lane arrays

    # -- names -------------------------------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{len(self.names)}"

    def _define(self, u: UOp, ctype: str, expr: str, prefix: str = "v") -> None:
        var = self.fresh(prefix)
        if id(u) in self.crossing:
            self.names[id(u)] = f"{var}_l[lidx0]"
            self.group_decls.append(f"{ctype} {var}_l[{self.group_size}];")
            self.emit(f"{var}_l[lidx0] = {expr};")
        else:
            self.names[id(u)] = var
            self.emit(f"{ctype} {var} = {expr};")

    def operands(self, u: UOp) -> list[str]:
        return [self.names.get(id(x), "") for x in u.src]

    # -- the whole body -----------------------------------------------------------------------------------

    def render(self) -> tuple[list[str], list[list[str]]]:
        """(declarations at group scope, statements of each phase); phases are split at barriers."""
        self.group_decls: list[str] = []
        self.phases: list[list[str]] = []
        self.crossing = _crossing_values(self.uops)
        self.render_uops()
        self.phases.append(self.lines)
        return self.group_decls, self.phases

    def render_barrier(self, u: UOp) -> None:
        if self.depth:
            raise NotImplementedError("tg-clang: a barrier inside a loop is not supported")
        self.phases.append(self.lines)
        self.lines = []

    def render_define_local(self, u: UOp) -> None:
        assert isinstance(u.dtype, PtrDType)
        self.names[id(u)] = u.arg[0]
        self.group_decls.append(f"{storage_type(u.dtype.base)} {u.arg[0]}[{u.arg[1]}];")

    def render_special(self, u: UOp) -> None:
        self.names[id(u)] = self.specials[u.arg[0]]

    def render_define_acc(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        self._define(u, value_type(u.dtype), literal(u.arg, u.dtype), "acc")

    def render_assign(self, u: UOp) -> None:
        s = self.operands(u)
        self.names[id(u)] = s[0]
        self.emit(f"{s[0]} = {s[1]};")

    def render_load(self, u: UOp) -> None:
        self._load(u, self.operands(u))

    def render_store(self, u: UOp) -> None:
        self._store(u, self.operands(u))

    def render_vectorize(self, u: UOp) -> None:
        dt = u.dtype
        assert isinstance(dt, VecDType)
        self.typedefs.add(vec_typedef(dt.base, dt.count))
        lanes = ", ".join(self.operands(u))
        self._define(u, vec_type(dt.base, dt.count), f"({vec_type(dt.base, dt.count)}){{{lanes}}}")

    def render_gep(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        self._define(u, value_type(u.dtype), f"({value_type(u.dtype)}){self.operands(u)[0]}[{u.arg}]")

    def render_cast(self, u: UOp) -> None:
        src = u.src[0].dtype
        assert isinstance(u.dtype, DType) and isinstance(src, DType)
        self._define(u, value_type(u.dtype), scalar_cast(self.operands(u)[0], src, u.dtype))

    def render_bitcast(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        var = f"v{len(self.names)}"
        self.emit(f"{value_type(u.dtype)} {var}; memcpy(&{var}, &{self.operands(u)[0]}, sizeof({var}));")
        self.names[id(u)] = var

    def from_table(self, u: UOp) -> None:
        """ALU ops: C expressions from :func:`scalar_alu`, float16 results rounded back to half."""
        dt = u.dtype
        assert isinstance(dt, DType), u
        expr = scalar_alu(u.op, dt, self.operands(u), [x.dtype for x in u.src])  # type: ignore[misc]
        if is_half(dt):
            expr = f"tg_rh({expr})"
        self._define(u, value_type(dt), expr)

    def _load(self, u: UOp, s: list[str]) -> None:
        buf, dt = u.src[0].dtype, u.dtype
        assert isinstance(buf, PtrDType)
        if isinstance(dt, VecDType):
            vt = vec_type(dt.base, dt.count)
            self.typedefs.add(vec_typedef(dt.base, dt.count))
            var = f"v{len(self.names)}"
            self.names[id(u)] = var
            lanes = _vector_lanes(buf.base, f"{s[0]}", s[1], dt.count)
            if len(s) > 2:
                self.emit(f"{vt} {var} = {s[3]};")
                self.emit(f"if ({s[2]}) {var} = {lanes};")
            else:
                self.emit(f"{vt} {var} = {lanes};")
            return
        assert isinstance(dt, DType)
        read = f"{s[0]}[{s[1]}]"
        if is_half(buf.base):
            read = f"tg_h2f({read})"
        self._define(u, value_type(dt), f"({s[2]} ? {read} : {s[3]})" if len(s) > 2 else read)

    def _store(self, u: UOp, s: list[str]) -> None:
        buf, value = u.src[0].dtype, u.src[2].dtype
        assert isinstance(buf, PtrDType)
        guard = f"if ({s[3]}) " if len(s) > 3 else ""
        if isinstance(value, VecDType):
            writes = " ".join(_store_value(buf.base, f"{s[0]}[{s[1]} + {i}]", f"{s[2]}[{i}]")
                              for i in range(value.count))
            self.emit(f"{guard}{{ {writes} }}")
            return
        self.emit(guard + _store_value(buf.base, f"{s[0]}[{s[1]}]", s[2]))


def _store_value(base: DType, place: str, value: str) -> str:
    return f"{place} = tg_f2h({value});" if base.name == "float16" else f"{place} = {value};"


def _vector_lanes(base: DType, buf: str, idx: str, count: int) -> str:
    vt = vec_type(base, count)
    if base.name == "float16":
        return f"({vt}){{{', '.join(f'tg_h2f({buf}[{idx} + {i}])' for i in range(count))}}}"
    return f"({vt}){{{', '.join(f'{buf}[{idx} + {i}]' for i in range(count))}}}"


def _crossing_values(uops: list[UOp]) -> set[int]:
    """Values defined in one barrier phase and used in a later one (constants and buffers excluded)."""
    phase: dict[int, int] = {}
    current, crossing = 0, set()
    fixed = (Ops.CONST, Ops.DEFINE_VAR, Ops.DEFINE_GLOBAL, Ops.DEFINE_LOCAL, Ops.SPECIAL)
    for u in uops:
        if u.op is Ops.BARRIER:
            current += 1
            continue
        phase[id(u)] = current
        for x in u.src:
            if x.op not in fixed and phase.get(id(x), current) != current:
                crossing.add(id(x) if x.op is not Ops.ASSIGN else id(x.src[0]))
        if u.op is Ops.ASSIGN and phase.get(id(u.src[0]), current) != current:
            crossing.add(id(u.src[0]))
    return crossing
