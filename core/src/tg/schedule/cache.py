"""The schedule cache: a realize whose lazy graph has the structure of one scheduled before reuses that schedule.

An eager training step builds a graph of the same structure every step, and scheduling it (fusion decisions, kernel
trees, their structures) costs more Python than reading its structure does.  :func:`graph_key` walks the graph
under the buffers to realize down to realized buffers and leaves, numbering every base by first discovery, and
writes down for each what the scheduler's decisions depend on: realized or not, op, arg (an ALU/REDUCE/CAST arg;
a constant's exact value unless it is a launch parameter), dtype, device, shape, and every source as (its base's
number, the exact view through which it is read: the number ``ShapeTracker.key_id`` gives its tracker's key, equal
for equal views, hashed as one int).  Equal keys are isomorphic graphs, so the schedule made for one fits the other
when each kernel and copy is re-bound by number: its output, its inputs, and the constant bases
its scalar parameters come from (their values are read from the current graph, never the cached one).

What a hit never reuses: a buffer's contents or a constant compiled into a kernel (in the key), a parameter's value
(read now), a view (in the key), which nodes are realized (in the key: a buffer realized in between changes it).
Where a kernel compiled a Python float in as a value (past ``MAX_PARAMS``; the key has floats as parameters, not
values), the cached schedule keeps the exact value and a hit must find the same one there (else it is a miss, and
the new schedule replaces the old).  A schedule whose items name a buffer the walk did not number is not kept.
The scheduler's tuning constants and TG_FUSE_ROWS are part of the key; whether a device fuses rows follows its
backend's capabilities, fixed until ``reset_devices``, which clears this cache.  ``TG_SCHEDULE_CACHE=0`` turns the
cache off.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from tg.graph.lazy import LazyBuffer, LazyOp
from tg.schedule import scheduler
from tg.schedule.scheduler import HostCopy, Kernel, ScheduleItem
from tg.support.dtype import exact_key
from tg.support.helpers import getenv

#: Structures kept (the least recently used go first).
CACHE_MAX = 256
#: Whether realize consults the cache (TG_SCHEDULE_CACHE, read at import; tests switch it here).
enabled: bool = getenv("TG_SCHEDULE_CACHE", True)

_ARG_OPS = (LazyOp.ALU, LazyOp.REDUCE, LazyOp.CAST)
# key -> (items by number, guards: (number of a constant base, exact key of the value compiled in))
_cache: OrderedDict[tuple[Any, ...], tuple[list[tuple[Any, ...]], tuple[tuple[int, Any], ...]]] = OrderedDict()
stats = {"hits": 0, "misses": 0}
_lock = threading.Lock()  # realizes from several threads share the cache


def graph_key(outs: list[LazyBuffer]) -> tuple[tuple[Any, ...], dict[int, int], list[LazyBuffer]]:
    """The structure of the graph under ``outs`` (see the module's doc), the number of every base by ``id``, and
    the bases in number order."""
    index: dict[int, int] = {}
    nodes: list[LazyBuffer] = []
    roots = []
    for lb in outs:
        b = lb._base or lb
        i = index.get(id(b))
        if i is None:
            i = index[id(b)] = len(nodes)
            nodes.append(b)
        roots.append(i)
    entries: list[Any] = []
    for b in nodes:  # (the list grows as sources are found: every base is visited once, in number order)
        if b.realized is not None:
            entries.append((None, b.dtype.name, b.device, b.shape))
            continue
        srcs = []
        for s in b.srcs:
            sb = s._base or s
            i = index.get(id(sb))
            if i is None:
                i = index[id(sb)] = len(nodes)
                nodes.append(sb)
            srcs.append((i, s.st.key_id))
        op = b.op
        if op in _ARG_OPS:
            arg = b.arg
        elif op is LazyOp.CONST:
            arg = "param" if b.param else exact_key(b.arg)
        else:
            arg = None
        entries.append((op, b.dtype.name, b.device, b.shape, arg, tuple(srcs)))
    key = (scheduler.MAX_FUSED_OPS, scheduler.MAX_PARAMS, scheduler.RECOMPUTE_MIN_OPS,
           scheduler.RECOMPUTE_MIN_FACTOR, scheduler.ROW_FUSE_BYTES, scheduler.ROW_FUSE_MAX,
           getenv("TG_FUSE_ROWS", True), tuple(roots), tuple(entries))
    return key, index, nodes


def lookup(outs: list[LazyBuffer]) -> tuple[list[ScheduleItem] | None, Any]:
    """The schedule of ``outs`` from the cache (re-bound to this graph), else None and a token for :func:`store`."""
    key, index, nodes = graph_key(outs)
    with _lock:
        cached = _cache.get(key)
        if cached is None or (cached[1] and not _guards_hold(cached[1], nodes)):
            stats["misses"] += 1
            return None, (key, index)
        _cache.move_to_end(key)
        stats["hits"] += 1
    template = cached[0]
    items: list[ScheduleItem] = []
    for entry in template:
        if entry[0] is None:  # a copy: (None, output, source base or None)
            items.append(HostCopy(nodes[entry[1]], nodes[entry[2]] if entry[2] is not None else None))
        else:  # a kernel: (ast, output, inputs, parameter bases, structure, ready programs by device state)
            ast, out, inputs, param_bases, structure, ready = entry
            bases = [nodes[i] for i in param_bases]
            items.append(Kernel(ast, nodes[out], [nodes[i] for i in inputs], structure, [b.arg for b in bases],
                                bases, ready=ready))
    return items, None


def _guards_hold(guards: tuple[tuple[int, Any], ...], nodes: list[LazyBuffer]) -> bool:
    """Whether every float a cached schedule compiled in as a value is the one this graph holds."""
    return all(exact_key(nodes[i].arg) == value for i, value in guards)


def store(token: Any, items: list[ScheduleItem]) -> None:
    """Keep ``items``, the schedule just made for the graph ``token`` (from :func:`lookup`) describes."""
    key, index = token
    template: list[tuple[Any, ...]] = []
    guards: list[tuple[int, Any]] = []
    try:
        for item in items:
            if isinstance(item, HostCopy):
                source = item.source.base if item.source is not None else None
                template.append((None, index[id(item.output)], index[id(source)] if source is not None else None))
            else:
                guards += [(index[id(b)], exact_key(b.arg)) for b in item.baked_bases]
                template.append((item.ast, index[id(item.output)], tuple([index[id(b)] for b in item.inputs]),
                                 tuple([index[id(b)] for b in item.param_bases]), item.structure, {}))
    except KeyError:  # an item names a buffer the walk did not number: keep nothing
        return
    with _lock:
        _cache[key] = (template, tuple(guards))
        while len(_cache) > CACHE_MAX:
            _cache.popitem(last=False)


def clear() -> None:
    """Forget every cached schedule."""
    with _lock:
        _cache.clear()
