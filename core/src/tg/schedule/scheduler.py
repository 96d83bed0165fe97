"""The scheduler: turns the lazy graph under a buffer into a list of kernels, fusing what it can.

Fusion rules: elementwise chains fuse into one kernel; elementwise work fuses into the reduction that
consumes it; a reduction's result, host data, explicit ``contiguous()`` and cross-device copies are
kernel boundaries.  An unrealized elementwise result seen through a padded view is computed into its
own buffer first (padding must read 0, not ``op(0)``), and so is one that a reduction would recompute
many times over (a broadcast chain of several ops, e.g. a ReLU gradient feeding a weight-gradient
matmul): computing it once is cheaper than recomputing it for every output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tg.graph.lazy import LazyBuffer, LazyOp
from tg.graph.shapetracker import ShapeTracker
from tg.support.dtype import DType


@dataclass(eq=False)
class KNode:
    """A node of a kernel's expression tree, evaluated at every index of the kernel's shape.

    op is "LOAD" (arg: (input slot, ShapeTracker)), "CONST" (arg: (value, ShapeTracker)), "ALU" (arg: Ops),
    "CAST" (arg: bitcast flag) or "REDUCE" (arg: (Ops.ADD | Ops.MAX, axes); only at the root).
    """

    op: str
    dtype: DType
    src: tuple[KNode, ...] = ()
    arg: Any = None


@dataclass(eq=False)
class Kernel:
    """One kernel: ``ast`` computes the value stored into ``output`` (a base LazyBuffer)."""

    ast: KNode
    output: LazyBuffer
    inputs: list[LazyBuffer] = field(default_factory=list)

    @property
    def name(self) -> str:
        ops: list[str] = []

        def walk(n: KNode) -> None:
            if n.op in ("ALU", "REDUCE"):
                name = (n.arg if n.op == "ALU" else n.arg[0]).name.lower()
                ops.append(("r_" if n.op == "REDUCE" else "") + name)
            for s in n.src:
                walk(s)

        walk(self.ast)
        label = "_".join(dict.fromkeys(reversed(ops))) or "copy"
        shape = "_".join(str(s) for s in self.output.shape) or "1"
        return f"{label[:40]}_{shape}"


@dataclass(eq=False)
class HostCopy:
    """Data that enters a device from the host (or leaves one device for another)."""

    output: LazyBuffer
    source: LazyBuffer | None  # None: from the host array in output.arg


ScheduleItem = Kernel | HostCopy


#: A reduction that would recompute an elementwise chain of at least RECOMPUTE_MIN_OPS ops at least
#: RECOMPUTE_MIN_FACTOR times per element has the chain computed into a buffer first.
RECOMPUTE_MIN_OPS = 3
RECOMPUTE_MIN_FACTOR = 8


class Scheduler:
    def __init__(self) -> None:
        self.items: list[ScheduleItem] = []
        self._scheduled: set[int] = set()
        self._costs: dict[int, int] = {}

    def realize(self, lb: LazyBuffer) -> None:
        """Schedule everything needed to compute ``lb``'s base into a buffer."""
        b = lb.base
        if b.realized is not None or id(b) in self._scheduled:
            return
        self._scheduled.add(id(b))
        if b.op in (LazyOp.FROM_HOST, LazyOp.EMPTY):
            self.items.append(HostCopy(b, None))
            return
        if b.op is LazyOp.COPY:
            self.realize(b.srcs[0])
            self.items.append(HostCopy(b, b.srcs[0]))
            return
        kernel = Kernel(KNode("CONST", b.dtype), b)  # placeholder ast until the sources are built
        memo: dict[tuple[int, ShapeTracker], KNode] = {}
        if b.op is LazyOp.REDUCE:
            src = b.srcs[0]
            op, axes = b.arg
            kernel.ast = KNode("REDUCE", b.dtype, (self._value(src.base, src.st, kernel, memo, True),), (op, axes))
        else:
            kernel.ast = self._compute(b, ShapeTracker.contiguous(b.shape), kernel, memo)
        self.items.append(kernel)

    def _compute(self, b: LazyBuffer, st: ShapeTracker, kernel: Kernel, memo: dict[Any, KNode],
                 reducing: bool = False) -> KNode:
        """The value of unrealized base ``b`` (ALU, CAST, CONTIGUOUS, CONST) inlined at ``st``."""
        if b.op is LazyOp.CONST:
            return KNode("CONST", b.dtype, (), (b.arg, st))
        srcs = tuple(self._value(s.base, s.st + st, kernel, memo, reducing) for s in b.srcs)
        if b.op is LazyOp.ALU:
            return KNode("ALU", b.dtype, srcs, b.arg)
        if b.op is LazyOp.CAST:
            return KNode("CAST", b.dtype, srcs, b.arg)
        if b.op is LazyOp.CONTIGUOUS:
            return srcs[0]
        raise AssertionError(f"cannot inline {b.op}")

    def _value(self, b: LazyBuffer, st: ShapeTracker, kernel: Kernel, memo: dict[Any, KNode],
               reducing: bool = False) -> KNode:
        key = (id(b), st)
        if key in memo:
            return memo[key]
        inline = b.realized is None and (b.op is LazyOp.CONST or (b.op in (LazyOp.ALU, LazyOp.CAST)
                                                                   and not st.has_mask))
        if inline and reducing and b.op is not LazyOp.CONST:
            factor = math.prod(st.shape) // max(1, math.prod(b.shape))
            inline = factor < RECOMPUTE_MIN_FACTOR or self._cost(b) < RECOMPUTE_MIN_OPS
        if inline:
            node = self._compute(b, st, kernel, memo, reducing)
        else:
            self.realize(b)
            if b not in kernel.inputs:
                kernel.inputs.append(b)
            node = KNode("LOAD", b.dtype, (), (kernel.inputs.index(b) + 1, st))
        memo[key] = node
        return node


    def _cost(self, b: LazyBuffer) -> int:
        """How many ops computing unrealized ``b`` inline takes (up to realized buffers and constants)."""
        if id(b) not in self._costs:
            inlined = b.realized is None and b.op in (LazyOp.ALU, LazyOp.CAST)
            self._costs[id(b)] = 1 + sum(self._cost(s.base) for s in b.srcs) if inlined else 0
        return self._costs[id(b)]


def create_schedule(outs: list[LazyBuffer]) -> list[ScheduleItem]:
    """The kernels and copies, in order, that realize every buffer in ``outs``."""
    scheduler = Scheduler()
    for lb in outs:
        scheduler.realize(lb)
    return scheduler.items

