"""The built-in numpy backend: runs the micro-ops themselves, vectorized across a launch's threads.

The emitter renders a kernel's micro-op list as a Python function in which every value is a numpy
array holding that value for all threads at once (work groups and lanes included), loops are Python
loops (every thread runs the same trip count), and gated loads and stores mask per thread.  All threads
run in lockstep, so a barrier holds by construction.  It never looks at the tensor graph: its job is to
prove the micro-op IR, and to be the backend that always works.

``TG_NUMPY_CAPS`` switches lowering capabilities on so the conformance kit can prove each rewrite, e.g.
``TG_NUMPY_CAPS=no_div,sin_is_sin2pi,no_pow,no_mod,no_sub,no_cmpeq,mulacc,group_size=8,vector_width=4,upcast=16,no_float64``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tg.backends.contract import Availability, Capabilities, Emitter, Runtime
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.uops import Ops, PtrDType, UOp, VecDType
from tg.hooks import hookimpl
from tg.support.dtype import DType, dtypes
from tg.support.helpers import getenv
from tg.support.ops import OPTIONAL

LANGUAGE = "numpy-python"

_BINARY = {Ops.ADD: "({} + {})", Ops.SUB: "({} - {})", Ops.MUL: "({} * {})", Ops.DIV: "({} / {})",
           Ops.IDIV: "_idiv({}, {})", Ops.MOD: "np.fmod({}, {})", Ops.MAX: "np.maximum({}, {})",
           Ops.POW: "np.power({}, {})", Ops.CMPLT: "({} < {})", Ops.CMPNE: "({} != {})", Ops.CMPEQ: "({} == {})",
           Ops.AND: "({} & {})", Ops.OR: "({} | {})", Ops.XOR: "({} ^ {})"}
_UNARY = {Ops.NEG: "(-{})", Ops.EXP2: "np.exp2({})", Ops.LOG2: "np.log2({})", Ops.SIN: "np.sin({})",
          Ops.SQRT: "np.sqrt({})", Ops.RECIP: "np.reciprocal({})", Ops.TRUNC: "np.trunc({})"}


def _np_type(dtype: DType) -> str:
    return "np.bool_" if dtype.name == "bool" else f"np.{dtype.name}"


def _const(value: Any, dtype: DType) -> str:
    if dtype.is_float:
        text = repr(float(value)) if math.isfinite(value) else f"'{value}'"
        return f"{_np_type(dtype)}({text})"
    return f"{_np_type(dtype)}({value!r})"


class NumpyEmitter(Emitter):
    target = "numpy"
    language = LANGUAGE

    def __init__(self, capabilities: Capabilities):
        self.capabilities = capabilities

    def render(self, kernel: LoweredKernel) -> Program:
        return Program.of(kernel, self.source(kernel.name, kernel.uops))

    def source(self, name: str, uops: list[UOp]) -> str:
        """The Python function ``name(bufs)`` that runs ``uops`` for every thread at once."""
        names: dict[int, str] = {}
        specials = {u.arg[0]: u.arg[1] for u in uops if u.op is Ops.SPECIAL}
        n_lanes = specials.get("lidx0", 1)
        n_threads = specials.get("gidx0", 1) * n_lanes
        lines = [f"def {name}(bufs):", f"  _t = np.arange({n_threads}, dtype=np.int32)"]
        indent = "  "
        for i, u in enumerate(uops):
            v = f"v{i}"
            names[id(u)] = v
            s = [names[id(x)] for x in u.src]
            line: str | None = None
            if u.op is Ops.DEFINE_GLOBAL:
                assert isinstance(u.dtype, PtrDType)
                line = f"{v} = bufs[{u.arg[0]}].view({_np_type(u.dtype.base)})"
            elif u.op is Ops.DEFINE_LOCAL:
                assert isinstance(u.dtype, PtrDType)
                groups = n_threads // n_lanes
                line = f"{v} = np.zeros(({groups}, {u.arg[1]}), dtype={_np_type(u.dtype.base)})"
            elif u.op is Ops.SPECIAL:
                line = f"{v} = _t // {n_lanes}" if u.arg[0] == "gidx0" else f"{v} = _t % {n_lanes}"
            elif u.op is Ops.CONST:
                assert isinstance(u.dtype, DType)
                line = f"{v} = {_const(u.arg, u.dtype)}"
            elif u.op is Ops.RANGE:
                lines.append(f"{indent}for {v} in range(int({s[0]}), int({s[1]})):")
                indent += "  "
                lines.append(f"{indent}{v} = np.int32({v})")
                continue
            elif u.op is Ops.ENDRANGE:
                indent = indent[:-2]
                continue
            elif u.op is Ops.DEFINE_ACC:
                assert isinstance(u.dtype, DType)
                line = f"{v} = np.full({n_threads}, {_const(u.arg, u.dtype)})"
            elif u.op is Ops.ASSIGN:
                names[id(u)] = s[0]
                line = f"{s[0]} = ({s[1]}).astype({s[0]}.dtype)"
            elif u.op is Ops.LOAD:
                line = self._load(v, s, u)
            elif u.op is Ops.STORE:
                line = self._store(s, u)
            elif u.op is Ops.VECTORIZE:
                line = f"{v} = np.stack(np.broadcast_arrays({', '.join(s)}), axis=-1)"
            elif u.op is Ops.GEP:
                line = f"{v} = {s[0]}[..., {u.arg}]"
            elif u.op is Ops.BARRIER:
                line = "pass  # barrier: every lane runs in lockstep"
            elif u.op is Ops.SIN and self.capabilities.sin_is_sin2pi:  # play hardware whose sine takes turns
                line = f"{v} = np.sin({s[0]} * {_const(2 * math.pi, u.dtype)})"  # type: ignore[arg-type]
            elif u.op is Ops.NEG and u.dtype == dtypes.bool:  # bool NEG is NOT, like Tensor.neg on bools
                line = f"{v} = np.logical_not({s[0]})"
            elif u.op in _UNARY:
                line = f"{v} = {_UNARY[u.op].format(s[0])}"
            elif u.op in _BINARY:
                line = f"{v} = {_BINARY[u.op].format(s[0], s[1])}"
            elif u.op is Ops.WHERE:
                line = f"{v} = np.where({s[0]}, {s[1]}, {s[2]})"
            elif u.op is Ops.MULACC:
                line = f"{v} = {s[0]} * {s[1]} + {s[2]}"
            elif u.op is Ops.CAST:
                assert isinstance(u.dtype, DType)
                line = f"{v} = _cast({s[0]}, {_np_type(u.dtype)})"
            elif u.op is Ops.BITCAST:
                assert isinstance(u.dtype, DType)
                line = f"{v} = np.asarray({s[0]}).view({_np_type(u.dtype)})"
            else:
                raise NotImplementedError(f"the numpy backend cannot run micro-op {u.op.name}")
            lines.append(indent + line)
        return "\n".join(lines) + "\n"

    @staticmethod
    def _load(v: str, s: list[str], u: UOp) -> str:
        if isinstance(u.dtype, VecDType):
            gate = f", {s[2]}, {s[3]}" if len(s) > 2 else ""
            return f"{v} = _vload({s[0]}, {s[1]}, {u.dtype.count}{gate})"
        local = isinstance(u.src[0].dtype, PtrDType) and u.src[0].dtype.local
        if len(s) == 2:
            return f"{v} = _load_local({s[0]}, _t, {s[1]})" if local else f"{v} = {s[0]}[{s[1]}]"
        loader = "_load_local" if local else "_gated_load"
        return f"{v} = {loader}({s[0]}, {'_t, ' if local else ''}{s[1]}, {s[2]}, {s[3]})"

    @staticmethod
    def _store(s: list[str], u: UOp) -> str:
        gate = s[3] if len(s) > 3 else "True"
        buf, value = u.src[0], u.src[2]
        if isinstance(value.dtype, VecDType):
            return f"_vstore({s[0]}, _t, {s[1]}, {s[2]}, {gate}, {value.dtype.count})"
        if isinstance(buf.dtype, PtrDType) and buf.dtype.local:
            return f"_store_local({s[0]}, _t, {s[1]}, {s[2]}, {gate})"
        return f"_store({s[0]}, _t, {s[1]}, {s[2]}, {gate})"


def _idiv(a: Any, b: Any) -> Any:
    """Integer division that truncates toward zero, like C."""
    q = np.floor_divide(a, b)
    return q + ((np.fmod(a, b) != 0) & ((a < 0) != (b < 0)))


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


def _group_of(local: np.ndarray, t: np.ndarray) -> np.ndarray:
    return t // (t.size // local.shape[0]) if local.shape[0] else t


def _load_local(local: np.ndarray, t: np.ndarray, idx: Any, gate: Any = True, alt: Any = 0) -> Any:
    safe = np.where(gate, np.broadcast_to(idx, t.shape), 0)
    return np.where(gate, local[_group_of(local, t), safe], alt)


def _store_local(local: np.ndarray, t: np.ndarray, idx: Any, value: Any, gate: Any) -> None:
    idx, value, gate = (np.broadcast_to(x, t.shape) for x in (idx, value, gate))
    local[_group_of(local, t)[gate], idx[gate]] = value[gate]


_PRELUDE = {"np": np, "_idiv": _idiv, "_cast": _cast, "_gated_load": _gated_load, "_store": _store,
            "_load_local": _load_local, "_store_local": _store_local, "_vload": _vload, "_vstore": _vstore}


class NumpyRuntime(Runtime):
    language = LANGUAGE
    name = "numpy"
    priority = 0

    def available(self) -> Availability:
        return Availability.yes()

    def compile(self, program: Program) -> Any:
        namespace = dict(_PRELUDE)
        code = compile(program.source, f"<tg kernel {program.name}>", "exec")
        exec(code, namespace)  # noqa: S102 - our own generated code
        return namespace[program.name]

    def launch(self, program: Program, binary: Any, buffers: Sequence[Any], values: Mapping[str, int]) -> float | None:
        with np.errstate(all="ignore"):  # the device semantics (wrap-around, inf, nan) are intended
            binary(buffers)
        return None

    def alloc(self, nbytes: int) -> Any:
        return np.empty(nbytes, dtype=np.uint8)

    def copyin(self, buffer: Any, host: memoryview) -> None:
        buffer[: host.nbytes] = np.frombuffer(host, dtype=np.uint8)

    def copyout(self, host: memoryview, buffer: Any) -> None:
        np.frombuffer(host, dtype=np.uint8)[:] = buffer[: host.nbytes]


def capabilities_from_env() -> Capabilities:
    """The numpy backend's capabilities, with the lowerings named in TG_NUMPY_CAPS switched on.

    It renders every optional micro-op but MULACC; ``no_<op>`` (``no_div``, ``no_pow``, ``no_mod``, ``no_sub``,
    ``no_cmpeq``) makes core decompose that op instead, and ``mulacc`` asks for fused multiply-adds.
    """
    flags: dict[str, Any] = {"sin_is_sin2pi": False, "vector_width": 1, "group_size": 1, "upcast": 1}
    renders = set(OPTIONAL - {Ops.MULACC})
    all_dtypes = {"bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"}
    for item in getenv("TG_NUMPY_CAPS", "").split(","):
        key, _, value = item.strip().partition("=")
        if not key:
            continue
        if key == "sin_is_sin2pi":
            flags[key] = True
        elif key.startswith("no_") and key[3:].upper() in Ops.__members__ and Ops[key[3:].upper()] in renders:
            renders.discard(Ops[key[3:].upper()])
        elif key == "mulacc":
            renders.add(Ops.MULACC)
        elif key in ("group_size", "upcast", "vector_width") and value.isdigit():
            flags[key] = int(value)
        elif key.startswith("no_") and key[3:] in all_dtypes - {"bool", "int32"}:
            all_dtypes.discard(key[3:])
        else:
            raise ValueError(f"TG_NUMPY_CAPS: unknown capability {item!r}; known: sin_is_sin2pi, mulacc, no_div, "
                             "no_pow, no_mod, no_sub, no_cmpeq, group_size=N, vector_width=N, upcast=N, no_<dtype>")
    return Capabilities(dtypes=frozenset(all_dtypes), renders=frozenset(renders), local_memory=1 << 16, **flags)


@hookimpl
def tg_emitters() -> list[Emitter]:
    return [NumpyEmitter(capabilities_from_env())]


@hookimpl
def tg_runtimes() -> list[Runtime]:
    return [NumpyRuntime()]
