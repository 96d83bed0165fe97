"""Register lifetimes and allocation: each value gets VGPRs from its definition to its last use, then they are
reused.

:func:`last_uses` computes, for every micro-op, the position after which its value is dead: its last reader, moved
to the ``ENDRANGE`` of the outermost loop that reads it but began after it was defined (the loop reads it again on
its next trip), or of the loop it bounds (a ``RANGE``'s end is compared at the top of every trip).  An accumulator
(``DEFINE_ACC``) and the ``ASSIGN`` s that overwrite it share one register, live until the last reader of any of
them; a loop counter (``RANGE``) lives until its ``ENDRANGE``.

:class:`Registers` hands out VGPRs (v0 holds the work-item ids and is never given out) and SGPRs, lowest free
first, and remembers the highest used (the descriptor's ``next_free_vgpr``/``next_free_sgpr``).
"""

from __future__ import annotations

from tg.codegen.uops import Ops, UOp


def last_uses(uops: list[UOp]) -> dict[int, int]:
    """``id(value)`` -> the position of the micro-op after which no register of it is needed."""
    position = {id(u): i for i, u in enumerate(uops)}
    owner: dict[int, int] = {}  # ASSIGN -> its accumulator
    loops: list[tuple[int, int]] = []  # (RANGE position, ENDRANGE position)
    end_of: dict[int, int] = {}
    for i, u in enumerate(uops):
        if u.op is Ops.ENDRANGE:
            end_of[id(u.src[0])] = i
    for i, u in enumerate(uops):
        if u.op is Ops.RANGE:
            loops.append((i, end_of[id(u)]))
        if u.op is Ops.ASSIGN:
            acc = u.src[0]
            owner[id(u)] = owner.get(id(acc), id(acc))
    last: dict[int, int] = {id(u): i for i, u in enumerate(uops)}
    for i, u in enumerate(uops):
        if u.op is Ops.RANGE:
            last[id(u)] = max(last[id(u)], end_of[id(u)])
        for s in u.src:
            defined = position.get(id(s), -1)
            end = end_of[id(u)] if u.op is Ops.RANGE else i  # a loop's bounds are read again at the top of each trip
            for start, stop in loops:  # the outermost loop that began after the value and holds this use
                if defined < start < i <= stop:
                    end = max(end, stop)
                    break
            key = owner.get(id(s), id(s))
            last[key] = max(last.get(key, 0), end)
    for assign, acc_id in owner.items():
        last[assign] = last[acc_id]
    return last


class OutOfRegisters(Exception):
    pass


class Registers:
    """Free lists of VGPRs and SGPRs."""

    def __init__(self, vgprs: int, first_sgpr: int, sgprs: int):
        self.vfree = [True] * vgprs
        self.vfree[0] = False  # v0: the packed work-item ids
        self.sfree = [i >= first_sgpr for i in range(sgprs)]
        self.vtop, self.stop = 1, first_sgpr

    def vgpr(self, count: int = 1) -> str:
        i = _take(self.vfree, count, 1)
        if i is None:
            raise OutOfRegisters(f"more than {len(self.vfree)} VGPRs live at once")
        self.vtop = max(self.vtop, i + count)
        return f"v{i}" if count == 1 else f"v[{i}:{i + count - 1}]"

    def sgpr(self, count: int = 1, align: int = 1) -> str:
        i = _take(self.sfree, count, align)
        if i is None:
            raise OutOfRegisters(f"more than {len(self.sfree)} SGPRs live at once")
        self.stop = max(self.stop, i + count)
        return f"s{i}" if count == 1 else f"s[{i}:{i + count - 1}]"

    def release(self, reg: str) -> None:
        table = self.vfree if reg[0] == "v" else self.sfree
        for i in _indices(reg):
            table[i] = True


def _take(free: list[bool], count: int, align: int) -> int | None:
    for i in range(0, len(free) - count + 1, align):
        if all(free[i:i + count]):
            for j in range(i, i + count):
                free[j] = False
            return i
    return None


def _indices(reg: str) -> range:
    if "[" in reg:
        lo, hi = reg[2:-1].split(":")
        return range(int(lo), int(hi) + 1)
    return range(int(reg[1:]), int(reg[1:]) + 1)
