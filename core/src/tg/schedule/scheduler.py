"""The scheduler: turns the lazy graph under a buffer into a list of kernels, fusing what it can.

Fusion rules: elementwise chains fuse into one kernel; elementwise work fuses into the reduction that
consumes it; a reduction's result, host data, explicit ``contiguous()`` and cross-device copies are
kernel boundaries.  An unrealized elementwise result seen through a padded view is computed into its
own buffer first (padding must read 0, not ``op(0)``), and so is one that a reduction would recompute
many times over (a broadcast chain of several ops, e.g. a ReLU gradient feeding a weight-gradient
matmul): computing it once is cheaper than recomputing it for every output.

Row fusion: a reduction that a kernel sees broadcast back over the axes it reduced (a softmax's row max and row sum,
a layernorm's mean and variance) is computed inside that kernel rather than into a buffer of its own, when its
source has the kernel's full shape, it reduces the same axes as the kernel's other fused reductions (and as the
kernel's own reduction, if it has one), and one row of its source is at most ``ROW_FUSE_BYTES``.  The kernel then
holds REDUCE nodes below its root; lowering runs them one after the other for each row, then the kernel's own
loop, so the row is read from the cache after its first pass.  ``TG_FUSE_ROWS=0`` turns this off.  The engine
asks for it only on devices whose backend runs no work groups (``Capabilities.group_size`` 1: a row is one thread's
loop either way, so fusing only saves memory passes); where a work group's lanes share a row's reduction (a GPU), one
thread walking each row alone would be far slower.

A kernel fuses at most ``MAX_FUSED_OPS`` ALU and CAST ops.  Its expression is built from the output down,
sources depth first and left to right; once it holds that many ops, every further elementwise source is
computed into a buffer of its own (by a kernel capped the same way) and loaded.  A chain of N elementwise
ops thus runs as ceil(N / MAX_FUSED_OPS) kernels, the one nearest the output full: no kernel's code grows
with the graph, and a repeating chain gives kernels of one structure, compiled once.

The graph is walked with explicit stacks, never one recursive call per node, so graphs of any depth schedule.  A
frame on the stack stands for a node being built; a source that needs no walk of its own (a node made already, a
constant, a load of a buffer realized or scheduled) is handled where it is met, without a frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tg.graph.lazy import LazyBuffer, LazyOp
from tg.graph.shapetracker import ShapeTracker
from tg.support.dtype import DType, exact_key
from tg.support.helpers import getenv


@dataclass(eq=False, slots=True)
class KNode:
    """A node of a kernel's expression tree, evaluated at every index of the kernel's shape.

    op is "LOAD" (arg: (input slot, ShapeTracker)), "CONST" (arg: (value, ShapeTracker)), "ALU" (arg: Ops),
    "CAST" (arg: bitcast flag) or "REDUCE" (arg: (Ops.ADD | Ops.MAX, axes)).  A REDUCE below the root is a row
    fusion's (see the module's docstring): its value at an index is its reduction over that index's row.
    """

    op: str
    dtype: DType
    src: tuple[KNode, ...] = ()
    arg: Any = None
    position: int = -1  # where the node's entry is in its kernel's structure


@dataclass(frozen=True, slots=True)
class ScalarParam:
    """In a CONST node's arg, in place of the value: the kernel's scalar parameter ``slot`` (``Kernel.params``)."""

    slot: int


@dataclass(eq=False, slots=True)
class Kernel:
    """One kernel: ``ast`` computes the value stored into ``output`` (a base LazyBuffer).

    ``structure`` is the tree written flat as the scheduler built it, sources first: one ``(op, dtype name, arg key,
    source positions)`` entry per node (a shared node once; an op by name, a view as ``ShapeTracker.key``, a constant
    by its exact key so -0.0 is not 0.0).  Equal trees give equal structures, so it keys compiled kernels without
    another walk of the tree, hashed and compared without a Python call per entry.

    ``params`` are the values of the kernel's scalar parameters, by slot: Python floats of the user's arithmetic
    (``LazyBuffer.param``), which enter the structure by slot, not value, so a new value keys the same kernel; the
    engine passes them at launch where the backend takes float32 variables, and keys by them where it does not.
    """

    ast: KNode
    output: LazyBuffer
    inputs: list[LazyBuffer] = field(default_factory=list)
    structure: tuple[tuple[Any, ...], ...] = ()
    params: list[Any] = field(default_factory=list)
    #: the constant bases whose values ``params`` holds, by slot (a cached schedule takes the values from them)
    param_bases: list[LazyBuffer] = field(default_factory=list)
    #: the constant bases of Python floats compiled in as values (past MAX_PARAMS, or a kernel that is one): the
    #: structure holds their values, so the schedule cache reuses this kernel only for a graph with the same ones
    baked_bases: list[LazyBuffer] = field(default_factory=list)
    #: the engine's ready program per device state, shared by every kernel the schedule cache makes from one template
    #: (a launch then skips hashing ``structure`` again); None where nothing is shared
    ready: dict[Any, Any] | None = None

    @property
    def name(self) -> str:
        shape = "_".join(str(s) for s in self.output.shape) or "1"
        return f"{self._label()}_{shape}"

    @property
    def symbolic_name(self) -> str:
        """The name of the kernel built for every size of its outermost dimension: ``n`` stands for that size."""
        shape = self.output.shape
        axis = max(symbolic_axis(shape), 0)
        return "_".join([self._label(), *(str(s) for s in shape[:axis]), "n", *(str(s) for s in shape[axis + 1:])])

    @property
    def bytes_moved(self) -> int:
        """Bytes the kernel reads and writes once each: its output and every input buffer, whole."""
        return self.output.dtype.itemsize * math.prod(self.output.shape) + sum(
            inp.dtype.itemsize * math.prod(inp.shape) for inp in self.inputs)

    def _label(self) -> str:
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
        return ("_".join(ops) or "copy")[:40]


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
#: A kernel takes at most this many scalar parameters; further ones are compiled in as constants.
MAX_PARAMS = 16
#: Row fusion: the most bytes of a fused reduction's source one row may hold (it stays in L1 between the passes),
#: and the most reductions one kernel fuses below its root.
ROW_FUSE_BYTES = 16384
ROW_FUSE_MAX = 4


@dataclass(eq=False)
class _Fusing:
    """A kernel whose expression tree is being built: its memo of nodes by (base, view) and its op count."""

    kernel: Kernel
    memo: dict[tuple[int, Any], KNode] = field(default_factory=dict)  # (id(base), view's key) -> node
    ops: int = 0
    entries: list[tuple[Any, ...]] = field(default_factory=list)  # the kernel's structure so far
    params: dict[int, int] = field(default_factory=dict)  # id(constant base) -> its parameter slot
    slots: dict[int, int] = field(default_factory=dict)  # id(input base) -> its buffer slot (1 + its index in inputs)
    row: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # row fusion: (full shape, reduced axes), once set
    fused: int = 0  # reductions fused below the root

    def made(self, node: KNode, arg: Any) -> KNode:
        """Record a new node's entry in the kernel's structure, with ``arg`` the key of its arg (its sources are
        recorded already).  Views enter as their plain-tuple key and ops by name, so a kernel key is hashed and
        compared in C; a constant's value enters as its exact key, so -0.0 is not 0.0."""
        node.position = len(self.entries)
        self.entries.append((node.op, node.dtype.name, arg, tuple([s.position for s in node.src])))
        return node


