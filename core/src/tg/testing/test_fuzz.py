"""Differential fuzzing: random graphs run on the backend under test and on the numpy backend, compared.

Hypothesis draws a small program (input tensors with edge values — NaN, +-inf, -0.0, the integer extremes —
then elementwise, comparison, cast, reduction, movement and matmul ops on them, with mixed dtypes and
broadcasting), runs it on the backend under test and on the embedded numpy backend (the reference of the hook
spec's semantics) in this process, and compares the last value and one earlier one.  Integers and bools must
be equal; floats equal within a tolerance scaled by the largest magnitude the program saw, NaN and infinities in
the same places.  Values that differ by rounding alone on two correct backends (a transcendental's last ulp, a
sum's order) never feed a comparison, a cast to an integer or a rounding op, so any difference is a defect.

``TG_FUZZ_EXAMPLES`` sets the number of programs (default 40); ``nox -s fuzz`` runs many more.  On the numpy
backend itself the test is skipped (it would compare the reference with itself).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tg import Tensor
from tg.testing import backend_name, supports

EXAMPLES = int(os.environ.get("TG_FUZZ_EXAMPLES", "40"))
_I32 = (-(2**31), 2**31 - 1)


@dataclass
class Node:
    """A value of the program, abstractly: its shape, dtype, and whether every correct backend computes it
    bit for bit (``exact``: no transcendental, no float sum in its history)."""

    shape: tuple[int, ...]
    dtype: str
    exact: bool
    zero_sign: bool = True  # False after MAX/MIN of +0 and -0, which may give either (the hook spec allows it)


@dataclass
class Program:
    inputs: list[np.ndarray] = field(default_factory=list)
    steps: list[tuple[str, Callable[[list[Tensor]], Tensor]]] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)

    def __repr__(self) -> str:  # what hypothesis prints for a failing program
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}={a.tolist()}" for a in self.inputs)
        return f"inputs: {shapes}\n  " + "\n  ".join(f"v{len(self.inputs) + i} = {d}"
                                                      for i, (d, _) in enumerate(self.steps))

    def add(self, desc: str, node: Node, fn: Callable[[list[Tensor]], Tensor]) -> None:
        self.steps.append((desc, fn))
        self.nodes.append(node)


def _dtypes() -> list[str]:
    return [d for d in ("float32", "int32", "bool", "float16", "int64", "int8", "uint8") if supports(d)]


@st.composite
def _array(draw: Any, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    n = math.prod(shape)
    if dtype == "bool":
        values: list[Any] = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    elif dtype.startswith("float"):
        special = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, -1.0])
        values = draw(st.lists(st.floats(-100, 100, width=16) | special, min_size=n, max_size=n))
    else:
        info = np.iinfo(dtype)
        edge = st.sampled_from([int(info.min), int(info.max), 0, 1, -1 if info.min < 0 else 2])
        values = draw(st.lists(st.integers(max(int(info.min), -50), min(int(info.max), 50)) | edge,
                               min_size=n, max_size=n))
    return np.array(values, dtype=dtype).reshape(shape)


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(x == y or 1 in (x, y) for x, y in zip(a[::-1], b[::-1]))


def _result(a: Node, b: Node, dtype: str, exact: bool = True, zero_sign: bool = True) -> Node:
    return Node(tuple(np.broadcast_shapes(a.shape, b.shape)), dtype, exact and a.exact and b.exact,
                zero_sign and a.zero_sign and b.zero_sign)


def _promoted(a: str, b: str) -> str:
    return str(Tensor.ones(1, dtype=a, device="numpy").add(Tensor.ones(1, dtype=b, device="numpy")).dtype.name)


#: Unary float ops, and whether two correct backends agree on them bit for bit.
UNARY_FLOAT: dict[str, tuple[Callable[[Tensor], Tensor], bool]] = {
               "neg": (lambda x: -x, True), "abs": (Tensor.abs, True), "relu": (Tensor.relu, True),
               "sqrt": (Tensor.sqrt, True), "square": (Tensor.square, True), "reciprocal": (Tensor.reciprocal, True),
               "exp": (Tensor.exp, False), "log": (Tensor.log, False), "sin": (Tensor.sin, False),
               "sigmoid": (Tensor.sigmoid, False), "tanh": (Tensor.tanh, False)}
ROUNDING: dict[str, Callable[[Tensor], Tensor]] = {"floor": Tensor.floor, "ceil": Tensor.ceil, "trunc": Tensor.trunc}
BINARY_NUMBERS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
                  "maximum": Tensor.maximum, "minimum": Tensor.minimum}
COMPARE = {"<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
BITWISE = {"&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b}


@st.composite
def programs(draw: Any) -> Program:
    p = Program()
    kinds = _dtypes()
    for _ in range(draw(st.integers(1, 3))):
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=3)))
        if p.nodes and draw(st.booleans()):  # often the same shape as another input, or broadcastable to it
            other = draw(st.sampled_from(p.nodes)).shape
            shape = tuple(1 if draw(st.integers(0, 3)) == 0 else s for s in other)
        dtype = draw(st.sampled_from(kinds[:3]) if draw(st.integers(0, 3)) else st.sampled_from(kinds))
        p.inputs.append(draw(_array(shape, dtype)))
        p.nodes.append(Node(shape, dtype, True))
    for _ in range(draw(st.integers(1, 7))):
        _step(draw, p, kinds)
    return p


def _step(draw: Any, p: Program, kinds: list[str]) -> None:
    """Add one op on existing values (the lambdas' names are each bound once in this call: no late binding)."""
    i = draw(st.integers(0, len(p.nodes) - 1))
    a = p.nodes[i]
    kind = draw(st.sampled_from(["unary", "binary", "binary", "cast", "reduce", "move", "where", "matmul"]))
    is_float = a.dtype.startswith("float")
    if kind == "unary":
        if is_float:
            names = sorted(UNARY_FLOAT) + (sorted(ROUNDING) if a.exact else [])
            if not a.zero_sign:
                names.remove("reciprocal")  # 1 / +-0 is +-inf
            name = draw(st.sampled_from(names))
            fn, exact = UNARY_FLOAT[name] if name in UNARY_FLOAT else (ROUNDING[name], True)
            zero_sign = name in ("abs", "square") or (a.zero_sign and name != "relu")
            p.add(f"v{i}.{name}()", Node(a.shape, a.dtype, a.exact and exact, zero_sign),
                  lambda v: fn(v[i]))
        elif a.dtype == "bool":
            p.add(f"~v{i}", Node(a.shape, a.dtype, True), lambda v: ~v[i])
        else:
            p.add(f"-v{i}", Node(a.shape, a.dtype, True), lambda v: -v[i])
        return
    if kind == "cast":
        target = draw(st.sampled_from(kinds))
        if is_float and not target.startswith("float") and not a.exact:
            target = a.dtype  # a cast to an integer of an inexact float would amplify an ulp
        p.add(f"v{i}.cast({target})", Node(a.shape, target, a.exact, a.zero_sign),
              lambda v: v[i].cast(target))
        return
    if kind == "reduce" and a.shape and 0 not in a.shape:
        axis = draw(st.integers(-len(a.shape), len(a.shape) - 1))
        keep = draw(st.booleans())
        op = draw(st.sampled_from(["sum", "amax", "amin"]))
        shape = tuple(1 if d == axis % len(a.shape) else s for d, s in enumerate(a.shape) if keep or d != axis % len(
            a.shape))
        dtype = a.dtype if op != "sum" else ("int32" if a.dtype in ("bool", "int8", "uint8") else a.dtype)
        exact = a.exact and (op != "sum" or not dtype.startswith("float"))
        p.add(f"v{i}.{op}({axis}, keepdim={keep})", Node(shape, dtype, exact, a.zero_sign and op == "sum"),
              lambda v: getattr(v[i], op)(axis, keepdim=keep))
        return
    if kind == "move" and a.shape:

        def a_like(shape: tuple[int, ...]) -> Node:
            return Node(shape, a.dtype, a.exact, a.zero_sign)

        how = draw(st.sampled_from(["permute", "flip", "flatten", "pad", "slice", "expand"]))
        nd = len(a.shape)
        if how == "permute":
            order = tuple(draw(st.permutations(range(nd))))
            p.add(f"v{i}.permute({order})", Node(tuple(a.shape[d] for d in order), a.dtype, a.exact, a.zero_sign),
                  lambda v: v[i].permute(order))
        elif how == "flip":
            axis = draw(st.integers(0, nd - 1))
            p.add(f"v{i}.flip({axis})", a_like(a.shape), lambda v: v[i].flip(axis))
        elif how == "flatten":
            p.add(f"v{i}.reshape(-1)", a_like((math.prod(a.shape),)), lambda v: v[i].reshape(-1))
        elif how == "pad":
            pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in a.shape)
            shape = tuple(s + lo + hi for s, (lo, hi) in zip(a.shape, pads))
            p.add(f"v{i}.pad({pads})", Node(shape, a.dtype, a.exact, a.zero_sign), lambda v: v[i].pad(pads))
        elif how == "slice":
            axis = draw(st.integers(0, nd - 1))
            step = draw(st.sampled_from([1, 2, -1]))
            start = draw(st.integers(0, a.shape[axis] - 1)) if step == 1 else None
            index = (slice(None),) * axis + (slice(start, None, step),)
            shape = tuple(len(range(a.shape[axis])[index[-1]]) if d == axis else s for d, s in enumerate(a.shape))
            p.add(f"v{i}[{index}]", Node(shape, a.dtype, a.exact, a.zero_sign), lambda v: v[i][index])
        elif 1 in a.shape:
            shape = tuple(draw(st.integers(1, 4)) if s == 1 else s for s in a.shape)
            p.add(f"v{i}.expand({shape})", a_like(shape), lambda v: v[i].expand(shape))
        return
    if kind == "matmul" and len(a.shape) == 2 and is_float and 0 not in a.shape:
        p.add(f"v{i} @ v{i}.T", Node((a.shape[0], a.shape[0]), a.dtype, False), lambda v: v[i] @ v[i].T)
        return
    partners = [j for j, b in enumerate(p.nodes) if _broadcastable(a.shape, b.shape)]
    j = draw(st.sampled_from(partners))
    b = p.nodes[j]
    dtype = _promoted(a.dtype, b.dtype)
    if kind == "where":
        conds = [k for k, n in enumerate(p.nodes) if _broadcastable(n.shape, a.shape) and
                 _broadcastable(n.shape, b.shape) and len(np.broadcast_shapes(n.shape, a.shape, b.shape)) <= 4 and
                 n.exact]  # an inexact condition could pick differently on two correct backends
        if not conds:
            return
        c = draw(st.sampled_from(conds))
        cond = p.nodes[c]
        p.add(f"v{c}.where(v{i}, v{j})", Node(tuple(np.broadcast_shapes(cond.shape, a.shape, b.shape)), dtype,
                                                 a.exact and b.exact, a.zero_sign and b.zero_sign),
              lambda v: v[c].where(v[i], v[j]))
        return
    floating = dtype.startswith("float")
    ops = dict(BINARY_NUMBERS) if dtype != "bool" else dict(BITWISE)
    if a.exact and b.exact:
        ops.update(COMPARE)
    if dtype in ("int32", "int64", "int8", "uint8"):
        ops.update(BITWISE)
        ops["//"] = lambda x, y: x // y
    if floating and b.zero_sign:  # x / +-0 is +-inf
        ops["/"] = lambda x, y: x / y
    if dtype == "bool":
        ops.pop("-", None)
    name = draw(st.sampled_from(sorted(ops)))
    out = "bool" if name in COMPARE else dtype
    p.add(f"v{i} {name} v{j}", _result(a, b, out, zero_sign=name not in ("maximum", "minimum")),
          lambda v: ops[name](v[i], v[j]))


