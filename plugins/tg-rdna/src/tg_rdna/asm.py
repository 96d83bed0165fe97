"""The instruction writer: assembly lines, with the waits and hazard stalls the hardware needs placed before them.

Every instruction goes through :meth:`Asm.ins`, which knows the registers it writes (its first ``dst`` operands)
and reads (the rest), so the writer can keep the memory counters' books:

- a global load's destination is pending on ``vmcnt`` (loads return in order: waiting for one is
  ``vmcnt(<loads issued after it>)``); an LDS load's on ``lgkmcnt`` (in order too); a scalar (SMEM) load's on
  ``lgkmcnt`` out of order (``lgkmcnt(0)``).  Global stores count on ``vscnt``, LDS stores on ``lgkmcnt``;
- an instruction that reads or overwrites a pending register first gets the ``s_waitcnt`` that covers that
  register's load, and no more: the wait sits right before the first use, not after every load;
- a transcendental (``v_exp_f32``, ``v_rcp_f32``...) result read too soon is a gfx11 hazard the assembler does not
  fix: a reader gets ``s_waitcnt_depctr 0xfff`` (all VALU results written) first;
- at a label or a branch everything pending is waited for (:meth:`Asm.settle`), so the books never cross control
  flow;
- after a scalar write of EXEC, ``s_waitcnt_depctr 0xfff`` lets every earlier VALU result land (gfx11's VALU
  partial-forwarding hazard: a VGPR written by VALUs under different EXEC masks, read soon after).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

#: The transcendental instructions (they run on gfx11's TRANS unit; a VALU reading their result needs a stall).
TRANS = ("v_exp_f32", "v_log_f32", "v_rcp_f32", "v_rcp_iflag_f32", "v_rsq_f32", "v_sqrt_f32", "v_sin_f32",
         "v_cos_f32")
_REG = re.compile(r"\b([vs])(?:(\d+)|\[(\d+):(\d+)\])")
MAX_COUNT = 63  # vmcnt and lgkmcnt are 6-bit on gfx11


def is_inline(text: str) -> bool:
    """Whether an operand is a register or an inline constant (it takes no literal slot)."""
    bare = text.strip("|")
    if not bare or bare[0] in "vs" or bare.lstrip("-")[:1] in ("v", "s") or bare in ("vcc_lo", "exec_lo", "null"):
        return True
    try:
        value = int(bare, 0)
    except ValueError:
        return bare in ("0.5", "-0.5", "1.0", "-1.0", "2.0", "-2.0", "4.0", "-4.0")
    return -16 <= value <= 64


def registers(operand: str) -> list[str]:
    """The single registers an operand names (``v[4:5]`` -> ``v4``, ``v5``; ``-v3`` -> ``v3``)."""
    out = []
    for kind, single, lo, hi in _REG.findall(operand):
        if single:
            out.append(f"{kind}{single}")
        else:
            out.extend(f"{kind}{i}" for i in range(int(lo), int(hi) + 1))
    return out


@dataclass
class _Pending:
    """Outstanding memory operations in issue order: (counter, registers it writes, in order?)."""

    ops: list[tuple[str, frozenset[str], bool]] = field(default_factory=list)
    trans: set[str] = field(default_factory=set)


class Asm:
    """Lines of one kernel's assembly, with the waits placed."""

    def __init__(self, scratch: Callable[[], str] | None = None) -> None:
        self.scratch = scratch  # hands out a temporary VGPR (for a second literal of one instruction)
        self.lines: list[str] = []
        self.pending = _Pending()
        self.stores = {"vscnt": 0, "lgkmcnt": 0}  # stores outstanding (no register to wait for)
        self.waits = 0  # s_waitcnt lines written (for tests and readers)

    # -- output -------------------------------------------------------------------------------------------------

    def comment(self, text: str) -> None:
        self.lines.append(f"  // {text}")

    def label(self, name: str) -> None:
        self.settle()
        self.lines.append(f"{name}:")

    def raw(self, text: str) -> None:
        self.lines.append(f"  {text}")

    def ins(self, mnemonic: str, *operands: str, dst: int = 1, note: str = "", memory: str = "") -> None:
        """Write ``mnemonic operands``: the first ``dst`` operands are written, the others read.

        ``memory`` marks a memory instruction: ``vm`` (global load), ``lds`` (LDS load), ``smem`` (scalar load),
        ``vstore`` (global store), ``ldsstore`` (LDS store)."""
        if mnemonic.startswith("v_") and not memory and self.scratch is not None:
            operands = self._one_literal(operands, dst)
        writes = [r for o in operands[:dst] for r in registers(o)]
        reads = [r for o in operands[dst:] for r in registers(o)]
        self._wait_for(set(reads) | set(writes))
        if self.pending.trans & set(reads):
            self.raw("s_waitcnt_depctr 0xfff  // a transcendental's result is read")
            self.pending.trans.clear()
        self.pending.trans -= set(writes)
        text = f"{mnemonic} {', '.join(operands)}".rstrip()
        self.lines.append(f"  {text:<44} // {note}" if note else f"  {text}")
        if memory in ("vm", "lds", "smem"):
            self.pending.ops.append((("vmcnt" if memory == "vm" else "lgkmcnt"), frozenset(writes), memory != "smem"))
        elif memory == "vstore":
            self.stores["vscnt"] += 1
        elif memory == "ldsstore":
            self.stores["lgkmcnt"] += 1
        elif mnemonic.split("_e", maxsplit=1)[0] in TRANS or mnemonic in TRANS:
            self.pending.trans.update(writes)
        if mnemonic.startswith("s_") and ("saveexec" in mnemonic or (dst and operands[0] == "exec_lo")):
            # gfx11's VALU partial-forwarding hazard: a VGPR written by VALUs under different EXEC masks and read
            # soon after; waiting here for every earlier VALU result keeps each EXEC region self-contained
            self.raw("s_waitcnt_depctr 0xfff  // EXEC changed: earlier VALU results land first")
            self.pending.trans.clear()

    def _one_literal(self, operands: tuple[str, ...], dst: int) -> tuple[str, ...]:
        """A VALU instruction takes one distinct literal: any other is moved into a scratch VGPR first."""
        out, seen = list(operands), None
        for i in range(dst, len(out)):
            if is_inline(out[i]) or out[i] == seen:
                continue
            if seen is None:
                seen = out[i]
                continue
            assert self.scratch is not None
            reg = self.scratch()
            self.lines.append(f"  v_mov_b32 {reg}, {out[i]}")
            out[i] = reg
        return tuple(out)

    # -- waits --------------------------------------------------------------------------------------------------

    def _wait_for(self, regs: set[str]) -> None:
        ops = self.pending.ops
        need: dict[str, int] = {}
        for i, (counter, written, _ordered) in enumerate(ops):
            if written & regs:
                need[counter] = i  # the youngest op of each counter that must be done
        if not need:
            return
        counts: dict[str, int] = {}
        for counter, last in need.items():
            younger = [op for op in ops[last + 1:] if op[0] == counter]
            ordered = all(op[2] for op in ops[: last + 1] if op[0] == counter) and all(op[2] for op in younger)
            counts[counter] = min(len(younger), MAX_COUNT) if ordered else 0
        self._emit_wait(counts)

    def _emit_wait(self, counts: dict[str, int]) -> None:
        parts = [f"{c}({n})" for c, n in sorted(counts.items(), reverse=True)]
        self.raw("s_waitcnt " + " ".join(parts))
        self.waits += 1
        for counter, n in counts.items():
            if counter == "lgkmcnt":
                self.stores["lgkmcnt"] = min(self.stores["lgkmcnt"], n)
            same = [i for i, op in enumerate(self.pending.ops) if op[0] == counter]
            done = set(same[: max(0, len(same) - n)])
            self.pending.ops = [op for i, op in enumerate(self.pending.ops) if i not in done]

    def settle(self) -> None:
        """Wait for every outstanding load and transcendental (before a label or a branch)."""
        counters = {op[0] for op in self.pending.ops}
        if counters:
            self._emit_wait({c: 0 for c in counters})
        if self.pending.trans:
            self.raw("s_waitcnt_depctr 0xfff")
            self.pending.trans.clear()

    def settle_stores(self) -> None:
        """Wait until this wave's stores are done (before a barrier: the group reads what was stored)."""
        if self.stores["lgkmcnt"] or any(op[0] == "lgkmcnt" for op in self.pending.ops):
            self._emit_wait({"lgkmcnt": 0})
            self.stores["lgkmcnt"] = 0
        if self.stores["vscnt"]:
            self.raw("s_waitcnt_vscnt null, 0x0")
            self.waits += 1
            self.stores["vscnt"] = 0

    def branch(self, mnemonic: str, target: str) -> None:
        self.settle()
        self.raw(f"{mnemonic} {target}")