# The scheduler keeps its own stack of frames (graphs can be 100,000 ops deep, deeper than Python recursion).  A frame
# is a tuple whose first item is its kind:
_NODE = 0    # (_NODE, fusing, base, view, reducing, memo key, nodes, out): an inlined ALU or CAST base seen
#              through view; nodes collects its sources' nodes left to right, then its node is appended to out
_ROOT = 1    # (_ROOT, fusing, base, None, False, None, nodes, None): the same for a kernel's output; then the kernel
_REDUCE = 2  # (_REDUCE, fusing, base, None, True, None, nodes, None): a reduction's source, then the kernel
#              (view None: the sources' own views)
_LOAD = 3    # (_LOAD, fusing, base, view, memo key, out): base is scheduled now; a load of it is appended to out
_COPY = 4    # (_COPY, base): base's source is scheduled now; so is the copy


class Scheduler:
    def __init__(self, fuses_rows: Callable[[str], bool] | None = None) -> None:
        self.fuses_rows = fuses_rows  # row fusion on a device (None: everywhere; see the module's docstring)
        self.items: list[ScheduleItem] = []
        self._scheduled: set[int] = set()
        self._costs: dict[int, int] = {}

    def realize(self, lb: LazyBuffer) -> None:
        """Schedule everything needed to compute ``lb``'s base into a buffer.

        Sources are visited depth first, left to right, and a source that needs a buffer of its own is
        scheduled before the kernel that loads it: the order a recursive walk would give, kept on a stack.
        A source that is already a node (memo), a constant or a load of a realized or scheduled buffer takes no
        frame.
        """
        stack: list[tuple[Any, ...]] = []
        self._start(lb.base, stack)
        scheduled, items = self._scheduled, self.items
        while stack:
            frame = stack[-1]
            kind = frame[0]
            if kind > _REDUCE:
                stack.pop()
                if kind == _LOAD:
                    _, fusing, b, st, key, out = frame
                    out.append(self._load(fusing, b, st, key))
                else:
                    items.append(HostCopy(frame[1], frame[1].srcs[0]))
                continue
            _, fusing, b, st, reducing, _, nodes, out = frame
            srcs = b.srcs
            memo = fusing.memo
            for i in range(len(nodes), len(srcs)):  # from the first source without a node
                s = srcs[i]
                sb = s._base or s  # (s.base, without the property call)
                sst = s.st
                if st is not None:
                    views = sst.views  # s.st + st: a plain view of a contiguous one is the view itself
                    sst = st if len(views) == 1 and views[0].contiguous and len(st.views) == 1 else sst + st
                key = (id(sb), sst.key)
                node = memo.get(key)
                if node is None:
                    if sb.realized is not None:
                        node = self._load(fusing, sb, sst, key)
                    elif sb.op is LazyOp.CONST:
                        node = memo[key] = self._const(fusing, sb, sst)
                    elif self._inline(fusing, sb, sst, reducing):
                        fusing.ops += 1
                        if sb.op is LazyOp.REDUCE:  # row fusion: its source is seen as it is, in the full shape
                            stack.append((_NODE, fusing, sb, None, True, key, [], nodes))
                        else:
                            stack.append((_NODE, fusing, sb, sst, reducing, key, [], nodes))
                        break
                    elif id(sb) in scheduled:
                        node = self._load(fusing, sb, sst, key)
                    else:
                        stack.append((_LOAD, fusing, sb, sst, key, nodes))
                        self._start(sb, stack)
                        break
                nodes.append(node)
            else:  # every source has its node
                stack.pop()
                self._finish(frame)

    def _finish(self, frame: tuple[Any, ...]) -> None:
        """All sources of ``frame``'s base have nodes: make its node, and finish its kernel if it is the output."""
        kind, fusing, b, _, _, key, nodes, out = frame
        op = b.op
        if kind == _REDUCE or op is LazyOp.REDUCE:
            node = fusing.made(KNode("REDUCE", b.dtype, (nodes[0],), b.arg), (b.arg[0]._name_, b.arg[1]))
        elif op is LazyOp.ALU:
            node = fusing.made(KNode("ALU", b.dtype, tuple(nodes), b.arg), b.arg._name_)
        elif op is LazyOp.CAST:
            node = fusing.made(KNode("CAST", b.dtype, tuple(nodes), b.arg), b.arg)
        else:
            assert op is LazyOp.CONTIGUOUS, f"cannot inline {op}"
            node = nodes[0]  # passes its source's node through
        if kind == _NODE:
            fusing.memo[key] = node
            out.append(node)
        else:
            self._scheduled_kernel(fusing, node)

    def _scheduled_kernel(self, fusing: _Fusing, ast: KNode) -> None:
        kernel = fusing.kernel
        kernel.ast = ast
        kernel.structure = tuple(fusing.entries)
        self.items.append(kernel)

    def _start(self, b: LazyBuffer, stack: list[tuple[Any, ...]]) -> None:
        """Schedule base ``b`` (nothing if it is realized or scheduled): at once, or with frames for its sources."""
        while b.op is LazyOp.COPY and b.realized is None and id(b) not in self._scheduled:
            self._scheduled.add(id(b))
            stack.append((_COPY, b))  # runs once the source, scheduled next, is
            b = b.srcs[0].base
        if b.realized is not None or id(b) in self._scheduled:
            return
        self._scheduled.add(id(b))
        if b.op in (LazyOp.FROM_HOST, LazyOp.EMPTY):
            self.items.append(HostCopy(b, None))
            return
        fusing = _Fusing(Kernel(KNode("CONST", b.dtype), b))  # placeholder ast until the sources are built
        if b.op is LazyOp.REDUCE:
            fusing.row = (b.srcs[0].shape, b.arg[1])
            stack.append((_REDUCE, fusing, b, None, True, None, [], None))
        elif b.op is LazyOp.CONST:
            st = ShapeTracker.contiguous(b.shape)
            node = fusing.made(KNode("CONST", b.dtype, (), (b.arg, st)), (exact_key(b.arg), st.key))
            if b.param:  # a parameter's value compiled in
                fusing.kernel.baked_bases.append(b)
            self._scheduled_kernel(fusing, node)
        else:
            if b.op in (LazyOp.ALU, LazyOp.CAST):
                fusing.ops += 1
            # view None: the sources are seen as they are (an elementwise op's sources have its shape, so seen
            # through its contiguous view they would be unchanged)
            stack.append((_ROOT, fusing, b, None, False, None, [], None))

    @staticmethod
    def _const(fusing: _Fusing, b: LazyBuffer, st: ShapeTracker) -> KNode:
        """A constant's node: a parameter slot (walk order, so equal structures give slots equal meanings) for a
        Python float of the user's arithmetic while the kernel has slots left, else its exact value."""
        if b.param:
            slot = fusing.params.get(id(b))
            params = fusing.kernel.params
            if slot is None and len(params) < MAX_PARAMS:
                slot = fusing.params[id(b)] = len(params)
                params.append(b.arg)
                fusing.kernel.param_bases.append(b)
            if slot is not None:
                return fusing.made(KNode("CONST", b.dtype, (), (ScalarParam(slot), st)), (("param", slot), st.key))
            fusing.kernel.baked_bases.append(b)
        return fusing.made(KNode("CONST", b.dtype, (), (b.arg, st)), (exact_key(b.arg), st.key))

    @staticmethod
    def _load(fusing: _Fusing, b: LazyBuffer, st: ShapeTracker, key: tuple[int, Any]) -> KNode:
        slot = fusing.slots.get(id(b))
        if slot is None:
            inputs = fusing.kernel.inputs
            inputs.append(b)
            slot = fusing.slots[id(b)] = len(inputs)
        node = fusing.memo[key] = fusing.made(KNode("LOAD", b.dtype, (), (slot, st)), (slot, st.key))
        return node

    def _inline(self, fusing: _Fusing, b: LazyBuffer, st: ShapeTracker, reducing: bool) -> bool:
        """Whether unrealized ``b`` (not a constant) seen through ``st`` is computed inside this kernel rather
        than loaded from a buffer of its own."""
        if b.op is LazyOp.REDUCE:
            return self._fuse_row(fusing, b, st)
        if b.op not in (LazyOp.ALU, LazyOp.CAST) or st.has_mask:
            return False
        if reducing:
            factor = math.prod(st.shape) // max(1, math.prod(b.shape))
            if factor >= RECOMPUTE_MIN_FACTOR and self._cost(b) >= RECOMPUTE_MIN_OPS:
                return False
        return fusing.ops < MAX_FUSED_OPS

    def _fuse_row(self, fusing: _Fusing, b: LazyBuffer, st: ShapeTracker) -> bool:
        """Whether reduction ``b``, seen through ``st``, is computed inside this kernel (row fusion)."""
        if id(b) in self._scheduled or fusing.fused >= ROW_FUSE_MAX or fusing.ops >= MAX_FUSED_OPS or \
                not getenv("TG_FUSE_ROWS", True) or (self.fuses_rows is not None and not self.fuses_rows(b.device)):
            return False
        full, axes = b.srcs[0].shape, b.arg[1]
        row = fusing.row
        if row is None:  # an elementwise kernel: its shape must be the reduction's source's
            if fusing.kernel.output.shape != full:
                return False
        elif row != (full, axes):
            return False
        if st.key != ShapeTracker.contiguous(b.shape).expand(full).key:  # broadcast back over its row, no other view
            return False
        if math.prod(full[a] for a in axes) * b.srcs[0].dtype.itemsize > ROW_FUSE_BYTES:
            return False
        fusing.row = (full, axes)
        fusing.fused += 1
        return True

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


def symbolic_axis(shape: tuple[int, ...]) -> int:
    """The dimension of ``shape`` a kernel built for every outermost size varies in: the outermost one whose size is
    not 1 (-1: none; see :mod:`tg.engine.symbolic`)."""
    return next((i for i, s in enumerate(shape) if s != 1), -1)


def create_schedule(outs: list[LazyBuffer], fuses_rows: Callable[[str], bool] | None = None) -> list[ScheduleItem]:
    """The kernels and copies, in order, that realize every buffer in ``outs``.  ``fuses_rows``: whether row fusion
    applies on a device (None: on every device)."""
    scheduler = Scheduler(fuses_rows)
    for lb in outs:
        scheduler.realize(lb)
    return scheduler.items

