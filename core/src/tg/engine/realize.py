"""Runs a schedule: copies data in, lowers, emits, compiles (cached) and launches each kernel.

While :func:`recording` is active (:func:`current_recorder` returns its :class:`Recorder`) every copy and
launch is also written down, with the buffers it used, so :mod:`tg.frontend.jit` (``tg.jit``) can replay them later
without scheduling again.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tg.backends.contract import Capabilities, Emitter, NotSymbolic, Runtime, TooManyRegisters
from tg.codegen.lower import lower
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.rewrites import apply_capabilities, check_dtypes, check_rendered
from tg.codegen.uops import Ops, format_uops
from tg.engine.device import EMPTY, Buffer, DeviceState, ReadyKernel, device_state
from tg.engine.dynamic import dynamic_ready, exact_ahead, wants_exact
from tg.engine.symbolic import symbolic_axis, symbolic_key, symbolic_mode
from tg.graph.lazy import LazyBuffer, LazyOp
from tg.schedule import cache as schedule_cache
from tg.schedule.scheduler import HostCopy, Kernel, ScheduleItem, create_schedule
from tg.support.dtype import exact_key
from tg.support.early_exec import exec_jobs
from tg.support.errors import BackendError, JitError
from tg.support.helpers import debug_level


@dataclass(frozen=True)
class RecordedKernel:
    """A launch: ``kernel`` ran on ``state``'s backend with ``buffers`` (the output first) and launch ``values``."""

    state: DeviceState
    kernel: ReadyKernel
    buffers: tuple[Buffer, ...]
    values: Mapping[str, int | float] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedCopy:
    """``output`` was filled from host ``data`` or from ``source`` (a buffer on another backend).

    ``redraw`` makes fresh data of the same kind (random numbers), for a replay that must not repeat them.
    """

    output: Buffer
    source: Buffer | None
    data: np.ndarray | None
    redraw: Callable[[], np.ndarray] | None = None


RecordedItem = RecordedKernel | RecordedCopy


class Recorder:
    """Everything tg.jit keeps while it traces one call: what ran, what was assigned, whether reads are refused.

    ``items`` are the copies and launches in order; ``assigned`` maps ``id(tensor)`` to the tensor and the
    value it had before its first ``assign`` in the call (realize.py cannot name Tensor, hence ``Any``);
    ``refuse_reads_for`` is the name of the traced function when the trace is made for a replay, which would
    not read a tensor's value again; ``exact_sizes``: a kernel built for every size of a dimension (a dynamic-shape
    family's) launches as its size's exact kernel instead (see :func:`run_kernel`).
    """

    def __init__(self, refuse_reads_for: str | None = None, exact_sizes: bool = False):
        self.refuse_reads_for = refuse_reads_for
        self.exact_sizes = exact_sizes
        self.items: list[RecordedItem] = []
        self.assigned: dict[int, tuple[Any, LazyBuffer]] = {}

    def note_assign(self, tensor: Any, before: LazyBuffer) -> None:
        """``tensor`` is being assigned to: remember the value it had before the first assign of the call."""
        self.assigned.setdefault(id(tensor), (tensor, before))

    def check_value_read(self) -> None:
        """Called before a tensor's value is read on the host: refused while a replayable call is traced."""
        if self.refuse_reads_for is not None:
            raise JitError(f"jit: {self.refuse_reads_for} reads a tensor's value (numpy, item, tolist or bool) "
                           "while being captured; a replay runs only kernels, so it would not read it again. Fix: "
                           "return the tensor from the function and read it after the call.")


# The active recorder is per thread, so a later issue can make tg.jit per-thread; today jit's captures and
# device state are still shared, so tracing from several threads at once is not supported.
class _ThreadRecorder(threading.local):
    #: (a class default every thread sees: reading it is an attribute read, where a missing attribute made every read
    #: of a thread that never recorded raise and catch an AttributeError inside getattr)
    recorder: Recorder | None = None


_active = _ThreadRecorder()


def current_recorder() -> Recorder | None:
    """The recorder of the call this thread is tracing, or None when it traces nothing."""
    return _active.recorder


