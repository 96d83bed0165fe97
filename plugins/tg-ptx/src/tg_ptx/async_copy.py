"""cp.async: core's staging copies from global to shared memory as asynchronous copies (sm_80 and newer).

Core stages a tensor-core contraction's tiles through local memory; where the operand is contiguous, each thread
copies a vector: a ``LOAD`` of ``n`` elements from a global buffer whose lanes go, in order and nowhere else, into one
``STORE`` of a ``VECTORIZE`` to local memory.  :func:`plan` finds exactly that shape (4, 8 or 16 bytes; a gated load
only when its alternative is all zeros, the bits cp.async fills in); the emitter then renders nothing for the load,
its GEPs and the VECTORIZE, and the store as ``cp.async.ca.shared.global [dst], [src], n`` (``.cg`` for 16 bytes),
with ``src-size`` 0 where the gate is false (no global byte is read, the destination is zero-filled).  Moving the
global read from the load to the store is safe: a kernel never writes its input buffers (buffers do not alias).

The copies land in shared memory only at ``cp.async.wait_all``: the emitter puts one before the next ``bar.sync``
(core follows its staging with a BARRIER) and before any read of shared memory while copies are in flight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tg.codegen.uops import Ops, PtrDType, UOp, VecDType

from tg_ptx.writer import S32, offset_text

if TYPE_CHECKING:
    from tg_ptx.emitter import _Kernel

SIZES = (4, 8, 16)


@dataclass(frozen=True)
class Copy:
    load: UOp
    nbytes: int
    itemsize: int  # bytes per lane of the load's vector


@dataclass
class Plan:
    by_store: dict[int, Copy] = field(default_factory=dict)
    skip: set[int] = field(default_factory=set)  # the loads, GEPs and VECTORIZEs a copy replaces


def _local(buf: UOp) -> bool:
    return isinstance(buf.dtype, PtrDType) and buf.dtype.local


def _zero(u: UOp) -> bool:
    """A constant whose bits are all zero (0, False, +0.0; not -0.0)."""
    if u.op is not Ops.CONST or isinstance(u.arg, bool) and u.arg:
        return False
    return u.arg == 0 and not (isinstance(u.arg, float) and math.copysign(1.0, u.arg) < 0)


def plan(uops: list[UOp]) -> Plan:
    out = Plan()
    users: dict[int, list[UOp]] = {}
    for u in uops:
        for s in u.src:
            users.setdefault(id(s), []).append(u)
    for store in uops:
        if store.op is not Ops.STORE or len(store.src) != 3 or not _local(store.src[0]):
            continue
        vec = store.src[2]
        if (vec.op is not Ops.VECTORIZE or not isinstance(vec.dtype, VecDType) or users.get(id(vec)) != [store]
                or not vec.src):
            continue
        load = vec.src[0].src[0] if vec.src[0].op is Ops.GEP else None
        if load is None or load.op is not Ops.LOAD or _local(load.src[0]) or not isinstance(load.dtype, VecDType):
            continue
        geps = list(vec.src)
        if load.dtype.count != len(geps) or any(g.op is not Ops.GEP or g.src[0] is not load or g.arg != i
                                                for i, g in enumerate(geps)):
            continue
        if any(users.get(id(g)) != [vec] for g in geps) or len(users.get(id(load), [])) != len(geps):
            continue
        nbytes = load.dtype.count * load.dtype.base.itemsize
        if nbytes not in SIZES or load.dtype.base != vec.dtype.base:
            continue
        if len(load.src) > 2 and not (load.src[3].op is Ops.VECTORIZE and all(_zero(a) for a in load.src[3].src)):
            continue
        out.by_store[id(store)] = Copy(load, nbytes, load.dtype.base.itemsize)
        out.skip |= {id(load), id(vec), *(id(g) for g in geps)}
    return out


def render(k: _Kernel, store: UOp, copy: Copy) -> None:
    """One cp.async for ``store`` (of ``copy``): the destination in shared memory, the source the load's address."""
    w = k.w
    size = copy.itemsize
    dst, dst_off = k.address(store.src[0], store.src[1], size)
    src, src_off = k.address(copy.load.src[0], copy.load.src[1], size)
    cache = "cg" if copy.nbytes == 16 else "ca"  # .cg (L2 only) takes 16 bytes only
    tail = ""
    if len(copy.load.src) > 2:  # a false gate copies no byte and zero-fills the destination
        count = w.reg(S32)
        w.op(f"selp.s32 {count}, {copy.nbytes}, 0, {k.register(copy.load.src[2])}")
        tail = f", {count}"
    w.op(f"cp.async.{cache}.shared.global [{dst}{offset_text(dst_off)}], [{src}{offset_text(src_off)}], "
         f"{copy.nbytes}{tail}")
