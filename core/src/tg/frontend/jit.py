"""``tg.jit``: run a function's kernels again without re-tracing it (the per-step Python cost of a loop).

The first two calls of a jitted function run it as usual (the first may set things up, such as an
optimizer's state); the third runs it while :mod:`tg.engine.realize` writes down every copy and launch with the
buffers it used, and checks that it ran the same kernels on the same host data as the second; every later
call replays those launches: no graph building, no autograd, no scheduling, only the kernels.  Buffers
are matched up by their role:

* a tensor argument's buffer is the argument of the current call (same shapes, dtypes and devices; a
  call that differs in any of them, or in a non-tensor argument, is traced anew as its own variant);
* a tensor the function ``assign``s to is *state*: a replay reads its current buffer and, at the end,
  points the tensor at the buffer holding its new value (parameters and optimizer state work this way);
* the returned tensors get fresh buffers on every replay;
* anything else the function reads (a constant, a tensor from its closure) is read from the buffer it
  had during the capture, and intermediates reuse the buffers of the capture.

So only tensors the function returns or assigns see new values after a replay; other Python side
effects of the function (printing, appending to a list, setting ``p.grad``) happen on the first three
calls only.  Reading a tensor's value (``numpy``, ``item``, ``tolist``) inside the function is refused
while capturing, because a replay cannot run that code.  Host data the function creates is baked into
the capture, except random numbers (``Tensor.rand`` and friends), which every replay draws anew; host
data, kernels or Python floats of its tensor arithmetic (``x * lr``) that differ between the second and third
calls are an error, since a replay would silently repeat the third.  (Where a kernel built for every value of a size
would serve a size, the second and third calls build and run that size's exact kernel: the two must run the same
kernels, and the replays then run the faster one.)

Tracing is per thread: while one thread traces, others run (and read values) as usual.  Calls of one jitted
function from several threads take turns, since a replay reuses the capture's intermediate buffers.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar

import numpy as np

from tg.backends.contract import Backend
from tg.engine.device import Buffer, DeviceState, ReadyKernel
from tg.engine.realize import RecordedItem, RecordedKernel, current_recorder, realize, recording
from tg.frontend import deferred_checks
from tg.frontend.tensor import Tensor
from tg.graph.lazy import LazyBuffer
from tg.graph.shapetracker import ShapeTracker
from tg.support.dtype import DType, exact_key
from tg.support.errors import JitError

P = ParamSpec("P")
R = TypeVar("R")


# What a slot of a replay's buffer table holds.
_INPUT, _STATE, _FIXED, _FRESH = "input", "state", "fixed", "fresh"


@dataclass
class _Launch:
    state: DeviceState
    kernel: ReadyKernel
    slots: tuple[int, ...]  # output first
    values: Mapping[str, int | float]  # the capture's launch variables (its Python floats)


@dataclass
class _Copy:
    slot: int
    source: int | None
    data: np.ndarray | None
    redraw: Callable[[], np.ndarray] | None


@dataclass
class _Result:
    """How to rebuild a returned or assigned tensor's value: a view ``st`` of the buffer in ``slot``."""

    slot: int | None
    st: ShapeTracker
    base_shape: tuple[int, ...]
    device: str
    constant: LazyBuffer | None = None  # a value that is no buffer (an unrealized constant)

    def lazydata(self, table: list[Buffer | None]) -> LazyBuffer:
        if self.constant is not None:
            return self.constant
        assert self.slot is not None
        return LazyBuffer.from_buffer(table[self.slot], self.device, self.st, self.base_shape)


@dataclass
class _Plan:
    """A captured call: the steps, the buffer table's initial contents, and where inputs and state go."""

    steps: list[_Launch | _Copy]
    table: list[Buffer | None]
    kinds: list[str]
    buffer_specs: list[tuple[Backend, int, DType]]  # per slot: what a fresh buffer of it is
    input_slots: list[int | None]  # per tensor argument
    state_tensors: list[Tensor]
    state_slots: list[int | None]  # per state tensor: the slot its value at the start of a call is read into
    state_layouts: list[tuple[ShapeTracker, tuple[int, ...], DType]]  # per state tensor: its view when captured
    state_results: list[_Result]
    results: list[_Result]
    structure: Any  # how to put the returned tensors back into the returned object
    # device-side index checks (flag, message, error), made anew each call
    checks: list[tuple[_Result, str, type[Exception]]] = field(default_factory=list)