@contextmanager
def recording(refuse_reads_for: str | None = None, exact_sizes: bool = False) -> Iterator[Recorder]:
    """Make a :class:`Recorder` this thread's active one for the block: it writes down every copy and launch
    that runs inside, in order, and every tensor assigned to.

    With ``refuse_reads_for`` (a function's name), reading a tensor's value inside the block is an error:
    the recording is being made for a replay, which would not read it again.
    """
    if current_recorder() is not None:
        raise RuntimeError("tg: a recording is already active")
    recorder = _active.recorder = Recorder(refuse_reads_for, exact_sizes)
    try:
        yield recorder
    finally:
        _active.recorder = None


def realize(outs: list[LazyBuffer]) -> None:
    """Compute every buffer in ``outs`` (and whatever they need) on its device."""
    if schedule_cache.enabled:
        schedule, token = schedule_cache.lookup(outs)
        if schedule is None:
            schedule = create_schedule(outs, fuses_rows)
            schedule_cache.store(token, schedule)
    else:
        schedule = create_schedule(outs, fuses_rows)
    debug = debug_level()  # (read once per realize, not per launch)
    for position, item in enumerate(schedule):
        run_item(item, schedule, position, debug)


def fuses_rows(device: str) -> bool:
    """Whether the scheduler fuses row reductions into their readers on ``device``: only where its backend runs no
    work groups (see :mod:`tg.schedule.scheduler`).  Fixed per device until ``reset_devices``, which clears the
    schedule cache."""
    return device_state(device).capabilities.group_size <= 1


def run_item(item: ScheduleItem, schedule: Sequence[ScheduleItem] = (), position: int = 0,
             debug: int | None = None) -> None:
    """Run ``item``; when it is a kernel not compiled yet, the kernels after ``position`` in ``schedule`` that are
    not compiled either are compiled with it, in parallel where the runtime allows.  ``debug``: the TG_DEBUG level
    (read here when None)."""
    out = item.output
    state = device_state(out.device)
    size = math.prod(out.shape)  # (numpy's prod costs ~5 us on a tuple, more than the rest of a small launch)
    if isinstance(item, HostCopy):
        buf = Buffer(state.backend, size, out.dtype)
        source = item.source.base.realized if item.source is not None else None
        if source is not None:
            buf.copyin(source.numpy())
        elif out.arg is not None:
            buf.copyin(out.arg)
        recorder = current_recorder()
        if recorder is not None:
            recorder.items.append(RecordedCopy(buf, source, out.arg if source is None else None, out.redraw))
    else:
        buf = run_kernel(item, state, size, schedule, position, debug)
    out.realized = buf
    out.srcs = ()  # the graph under a realized buffer can be freed; a constant keeps its value (cast, reduce fold it)
    if out.op is not LazyOp.CONST:
        out.arg = None


def run_kernel(kernel: Kernel, state: DeviceState, size: int, schedule: Sequence[ScheduleItem] = (),
               position: int = 0, debug: int | None = None) -> Buffer:
    if size == 0:  # an empty output: nothing to compute, so nothing is built (its index math may divide by 0)
        return Buffer(state.backend, 0, kernel.output.dtype)
    scalar_params = state.scalar_params
    # a kernel the schedule cache made shares its template's programs by state, unless its key holds its parameters'
    # values (a backend without launch variables): then the program follows the values
    ready = kernel.ready if scalar_params or not kernel.params else None
    prog = ready.get(state) if ready is not None else None
    key: tuple[object, ...] | None = None
    if prog is None:
        key = kernel_key(kernel, not scalar_params)
        prog = state.kernels.get(key)
        if prog is None:  # a kernel of the same structure is lowered, emitted and compiled only once
            prog = build_programs(kernel, key, state, schedule[position + 1:])  # (the rest is sliced on a miss only)
        if ready is not None:
            ready[state] = prog
    recorder = current_recorder()
    if prog.dynamic and recorder is not None and recorder.exact_sizes:
        # the calls tg.jit compares before it captures one: their replays launch what they ran, many times over, and
        # both must run the same kernels (a size's launches reaching EXACT_AFTER between them would switch this one):
        # the size's exact kernel, from the first of them on
        prog = _exact_from_now(kernel, key, state, ready, scalar_params)
    buf = Buffer(state.backend, size, kernel.output.dtype)
    buffers = [buf, *[inp.realized for inp in kernel.inputs]]
    # this kernel's own values, never the ones the cached program was built from
    values = {f"p{i}": v for i, v in enumerate(kernel.params)} if kernel.params and scalar_params else EMPTY
    if prog.values:  # a kernel built for every outermost size, at this one
        values = {**prog.values, **values} if values else prog.values
    state.launch(prog, buffers, values, debug)
    if prog.verify:
        _verify(kernel, key or kernel_key(kernel, not scalar_params), state, buf, buffers, values)
    if prog.dynamic and wants_exact(prog, state):  # a size launched often enough gets its exact kernel from now on
        _exact_from_now(kernel, key, state, ready, scalar_params)
    if recorder is not None:
        recorder.items.append(RecordedKernel(state, prog, tuple(buffers), values))
    return buf


