"""gfx11's VALU partial-forwarding hazard (LLVM GCNHazardRecognizer ``fixVALUPartialForwardingHazard``).

A VALU instruction with two or more distinct VGPR sources reads a wrong value when

    Va <- VALU          (intv1 VALUs follow)
    EXEC <- SALU        (intv2 VALUs follow)
    Vb <- VALU          (intv3 VALUs follow)
    VALU reads Va and Vb

with intv1 + intv2 <= 2 and intv3 <= 4, unless an ``s_waitcnt_depctr`` with va_vdst(0) (or a
VMEM/FLAT/LDS instruction, which waits the same way) comes in between.  Positions are counted in VALU
instructions per wave; only the most recent VALU write of each source and the most recent SALU write
of EXEC before the newest of those writes matter, as in LLVM's backward search.  Sources are operands:
a 64-bit register pair counts once (LLVM checks "2 or more unique VGPR sources" by operand).
"""

from __future__ import annotations

import numpy as np

from tg_rdna.emulator.errors import EmulatorError

NEVER = -(1 << 40)
HISTORY = 4
INTV12_MAX, INTV3_MAX = 2, 4


class PartialForwarding:
    def __init__(self, n_waves: int, n_vgpr: int) -> None:
        self.vdef = np.full((n_vgpr, n_waves), NEVER, np.int64)   # VALU index of the last VALU write
        self.vdef_ins = np.zeros((n_vgpr, n_waves), np.int64)
        self.exec_pos = np.full((n_waves, HISTORY), NEVER, np.int64)  # VALU counts at SALU EXEC writes
        self.exec_ins = np.zeros((n_waves, HISTORY), np.int64)
        self.active = False

    def exec_write(self, w: np.ndarray | slice, valus: np.ndarray, ins_index: int) -> None:
        self.exec_pos[w] = np.concatenate([np.asarray(valus)[:, None], self.exec_pos[w][:, :-1]], axis=1)
        self.exec_ins[w] = np.concatenate([np.full((self.exec_pos[w].shape[0], 1), ins_index),
                                           self.exec_ins[w][:, :-1]], axis=1)
        self.active = True

    def clear(self, w: np.ndarray | slice) -> None:
        if self.active:
            self.exec_pos[w] = NEVER
            if isinstance(w, slice):
                self.active = False

    def check(self, w: np.ndarray | slice, valus: np.ndarray, operands: list[tuple[int, ...]],
              describe: list[str], kernel: str, address: int, text: str) -> None:
        """``valus``: the VALU index of the reading instruction in each wave; ``operands``: its distinct VGPR
        source operands (a 64-bit pair is one operand, as in LLVM)."""
        if not self.active or len(operands) < 2:
            return
        m = np.asarray(valus)
        # the last VALU write to any register of each operand
        d = np.stack([self.vdef[list(regs)][:, w].max(axis=0) for regs in operands])  # (n_operands, k)
        srcs = [regs[0] for regs in operands]
        newest = d.max(axis=0)
        hist = self.exec_pos[w]  # (k, HISTORY), most recent first
        usable = hist <= newest[:, None]
        has_exec = usable.any(axis=1)
        slot = np.argmax(usable, axis=1)
        e = np.where(has_exec, hist[np.arange(len(m)), slot], NEVER)
        post = np.where(d >= e, d, NEVER).max(axis=0)
        pre = np.where((d < e) & (d > NEVER), d, NEVER).max(axis=0)
        intv3 = m - post - 1
        intv2 = post - e
        intv1 = e - pre - 1
        bad = has_exec & (post > NEVER) & (pre > NEVER) & (intv3 <= INTV3_MAX) & (intv2 <= INTV12_MAX) & (
            intv1 + intv2 <= INTV12_MAX)
        if np.any(bad):
            i = int(np.argmax(bad))
            ia = next(j for j in range(len(srcs)) if d[j, i] == pre[i])
            ib = next(j for j in range(len(srcs)) if d[j, i] == post[i])
            ra = max(operands[ia], key=lambda r: int(self.vdef[r][w][i]))  # the register written last
            rb = srcs[ib]
            wa = describe[int(self.vdef_ins[ra][w][i])]
            wx = describe[int(self.exec_ins[w][i, slot[i]])]
            raise EmulatorError(f"VALU partial-forwarding hazard: reads v{ra} (written by `{wa}` before EXEC was "
                                f"changed by `{wx}`) and v{rb} (written after it) within "
                                f"{int(intv1[i] + intv2[i])}+{int(intv3[i])} VALU instructions, without "
                                "s_waitcnt_depctr va_vdst(0) (0x0fff) in between", kernel, address, text)

    def write(self, w: np.ndarray | slice, valus: np.ndarray, writes: list[int], ins_index: int) -> None:
        for r in writes:
            self.vdef[r, w] = valus
            self.vdef_ins[r, w] = ins_index
