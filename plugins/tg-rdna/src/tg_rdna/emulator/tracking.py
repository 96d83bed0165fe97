"""What the hardware punishes and other emulators ignore: reads before ``s_waitcnt``, TRANS hazards.

**Memory counters.**  Per wave, every load is numbered on its counter: ``vmcnt`` (global loads),
``lgkmcnt`` (SMEM loads and LDS accesses) and ``vscnt`` (global stores).  ``s_waitcnt vmcnt(N)``
retires all but the N newest loads of that wave (global loads return in order).  SMEM loads return
out of order, so while one is outstanding only ``lgkmcnt(0)`` retires anything on that counter (the
rule LLVM's SIInsertWaitcnts follows).  A register written by a load is *pending* until its load is
retired; an instruction that reads it, or overwrites it (other than a younger in-order load on the
same counter), is an error naming the register, the load and the reader.  An ``s_barrier`` reached
with an LDS store still outstanding is an error too: the other waves of the group could read the
old value.  Global stores are not flagged (they complete; other waves do not wait for them).

The VALU partial-forwarding hazard is checked too (see :mod:`.forwarding`).

**TRANS -> VALU hazard** (gfx11, LLVM's GCNHazardRecognizer ``fixVALUTransUseHazard``): a VALU that
reads a VGPR written by a transcendental (``v_exp/log/rcp/rsq/sqrt/sin/cos``) needs
``s_waitcnt_depctr`` with ``va_vdst == 0`` in between, unless more than 5 VALUs or more than 1 TRANS
were issued since, or a VMEM/FLAT/LDS instruction (which waits for va_vdst) came between.  ``s_nop``
and SALU instructions do not count: the emulator flags exactly what LLVM would have fixed.
"""

from __future__ import annotations

import numpy as np

from tg_rdna.emulator.errors import EmulatorError
from tg_rdna.emulator.forwarding import PartialForwarding

VM, LGKM, VS = 0, 1, 2
KIND_VM, KIND_LDS, KIND_SMEM = 0, 1, 2
_NEVER = -(1 << 40)
TRANS_MAX_VALUS, TRANS_MAX_TRANS = 5, 1