def _exact_from_now(kernel: Kernel, key: tuple[object, ...] | None, state: DeviceState,
                    ready: dict[Any, Any] | None, scalar_params: bool) -> ReadyKernel:
    """The kernel built for ``kernel``'s exact sizes, which its size launches from now on instead of its family's."""
    exact = build_program(kernel, state)
    state.kernels[key or kernel_key(kernel, not scalar_params)] = exact
    if ready is not None:
        ready[state] = exact
    return exact


def build_programs(kernel: Kernel, key: tuple[object, ...], state: DeviceState, ahead: Sequence[ScheduleItem]
                   ) -> ReadyKernel:
    """``kernel`` built, and with it every kernel of ``ahead`` for the same backend that is not built yet: in one
    ``Runtime.compile_many`` call when the runtime has its own (which may build them in parallel itself), else in
    parallel when the runtime allows (``Runtime.concurrent_compile``); each goes into ``state.kernels``.

    A kernel that qualifies for a symbolic outermost size (:mod:`tg.engine.symbolic`) reuses, or builds, the kernel
    of its symbolic key where the backend can, and is built for its exact size otherwise."""
    mode = symbolic_mode() if state.symbolic_launch else "0"
    if mode != "0":
        sym = symbolic_key(kernel, key)
        ready = _symbolic_ready(kernel, key, sym, state, mode == "verify") if sym is not None else None
        if ready is None and state.dynamic_shapes:
            ready = dynamic_ready(kernel, key, state, mode == "verify",
                                  lambda lowered, caps: _emit(kernel, lowered, state, caps, symbolic=True),
                                  lambda program, t: _same_bits(kernel, state, program, t))
        if ready is not None:
            return ready
    todo = {key: kernel}
    runtime = state.backend.runtime
    together = type(runtime).compile_many is not Runtime.compile_many
    threads = not together and runtime.concurrent_compile and exec_jobs() > 1
    if threads or together:
        for item in ahead:
            if isinstance(item, Kernel) and item.output.device == kernel.output.device and \
                    0 not in item.output.shape:  # (an empty output is never built: see run_kernel)
                other = kernel_key(item, not state.scalar_params)
                if other not in todo and other not in state.kernels and _exact_only(item, other, state, mode):
                    todo[other] = item
    if len(todo) == 1:
        state.kernels[key] = ready = build_program(kernel, state)
        return ready
    rendered = [(k, render_program(item, state)) for k, item in todo.items()]  # lowering is Python: one thread
    if together:  # a runtime that builds several kernels in one run (Runtime.compile_many)
        binaries = state.compile_many([program for _, (program, _) in rendered])
    else:
        from concurrent.futures import ThreadPoolExecutor  # (only here: ~4 ms of start-up for a rare path)

        with ThreadPoolExecutor(min(exec_jobs(), len(rendered)), thread_name_prefix="tg-compile") as pool:
            binaries = list(pool.map(lambda r: state.compile(r[1][0]), rendered))
    made = {}
    for (k, (program, lowered)), binary in zip(rendered, binaries):
        made[k] = state.kernels[k] = _ready(todo[k], state, program, lowered, binary)
    return made[key]


def _exact_only(kernel: Kernel, key: tuple[object, ...], state: DeviceState, mode: str) -> bool:
    """Whether ``kernel`` (of a schedule's kernels ahead) will be built for its exact size, so it may be compiled
    now with the others: a first size of its symbolic key is (and is recorded as that key's first size here), and a
    size its family records (tg.engine.dynamic); one that will reuse or build a kernel for every size waits for its
    turn."""
    if mode == "0":
        return True
    sym = symbolic_key(kernel, key)
    if sym is not None and sym not in state.not_symbolic and (state.kernels.get(sym) is not None or
                                                              not _first_size(state, sym, kernel)):
        return False
    return not state.dynamic_shapes or exact_ahead(kernel, state)


