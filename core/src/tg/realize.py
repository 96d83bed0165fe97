"""Runs a schedule: copies data in, lowers, emits, compiles (cached) and launches each kernel.

While :func:`recording` is active every copy and launch is also written down, with the buffers it used, so
:mod:`tg.replay` (``tg.jit``) can replay them later without scheduling again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from tg.device import Buffer, DeviceState, Program, device_state
from tg.errors import JitError
from tg.helpers import debug_level
from tg.lazy import LazyBuffer
from tg.lower import lower
from tg.rewrites import apply_capabilities, check_dtypes
from tg.schedule import HostCopy, Kernel, KNode, ScheduleItem, create_schedule
from tg.uops import format_uops


@dataclass(frozen=True)
class RecordedKernel:
    """A launch: ``program`` ran on ``state``'s backend with ``buffers`` (the output first)."""

    state: DeviceState
    program: Program
    buffers: tuple[Buffer, ...]


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
_recording: list[RecordedItem] | None = None
_reads_refused_by: str | None = None  # the traced function a replay would repeat without its value reads


@contextmanager
def recording(refuse_reads_for: str | None = None) -> Iterator[list[RecordedItem]]:
    """Write down every copy and launch that runs inside the block, in order.

    With ``refuse_reads_for`` (a function's name), reading a tensor's value inside the block is an error:
    the recording is being made for a replay, which would not read it again.
    """
    global _recording, _reads_refused_by
    if _recording is not None:
        raise RuntimeError("tg: a recording is already active")
    items: list[RecordedItem] = []
    _recording, _reads_refused_by = items, refuse_reads_for
    try:
        yield items
    finally:
        _recording, _reads_refused_by = None, None


def is_recording() -> bool:
    return _recording is not None


def check_value_read() -> None:
    """Called before a tensor's value is read on the host: refused while a replayable call is traced."""
    if _reads_refused_by is not None:
        raise JitError(f"jit: {_reads_refused_by} reads a tensor's value (numpy, item, tolist or bool) while "
                       "being captured; a replay runs only kernels, so it would not read it again. Fix: return "
                       "the tensor from the function and read it after the call.")


def realize(outs: list[LazyBuffer]) -> None:
    """Compute every buffer in ``outs`` (and whatever they need) on its device."""
    for item in create_schedule(outs):
        run_item(item)


def run_item(item: ScheduleItem) -> None:
    out = item.output
    state = device_state(out.device)
    size = int(np.prod(out.shape))
    if isinstance(item, HostCopy):
        buf = Buffer(state.backend, size, out.dtype)
        source = item.source.base.realized if item.source is not None else None
        if source is not None:
            buf.copyin(source.numpy())
        elif out.arg is not None:
            buf.copyin(out.arg)
        if _recording is not None:
            _recording.append(RecordedCopy(buf, source, out.arg if source is None else None, out.redraw))
    else:
        buf = run_kernel(item, state, size)
    out.realized = buf
    out.srcs, out.arg = (), None  # the graph under a realized buffer can be freed


def run_kernel(kernel: Kernel, state: DeviceState, size: int) -> Buffer:
    key = kernel_key(kernel)
    prog = state.kernels.get(key)
    if prog is None:  # a kernel of the same structure is lowered, emitted and compiled only once
        prog = build_program(kernel, state)
        state.kernels[key] = prog
    buf = Buffer(state.backend, size, kernel.output.dtype)
    buffers = [buf, *[inp.realized for inp in kernel.inputs]]
    state.launch(prog, buffers)
    if _recording is not None:
        _recording.append(RecordedKernel(state, prog, tuple(buffers)))
    return buf


def build_program(kernel: Kernel, state: DeviceState) -> Program:
    lowered = lower(kernel, state.capabilities)
    uops = apply_capabilities(lowered.uops, state.capabilities)
    for plugin_pass in state.plugin_passes:
        uops = plugin_pass(uops)
    check_dtypes(uops, state.capabilities, state.backend.name)
    if debug_level() >= 6:
        print(format_uops(uops))
    source = state.backend.emitter.render(lowered.name, uops)
    if debug_level() >= 4:
        print(source)
    program = state.compile(lowered.name, source)
    if debug_level() >= 5:
        print(state.backend.runtime.disassemble(program) or f"({state.backend.name} has no disassembler here)")
    return Program(lowered.name, source, program, lowered.global_size, lowered.local_size, kernel.output.shape,
                   lowered.bytes_moved)


def kernel_key(kernel: Kernel) -> tuple[object, ...]:
    """Everything that decides a kernel's code: its expression tree, views, dtypes and output shape.

    The tree is written as its distinct subtrees in post-order, each ``(op, dtype, arg, source numbers)``
    numbered by first appearance: equal trees, shared subtrees or not, give equal keys, in time linear in
    the number of nodes and without recursion.
    """
    numbers: dict[tuple[object, ...], int] = {}  # a subtree's entry -> its number
    number_of: dict[int, int] = {}  # id(node) -> the number of its subtree
    stack: list[tuple[KNode, bool]] = [(kernel.ast, False)]
    while stack:
        n, sources_done = stack.pop()
        if id(n) in number_of:
            continue
        if not sources_done:
            stack.append((n, True))
            stack.extend((s, False) for s in reversed(n.src))
            continue
        entry = (n.op, n.dtype.name, n.arg, tuple(number_of[id(s)] for s in n.src))
        number_of[id(n)] = numbers.setdefault(entry, len(numbers))
    return (tuple(numbers), kernel.output.shape, kernel.output.dtype.name,
            tuple(inp.dtype.name for inp in kernel.inputs))