class Tracker:
    """Outstanding memory operations and recent TRANS writes of every wave."""

    def __init__(self, n_waves: int, n_vgpr: int) -> None:
        self.issued = np.zeros((3, n_waves), np.int64)
        self.retired = np.zeros((3, n_waves), np.int64)
        self.smem_last = np.zeros(n_waves, np.int64)
        self.lds_store_last = np.zeros(n_waves, np.int64)
        self.lds_store_ins = np.zeros(n_waves, np.int64)
        sizes = {"v": n_vgpr, "s": 128}
        self.seq = {f: np.zeros((n, n_waves), np.int64) for f, n in sizes.items()}
        self.kind = {f: np.zeros((n, n_waves), np.int8) for f, n in sizes.items()}
        self.ins = {f: np.zeros((n, n_waves), np.int64) for f, n in sizes.items()}
        self.maybe_pending: set[tuple[str, int]] = set()
        self.valus = np.zeros(n_waves, np.int64)
        self.trans = np.zeros(n_waves, np.int64)
        self.trans_valus = np.full((n_vgpr, n_waves), _NEVER, np.int64)
        self.trans_trans = np.zeros((n_vgpr, n_waves), np.int64)
        self.trans_ins = np.zeros((n_vgpr, n_waves), np.int64)
        self.maybe_trans: set[int] = set()
        self.forwarding = PartialForwarding(n_waves, n_vgpr)

    # ---- memory counters --------------------------------------------------------------------
    def issue(self, w: np.ndarray | slice, kind: int, dests: list[tuple[str, int]], ins_index: int) -> None:
        counter = VM if kind == KIND_VM else LGKM
        self.issued[counter, w] += 1
        seq = self.issued[counter, w]
        if kind == KIND_SMEM:
            self.smem_last[w] = seq
        for f, r in dests:
            self.seq[f][r, w] = seq
            self.kind[f][r, w] = kind
            self.ins[f][r, w] = ins_index
            self.maybe_pending.add((f, r))

    def issue_store(self, w: np.ndarray | slice, lds: bool, ins_index: int) -> None:
        counter = LGKM if lds else VS
        self.issued[counter, w] += 1
        if lds:
            self.lds_store_last[w] = self.issued[counter, w]
            self.lds_store_ins[w] = ins_index

    def wait(self, w: np.ndarray | slice, vm: int | None, lgkm: int | None, vs: int | None) -> None:
        if vm is not None:
            self.retired[VM, w] = np.maximum(self.retired[VM, w], self.issued[VM, w] - vm)
        if vs is not None:
            self.retired[VS, w] = np.maximum(self.retired[VS, w], self.issued[VS, w] - vs)
        if lgkm is not None:
            done = self.issued[LGKM, w] - lgkm
            if lgkm > 0:  # SMEM returns out of order: nothing is known retired while one is out
                smem_out = self.smem_last[w] > self.retired[LGKM, w]
                done = np.where(smem_out, self.retired[LGKM, w], done)
            self.retired[LGKM, w] = np.maximum(self.retired[LGKM, w], done)
        self._prune()

    def _prune(self) -> None:
        """Forget the registers whose loads every wave has retired (one check per register file)."""
        for f in ("v", "s"):
            regs = [r for g, r in self.maybe_pending if g == f]
            if not regs:
                continue
            kind = self.kind[f][regs]  # (registers, waves)
            retired = np.where(kind == KIND_VM, self.retired[VM], self.retired[LGKM])
            pending = (self.seq[f][regs] > retired).any(axis=1)
            for r, still in zip(regs, pending.tolist()):
                if not still:
                    self.maybe_pending.discard((f, r))

    def _pending(self, f: str, r: int, w: np.ndarray | slice) -> np.ndarray:
        kind = self.kind[f][r, w]
        retired = np.where(kind == KIND_VM, self.retired[VM, w], self.retired[LGKM, w])
        return self.seq[f][r, w] > retired

    def check(self, w: np.ndarray | slice, reads: frozenset[tuple[str, int]],
              writes: frozenset[tuple[str, int]], describe: list[str], ins_text: str, kernel: str,
              address: int, load_kind: int | None = None) -> None:
        """Raise if the instruction reads, or (non-load) overwrites, a register with a pending load."""
        for key in (reads | writes) & self.maybe_pending:
            f, r = key
            bad = self._pending(f, r, w)
            if not bad.any():
                continue
            first = int(np.argmax(bad))
            kind = int(self.kind[f][r, w][first])
            if key not in reads and load_kind is not None and load_kind == kind and kind != KIND_SMEM:
                continue  # a younger load on the same in-order counter
            load = describe[int(self.ins[f][r, w][first])]
            counter = "vmcnt" if kind == KIND_VM else "lgkmcnt"
            verb = "reads" if key in reads else "overwrites"
            raise EmulatorError(f"{verb} {f}{r} before an s_waitcnt {counter} covers its load `{load}`"
                                f" (the hardware would use a stale or half-written value)", kernel, address,
                                ins_text)

    def check_barrier(self, w: np.ndarray | slice, describe: list[str], kernel: str, address: int,
                      text: str) -> None:
        out = self.lds_store_last[w] > self.retired[LGKM, w]
        if np.any(out):
            store = describe[int(np.asarray(self.lds_store_ins[w])[np.argmax(out)])]
            raise EmulatorError(f"s_barrier with the LDS store `{store}` not covered by s_waitcnt lgkmcnt: other "
                                "waves of the group may read the old value", kernel, address, text)

    # ---- TRANS -> VALU hazard ---------------------------------------------------------------
    def valu(self, w: np.ndarray | slice, vgpr_reads: list[int], vgpr_writes: list[int], is_trans: bool,
             describe: list[str], ins_index: int, kernel: str, address: int, text: str,
             operands: list[tuple[int, ...]]) -> None:
        for r in vgpr_reads if self.maybe_trans else ():
            if r not in self.maybe_trans:
                continue
            between_valus = self.valus[w] - self.trans_valus[r, w] - 1  # VALUs issued in between
            between_trans = self.trans[w] - self.trans_trans[r, w] - 1
            bad = (between_valus <= TRANS_MAX_VALUS) & (between_trans <= TRANS_MAX_TRANS)
            if np.any(bad):
                src = describe[int(np.asarray(self.trans_ins[r, w])[np.argmax(bad)])]
                raise EmulatorError(f"TRANS->VALU hazard: reads v{r}, written by the transcendental `{src}` "
                                    f"{int(np.asarray(between_valus)[np.argmax(bad)])} VALU instruction(s) "
                                    "earlier, without s_waitcnt_depctr va_vdst(0) (0x0fff) in between",
                                    kernel, address, text)
        valus = self.valus[w]
        if self.forwarding.active and len(operands) > 1:
            self.forwarding.check(w, valus, operands, describe, kernel, address, text)
        self.forwarding.write(w, valus, vgpr_writes, ins_index)
        if is_trans:
            for r in vgpr_writes:
                self.trans_valus[r, w] = self.valus[w]
                self.trans_trans[r, w] = self.trans[w]
                self.trans_ins[r, w] = ins_index
                self.maybe_trans.add(r)
            self.trans[w] += 1
        self.valus[w] += 1

    def exec_write(self, w: np.ndarray | slice, ins_index: int) -> None:
        """A SALU instruction wrote EXEC (for the partial-forwarding hazard)."""
        self.forwarding.exec_write(w, self.valus[w], ins_index)

    def va_vdst_wait(self, w: np.ndarray | slice) -> None:
        """s_waitcnt_depctr va_vdst(0), or a VMEM/LDS instruction: every VALU result is written."""
        self.forwarding.clear(w)
        if self.maybe_trans:
            self.trans_valus[:, w] = _NEVER
            if isinstance(w, slice):
                self.maybe_trans.clear()