@dataclass
class _Variant:
    calls: int = 0
    plan: _Plan | None = None
    signature: list[Any] = field(default_factory=list)  # of the last call before the capture


#: Calls that run the function before the one that is captured; the last of them is compared with it.
WARMUP_CALLS = 2


class JitFunction(Generic[P, R]):
    """A function whose later calls replay the kernels one call ran (see :mod:`tg.frontend.jit`)."""

    def __init__(self, fn: Callable[P, R]):
        self.fn = fn
        self.variants: dict[Any, _Variant] = {}
        self._turn = threading.RLock()  # one call at a time: a replay writes the capture's intermediate buffers
        functools.update_wrapper(self, fn)

    def reset(self) -> None:
        """Forget every capture (the next call runs the function again)."""
        with self._turn:
            self.variants.clear()

    @property
    def replays(self) -> int:
        """How many calls so far were replays."""
        return sum(max(0, v.calls - WARMUP_CALLS - 1) for v in self.variants.values())

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if current_recorder() is not None:  # called from a jitted function being traced: part of its trace
            return self.fn(*args, **kwargs)
        with self._turn:
            return self._call(args, kwargs)

    def _call(self, args: Any, kwargs: Any) -> Any:
        flat, key = _flatten_arguments(self.fn, args, kwargs)
        tensors = [_ready_input(t) for t in flat]
        variant = self.variants.setdefault(key, _Variant())
        variant.calls += 1
        if variant.plan is not None:
            return _replay(variant.plan, tensors)
        if variant.calls <= WARMUP_CALLS:
            # the last warm-up call is compared with the captured one; it and later calls run a size's exact kernel
            # where a kernel for every size would serve it (a variant called once, as each length of a growing
            # context, keeps sharing that one)
            out, items, _, _ = self._traced_call(args, kwargs, capturing=False,
                                                 exact_sizes=variant.calls == WARMUP_CALLS)
            variant.signature = _signature(items)
            return _detached(out)
        out, items, assigned, checks = self._traced_call(args, kwargs, capturing=True, exact_sizes=True)
        if _signature(items) != variant.signature:
            variant.calls = WARMUP_CALLS  # the next call compares again
            raise JitError(f"jit: {self.fn.__qualname__} ran different kernels or copied different host data "
                           "into tensors on two calls in a row (e.g. a Tensor(numpy_array) made inside it, a Python "
                           "float from its closure that changed, or Python branches on changing values); a replay "
                           "would repeat one of them. Fix: pass changing data as tensor arguments and keep the "
                           "function's work the same each call.")
        out = _detached(out)
        variant.plan = _build_plan(items, tensors, assigned, out, checks)
        return out

    def _traced_call(self, args: Any, kwargs: Any, capturing: bool, exact_sizes: bool) -> tuple[
            Any, list[RecordedItem], dict[int, tuple[Tensor, LazyBuffer]], list[deferred_checks.Check]]:
        """Run the function, realize what it returns and assigns and its device-side checks, and say what ran, what
        was assigned and which checks it made (they stay pending, raised at the next read)."""
        start = deferred_checks.mark()
        with recording(self.fn.__qualname__ if capturing else None, exact_sizes) as recorder:
            out = self.fn(*args, **kwargs)
            checks = deferred_checks.since(start)
            _realize_results(out, recorder.assigned, [flag for flag, _, _ in checks])
        return out, recorder.items, recorder.assigned, checks


def jit(fn: Callable[P, R]) -> JitFunction[P, R]:
    """Decorate a function of tensors so its later calls replay its kernels (see :mod:`tg.frontend.jit`)."""
    return JitFunction(fn)


def _flatten_arguments(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
                       ) -> tuple[list[Tensor], Any]:
    """The tensor arguments in order, and a key of everything that makes a different variant."""
    tensors: list[Tensor] = []
    key: list[Any] = []
    named = [(str(i), v) for i, v in enumerate(args)] + sorted(kwargs.items())
    for name, value in named:
        if isinstance(value, Tensor):
            tensors.append(value)
            key.append((name, "tensor", value.shape, value.dtype.name, value.device))
            continue
        try:
            hash(value)
        except TypeError:
            raise JitError(f"jit: argument {name} of {fn.__qualname__} is a {type(value).__name__}, which cannot "
                           "key a capture. Fix: pass tensors and hashable values (numbers, strings, tuples) only, "
                           "or reach other objects through the function's closure") from None
        key.append((name, value))
    return tensors, tuple(key)