def _run(p: Program, device: str, realize: list[int]) -> dict[int, np.ndarray]:
    values = [Tensor(x, dtype=str(x.dtype), device=device) for x in p.inputs]
    for _, fn in p.steps:
        values.append(fn(values))
    return {k: values[k].numpy() for k in realize}


def _compare(got: np.ndarray, want: np.ndarray, scale: float, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.dtype}{got.shape} != {want.dtype}" \
                                                                f"{want.shape}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    huge = (np.abs(w) > 1e30) | (np.abs(g) > 1e30)  # near overflow: one ulp decides between max and inf
    same = (np.isnan(g) & np.isnan(w)) | (g == w) | (huge & (np.sign(g) == np.sign(w)))
    tol = (1e-2 if want.dtype == np.float16 else 1e-4) * (1 + scale)
    with np.errstate(invalid="ignore"):
        close = np.isfinite(g) & np.isfinite(w) & (np.abs(g - w) <= tol)
    bad = ~(same | close)
    assert not bad.any(), f"{what}: at {np.argwhere(bad)[:5].tolist()} got {g[bad][:5]} want {w[bad][:5]} (tol {tol})"


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(programs(), st.data())
def test_random_programs_match_the_numpy_backend(program: Program, data: Any) -> None:
    if backend_name().split(":")[0] == "numpy":
        pytest.skip("the numpy backend is the reference: nothing to compare it with")
    last = len(program.inputs) + len(program.steps) - 1
    earlier = data.draw(st.integers(0, last), label="also compared")  # a step may have found no operands
    want = _run(program, "numpy", list(range(last + 1)))
    scale = max([float(np.max(np.abs(v[np.isfinite(v)]), initial=0.0)) for v in want.values()
                 if v.dtype.kind == "f"] or [0.0])
    got = _run(program, backend_name(), [last, earlier])
    for k in (last, earlier):
        _compare(got[k], want[k], min(scale, 1e30), f"v{k} on {backend_name()} vs numpy")
