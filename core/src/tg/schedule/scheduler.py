"""The scheduler: turns the lazy graph under a buffer into a list of kernels, fusing what it can.

Fusion rules: elementwise chains fuse into one kernel; elementwise work fuses into the reduction that
consumes it; a reduction's result, host data, explicit ``contiguous()`` and cross-device copies are
kernel boundaries.  An unrealized elementwise result seen through a padded view is computed into its
own buffer first (padding must read 0, not ``op(0)``), and so is one that a reduction would recompute
many times over (a broadcast chain of several ops, e.g. a ReLU gradient feeding a weight-gradient
matmul): computing it once is cheaper than recomputing it for every output.

A kernel fuses at most ``MAX_FUSED_OPS`` ALU and CAST ops.  Its expression is built from the output down,
sources depth first and left to right; once it holds that many ops, every further elementwise source is
computed into a buffer of its own (by a kernel capped the same way) and loaded.  A chain of N elementwise
ops thus runs as ceil(N / MAX_FUSED_OPS) kernels, the one nearest the output full: no kernel's code grows
with the graph, and a repeating chain gives kernels of one structure, compiled once.

The graph is walked with explicit stacks, never one recursive call per node, so graphs of any depth schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tg.graph.lazy import LazyBuffer, LazyOp
from tg.graph.shapetracker import ShapeTracker
from tg.support.dtype import DType, exact_key


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
    position: int = -1  # where the node's entry is in its kernel's structure


@dataclass(eq=False)
class Kernel:
    """One kernel: ``ast`` computes the value stored into ``output`` (a base LazyBuffer).

    ``structure`` is the tree written flat as the scheduler built it, sources first: one ``(op, dtype, arg,
    source positions)`` entry per node (a shared node once, constants keyed exactly so -0.0 is not 0.0).  Equal
    trees give equal structures, so it keys compiled kernels without another walk of the tree.
    """

    ast: KNode
    output: LazyBuffer
    inputs: list[LazyBuffer] = field(default_factory=list)
    structure: tuple[tuple[Any, ...], ...] = ()

    @property
    def name(self) -> str:
        # The op names in the order of their last appearance in a pre-order walk of the tree, reversed: that is the
        # order of first appearance in a post-order walk that visits sources right to left, which may skip a shared
        # subtree it has already walked (the subtree's names have appeared) and needs no recursion.
        ops: dict[str, None] = {}
        done: set[int] = set()
        stack: list[tuple[KNode, bool]] = [(self.ast, False)]
        while stack:
            n, expanded = stack.pop()
            if expanded:
                if n.op in ("ALU", "REDUCE"):
                    name = (n.arg if n.op == "ALU" else n.arg[0]).name.lower()
                    ops.setdefault(("r_" if n.op == "REDUCE" else "") + name)
            elif id(n) not in done:
                done.add(id(n))
                stack.append((n, True))
                stack.extend((s, False) for s in n.src)
        label = "_".join(ops) or "copy"
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
#: A kernel inlines at most this many ALU and CAST ops; past them, each further source gets its own buffer.
MAX_FUSED_OPS = 256


@dataclass(eq=False)
class _Fusing:
    """A kernel whose expression tree is being built: its memo of nodes by (base, view) and its op count."""

    kernel: Kernel
    memo: dict[tuple[int, ShapeTracker], KNode] = field(default_factory=dict)
    ops: int = 0
    entries: list[tuple[Any, ...]] = field(default_factory=list)  # the kernel's structure so far

    def made(self, node: KNode) -> KNode:
        """Record a new node's entry in the kernel's structure (its sources are recorded already)."""
        node.position = len(self.entries)
        arg = (exact_key(node.arg[0]), node.arg[1]) if node.op == "CONST" else node.arg  # a constant's value
        self.entries.append((node.op, node.dtype.name, arg, tuple([s.position for s in node.src])))
        return node


# The scheduler's tasks, on one explicit stack (graphs can be 100,000 ops deep, deeper than Python recursion):
_REALIZE = "realize"  # (_REALIZE, lb): schedule lb's base
_VALUE = "value"      # (_VALUE, fusing, base, view, reducing): push base's node seen through view
_NODE = "node"        # (_NODE, fusing, base, memo key): make base's node from its sources' nodes
_LOAD = "load"        # (_LOAD, fusing, base, view, memo key): push a load of base, now scheduled
_KERNEL = "kernel"    # (_KERNEL, fusing): the expression is built; the kernel is scheduled
_COPY = "copy"        # (_COPY, base): its source is scheduled; so is the copy


class Scheduler:
    def __init__(self) -> None:
        self.items: list[ScheduleItem] = []
        self._scheduled: set[int] = set()
        self._costs: dict[int, int] = {}

    def realize(self, lb: LazyBuffer) -> None:
        """Schedule everything needed to compute ``lb``'s base into a buffer.

        Sources are visited depth first, left to right, and a source that needs a buffer of its own is
        scheduled before the kernel that loads it: the order a recursive walk would give, kept on a stack.
        """
        tasks: list[tuple[Any, ...]] = [(_REALIZE, lb)]
        nodes: list[KNode] = []  # finished nodes, taken by the task that waits for them
        while tasks:
            task = tasks.pop()
            kind = task[0]
            if kind == _VALUE:
                self._value(task[1], task[2], task[3], task[4], tasks, nodes)
            elif kind == _NODE:
                fusing, b, key = task[1], task[2], task[3]
                srcs = tuple(nodes[len(nodes) - len(b.srcs):])
                del nodes[len(nodes) - len(b.srcs):]
                node = self._node(b, srcs)
                if node.position < 0:  # (CONTIGUOUS passes its source's node through)
                    fusing.made(node)
                if key is not None:
                    fusing.memo[key] = node
                nodes.append(node)
            elif kind == _LOAD:
                fusing, b, st, key = task[1], task[2], task[3], task[4]
                kernel = fusing.kernel
                if b not in kernel.inputs:
                    kernel.inputs.append(b)
                node = fusing.made(KNode("LOAD", b.dtype, (), (kernel.inputs.index(b) + 1, st)))
                fusing.memo[key] = node
                nodes.append(node)
            elif kind == _REALIZE:
                self._start(task[1].base, tasks, nodes)
            elif kind == _KERNEL:
                fusing = task[1]
                kernel = fusing.kernel
                b, body = kernel.output, nodes.pop()
                kernel.ast = fusing.made(KNode("REDUCE", b.dtype, (body,), b.arg)) if b.op is LazyOp.REDUCE else body
                kernel.structure = tuple(fusing.entries)
                self.items.append(kernel)
            else:
                assert kind == _COPY, kind
                self.items.append(HostCopy(task[1], task[1].srcs[0]))
        assert not nodes

    def _start(self, b: LazyBuffer, tasks: list[tuple[Any, ...]], nodes: list[KNode]) -> None:
        if b.realized is not None or id(b) in self._scheduled:
            return
        self._scheduled.add(id(b))
        if b.op in (LazyOp.FROM_HOST, LazyOp.EMPTY):
            self.items.append(HostCopy(b, None))
            return
        if b.op is LazyOp.COPY:
            tasks.append((_COPY, b))
            tasks.append((_REALIZE, b.srcs[0]))
            return
        fusing = _Fusing(Kernel(KNode("CONST", b.dtype), b))  # placeholder ast until the sources are built
        tasks.append((_KERNEL, fusing))
        if b.op is LazyOp.REDUCE:
            src = b.srcs[0]
            tasks.append((_VALUE, fusing, src.base, src.st, True))
        else:
            self._compute(fusing, b, ShapeTracker.contiguous(b.shape), False, None, tasks, nodes)

    def _compute(self, fusing: _Fusing, b: LazyBuffer, st: ShapeTracker, reducing: bool,
                 key: tuple[int, ShapeTracker] | None, tasks: list[tuple[Any, ...]], nodes: list[KNode]) -> None:
        """Push the value of unrealized base ``b`` (ALU, CAST, CONTIGUOUS, CONST) inlined at ``st``."""
        if b.op is LazyOp.CONST:
            node = fusing.made(KNode("CONST", b.dtype, (), (b.arg, st)))
            if key is not None:
                fusing.memo[key] = node
            nodes.append(node)
            return
        if b.op in (LazyOp.ALU, LazyOp.CAST):
            fusing.ops += 1
        tasks.append((_NODE, fusing, b, key))
        tasks.extend((_VALUE, fusing, s.base, s.st + st, reducing) for s in reversed(b.srcs))

    @staticmethod
    def _node(b: LazyBuffer, srcs: tuple[KNode, ...]) -> KNode:
        if b.op is LazyOp.ALU:
            return KNode("ALU", b.dtype, srcs, b.arg)
        if b.op is LazyOp.CAST:
            return KNode("CAST", b.dtype, srcs, b.arg)
        if b.op is LazyOp.CONTIGUOUS:
            return srcs[0]
        raise AssertionError(f"cannot inline {b.op}")

    def _value(self, fusing: _Fusing, b: LazyBuffer, st: ShapeTracker, reducing: bool, tasks: list[tuple[Any, ...]],
               nodes: list[KNode]) -> None:
        """Push ``b`` seen through ``st``: inlined, or loaded from its own buffer (scheduled first)."""
        key = (id(b), st)
        if key in fusing.memo:
            nodes.append(fusing.memo[key])
            return
        inline = b.realized is None and (b.op is LazyOp.CONST or (b.op in (LazyOp.ALU, LazyOp.CAST)
                                                                   and not st.has_mask))
        if inline and reducing and b.op is not LazyOp.CONST:
            factor = math.prod(st.shape) // max(1, math.prod(b.shape))
            inline = factor < RECOMPUTE_MIN_FACTOR or self._cost(b) < RECOMPUTE_MIN_OPS
        if inline and b.op is not LazyOp.CONST and fusing.ops >= MAX_FUSED_OPS:
            inline = False
        if inline:
            self._compute(fusing, b, st, reducing, key, tasks, nodes)
        else:
            tasks.append((_LOAD, fusing, b, st, key))
            tasks.append((_REALIZE, b))

    def _cost(self, b: LazyBuffer) -> int:
        """How many ops computing unrealized ``b`` inline takes (up to realized buffers and constants)."""
        costs = self._costs
        stack = [b]
        while stack:
            x = stack[-1]
            if id(x) in costs:
                stack.pop()
                continue
            if not (x.realized is None and x.op in (LazyOp.ALU, LazyOp.CAST)):
                costs[id(x)] = 0
                stack.pop()
                continue
            missing = [s.base for s in x.srcs if id(s.base) not in costs]
            if missing:
                stack.extend(missing)
                continue
            costs[id(x)] = 1 + sum(costs[id(s.base)] for s in x.srcs)
            stack.pop()
        return costs[id(b)]


def create_schedule(outs: list[LazyBuffer]) -> list[ScheduleItem]:
    """The kernels and copies, in order, that realize every buffer in ``outs``."""
    scheduler = Scheduler()
    for lb in outs:
        scheduler.realize(lb)
    return scheduler.items