def _first_size(state: DeviceState, sym: tuple[object, ...], kernel: Kernel) -> bool:
    """Whether ``kernel``'s outermost size is the first one its symbolic key ``sym`` met (recorded here if so)."""
    n = kernel.output.shape[symbolic_axis(kernel.output.shape)]
    first = state.symbolic_sizes.get(sym)
    if first is None:
        state.symbolic_sizes[sym] = first = n
    return first == n


def _symbolic_ready(kernel: Kernel, key: tuple[object, ...], sym: tuple[object, ...], state: DeviceState,
                    verify: bool) -> ReadyKernel | None:
    """The kernel of symbolic key ``sym`` (built now if new) at ``kernel``'s outermost size, stored under ``key``;
    None when the backend cannot build it or the size is past its bound (the exact kernel is built instead).

    It is built at the second size a symbolic key is met with, never the first: a shape that never changes (a weight's
    gradient, a fixed-size training step) keeps the kernel made for its exact size, which may take strategies chosen
    by the size (tg-clang's transposed tiles, work-group reductions)."""
    n = kernel.output.shape[symbolic_axis(kernel.output.shape)]
    if sym in state.not_symbolic:
        return None
    base = state.kernels.get(sym)
    if base is None:
        if _first_size(state, sym, kernel):
            return None
        try:
            program, lowered = render_program(kernel, state, symbolic=True)
        except NotSymbolic as reason:
            if debug_level() >= 2:
                print(f"{kernel.name}: built for its exact size ({reason})")
            state.not_symbolic[sym] = True
            return None
        bound = next(u.arg[2] for u in lowered.uops if u.op is Ops.DEFINE_VAR and u.arg[0] == "n0")
        base = replace(_ready(kernel, state, program, lowered, state.compile(program)), bound=bound)
        state.kernels[sym] = base
    if not 2 <= n <= base.bound:
        return None
    values = {"n0": n}
    ready = base.at(kernel.output.shape, kernel.bytes_moved, values, verify)
    state.kernels[key] = ready
    return ready


def _verify(kernel: Kernel, key: tuple[object, ...], state: DeviceState, out: Buffer, buffers: list[Buffer],
            values: Mapping[str, int | float]) -> None:
    """TG_SYMBOLIC=verify: run the kernel built for ``kernel``'s exact size too and compare the outputs' bits."""
    exact = state.exact_kernels.get(key)
    if exact is None:
        exact = build_program(kernel, state)
        state.exact_kernels[key] = exact
    ref = Buffer(state.backend, out.size, out.dtype)
    state.launch(exact, [ref, *buffers[1:]], {k: v for k, v in values.items() if k != "n0"})
    got, want = out.numpy(), ref.numpy()
    if got.tobytes() != want.tobytes():
        bad = int(np.flatnonzero(got.view(np.uint8) != want.view(np.uint8))[0]) // out.dtype.itemsize
        raise BackendError(f"TG_SYMBOLIC=verify: kernel {kernel.name} on backend '{state.backend.name}', built for "
                           f"every outermost size, differs from the kernel built for its shape {kernel.output.shape} "
                           f"(element {bad}: {got[bad]!r}, exact {want[bad]!r}); TG_SYMBOLIC=0 avoids it")


def build_program(kernel: Kernel, state: DeviceState) -> ReadyKernel:
    """Lower ``kernel`` for ``state``'s backend, fit it to the target, render it and compile it."""
    program, lowered = render_program(kernel, state)
    return _ready(kernel, state, program, lowered, state.compile(program))


