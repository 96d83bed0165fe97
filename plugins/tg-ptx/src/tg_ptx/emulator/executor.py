"""Runs a parsed PTX entry over a grid: every thread of a chunk of blocks at once, in SIMT style.

While all live threads share one program counter the kernel runs in *uniform* mode: each instruction
runs once for every thread (masked by its ``@p`` guard).  A branch that some threads take and others
do not switches to *divergent* mode: each thread keeps its own program counter, and each step runs the
instruction at the smallest counter for the threads that are there, so both paths run and the threads
reconverge where their counters meet again; once every live thread has the same counter the uniform
mode resumes.  ``bar.sync`` must be reached by every live thread of a block together (a barrier inside
divergent code is reported as an error, since the hardware would hang or misbehave).  ``ret``/``exit``
end threads.  Blocks are independent, so a large grid runs in chunks of whole blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tg_ptx.emulator.context import Context
from tg_ptx.emulator.errors import EmulatorError
from tg_ptx.emulator.memory import GlobalMemory
from tg_ptx.emulator.parser import Entry, Imm, Instruction, Reg, Sym, parse_module
from tg_ptx.emulator.ptxtypes import UNSIGNED, PType, ptype
from tg_ptx.emulator.semantics import CONTROL, build

_NORMAL, _BRANCH, _BARRIER, _EXIT = range(4)
CHUNK_THREADS = 1 << 16  # threads run together (whole blocks; at least one block)
MAX_STEPS = 20_000_000  # instructions executed per chunk before the emulator assumes an endless loop


@dataclass
class Step:
    kind: int
    run: Callable[[Context], None] | None
    target: int
    guard: Reg | None
    ins: Instruction


@dataclass
class CompiledKernel:
    """One entry of a PTX module, ready to run: its steps, parameters and limits."""

    entry: Entry
    steps: list[Step]
    target: str
    source: str

    @property
    def name(self) -> str:
        return self.entry.name


def compile_kernel(source: str, name: str | None = None) -> CompiledKernel:
    """Parse ``source`` and prepare its entry ``name`` (or its only entry) for :func:`run_kernel`."""
    module = parse_module(source)
    if name is None or name not in module.entries:
        if len(module.entries) != 1:
            raise EmulatorError(f"the module has entries {', '.join(module.entries)}; "
                                + (f"none is called {name!r}" if name else "name one"))
        entry = next(iter(module.entries.values()))
    else:
        entry = module.entries[name]
    steps = [_step(ins, entry) for ins in entry.instructions]
    return CompiledKernel(entry, steps, module.target, source)


def _step(ins: Instruction, entry: Entry) -> Step:
    if ins.guard is not None and ins.guard.name not in entry.registers:
        raise EmulatorError(f"guard {ins.guard.name} is not a declared register", ins.line, ins.text)
    if ins.opcode not in CONTROL:
        return Step(_NORMAL, build(ins, entry), -1, ins.guard, ins)
    if ins.opcode == "bra":
        if len(ins.operands) != 1 or not isinstance(ins.operands[0], Sym) or ins.operands[0].name not in entry.labels:
            raise EmulatorError("bra needs a label of this entry", ins.line, ins.text)
        return Step(_BRANCH, None, entry.labels[ins.operands[0].name], ins.guard, ins)
    if ins.opcode in ("bar", "barrier"):
        if ins.guard is not None:
            raise EmulatorError("a guarded barrier is not supported", ins.line, ins.text)
        mods = set(ins.mods) - {"sync", "aligned"}
        if mods or not ins.operands or not isinstance(ins.operands[0], Imm) or len(ins.operands) > 2:
            raise EmulatorError("only bar.sync / barrier.sync with a barrier number are supported", ins.line, ins.text)
        if len(ins.operands) == 2 and not isinstance(ins.operands[1], Imm):
            raise EmulatorError("a barrier's thread count must be an immediate", ins.line, ins.text)
        return Step(_BARRIER, None, -1, None, ins)
    return Step(_EXIT, None, -1, ins.guard, ins)


#: The most blocks a CUDA grid has along x, y and z.
GRID_LIMITS = (2**31 - 1, 65535, 65535)


def _three(dims: int | tuple[int, ...]) -> tuple[int, int, int]:
    x, y, z = (*((dims,) if isinstance(dims, int) else dims), 1, 1, 1)[:3]
    return int(x), int(y), int(z)


def param_value(name: str, t: PType, arg: Any) -> np.ndarray:
    """A launch argument as parameter ``name`` of type ``t`` holds it: a numpy scalar's bytes as they are (what a
    driver copies), a Python int wrapped to the type's width.  A Python float is refused for any parameter but an
    ``.f64`` (a binding would pack it as a 64-bit double, which a ``.f32`` parameter reads as garbage)."""
    if isinstance(arg, np.generic):
        if arg.dtype.itemsize != t.size:
            raise EmulatorError(f"parameter {name} is .{t.name} ({t.size} bytes); the launch packed a "
                                f"{arg.dtype} ({arg.dtype.itemsize} bytes)")
        return np.asarray(arg).view(t.np)
    if isinstance(arg, float) and t.name == "f64":
        return np.asarray(arg, np.float64)
    if isinstance(arg, int) and not t.is_float:
        return np.asarray(arg % (1 << (8 * t.size)), UNSIGNED[t.size]).view(t.np)
    packed = ", which a binding packs as an 8-byte double" if isinstance(arg, float) else ""
    raise EmulatorError(f"parameter {name} is .{t.name}; the launch gave {arg!r} ({type(arg).__name__}{packed}): "
                        "pass a numpy scalar of the parameter's type")


def run_kernel(kernel: CompiledKernel, memory: GlobalMemory, grid: int | tuple[int, ...],
               block: int | tuple[int, ...], args: list[Any]) -> None:
    """Launch ``kernel`` on a grid of ``grid`` blocks of ``block`` threads (each a count, or up to three dims x, y,
    z); ``args`` are the parameters in order."""
    entry = kernel.entry
    grid3, block3 = _three(grid), _three(block)
    n_blocks, block_size = grid3[0] * grid3[1] * grid3[2], block3[0] * block3[1] * block3[2]
    if len(args) != len(entry.params):
        raise EmulatorError(f"{entry.name} takes {len(entry.params)} parameters, the launch gave {len(args)}")
    if n_blocks < 1 or block_size < 1:
        raise EmulatorError(f"{entry.name} launched on {grid3} blocks of {block3} threads: a GPU refuses an empty "
                            "launch (CUDA_ERROR_INVALID_VALUE)")
    if any(g > most for g, most in zip(grid3, GRID_LIMITS)):
        raise EmulatorError(f"{entry.name} launched on a grid of {grid3} blocks: CUDA allows at most {GRID_LIMITS} "
                            "(CUDA_ERROR_INVALID_VALUE)")
    if entry.max_threads is not None and block_size > entry.max_threads:
        raise EmulatorError(f"{entry.name} is declared for at most {entry.max_threads} threads per block "
                            f"(.maxntid), the launch has {block_size}")
    if entry.req_threads is not None and block_size != int(np.prod(entry.req_threads)):
        raise EmulatorError(f"{entry.name} requires {entry.req_threads} threads per block (.reqntid)")
    params = {p.name: param_value(p.name, ptype(p.type), a) for p, a in zip(entry.params, args)}
    per_chunk = max(1, CHUNK_THREADS // block_size)
    with np.errstate(all="ignore"):  # wrap-around, inf and NaN are the device's semantics
        for first in range(0, n_blocks, per_chunk):
            blocks = min(per_chunk, n_blocks - first)
            _run_chunk(kernel, Context(entry, first, blocks, block3, grid3, params, memory), block_size)


def _guard(c: Context, step: Step) -> np.ndarray | None:
    if step.guard is None:
        return None
    g = c.get(step.guard.name)
    return ~g if step.guard.negated else g


def _run_chunk(kernel: CompiledKernel, c: Context, block: int) -> None:
    steps, n_steps = kernel.steps, len(kernel.steps)
    alive = np.ones(c.n, dtype=bool)
    everyone = True  # no thread has exited
    pc = 0
    pcs: np.ndarray | None = None  # per-thread program counters while divergent
    for _ in range(MAX_STEPS):
        if pcs is None:
            if pc >= n_steps:
                return
            cur, active = pc, (None if everyone else alive)
        else:
            cur = int(pcs[alive].min())
            if cur >= n_steps:
                return
            active = alive & (pcs == cur)
        step = steps[cur]
        try:
            guard = _guard(c, step)
            eff = guard if active is None else (active if guard is None else active & guard)
            nxt, moved = cur + 1, False
            if step.kind == _NORMAL:
                if eff is None or eff.any():
                    c.mask = None if eff is None or (everyone and eff.all()) else eff
                    assert step.run is not None
                    step.run(c)
            elif step.kind == _BRANCH:
                go = (active if active is not None else np.ones(c.n, dtype=bool)) if eff is None else eff
                rest = (alive if active is None else active) & ~go
                if "uni" in step.ins.mods and go.any() and rest.any():
                    _check_uniform(c, go, rest)
                if not rest.any():
                    nxt = step.target
                elif go.any():
                    if pcs is None:
                        pcs = np.full(c.n, cur, dtype=np.int64)
                    pcs[go] = step.target
                    pcs[rest] = cur + 1
                    moved = True
            elif step.kind == _BARRIER:
                _check_barrier(c, step, alive, pcs, cur, block)
                if c.shared.copies is not None:  # cp.async data completed before the barrier: visible to the block
                    c.shared.copies.synchronize(np.unique(c.block[alive if active is None else active]))
            else:  # ret / exit: the threads it runs for end
                leaving = (alive if active is None else active) if eff is None else eff
                alive = alive & ~leaving
                everyone = False
                if not alive.any():
                    return
        except EmulatorError as exc:
            if exc.line is None:
                raise EmulatorError(str(exc).removeprefix("ptx emulator: "), step.ins.line, step.ins.text) from None
            raise
        finally:
            c.mask = None
        if pcs is None:
            pc = nxt
            continue
        if not moved:
            pcs[alive if active is None else active] = nxt
        live = pcs[alive]
        if live.size and (live == live[0]).all():  # every live thread is at one place again: reconverged
            pc, pcs = int(live[0]), None
    raise EmulatorError(f"{kernel.name} ran {MAX_STEPS} instructions without finishing (an endless loop?)")


def _check_uniform(c: Context, go: np.ndarray, rest: np.ndarray) -> None:
    """``bra.uni`` promises that every thread of a warp branches the same way; a broken promise is an error."""
    warps = c.warp
    both = np.intersect1d(warps[go], warps[rest])
    if both.size:
        raise EmulatorError(f"bra.uni diverges inside warp {int(both[0])} (some of its threads branch, others do "
                            "not): the branch needs plain bra")


def _check_barrier(c: Context, step: Step, alive: np.ndarray, pcs: np.ndarray | None, cur: int, block: int) -> None:
    if len(step.ins.operands) == 2:
        count = int(step.ins.operands[1].text, 0) if isinstance(step.ins.operands[1], Imm) else -1
        if count != block:
            raise EmulatorError(f"bar.sync with a thread count of {count} in blocks of {block} is not supported")
    if pcs is None:
        return
    waiting = alive & (pcs == cur)
    elsewhere = alive & (pcs != cur)
    if np.isin(c.block[elsewhere], c.block[waiting]).any():
        raise EmulatorError("bar.sync is reached by only some live threads of a block (a barrier in divergent code)")
