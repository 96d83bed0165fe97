"""The shared-memory instructions of the tensor-core path: ``ldmatrix`` and ``cp.async`` (semantics from the PTX ISA).

``ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{,.trans}.shared{,::cta}.b16 d, [p]`` is one instruction for a warp: it
reads ``count`` 8x8 matrices of 16-bit elements, each row 16 contiguous bytes at a 16-byte-aligned shared address.
Lane ``8 * j + r`` supplies the address of row ``r`` of matrix ``j`` (for ``.x1``/``.x2`` the addresses of lanes
8 and up / 16 and up are not used); register ``d[j]`` of lane ``l`` receives row ``l >> 2``, columns
``2 * (l & 3)`` and ``2 * (l & 3) + 1`` of matrix ``j`` (the lower column in the lower half), or, with ``.trans``,
rows ``2 * (l & 3)`` and ``2 * (l & 3) + 1`` of column ``l >> 2``.  Every thread of the warp must take part.

``cp.async.{ca,cg}.shared{,::cta}.global [dst], [src], cp-size{, src-size}`` copies ``cp-size`` (4, 8 or 16; ``.cg``
only 16) bytes from global to shared memory, the first ``src-size`` from ``src`` and zeros after them.  The copy is
asynchronous, and the emulator makes that visible: the source is read when the instruction runs, but the bytes reach
shared memory only when a wait of the issuing thread covers it: ``cp.async.commit_group`` closes the thread's
uncommitted copies into a group, ``cp.async.wait_group N`` completes all but the ``N`` most recent committed groups,
``cp.async.wait_all`` completes every copy.  Until then the destination is *in flight*: any shared-memory access to it
(``ld``, ``st``, ``ldmatrix``, another ``cp.async``) raises.  After the wait the bytes are the issuing thread's until
the next ``bar.sync`` of the block; another thread touching them before that raises too.  So a kernel that forgets
the wait, or the barrier after it, fails loudly here rather than computing with stale shared memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tg_ptx.emulator.context import Context, reader, writer
from tg_ptx.emulator.errors import EmulatorError
from tg_ptx.emulator.parser import Addr, Entry, Imm, Instruction, Reg, Sym, Vec
from tg_ptx.emulator.ptxtypes import TYPES

Run = Callable[[Context], None]
_FREE, _IN_FLIGHT, _UNSYNCED = 0, 1, 2


def _error(ins: Instruction, what: str) -> EmulatorError:
    return EmulatorError(f"instruction {ins.opcode}{''.join('.' + m for m in ins.mods)} {what}", ins.line, ins.text)


def _shared_address(ins: Instruction, op: Any, entry: Entry) -> Callable[[Context], np.ndarray]:
    """A ``[shared address]`` operand: a register (.u32 or .u64 offset into shared memory) or a .shared symbol."""
    if not isinstance(op, Addr):
        raise _error(ins, "needs an [address] operand")
    offset = op.offset
    if op.base is None:
        return lambda c: np.full(c.n, offset, np.int64)
    if isinstance(op.base, Sym):
        if op.base.name not in entry.shared:
            raise _error(ins, f"addresses {op.base.name}, which is not a .shared variable of this entry")
        base = entry.shared[op.base.name].offset + offset
        return lambda c: np.full(c.n, base, np.int64)
    wide = op.base.name in entry.registers and entry.registers[op.base.name].size == 8
    read = reader(op.base, TYPES["u64" if wide else "u32"], entry)
    return lambda c: np.asarray(read(c)).astype(np.int64) + offset


def _global_address(ins: Instruction, op: Any, entry: Entry) -> Callable[[Context], np.ndarray]:
    if not isinstance(op, Addr) or not isinstance(op.base, Reg):
        raise _error(ins, "needs a [register] global source address")
    read = reader(op.base, TYPES["u64"], entry)
    offset = np.uint64(op.offset % (1 << 64))
    return lambda c: np.asarray(read(c)).astype(np.uint64) + offset


# -- ldmatrix ------------------------------------------------------------------------------------------------


def ldmatrix(ins: Instruction, entry: Entry) -> Run:
    mods = list(ins.mods)
    trans = "trans" in mods
    count = next((int(m[1]) for m in mods if m in ("x1", "x2", "x4")), 0)
    space = next((m for m in mods if m in ("shared", "shared::cta")), "")
    if mods != ["sync", "aligned", "m8n8", f"x{count}", *(["trans"] if trans else []), space, "b16"] or not space:
        raise _error(ins, "is supported only as ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{,.trans}.shared{,::cta}.b16")
    if len(ins.operands) != 2:
        raise _error(ins, f"takes 2 operands, not {len(ins.operands)}")
    dest, addr_op = ins.operands
    regs = list(dest.items) if isinstance(dest, Vec) else [dest]
    if len(regs) != count:
        raise _error(ins, f"needs {count} destination register(s)")
    outs = [writer(r, TYPES["b32"], entry) for r in regs]
    address = _shared_address(ins, addr_op, entry)
    lane = np.arange(32)
    low_row, low_col = (2 * (lane & 3), lane >> 2) if trans else (lane >> 2, 2 * (lane & 3))
    high_row, high_col = (low_row + 1, low_col) if trans else (low_row, low_col + 1)

    def run(c: Context) -> None:
        if c.n % 32 or (c.mask is not None and not c.mask.all()):
            raise EmulatorError("ldmatrix.sync.aligned needs all 32 threads of every warp (a whole-warp block, no "
                                "guard or divergence)")
        warps = c.n // 32
        suppliers = (np.arange(warps)[:, None] * 32 + np.arange(8 * count)[None, :]).reshape(-1)
        rows = address(c)[suppliers]
        if (rows % 16).any():
            bad = int(rows[np.argmax(rows % 16 != 0)])
            raise EmulatorError(f"ldmatrix row address {bad} is not a multiple of 16 bytes")
        values = c.shared.load(c.block[suppliers], rows, np.dtype(np.uint16), 8, threads=suppliers)
        m = np.stack(values, axis=-1).reshape(warps, count, 8, 8).astype(np.uint32)  # [warp, matrix, row, col]
        for j, out in enumerate(outs):
            words = m[:, j, low_row, low_col] | (m[:, j, high_row, high_col] << np.uint32(16))
            out(c, words.reshape(c.n))
    return run


# -- cp.async ------------------------------------------------------------------------------------------------


@dataclass
class _Copy:
    """The copies one ``cp.async`` issued for some threads, not yet complete."""

    threads: np.ndarray  # thread index within the chunk
    blocks: np.ndarray
    offsets: np.ndarray  # destination in shared memory
    data: np.ndarray  # (threads, size) uint8
    group: np.ndarray  # the commit-group number each will belong to (the thread's commits so far)


class AsyncCopies:
    """Copies in flight and the per-byte state of shared memory they make (free / in flight / not yet synced)."""

    def __init__(self, n: int, blocks: int, nbytes: int):
        self.commits = np.zeros(n, np.int64)
        self.pending: list[_Copy] = []
        self.state = np.zeros((blocks, nbytes), np.int8)
        self.owner = np.full((blocks, nbytes), -1, np.int64)

    def check(self, blocks: np.ndarray, offsets: np.ndarray, width: int, threads: np.ndarray | None,
              what: str) -> None:
        """Raise if any thread's access touches bytes in flight, or bytes another thread's copy wrote since the last
        bar.sync (``threads`` None: the accessing threads are unknown, so any such byte is an error)."""
        if not offsets.size:
            return
        span = np.clip(offsets[:, None] + np.arange(width)[None, :], 0, self.state.shape[1] - 1)
        state = self.state[blocks[:, None], span]
        if (state == _IN_FLIGHT).any():
            k = int(np.argmax((state == _IN_FLIGHT).any(axis=1)))
            raise EmulatorError(f"shared-memory {what} at offset {int(offsets[k])} touches bytes a cp.async is still "
                                "copying: no cp.async.wait_group / wait_all of the issuing thread covers that copy yet")
        unsynced = state == _UNSYNCED
        if unsynced.any():
            owners = self.owner[blocks[:, None], span]
            foreign = unsynced if threads is None else unsynced & (owners != threads[:, None])
            if foreign.any():
                k = int(np.argmax(foreign.any(axis=1)))
                raise EmulatorError(f"shared-memory {what} at offset {int(offsets[k])} touches bytes another thread's "
                                    "cp.async wrote after the last bar.sync: its wait makes them visible to that "
                                    "thread only, a bar.sync after the wait makes them visible to the block")

    def issue(self, copy: _Copy) -> None:
        self.check(copy.blocks, copy.offsets, copy.data.shape[1], None, "cp.async destination")
        span = copy.offsets[:, None] + np.arange(copy.data.shape[1])[None, :]
        if np.unique(copy.blocks[:, None] * self.state.shape[1] + span).size != span.size:
            raise EmulatorError("cp.async destinations of two threads overlap")
        self.state[copy.blocks[:, None], span] = _IN_FLIGHT
        self.pending.append(copy)

    def commit(self, threads: np.ndarray) -> None:
        self.commits[threads] += 1

    def wait(self, threads: np.ndarray, keep: int, data: np.ndarray) -> None:
        """Complete, for ``threads``, every copy of a committed group older than their ``keep`` most recent ones."""
        limit = np.full(self.commits.size, -1, np.int64)  # copies with group < limit complete
        limit[threads] = self.commits[threads] - keep
        still: list[_Copy] = []
        for p in self.pending:
            done = p.group < limit[p.threads]
            if done.any():
                blocks, offsets, rows = p.blocks[done], p.offsets[done], p.data[done]
                span = offsets[:, None] + np.arange(rows.shape[1])[None, :]
                data[blocks[:, None], span] = rows
                self.state[blocks[:, None], span] = _UNSYNCED
                self.owner[blocks[:, None], span] = p.threads[done][:, None]
            if not done.all():
                rest = ~done
                still.append(_Copy(p.threads[rest], p.blocks[rest], p.offsets[rest], p.data[rest], p.group[rest]))
        self.pending = still

    def synchronize(self, blocks: np.ndarray) -> None:
        """``bar.sync`` of ``blocks``: bytes completed copies wrote become visible to all their threads."""
        rows = self.state[blocks]
        rows[rows == _UNSYNCED] = _FREE
        self.state[blocks] = rows


def _copies(c: Context) -> AsyncCopies:
    if c.shared.copies is None:
        c.shared.copies = AsyncCopies(c.n, c.shared.data.shape[0], c.shared.nbytes)
    return c.shared.copies


def _active(c: Context) -> np.ndarray:
    return np.arange(c.n) if c.mask is None else np.nonzero(c.mask)[0]


def cp(ins: Instruction, entry: Entry) -> Run:
    mods = list(ins.mods)
    if mods == ["async", "commit_group"] and not ins.operands:
        return lambda c: _copies(c).commit(_active(c))
    if mods == ["async", "wait_all"] and not ins.operands:
        def wait_all(c: Context) -> None:
            copies, threads = _copies(c), _active(c)
            copies.commit(threads)
            copies.wait(threads, 0, c.shared.data)
        return wait_all
    if mods == ["async", "wait_group"]:
        if len(ins.operands) != 1 or not isinstance(ins.operands[0], Imm):
            raise _error(ins, "takes one immediate: the number of most recent groups that may stay pending")
        keep = int(ins.operands[0].text, 0)
        return lambda c: _copies(c).wait(_active(c), keep, c.shared.data)
    if len(mods) != 4 or mods[0] != "async" or mods[1] not in ("ca", "cg") or mods[2] not in ("shared", "shared::cta") \
            or mods[3] != "global":
        raise _error(ins, "is supported only as cp.async.{ca,cg}.shared{,::cta}.global, cp.async.commit_group, "
                          "cp.async.wait_group N and cp.async.wait_all")
    return _copy(ins, entry, mods[1] == "cg")


def _copy(ins: Instruction, entry: Entry, cg: bool) -> Run:
    if len(ins.operands) not in (3, 4):
        raise _error(ins, "takes [dst], [src], cp-size and an optional src-size")
    dst_op, src_op, size_op = ins.operands[:3]
    if not isinstance(size_op, Imm) or int(size_op.text, 0) not in (4, 8, 16):
        raise _error(ins, "needs a cp-size of 4, 8 or 16 bytes")
    size = int(size_op.text, 0)
    if cg and size != 16:
        raise _error(ins, "(.cg) needs a cp-size of 16 bytes")
    src_size = reader(ins.operands[3], TYPES["u32"], entry) if len(ins.operands) == 4 else None
    dst, src = _shared_address(ins, dst_op, entry), _global_address(ins, src_op, entry)

    def run(c: Context) -> None:
        threads = _active(c)
        where, source = dst(c)[threads], src(c)[threads]
        copies = _copies(c)
        c.shared.check_range(where, size, "cp.async destination")
        if (where % size).any():
            raise EmulatorError(f"misaligned cp.async: a shared destination is not a multiple of {size}")
        wanted = np.full(threads.size, size, np.int64) if src_size is None else \
            np.broadcast_to(np.asarray(src_size(c)), (c.n,))[threads].astype(np.int64)
        if (wanted > size).any():
            raise EmulatorError(f"cp.async src-size {int(wanted.max())} exceeds its cp-size {size} (undefined)")
        data = np.zeros((threads.size, size), np.uint8)
        full = wanted == size
        if full.any():
            words = c.memory.load(source[full], np.dtype(np.uint32), size // 4)
            data[full] = np.stack(words, axis=-1).view(np.uint8).reshape(-1, size)
        part = (wanted > 0) & ~full
        if part.any():
            if (source[part] % np.uint64(size)).any():
                raise EmulatorError(f"misaligned cp.async: a global source is not a multiple of {size}")
            rows = np.nonzero(part)[0]
            for k in range(int(wanted[part].max())):
                take = rows[wanted[rows] > k]
                data[take, k] = c.memory.load(source[take] + np.uint64(k), np.dtype(np.uint8), 1)[0]
        copies.issue(_Copy(threads, c.block[threads], where, data, copies.commits[threads].copy()))
    return run
