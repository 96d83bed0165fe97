"""A compiled instruction: what the executor needs to run, branch, wait and check it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tg_rdna.emulator.operands import Operand
from tg_rdna.emulator.state import Ctx

NORMAL, BRANCH, END, BARRIER = range(4)
Key = tuple[str, int]


@dataclass
class Built:
    run: Callable[[Ctx], None] | None = None
    reads: frozenset[Key] = frozenset()
    writes: frozenset[Key] = frozenset()
    kind: int = NORMAL
    valu: bool = False
    trans: bool = False
    target: int | None = None                       # branch target (byte address)
    cond: Callable[[Ctx], np.ndarray] | None = None  # (k,) bool: which waves branch; None = always
    wait: tuple[int | None, int | None, int | None] | None = None  # vmcnt, lgkmcnt, vscnt
    load_kind: int | None = None
    load_dests: list[Key] = field(default_factory=list)
    store: str | None = None                        # 'lds' or 'global'
    va_vdst: bool = False                           # waits for every VALU result (depctr, VMEM, LDS)
    vgpr_operands: list[tuple[int, ...]] = field(default_factory=list)  # distinct VGPR source operands


def regs_of(ops: list[Operand]) -> frozenset[Key]:
    out: set[Key] = set()
    for op in ops:
        out.update(op.regs())
    return frozenset(out)


def modifier_values(mods: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in mods:
        key, _, value = m.partition(":")
        out[key] = value
    return out


def bit_list(text: str, n: int) -> list[bool]:
    """``[1,0,1]`` -> [True, False, True], padded with False to n entries."""
    bits = [b.strip() == "1" for b in text.strip("[]").split(",")] if text else []
    return (bits + [False] * n)[:max(n, len(bits))]
