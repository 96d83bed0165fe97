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

_INFIX = {Ops.ADD: "+", Ops.SUB: "-", Ops.MUL: "*", Ops.DIV: "/", Ops.CMPLT: "<", Ops.CMPNE: "!=",
          Ops.CMPEQ: "==", Ops.AND: "&", Ops.OR: "|", Ops.XOR: "^"}
_MATH = {Ops.EXP2: "exp2", Ops.LOG2: "log2", Ops.SIN: "sin", Ops.SQRT: "sqrt", Ops.TRUNC: "trunc"}


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
        return f"{_MATH[op]}{MATH_SUFFIX[dtype.name]}({a})"
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


class ScalarRenderer:
    """Renders the body of one thread.  ``names`` maps the threads' SPECIALs (and anything else fixed from
    outside) to C expressions; every other value gets a C variable."""

    def __init__(self, uops: list[UOp], specials: dict[str, str], group_size: int = 1):
        self.uops, self.specials, self.group_size = uops, specials, group_size
        self.names: dict[int, str] = {}
        self.lines: list[str] = []
        self.typedefs: set[str] = set()
        self.depth = 0
        self.crossing: set[int] = set()  # values that live across a barrier: per-lane arrays

    # -- names -------------------------------------------------------------------------------------------

    def name(self, u: UOp) -> str:
        return self.names[id(u)]

    def _emit(self, line: str) -> None:
        self.lines.append("  " * (self.depth + 1) + line)

    def _define(self, u: UOp, ctype: str, expr: str, prefix: str = "v") -> None:
        var = f"{prefix}{len(self.names)}"
        if id(u) in self.crossing:
            self.names[id(u)] = f"{var}_l[lidx0]"
            self.group_decls.append(f"{ctype} {var}_l[{self.group_size}];")
            self._emit(f"{var}_l[lidx0] = {expr};")
        else:
            self.names[id(u)] = var
            self._emit(f"{ctype} {var} = {expr};")

    # -- the whole body -----------------------------------------------------------------------------------

    def render(self) -> tuple[list[str], list[list[str]]]:
        """(declarations at group scope, statements of each phase); phases are split at barriers."""
        self.group_decls: list[str] = []
        self.crossing = _crossing_values(self.uops)
        phases: list[list[str]] = []
        for u in self.uops:
            if u.op is Ops.BARRIER:
                if self.depth:
                    raise NotImplementedError("tg-clang: a barrier inside a loop is not supported")
                phases.append(self.lines)
                self.lines = []
                continue
            self._render(u)
        phases.append(self.lines)
        return self.group_decls, phases

    def _render(self, u: UOp) -> None:
        op, s = u.op, [self.names.get(id(x), "") for x in u.src]
        dt = u.dtype
        if op is Ops.DEFINE_GLOBAL:
            self.names[id(u)] = u.arg[1]
        elif op is Ops.DEFINE_LOCAL:
            assert isinstance(dt, PtrDType)
            self.names[id(u)] = u.arg[0]
            self.group_decls.append(f"{storage_type(dt.base)} {u.arg[0]}[{u.arg[1]}];")
        elif op is Ops.SPECIAL:
            self.names[id(u)] = self.specials[u.arg[0]]
        elif op is Ops.CONST:
            assert isinstance(dt, DType)
            self.names[id(u)] = literal(u.arg, dt)
        elif op is Ops.RANGE:
            var = f"r{len(self.names)}"
            self.names[id(u)] = var
            self._emit(f"for (int32_t {var} = {s[0]}; {var} < {s[1]}; {var}++) {{")
            self.depth += 1
        elif op is Ops.ENDRANGE:
            self.depth -= 1
            self._emit("}")
        elif op is Ops.DEFINE_ACC:
            assert isinstance(dt, DType)
            self._define(u, value_type(dt), literal(u.arg, dt), "acc")
        elif op is Ops.ASSIGN:
            self.names[id(u)] = s[0]
            self._emit(f"{s[0]} = {s[1]};")
        elif op is Ops.LOAD:
            self._load(u, s)
        elif op is Ops.STORE:
            self._store(u, s)
        elif op is Ops.VECTORIZE:
            assert isinstance(dt, VecDType)
            self.typedefs.add(vec_typedef(dt.base, dt.count))
            self._define(u, vec_type(dt.base, dt.count), f"({vec_type(dt.base, dt.count)}){{{', '.join(s)}}}")
        elif op is Ops.GEP:
            assert isinstance(dt, DType)
            self._define(u, value_type(dt), f"({value_type(dt)}){s[0]}[{u.arg}]")
        elif op is Ops.CAST:
            src = u.src[0].dtype
            assert isinstance(dt, DType) and isinstance(src, DType)
            self._define(u, value_type(dt), scalar_cast(s[0], src, dt))
        elif op is Ops.BITCAST:
            assert isinstance(dt, DType)
            var = f"v{len(self.names)}"
            self._emit(f"{value_type(dt)} {var}; memcpy(&{var}, &{s[0]}, sizeof({var}));")
            self.names[id(u)] = var
        else:
            assert isinstance(dt, DType)
            expr = scalar_alu(op, dt, s, [x.dtype for x in u.src])  # type: ignore[misc]
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
                self._emit(f"{vt} {var} = {s[3]};")
                self._emit(f"if ({s[2]}) {var} = {lanes};")
            else:
                self._emit(f"{vt} {var} = {lanes};")
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
            self._emit(f"{guard}{{ {writes} }}")
            return
        self._emit(guard + _store_value(buf.base, f"{s[0]}[{s[1]}]", s[2]))


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
    fixed = (Ops.CONST, Ops.DEFINE_GLOBAL, Ops.DEFINE_LOCAL, Ops.SPECIAL)
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
