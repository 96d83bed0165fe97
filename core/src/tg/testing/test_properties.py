"""Property tests: random op graphs, built with hypothesis, run in tg and in numpy and compared at the end.

A program is a list of steps drawn for the current shape: elementwise ops (unary, with scalars, with
random broadcastable operands, ``where``), movement ops (permute, reshape, flip, shrink, pad, expand,
getitem, repeat...) and reductions.  Each step knows its tg and its numpy form, so the same graph runs
in both; a failing example prints the steps.  Examples are derandomized: every run and every backend
sees the same graphs.  Counts are small so the kit stays fast on slow (interpreted) backends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tg import Tensor
from tg.testing import assert_close, check_grad, reference, tensor

MAX_NUMEL = 240


def kit_settings(max_examples: int) -> settings:
    """The kit's hypothesis settings: few examples, no deadline, reproducible."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@dataclass
class Step:
    """One op of a random program, in its tg and numpy forms; ``repr`` is how hypothesis reports it."""

    desc: str
    tg: Callable[[Any], Any] = field(repr=False)
    ref: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    def __repr__(self) -> str:
        return self.desc


def run(steps: list[Step], x: np.ndarray) -> tuple[Any, np.ndarray]:
    t: Any = tensor(x.astype(np.float32), "float32")
    ref = x.astype(np.float64)
    for s in steps:
        t, ref = s.tg(t), np.asarray(s.ref(ref))
    return t, ref


