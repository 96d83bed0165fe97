"""The scheduled kernel's expression tree as lowering sees it: its nodes and views, its row-fused reductions, and
the merged shape (adjacent dimensions that every view walks as one become one dimension)."""

from __future__ import annotations

from tg.graph.shapetracker import Shape, ShapeTracker
from tg.schedule.scheduler import KNode


def all_trackers(node: KNode, out: list[ShapeTracker]) -> list[ShapeTracker]:
    """The views of every load and constant under ``node`` (a shared subtree's once), appended to ``out``."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.op in ("LOAD", "CONST"):
            out.append(n.arg[1])
        stack.extend(reversed(n.src))
    return out


def indexed_trackers(node: KNode, out: list[ShapeTracker]) -> list[ShapeTracker]:
    """The views through which the loads and the masked constants under ``node`` index (a constant without a mask
    reads nothing), appended to ``out``."""
    return out + [n.arg[1] for n in nodes(node) if n.op == "LOAD" or (n.op == "CONST" and n.arg[1].has_mask)]


def nodes(node: KNode) -> list[KNode]:
    """Every node under ``node`` once."""
    seen: set[int] = set()
    stack, out = [node], []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        out.append(n)
        stack.extend(reversed(n.src))
    return out


def merge_dims(shape: Shape, reduce_axes: set[int], trackers: list[ShapeTracker], alone: int = -1
               ) -> list[tuple[int, ...]]:
    """Groups of adjacent axes that every tracker walks as one (same kind: all reduced or none); axis ``alone``
    (the symbolic one, all axes outside it of size 1) and those outside it make the first group, alone."""
    groups: list[list[int]] = [list(range(max(0, alone) + 1))] if shape else []
    for i in range(max(0, alone) + 1, len(shape)):
        prev = groups[-1][-1]
        ok = (prev in reduce_axes) == (i in reduce_axes) and alone not in (prev, i)
        for st in trackers:
            v = st.views[-1]
            if not ok:
                break
            if v.strides[prev] != v.strides[i] * shape[i]:
                ok = False
            elif v.mask is not None and (v.mask[prev] != (0, shape[prev]) or v.mask[i] != (0, shape[i])):
                ok = False
        if ok:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [tuple(g) for g in groups]


def reshape_node(node: KNode, shape: Shape, memo: dict[int, KNode]) -> KNode:
    """``node``'s tree with every view reshaped to ``shape`` (sources before the nodes that use them)."""
    stack = [node]
    while stack:
        n = stack[-1]
        if id(n) in memo:
            stack.pop()
        elif n.op in ("LOAD", "CONST"):
            memo[id(n)] = KNode(n.op, n.dtype, (), (n.arg[0], n.arg[1].reshape(shape)))
            stack.pop()
        elif any(id(s) not in memo for s in n.src):
            stack.extend(s for s in n.src if id(s) not in memo)
        else:
            memo[id(n)] = KNode(n.op, n.dtype, tuple(memo[id(s)] for s in n.src), n.arg)
            stack.pop()
    return memo[id(node)]


def fused_reductions(body: KNode) -> list[KNode]:
    """The REDUCE nodes in ``body`` (row fusion), each after the ones in its own source."""
    order: list[KNode] = []
    seen: set[int] = set()
    stack: list[tuple[KNode, bool]] = [(body, False)]
    while stack:
        n, expanded = stack.pop()
        if expanded:
            if n.op == "REDUCE":
                order.append(n)
            continue
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.append((n, True))
        stack.extend((s, False) for s in reversed(n.src))
    return order


def node_shape(node: KNode, default: Shape) -> Shape:
    """The shape of the first load or constant down the first sources (``default`` when there is none)."""
    while node.op not in ("LOAD", "CONST"):
        if not node.src:
            return default
        node = node.src[0]
    return node.arg[1].shape