def render_program(kernel: Kernel, state: DeviceState, symbolic: bool = False) -> tuple[Program, LoweredKernel]:
    """Lower ``kernel`` for ``state``'s backend, fit it to the target and render it; a kernel too large for the
    target's registers is lowered again without register tiles, vector lanes and unrolling (see ``TooManyRegisters``
    in :mod:`tg.hooks`).  ``symbolic``: for every outermost size (raises ``NotSymbolic`` where it cannot be)."""
    caps = state.capabilities
    try:
        return _render(kernel, state, caps, symbolic)
    except TooManyRegisters as first:
        plain = replace(caps, upcast=1, vector_width=1, unroll=1)
        if plain == caps:
            raise BackendError(f"backend '{state.backend.name}': {first}") from first
        if debug_level() >= 2:
            print(f"{kernel.name}: {first}; lowered again without register tiles, vector lanes and unrolling")
        try:
            return _render(kernel, state, plain, symbolic)
        except TooManyRegisters as again:
            raise BackendError(f"backend '{state.backend.name}': {again} (even without register tiles, vector "
                               "lanes and unrolling)") from again


def _render(kernel: Kernel, state: DeviceState, caps: Capabilities, symbolic: bool = False
            ) -> tuple[Program, LoweredKernel]:
    lowered = lower(kernel, caps, symbolic)
    return _emit(kernel, lowered, state, caps, symbolic), lowered


def _fit(lowered: LoweredKernel, state: DeviceState, caps: Capabilities) -> LoweredKernel:
    """``lowered`` fitted to ``caps`` and passed through the plugins' passes: what the emitter renders."""
    uops = apply_capabilities(lowered.uops, caps)
    for plugin_pass in state.plugin_passes:
        uops = plugin_pass(uops)
    check_dtypes(uops, caps, state.backend.name)
    check_rendered(uops, caps, state.backend.name)
    return replace(lowered, uops=uops)


def _emit(kernel: Kernel, lowered: LoweredKernel, state: DeviceState, caps: Capabilities, symbolic: bool) -> Program:
    """``lowered`` fitted to ``caps`` and rendered by the backend's emitter (``symbolic``: it must follow its launch
    variables, or ``NotSymbolic`` is raised)."""
    fitted = _fit(lowered, state, caps)
    if debug_level() >= 6:
        print(format_uops(fitted.uops))
    program = state.backend.emitter.render(fitted)
    if not isinstance(program, Program):
        raise BackendError(f"the emitter of backend '{state.backend.name}' returned {type(program).__name__} "
                           "from render(), not a tg.hooks.Program (hook spec v2); fix the plugin")
    if symbolic and lowered.launch_vars and not program.launch_vars:
        raise NotSymbolic(f"the emitter of backend '{state.backend.name}' fixed the launch of {kernel.name}")
    if debug_level() >= 4:
        print(program.source)
    return program


def _same_bits(kernel: Kernel, state: DeviceState, dynamic: Program, t: int) -> bool:
    """Whether the backend's emitter says ``dynamic`` (a kernel for every size, at ``t``) gives ``kernel``'s exact bits
    (``Emitter.same_bits``, asked only where the emitter overrides it; a kernel that does not lower exactly is left
    to its exact build, which reports why)."""
    emitter = state.backend.emitter
    if type(emitter).same_bits is Emitter.same_bits:
        return True
    try:
        exact = _fit(lower(kernel, state.capabilities), state, state.capabilities)
    except (TooManyRegisters, ValueError):
        return False
    agrees = emitter.same_bits(dynamic, exact, {"n0": t})
    if not agrees and debug_level() >= 2:
        print(f"{kernel.name}: built for its exact size (the emitter's exact rendering computes it in another order)")
    return agrees


def _ready(kernel: Kernel, state: DeviceState, program: Program, lowered: LoweredKernel, binary: Any) -> ReadyKernel:
    if debug_level() >= 5:
        print(state.backend.runtime.disassemble(program, binary) or
              f"({state.backend.name} has no disassembler here)")
    return ReadyKernel(program, binary, kernel.output.shape, lowered.bytes_moved)


def kernel_key(kernel: Kernel, with_param_values: bool = True) -> tuple[object, ...]:
    """Everything that decides a kernel's code: its expression tree (the structure the scheduler recorded: views,
    dtypes, exact constants), its output's shape and dtype, and its inputs' dtypes; and the exact values of its
    scalar parameters unless the backend takes them at launch (``with_param_values`` False)."""
    key = (kernel.structure, kernel.output.shape, kernel.output.dtype.name,
           tuple([inp.dtype.name for inp in kernel.inputs]))
    if with_param_values and kernel.params:
        return (*key, exact_key(tuple(kernel.params)))
    return key