def out_shape(step: Step, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(np.asarray(step.ref(np.zeros(shape))).shape)


# ---------------------------------------------------------------------------------------------- step families

SMOOTH_UNARY: list[tuple[str, Callable[[Any], Any], Callable[[np.ndarray], np.ndarray]]] = [
    ("neg", lambda t: -t, np.negative),
    ("tanh", lambda t: t.tanh(), np.tanh),
    ("sigmoid", lambda t: t.sigmoid(), reference.sigmoid),
    ("sin", lambda t: t.sin(), np.sin),
    ("exp(tanh)", lambda t: t.tanh().exp(), lambda x: np.exp(np.tanh(x))),
    ("log(x*x+1)", lambda t: (t * t + 1).log(), lambda x: np.log(x * x + 1)),
    ("sqrt(x*x+0.5)", lambda t: (t * t + 0.5).sqrt(), lambda x: np.sqrt(x * x + 0.5)),
    ("silu", lambda t: t.silu(), reference.silu),
]
KINKED_UNARY: list[tuple[str, Callable[[Any], Any], Callable[[np.ndarray], np.ndarray]]] = [
    ("relu", lambda t: t.relu(), lambda x: np.maximum(x, 0)),
    ("abs", lambda t: t.abs(), np.abs),
    ("clip", lambda t: t.clip(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
]
BINARY: list[tuple[str, Callable[[Any, Any], Any], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = [
    ("+", lambda a, b: a + b, np.add),
    ("-", lambda a, b: a - b, np.subtract),
    ("*", lambda a, b: a * b, np.multiply),
    ("maximum", lambda a, b: a.maximum(b), np.maximum),
    ("minimum", lambda a, b: a.minimum(b), np.minimum),
]


@st.composite
def shapes(draw: st.DrawFn, min_dims: int = 1, max_dims: int = 4, max_side: int = 5,
           max_numel: int = MAX_NUMEL) -> tuple[int, ...]:
    shape = list(draw(st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims)))
    while math.prod(shape) > max_numel:
        shape[shape.index(max(shape))] -= 1
    return tuple(shape)


def _broadcast_partner(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape``: some dims 1, some leading dims dropped, size-1 dims grown."""
    dims = []
    for n in shape:
        choice = draw(st.sampled_from(["same", "one", "grow"] if n == 1 else ["same", "one"]))
        dims.append(n if choice == "same" else 1 if choice == "one" else draw(st.integers(2, 3)))
    drop = draw(st.integers(0, len(dims)))
    return tuple(dims[drop:])


@st.composite
def elementwise_steps(draw: st.DrawFn, shape: tuple[int, ...], smooth: bool = False) -> Step:
    kinds = ["unary", "scalar", "binary", "self"] + ([] if smooth else ["kinked", "where"])
    kind = draw(st.sampled_from(kinds))
    if kind in ("unary", "kinked"):
        name, f, g = draw(st.sampled_from(SMOOTH_UNARY if kind == "unary" else KINKED_UNARY))
        return Step(name, f, g)
    if kind == "scalar":
        c = draw(st.sampled_from([-1.5, -0.5, 0.25, 2.0, 3]))
        if draw(st.booleans()):
            return Step(f"*{c}", lambda t: t * c, lambda x: x * c)
        return Step(f"{c}+", lambda t: c + t, lambda x: c + x)
    if kind == "self":
        axis = draw(st.integers(0, len(shape) - 1)) if shape else None
        if axis is None:
            return Step("x*x", lambda t: t * t, lambda x: x * x)
        return Step(f"x+x.flip({axis})", lambda t: t + t.flip(axis), lambda x: x + np.flip(x, axis))
    other_shape = _broadcast_partner(draw, shape)
    seed = draw(st.integers(0, 2**16))
    other = np.random.default_rng(seed).uniform(-1, 1, other_shape).astype(np.float32)
    if kind == "where":
        cond = np.random.default_rng(seed + 1).random(other_shape) < 0.5
        return Step(f"where(cond{other_shape}, x, y{other_shape})",
                    lambda t: tensor(cond, "bool").where(t, tensor(other, "float32")),
                    lambda x: np.where(cond, x, other.astype(np.float64)))
    name, f, g = draw(st.sampled_from(BINARY if not smooth else BINARY[:3]))
    if draw(st.booleans()):
        return Step(f"x {name} y{other_shape}", lambda t: f(t, tensor(other, "float32")),
                    lambda x: g(x, other.astype(np.float64)))
    return Step(f"y{other_shape} {name} x", lambda t: f(tensor(other, "float32"), t),
                lambda x: g(other.astype(np.float64), x))


def _slice(draw: st.DrawFn, n: int) -> slice:
    step = draw(st.sampled_from([1, 1, 2, -1, -2, 3]))
    start = draw(st.one_of(st.none(), st.integers(-n - 1, n)))
    stop = draw(st.one_of(st.none(), st.integers(-n - 1, n + 1)))
    s = slice(start, stop, step)
    if len(range(*s.indices(n))) == 0:
        return slice(None, None, step)
    return s


@st.composite
def movement_steps(draw: st.DrawFn, shape: tuple[int, ...], int_data: bool = False) -> Step:
    nd = len(shape)
    numel = math.prod(shape)
    kinds = ["reshape"]
    if nd >= 1:
        kinds += ["pad", "flip", "shrink", "getitem", "permute", "repeat"]
    if nd >= 2:
        kinds += ["transpose"]
    if 1 in shape:
        kinds += ["expand", "squeeze"]
    if nd < 4:
        kinds += ["unsqueeze"]
    kind = draw(st.sampled_from(kinds))
    if kind == "reshape":
        dims: list[int] = []
        rest = numel
        for d in range(2, rest + 1):
            while rest % d == 0 and draw(st.booleans()) and len(dims) < 3:
                dims.append(d)
                rest //= d
        dims.append(rest)
        dims = draw(st.permutations(dims))
        if draw(st.booleans()) and len(dims) > 1:
            i = draw(st.integers(0, len(dims) - 1))
            shown = [*dims[:i], -1, *dims[i + 1:]]
            return Step(f"reshape{tuple(shown)}", lambda t: t.reshape(*shown), lambda x: x.reshape(shown))
        return Step(f"reshape{tuple(dims)}", lambda t: t.reshape(*dims), lambda x: x.reshape(dims))
    if kind == "pad":
        pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in shape)
        grown = math.prod(n + a + b for n, (a, b) in zip(shape, pads))
        if grown > MAX_NUMEL:
            pads = tuple((0, 0) for _ in shape)
        value = draw(st.sampled_from([0, 0, -1, 7] if int_data else [0.0, 0.0, -1.0, 2.5]))
        return Step(f"pad{pads},{value}", lambda t: t.pad(pads, value=value),
                    lambda x: np.pad(x, pads, constant_values=value))
    if kind == "flip":
        axes = tuple(draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True)))
        return Step(f"flip{axes}", lambda t: t.flip(axes), lambda x: np.flip(x, axes))
    if kind == "shrink":
        arg = []
        for n in shape:
            a = draw(st.integers(0, n - 1))
            arg.append((a, draw(st.integers(a + 1, n))))
        box = tuple(arg)
        return Step(f"shrink{box}", lambda t: t.shrink(box), lambda x: x[tuple(slice(a, b) for a, b in box)])
    if kind == "getitem":
        key: list[Any] = []
        for n in shape:
            choice = draw(st.sampled_from(["slice", "slice", "int", "full"]))
            key.append(_slice(draw, n) if choice == "slice" else draw(st.integers(-n, n - 1)) if choice == "int"
                       else slice(None))
        if nd < 4 and draw(st.booleans()):
            key.insert(draw(st.integers(0, len(key))), None)
        k = tuple(key)
        return Step(f"[{k}]", lambda t: t[k], lambda x: x[k])
    if kind == "permute":
        perm = tuple(draw(st.permutations(range(nd))))
        return Step(f"permute{perm}", lambda t: t.permute(*perm), lambda x: x.transpose(perm))
    if kind == "transpose":
        a, b = draw(st.integers(-nd, nd - 1)), draw(st.integers(-nd, nd - 1))
        return Step(f"transpose({a},{b})", lambda t: t.transpose(a, b), lambda x: np.swapaxes(x, a, b))
    if kind == "repeat":
        reps = tuple(draw(st.integers(1, 2)) for _ in shape)
        if numel * math.prod(reps) > MAX_NUMEL:
            reps = tuple(1 for _ in shape)
        return Step(f"repeat{reps}", lambda t: t.repeat(*reps), lambda x: np.tile(x, reps))
    if kind == "expand":
        new = tuple(draw(st.integers(1, 3)) if n == 1 else n for n in shape)
        if math.prod(new) > MAX_NUMEL:
            new = shape
        return Step(f"expand{new}", lambda t: t.expand(*new), lambda x: np.broadcast_to(x, new))
    if kind == "squeeze":
        dim = draw(st.sampled_from([i for i, n in enumerate(shape) if n == 1]))
        return Step(f"squeeze({dim})", lambda t: t.squeeze(dim), lambda x: np.squeeze(x, dim))
    dim = draw(st.integers(-nd - 1, nd))
    return Step(f"unsqueeze({dim})", lambda t: t.unsqueeze(dim), lambda x: np.expand_dims(x, dim))


@st.composite
def reduce_steps(draw: st.DrawFn, shape: tuple[int, ...], ops: tuple[str, ...] = ("sum", "max", "min", "mean")) -> Step:
    nd = len(shape)
    op = draw(st.sampled_from(ops))
    keepdim = draw(st.booleans())
    axis: int | tuple[int, ...] | None
    form = draw(st.sampled_from(["int", "tuple", "none"]))
    if form == "int":
        axis = draw(st.integers(-nd, nd - 1))
    elif form == "tuple":
        axis = tuple(draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True)))
    else:
        axis = None
    np_fn: Callable[..., Any] = getattr(np, op)
    return Step(f"{op}(axis={axis},keepdim={keepdim})", lambda t: getattr(t, op)(axis=axis, keepdim=keepdim),
                lambda x: np_fn(x, axis=axis, keepdims=keepdim))


@st.composite
def programs(draw: st.DrawFn, kinds: tuple[str, ...] = ("elementwise", "movement", "reduce"), max_steps: int = 6,
             smooth: bool = False, int_data: bool = False,
             max_numel: int = MAX_NUMEL) -> tuple[tuple[int, ...], list[Step]]:
    shape = draw(shapes(max_numel=max_numel))
    start = shape
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, max_steps))):
        options = [k for k in kinds if k != "reduce" or len(shape) > 0]
        kind = draw(st.sampled_from(options))
        if kind == "elementwise":
            step = draw(elementwise_steps(shape, smooth=smooth))
        elif kind == "movement":
            step = draw(movement_steps(shape, int_data=int_data))
        else:
            step = draw(reduce_steps(shape, ops=("sum", "mean") if smooth else ("sum", "max", "min", "mean")))
        new_shape = out_shape(step, shape)
        if math.prod(new_shape) > MAX_NUMEL or len(new_shape) > 4:
            continue
        steps.append(step)
        shape = new_shape
    return start, steps


def _data(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------- properties


@kit_settings(40)
@given(programs(), st.integers(0, 2**16))
def test_random_graphs_match_numpy(program: tuple[tuple[int, ...], list[Step]], seed: int) -> None:
    """Random chains of elementwise, movement and reduce ops give numpy's numbers."""
    shape, steps = program
    t, ref = run(steps, _data(seed, shape))
    scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
    assert_close(t, ref, rtol=1e-3, atol=1e-4 * scale, msg=f"{shape} {steps}")


@kit_settings(40)
@given(programs(kinds=("movement",), max_steps=8, int_data=True), st.integers(0, 2**16))
def test_random_views_are_exact(program: tuple[tuple[int, ...], list[Step]], seed: int) -> None:
    """Movement ops only, on int32 data: views of views must land every element exactly."""
    shape, steps = program
    x = np.random.default_rng(seed).integers(-1000, 1000, shape).astype(np.int32)
    t: Any = tensor(x, "int32")
    ref = x
    for s in steps:
        t, ref = s.tg(t), np.asarray(s.ref(ref))
    assert t.dtype.name == "int32"
    assert_close(t, ref, "int32", msg=f"{shape} {steps}")


@st.composite
def broadcast_pairs(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    a = draw(shapes(min_dims=0, max_dims=4, max_side=4))
    return a, _broadcast_partner(draw, a)


@kit_settings(25)
@given(broadcast_pairs(), st.sampled_from(range(len(BINARY))), st.booleans(), st.integers(0, 2**16))
def test_random_broadcasting(pair: tuple[tuple[int, ...], tuple[int, ...]], op: int, swap: bool, seed: int) -> None:
    """Any two broadcast-compatible shapes, either order, any binary op."""
    sa, sb = pair if not swap else pair[::-1]
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-2, 2, sa).astype(np.float32), rng.uniform(-2, 2, sb).astype(np.float32)
    _, f, g = BINARY[op]
    assert_close(f(tensor(a, "float32"), tensor(b, "float32")), g(a.astype(np.float64), b.astype(np.float64)),
                 msg=f"{sa} {BINARY[op][0]} {sb}")


@st.composite
def reductions(draw: st.DrawFn) -> tuple[tuple[int, ...], Step]:
    shape = draw(shapes(min_dims=1, max_dims=4, max_side=6))
    return shape, draw(reduce_steps(shape))


@kit_settings(30)
@given(reductions(), st.integers(0, 2**16))
def test_random_reductions(case: tuple[tuple[int, ...], Step], seed: int) -> None:
    """Any reduction over any set of axes of a random 1-4 D tensor, with and without keepdim."""
    shape, step = case
    x = _data(seed, shape)
    assert_close(step.tg(tensor(x, "float32")), step.ref(x.astype(np.float64)), atol=1e-5 * math.sqrt(x.size),
                 msg=f"{shape} {step}")


@kit_settings(12)
@given(programs(max_steps=4, smooth=True, max_numel=48), st.integers(0, 2**16))
def test_random_graph_gradients(program: tuple[tuple[int, ...], list[Step]], seed: int) -> None:
    """Backprop through a random smooth graph matches float64 finite differences of the same graph."""
    shape, steps = program
    x = _data(seed, shape) / 2

    def tg_fn(t: Tensor) -> Any:
        for s in steps:
            t = s.tg(t)
        return t * 1.0

    def np_fn(v: np.ndarray) -> np.ndarray:
        for s in steps:
            v = np.asarray(s.ref(v))
        return v

    check_grad(tg_fn, np_fn, [x], np.random.default_rng(seed), rtol=5e-3, atol=5e-4)
