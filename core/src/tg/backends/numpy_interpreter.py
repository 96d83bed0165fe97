"""The numpy backend's interpreter: a kernel's micro-ops as a Python function over all threads at once.

Every value is a numpy array holding that value for every thread of the launch (work groups and lanes
included), loops are Python loops (every thread runs the same trip count), and gated loads and stores mask
per thread.  All threads run in lockstep, so a barrier holds by construction.  It renders every micro-op and
every lowering capability: it is what proves the micro-op IR (see :mod:`tg.backends.numpy_backend`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from tg.codegen.render import TextRenderer
from tg.codegen.uops import Ops, PtrDType, UOp, VecDType
from tg.support.dtype import DType, dtypes


def _np_type(dtype: DType) -> str:
    return "np.bool_" if dtype.name == "bool" else f"np.{dtype.name}"


def _const(value: Any, dtype: DType) -> str:
    if dtype.is_float:
        text = repr(float(value)) if math.isfinite(value) else f"'{value}'"
        return f"{_np_type(dtype)}({text})"
    return f"{_np_type(dtype)}({value!r})"


class NumpyRenderer(TextRenderer):
    """The body of a kernel's Python function: value ``i`` of the micro-op list is the variable ``v<i>``, an array
    holding it for every thread (``_t`` numbers the threads)."""

    ops: ClassVar[dict[Ops, str]] = {
        Ops.NEG: "(-{0})", Ops.EXP2: "np.exp2({0})", Ops.LOG2: "np.log2({0})", Ops.SIN: "np.sin({0})",
        Ops.SQRT: "np.sqrt({0})", Ops.RECIP: "np.reciprocal({0})", Ops.TRUNC: "np.trunc({0})",
        Ops.ADD: "({0} + {1})", Ops.SUB: "({0} - {1})", Ops.MUL: "({0} * {1})", Ops.DIV: "({0} / {1})",
        Ops.IDIV: "_idiv({0}, {1})", Ops.MOD: "np.fmod({0}, {1})", Ops.MAX: "np.maximum({0}, {1})",
        Ops.POW: "_pow({0}, {1})", Ops.CMPLT: "({0} < {1})", Ops.CMPNE: "({0} != {1})",
        Ops.CMPEQ: "({0} == {1})", Ops.AND: "({0} & {1})", Ops.OR: "({0} | {1})", Ops.XOR: "({0} ^ {1})",
        Ops.WHERE: "np.where({0}, {1}, {2})", Ops.MULACC: "{0} * {1} + {2}",
        Ops.VECTORIZE: "np.stack(np.broadcast_arrays({all}), axis=-1)",
    }

    def __init__(self, uops: list[UOp], global_size: tuple[int, ...], local_size: tuple[int, ...],
                 sin_is_sin2pi: bool = False):
        super().__init__(uops, margin=1)
        self.sin_is_sin2pi = sin_is_sin2pi
        self.groups, self.n_lanes = list(global_size), math.prod(local_size)  # the launch, not the SPECIALs:
        self.n_threads = math.prod(self.groups) * self.n_lanes  # an unused thread index is gone from the list

    def define(self, u: UOp, expr: str) -> None:
        v = self.names[id(u)] = f"v{self.position}"
        self.emit(f"{v} = {expr}")

    def from_table(self, u: UOp) -> None:
        if u.op is Ops.VECTORIZE:
            self.define(u, self.ops[u.op].format(all=", ".join(self.operands(u))))
        else:
            super().from_table(u)

    def render_define_global(self, u: UOp) -> None:
        assert isinstance(u.dtype, PtrDType)
        self.define(u, f"bufs[{u.arg[0]}].view({_np_type(u.dtype.base)})")

    def render_define_local(self, u: UOp) -> None:
        assert isinstance(u.dtype, PtrDType)
        groups = f"_t.size // {self.n_lanes}"
        self.define(u, f"np.zeros(({groups}, {u.arg[1]}), dtype={_np_type(u.dtype.base)})")

    def render_special(self, u: UOp) -> None:
        """Thread ``_t`` is group-major: ``lidx0`` varies fastest, then ``gidx0``, ``gidx1``..."""
        if u.arg[0] == "lidx0":
            self.define(u, f"_t % {self.n_lanes}")
            return
        k = int(u.arg[0][4:])  # the launch's groups ``_g`` come with each launch (they may follow a variable)
        stride = "*".join([str(self.n_lanes), *(f"_g[{j}]" for j in range(k))])
        outermost = k == len(self.groups) - 1
        self.define(u, f"_t // ({stride})" if outermost else f"(_t // ({stride})) % _g[{k}]")

    def render_define_var(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        self.define(u, f"{_np_type(u.dtype)}(vals[{u.arg[0]!r}])")

    def render_const(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        self.define(u, _const(u.arg, u.dtype))

    def render_range(self, u: UOp) -> None:
        v = self.names[id(u)] = f"v{self.position}"
        s = self.operands(u)
        self.emit(f"for {v} in range(int({s[0]}), int({s[1]})):")
        self.depth += 1
        self.emit(f"{v} = np.int32({v})")

    def render_endrange(self, u: UOp) -> None:
        self.depth -= 1

    def render_define_acc(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        self.define(u, f"np.full(_t.size, {_const(u.arg, u.dtype)})")

    def render_assign(self, u: UOp) -> None:
        acc, value = self.operands(u)
        self.names[id(u)] = acc
        self.emit(f"{acc} = ({value}).astype({acc}.dtype)")

    def render_load(self, u: UOp) -> None:
        s = self.operands(u)
        if isinstance(u.dtype, VecDType):
            gate = f", {s[2]}, {s[3]}" if len(s) > 2 else ""
            self.define(u, f"_vload({s[0]}, {s[1]}, {u.dtype.count}{gate})")
            return
        local = isinstance(u.src[0].dtype, PtrDType) and u.src[0].dtype.local
        if len(s) == 2:
            self.define(u, f"_load_local({s[0]}, _t, {s[1]})" if local else f"{s[0]}[{s[1]}]")
            return
        loader = "_load_local" if local else "_gated_load"
        self.define(u, f"{loader}({s[0]}, {'_t, ' if local else ''}{s[1]}, {s[2]}, {s[3]})")

    def render_store(self, u: UOp) -> None:
        s = self.operands(u)
        gate = s[3] if len(s) > 3 else "True"
        buf, value = u.src[0], u.src[2]
        local = isinstance(buf.dtype, PtrDType) and buf.dtype.local
        if isinstance(value.dtype, VecDType):
            store = "_vstore_local" if local else "_vstore"
            self.emit(f"{store}({s[0]}, _t, {s[1]}, {s[2]}, {gate}, {value.dtype.count})")
        elif local:
            self.emit(f"_store_local({s[0]}, _t, {s[1]}, {s[2]}, {gate})")
        else:
            self.emit(f"_store({s[0]}, _t, {s[1]}, {s[2]}, {gate})")

    def render_gep(self, u: UOp) -> None:
        self.define(u, f"{self.names[id(u.src[0])]}[..., {u.arg}]")

    def render_wmma(self, u: UOp) -> None:
        tc = u.arg
        tables = ", ".join(repr(f.table(tc.threads)) for f in (tc.a, tc.b, tc.c))
        self.define(u, f"_wmma(_t, {', '.join(self.operands(u))}, {tables}, {tc.dims!r})")

    def render_barrier(self, u: UOp) -> None:
        self.emit("pass  # barrier: every lane runs in lockstep")

    def render_sin(self, u: UOp) -> None:
        if self.sin_is_sin2pi:  # play hardware whose sine takes turns
            assert isinstance(u.dtype, DType)
            self.define(u, f"np.sin({self.names[id(u.src[0])]} * {_const(2 * math.pi, u.dtype)})")
        else:
            self.from_table(u)

    def render_neg(self, u: UOp) -> None:
        if u.dtype == dtypes.bool:  # bool NEG is NOT, like Tensor.neg on bools
            self.define(u, f"np.logical_not({self.names[id(u.src[0])]})")
        else:
            self.from_table(u)

    def render_cast(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        self.define(u, f"_cast({self.names[id(u.src[0])]}, {_np_type(u.dtype)})")

    def render_bitcast(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        self.define(u, f"np.asarray({self.names[id(u.src[0])]}).view({_np_type(u.dtype)})")


def _idiv(a: Any, b: Any) -> Any:
    """Integer division that truncates toward zero, like C."""
    q = np.floor_divide(a, b)
    return q + ((np.fmod(a, b) != 0) & ((a < 0) != (b < 0)))


def _pow(a: Any, b: Any) -> Any:
    """POW: numpy's power, and for integers the IR's rule for negative exponents (what ``1 // a ** -b`` would give:
    1 for a == 1, +-1 for a == -1 by b's parity, else 0), which numpy refuses."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind not in "iu" or b.dtype.kind == "u":
        return np.power(a, b)
    negative = b < 0
    magnitude = np.power(a, np.where(negative, 0, b))
    if not negative.any():
        return magnitude
    one = np.ones_like(magnitude)
    small = np.where(a == 1, one, np.where(a == -1, np.where(b % 2 == 0, one, -one), np.zeros_like(magnitude)))
    return np.where(negative, small, magnitude)


def _cast(x: Any, dtype: Any) -> Any:
    """CAST: to bool is ``!= 0``; float to int truncates, saturates to the int's range and maps NaN to 0
    (numpy's own astype gives x86's INT_MIN there and wraps 8-bit results)."""
    x = np.asarray(x)
    if dtype is np.bool_:
        return x != 0
    if x.dtype.kind != "f" or np.dtype(dtype).kind not in "iu":
        return x.astype(dtype)
    info = np.iinfo(dtype)
    w = np.trunc(x.astype(np.float64))
    limit = 2.0 ** (info.bits - (info.min < 0))  # the first value above the int's range, exact as a float
    inside = np.where((w >= limit) | (w <= info.min) | np.isnan(w), 0, w).astype(dtype)
    return np.where(w >= limit, info.max, np.where(w <= info.min, info.min, inside)).astype(dtype)


def _gated_load(buf: np.ndarray, idx: Any, gate: Any, alt: Any) -> Any:
    safe = np.where(gate, idx, 0)  # a masked-off lane never touches memory outside the buffer
    if buf.size == 0:
        return np.broadcast_to(alt, np.shape(safe)).astype(buf.dtype)
    return np.where(gate, buf[safe], alt)


def _store(buf: np.ndarray, t: np.ndarray, idx: Any, value: Any, gate: Any) -> None:
    idx, value, gate = (np.broadcast_to(x, t.shape) for x in (idx, value, gate))
    buf[idx[gate]] = value[gate]


def _vload(buf: np.ndarray, idx: Any, width: int, gate: Any = True, alt: Any = 0) -> Any:
    lanes = np.asarray(idx)[..., None] + np.arange(width)
    gate = np.asarray(gate)[..., None]
    return np.where(gate, buf[np.where(gate, lanes, 0)], alt)


def _vstore(buf: np.ndarray, t: np.ndarray, idx: Any, value: Any, gate: Any, width: int) -> None:
    idx, gate = (np.broadcast_to(x, t.shape) for x in (idx, gate))
    value = np.broadcast_to(value, (*t.shape, width))
    buf[(idx[:, None] + np.arange(width))[gate]] = value[gate]


def _vstore_local(local: np.ndarray, t: np.ndarray, idx: Any, value: Any, gate: Any, width: int) -> None:
    idx, gate = (np.broadcast_to(x, t.shape) for x in (idx, gate))
    value = np.broadcast_to(value, (*t.shape, width))
    groups = np.broadcast_to(_group_of(local, t)[..., None], (*t.shape, width))
    local[groups[gate], (idx[..., None] + np.arange(width))[gate]] = value[gate]


def _group_of(local: np.ndarray, t: np.ndarray) -> np.ndarray:
    return t // (t.size // local.shape[0]) if local.shape[0] else t


def _load_local(local: np.ndarray, t: np.ndarray, idx: Any, gate: Any = True, alt: Any = 0) -> Any:
    safe = np.where(gate, np.broadcast_to(idx, t.shape), 0)
    return np.where(gate, local[_group_of(local, t), safe], alt)


def _store_local(local: np.ndarray, t: np.ndarray, idx: Any, value: Any, gate: Any) -> None:
    idx, value, gate = (np.broadcast_to(x, t.shape) for x in (idx, value, gate))
    local[_group_of(local, t)[gate], idx[gate]] = value[gate]


def _wmma(t: np.ndarray, a: Any, b: Any, c: Any, at: Any, bt: Any, ct: Any,
          dims: tuple[int, int, int]) -> Any:
    """WMMA for every work group at once (a group's lanes are consecutive threads): each lane's fragments are
    scattered into the group's matrices as the tables say, D = A @ B + C, and each lane gathers its part
    of D."""
    m, n, k = dims
    lanes = len(at)

    def matrix(frag: Any, table: Any, rows: int, cols: int) -> np.ndarray:
        table = np.asarray(table)
        frag = np.broadcast_to(frag, (t.size, table.shape[1])).reshape(-1, lanes, table.shape[1])
        out = np.zeros((frag.shape[0], rows, cols), np.float64)
        out[:, table[..., 0], table[..., 1]] = frag
        return out

    d = matrix(a, at, m, k) @ matrix(b, bt, k, n) + matrix(c, ct, m, n)
    cells = np.asarray(ct)
    return d[:, cells[..., 0], cells[..., 1]].reshape(t.size, cells.shape[1]).astype(np.asarray(c).dtype)


#: The names the interpreter's kernels call.
PRELUDE = {"np": np, "_idiv": _idiv, "_pow": _pow, "_cast": _cast, "_gated_load": _gated_load, "_store": _store,
           "_load_local": _load_local, "_store_local": _store_local, "_vload": _vload, "_vstore": _vstore,
           "_vstore_local": _vstore_local, "_wmma": _wmma}
