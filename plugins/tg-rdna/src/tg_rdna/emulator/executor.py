"""Runs a kernel: every wave of every work-group at once, numpy-vectorized over waves and lanes.

Each wave has its own program counter.  A step runs the instruction at the lowest counter among the
waves that can run, for all waves sitting there (with their own EXEC lanes), so uniform code runs
once for the whole grid and waves that took different scalar branches converge where their counters
meet.  ``s_barrier`` parks a wave until every wave of its group that has not ended is parked; waves
of a group parked at different barriers, or a barrier that a wave of the group can never reach
because it ended, is a deadlock error.  A launch that executes more than ``TG_RDNA_EMU_MAX_STEPS``
steps (default 2,000,000) is taken for an endless loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from tg_rdna.emulator.errors import EmulatorError
from tg_rdna.emulator.memops import build_memory
from tg_rdna.emulator.memory import Memory
from tg_rdna.emulator.operands import EXEC_LO, parse_operand
from tg_rdna.emulator.program import Instruction
from tg_rdna.emulator.salu import _BRANCH_COND, NOOPS, build_salu
from tg_rdna.emulator.state import Ctx, Waves
from tg_rdna.emulator.step import BARRIER, BRANCH, END, NORMAL, Built
from tg_rdna.emulator.valu import base_name, build_valu, build_vopd

DEFAULT_MAX_STEPS = 2_000_000
CACHE_CONTROL = frozenset(["buffer_gl0_inv", "buffer_gl1_inv"])
_NO_OPERANDS = NOOPS | {"s_waitcnt", "s_waitcnt_depctr", "s_endpgm", "s_barrier", "s_branch", "s_denorm_mode",
                         "s_round_mode"} | set(_BRANCH_COND)


@dataclass
class Step:
    ins: Instruction
    built: Built | None
    error: str | None
    target: int = -1  # index of the branch target
    vmax: int = -1  # the highest VGPR it names
    vgpr_reads: list[int] = field(default_factory=list)
    vgpr_writes: list[int] = field(default_factory=list)


def build(ins: Instruction) -> Built:
    name = base_name(ins.mnemonic)
    if "::" in ins.text:
        return build_vopd(ins.text)
    if "_dpp" in ins.mnemonic or "_sdwa" in ins.mnemonic:
        raise EmulatorError(f"unsupported instruction {ins.mnemonic} (DPP and SDWA forms)")
    if name in CACHE_CONTROL:
        return Built()  # cache invalidation for acquire fences: the emulator's memory is coherent
    ops = [] if name in _NO_OPERANDS else [parse_operand(o) for o in ins.operands]
    if name.startswith("v_"):
        return build_valu(name, ops, ins.modifiers)
    if name.startswith(("s_load_", "global_", "flat_", "ds_")):
        built = build_memory(name, ops, ins.modifiers)
        if built is None:
            raise EmulatorError(f"unsupported instruction {name}")
        return built
    if name.startswith("s_"):
        if ins.modifiers and name not in _NO_OPERANDS:
            raise EmulatorError(f"unsupported modifier(s) {' '.join(ins.modifiers)}")
        return build_salu(ins, name, ops)
    raise EmulatorError(f"unsupported instruction {name}")


def compile_program(program: list[Instruction]) -> list[Step]:
    """One step per instruction; an instruction the emulator cannot run fails only when it runs."""
    steps: list[Step] = []
    for ins in program:
        try:
            steps.append(Step(ins, build(ins), None))
        except EmulatorError as e:
            steps.append(Step(ins, None, str(e).removeprefix("rdna emulator: ")))
        except (ValueError, IndexError) as e:
            steps.append(Step(ins, None, f"unsupported operand form of {ins.mnemonic} ({e})"))
    index = {s.ins.address: i for i, s in enumerate(steps)}
    for s in steps:
        if s.built is not None:
            s.vmax = max((r for f, r in s.built.reads | s.built.writes if f == "v"), default=-1)
            s.vgpr_reads = sorted(r for f, r in s.built.reads if f == "v")
            s.vgpr_writes = sorted(r for f, r in s.built.writes if f == "v")
        target = s.built.target if s.built is not None and s.built.kind == BRANCH else None
        if target is not None:
            if target in index:
                s.target = index[target]
            else:
                s.built, s.error = None, f"branch target 0x{target:x} is not an instruction"
    return steps


def max_steps() -> int:
    return int(os.environ.get("TG_RDNA_EMU_MAX_STEPS", DEFAULT_MAX_STEPS))


def run(steps: list[Step], st: Waves, kernel: str, memory: Memory, code: tuple[int, int] | None = None,
        texts: list[str] | None = None) -> int:
    """Run until every wave has ended; returns the number of steps.  ``code``: the steps of the kernel's own code,
    [first, end) (default: all); running outside them is an error.  ``texts``: each step's instruction text, where the
    caller keeps them (a code object's decoded program)."""
    describe = texts if texts is not None else [s.ins.text for s in steps]
    with np.errstate(all="ignore"):  # lanes EXEC disables compute on garbage: no floating-point warnings
        return _run(steps, st, kernel, memory, code or (0, len(steps)), describe)


def _run(steps: list[Step], st: Waves, kernel: str, memory: Memory, code: tuple[int, int], describe: list[str]
         ) -> int:
    first, end = code
    limit = max_steps()
    n_steps = 0
    track = st.track
    together = -1  # the counter of every wave when all run the next step together (st.pc is stale), else -1
    w: np.ndarray | slice  # the waves at this step: all of them, or their indices
    while True:
        if together >= 0:
            p, w = together, slice(None)
        else:
            live = ~st.done & ~st.at_barrier
            if not live.any():
                if st.at_barrier.any():
                    _release(st, steps, kernel, force=True)
                    continue
                return n_steps
            pcs = np.where(live, st.pc, np.iinfo(np.int64).max)
            p = int(pcs.min())
            sel = pcs == p
            w = slice(None) if sel.all() else np.nonzero(sel)[0]
        together = -1
        n_steps += 1
        if n_steps > limit:
            raise EmulatorError(f"more than {limit} steps: an endless loop? (raise TG_RDNA_EMU_MAX_STEPS)", kernel)
        if not first <= p < end:
            raise EmulatorError("the program counter ran past the end of .text (no s_endpgm)" if p >= len(steps) else
                                "the program counter left the kernel's code (no s_endpgm, or a branch into another "
                                "kernel of the code object)", kernel)
        step = steps[p]
        ins = step.ins
        b = step.built
        if b is None:
            raise EmulatorError(step.error or "unsupported instruction", kernel, ins.address, ins.text)
        if step.vmax >= st.v.shape[0]:
            raise EmulatorError(f"v{step.vmax} is beyond the {st.v.shape[0]} VGPRs the kernel descriptor allocates",
                                kernel, ins.address, ins.text)
        ctx = Ctx(st, w, kernel, ins.address, ins.text, memory)
        st.issued += ctx.k
        if track.maybe_pending and (b.reads or b.writes):
            track.check(w, b.reads, b.writes, describe, ins.text, kernel, ins.address, b.load_kind)
        if b.valu:
            track.valu(w, step.vgpr_reads, step.vgpr_writes, b.trans, describe, p, kernel, ins.address, ins.text,
                       b.vgpr_operands)
        elif ("s", EXEC_LO) in b.writes:
            track.exec_write(w, p)
        if b.va_vdst:
            track.va_vdst_wait(w)
        if b.run is not None:
            try:
                b.run(ctx)
            except EmulatorError as e:
                if e.kernel is not None:
                    raise
                raise EmulatorError(str(e).removeprefix("rdna emulator: "), kernel, ins.address, ins.text) from None
            except (ValueError, IndexError, TypeError) as e:  # an operand form the builder did not foresee
                raise EmulatorError(f"cannot run this operand form ({type(e).__name__}: {e})", kernel, ins.address,
                                    ins.text) from e
        if b.load_kind is not None:
            track.issue(w, b.load_kind, b.load_dests, p)
        elif b.store is not None:
            track.issue_store(w, b.store == "lds", p)
        if b.wait is not None:
            track.wait(w, *b.wait)
        if b.kind == BRANCH:
            taken = np.ones(ctx.k, bool) if b.cond is None else np.asarray(b.cond(ctx))
            st.pc[w] = np.where(taken, step.target, p + 1)
            if isinstance(w, slice) and (taken.all() or not taken.any()):
                together = step.target if taken.all() else p + 1
        elif isinstance(w, slice) and b.kind == NORMAL:
            together = p + 1  # st.pc is written when the waves part (a branch, the end, a barrier)
        else:
            st.pc[w] = p + 1
        if b.kind == END:
            st.done[w] = True
            _release(st, steps, kernel)
        elif b.kind == BARRIER:
            track.check_barrier(w, describe, kernel, ins.address, ins.text)
            st.at_barrier[w] = True
            _release(st, steps, kernel)


def _release(st: Waves, steps: list[Step], kernel: str, force: bool = False) -> None:
    """Let the waves of each group pass their barrier once all its running waves have reached it."""
    waiting = st.at_barrier
    if not waiting.any():
        return
    n_groups = int(st.group[-1]) + 1
    busy = np.bincount(st.group[~st.done & ~waiting], minlength=n_groups)
    parked = np.bincount(st.group[waiting], minlength=n_groups)
    ended = np.bincount(st.group[st.done], minlength=n_groups)
    ready = (busy == 0) & (parked > 0)
    stuck = ready & (ended > 0)
    if stuck.any():
        g = int(np.argmax(stuck))
        at = steps[int(st.pc[waiting & (st.group == g)][0]) - 1].ins
        raise EmulatorError(f"deadlock: {int(parked[g])} wave(s) of work-group {g} wait at s_barrier but "
                            f"{int(ended[g])} wave(s) of the group ended without reaching it", kernel,
                            at.address, at.text)
    go = waiting & ready[st.group]
    if not go.any():
        if force:
            raise EmulatorError("deadlock: waves wait at s_barrier that the rest of their group never reaches",
                                kernel)
        return
    pcs = st.pc[go]
    groups = st.group[go]
    first = np.zeros(n_groups, np.int64)
    first[groups] = pcs
    if np.any(first[groups] != pcs):
        g = int(groups[np.argmax(first[groups] != pcs)])
        raise EmulatorError(f"deadlock: the waves of work-group {g} wait at different s_barrier instructions "
                            "(a barrier inside divergent scalar control flow)", kernel)
    st.at_barrier[go] = False