def _ready_input(t: Tensor) -> Tensor:
    """A tensor argument whose value is a whole realized buffer in row-major order (realized here if not)."""
    lb = t.lazydata
    if lb.realized is not None:
        return t
    if lb.is_view and not (lb.st.is_contiguous and lb.base.st.size() == lb.st.size()):
        t.lazydata = lb.contiguous()
    realize([t.lazydata])
    return t


def _realize_results(out: Any, assigned: dict[int, tuple[Tensor, LazyBuffer]], flags: list[LazyBuffer]) -> None:
    lazies = [t.lazydata for t in _returned_tensors(out)] + [t.lazydata for t, _ in assigned.values()]
    realize([*lazies, *flags])


def _map_tensors(out: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``out`` (tensors alone or in tuples, lists and dicts, beside plain values) with ``fn`` applied to every
    tensor, in order."""
    if isinstance(out, Tensor):
        return fn(out)
    if isinstance(out, (tuple, list)):
        return type(out)(_map_tensors(item, fn) for item in out)
    if isinstance(out, dict):
        return {k: _map_tensors(v, fn) for k, v in out.items()}
    if out is None or isinstance(out, (int, float, bool, str)):
        return out
    raise JitError(f"jit: a jitted function must return tensors (alone or in tuples, lists, dicts) or None, "
                   f"not {type(out).__name__}")


def _returned_tensors(out: Any) -> list[Tensor]:
    found: list[Tensor] = []

    def collect(t: Tensor) -> Tensor:
        found.append(t)
        return t

    _map_tensors(out, collect)
    return found


def _detached(out: Any) -> Any:
    """The returned object with every tensor detached (a replay's results have no graph either)."""
    return _map_tensors(out, Tensor.detach)


def _signature(items: list[RecordedItem]) -> list[Any]:
    """What two calls must share to be replayable: the programs launched and the host data copied."""
    def of(item: RecordedItem) -> Any:
        if isinstance(item, RecordedKernel):  # a Python float that changed between calls is a new value, same code
            return item.kernel.program.name, item.kernel.program.source, exact_key(tuple(item.values.items()))
        if item.data is None or item.redraw is not None:
            return "copy", item.output.size
        return hashlib.blake2b(np.ascontiguousarray(item.data).view(np.uint8).tobytes(), digest_size=16).digest()

    return [of(i) for i in items]


def _build_plan(items: list[RecordedItem], inputs: list[Tensor], assigned: dict[int, tuple[Tensor, LazyBuffer]],
                out: Any, checks: list[deferred_checks.Check]) -> _Plan:
    slot_of: dict[int, int] = {}
    table: list[Buffer | None] = []
    kinds: list[str] = []
    specs: list[tuple[Backend, int, DType]] = []
    states = list(assigned.values())
    for tensor, before in states:
        if before.base.realized is None:
            raise JitError(f"jit: {tensor!r} was assigned to inside the function but had no computed value "
                           "before the call; realize it before the first call")

    def slot(buffer: Buffer, made_here: bool) -> int:
        if id(buffer) not in slot_of:
            slot_of[id(buffer)] = len(table)
            table.append(buffer)
            kinds.append(_FRESH if made_here else _FIXED)
            specs.append((buffer.backend, buffer.size, buffer.dtype))
        return slot_of[id(buffer)]

    input_buffers = [t.lazydata.base.realized for t in inputs]
    state_buffers = [before.base.realized for _, before in states]
    input_slots: list[int | None] = [None] * len(inputs)
    state_slots: list[int | None] = [None] * len(states)
    made: set[int] = set()
    steps: list[_Launch | _Copy] = []
    for item in items:
        if isinstance(item, RecordedKernel):
            reads = [slot(b, id(b) in made) for b in item.buffers[1:]]
            made.add(id(item.buffers[0]))
            steps.append(_Launch(item.state, item.kernel, (slot(item.buffers[0], True), *reads), item.values))
        else:
            source = slot(item.source, id(item.source) in made) if item.source is not None else None
            made.add(id(item.output))
            steps.append(_Copy(slot(item.output, True), source, item.data, item.redraw))
    for i, b in enumerate(input_buffers):
        if id(b) in slot_of and id(b) not in made:
            input_slots[i] = slot_of[id(b)]
            kinds[slot_of[id(b)]] = _INPUT
    for j, b in enumerate(state_buffers):
        if id(b) in slot_of and id(b) not in made and kinds[slot_of[id(b)]] in (_FIXED, _STATE):
            state_slots[j] = slot_of[id(b)]
            kinds[slot_of[id(b)]] = _STATE

    def result(lb: LazyBuffer) -> _Result:
        buffer = lb.base.realized
        if buffer is None:
            return _Result(None, lb.st, lb.base.shape, lb.device, constant=lb)
        if id(buffer) not in slot_of:  # a value from before the call, returned or assigned unchanged
            slot(buffer, False)
        return _Result(slot_of[id(buffer)], lb.st, lb.base.shape, lb.device)

    results = [result(t.lazydata) for t in _returned_tensors(out)]
    state_results = [result(t.lazydata) for t, _ in states]
    check_results = [(result(flag), message, error) for flag, message, error in checks]
    escaping = {r.slot for r in (*results, *state_results, *(c for c, _, _ in check_results))
                if r.slot is not None and kinds[r.slot] == _FRESH}
    for i, kind in enumerate(kinds):  # intermediates keep the capture's buffers; escaping values get new ones
        if kind == _FRESH and i not in escaping:
            kinds[i] = _FIXED
        elif kind in (_INPUT, _STATE):
            table[i] = None  # filled on each call; the capture's buffer must not be kept alive here
    layouts = [(before.st, before.base.shape, before.dtype) for _, before in states]
    return _Plan(steps, table, kinds, specs, input_slots, [t for t, _ in states], state_slots, layouts,
                 state_results, results, out, check_results)


def _state_buffer(t: Tensor, layout: tuple[ShapeTracker, tuple[int, ...], DType]) -> Buffer:
    """The buffer holding state tensor ``t``'s value, seen through the same view as during the capture."""
    st, base_shape, dtype = layout
    lb = t.lazydata
    if lb.base.realized is None or (lb.st, lb.base.shape) != (st, base_shape):
        if lb.dtype != dtype or lb.shape != st.shape or not (st.is_contiguous and st.size() == math.prod(base_shape)):
            raise JitError(f"jit: {t!r} was given a value of another shape, dtype or layout since the jitted "
                           "function was captured. Fix: call .reset() on the jitted function to capture it again")
        _ready_input(t)  # a new value assigned outside the function: computed here, row-major like before
    buffer: Buffer = t.lazydata.base.realized
    return buffer


def _replay(plan: _Plan, inputs: list[Tensor]) -> Any:
    table = list(plan.table)
    for t, s in zip(inputs, plan.input_slots):
        if s is not None:
            table[s] = t.lazydata.base.realized
    for t, s, layout in zip(plan.state_tensors, plan.state_slots, plan.state_layouts):
        if s is not None:
            buffer = _state_buffer(t, layout)
            if table[s] is not None and table[s] is not buffer:
                raise JitError(f"jit: {t!r} no longer shares its buffer with the other tensors it shared it with "
                               "when the function was captured (one was assigned outside the function). Fix: "
                               "call .reset() on the jitted function to capture it again")
            table[s] = buffer
    kinds, specs = plan.kinds, plan.buffer_specs
    for step in plan.steps:
        if isinstance(step, _Launch):
            out = step.slots[0]
            if kinds[out] == _FRESH:
                table[out] = Buffer(*specs[out])
            step.state.launch(step.kernel, [table[s] for s in step.slots], step.values)  # type: ignore[misc]
        else:
            target = table[step.slot]
            if kinds[step.slot] == _FRESH:
                table[step.slot] = target = Buffer(*specs[step.slot])
            assert target is not None
            if step.source is not None:
                source = table[step.source]
                assert source is not None
                target.copyin(source.numpy())
            elif step.redraw is not None:
                target.copyin(step.redraw())
            elif kinds[step.slot] == _FRESH and step.data is not None:
                target.copyin(step.data)
    for t, r in zip(plan.state_tensors, plan.state_results):
        t.lazydata = r.lazydata(table)
    for r, message, error in plan.checks:  # this call's device-side checks, raised at the next read as eagerly
        deferred_checks.defer_flag((r.lazydata(table), message, error))
    values = iter([Tensor(r.lazydata(table)) for r in plan.results])
    return _map_tensors(plan.structure, lambda _: next(values))
