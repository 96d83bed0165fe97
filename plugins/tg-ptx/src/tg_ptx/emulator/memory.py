"""Memory for the emulator: global buffers at fake 64-bit addresses, and per-block shared memory.

Every access is checked the way a GPU would fault: an address outside every live buffer, or one not
aligned to the access size (a whole vector for ``.v2``/``.v4``), raises an error naming the thread and
the address.  This is what proves that a masked load never touches memory outside its buffer.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import numpy as np

from tg_ptx.emulator.errors import EmulatorError

_BASE = 0x7F00_0000_0000  # where the first buffer lives (an address a real GPU heap could have)
_ALIGN = 256  # cudaMalloc's alignment
_GAP = 1 << 16  # unmapped bytes between buffers, so an overrun is caught rather than hitting a neighbour


@dataclass
class Allocation:
    address: int
    nbytes: int
    data: np.ndarray  # uint8, padded to a multiple of 16 bytes so every access width can view it


class GlobalMemory:
    """The emulated device's global memory: allocate, free, read and write by address."""

    def __init__(self) -> None:
        self.next_address = _BASE
        self.starts: list[int] = []
        self.allocations: dict[int, Allocation] = {}

    def alloc(self, nbytes: int) -> Allocation:
        address = self.next_address
        self.next_address += -(-(nbytes + _GAP) // _ALIGN) * _ALIGN
        a = Allocation(address, nbytes, np.zeros(-(-max(nbytes, 1) // 16) * 16, dtype=np.uint8))
        bisect.insort(self.starts, address)
        self.allocations[address] = a
        return a

    def free(self, allocation: Allocation) -> None:
        if self.allocations.pop(allocation.address, None) is not None:
            self.starts.remove(allocation.address)

    def _locate(self, addresses: np.ndarray, width: int, what: str) -> tuple[Allocation, np.ndarray]:
        """The one allocation holding every address (each ``width`` bytes) and the byte offsets into it."""
        lo, hi = int(addresses.min()), int(addresses.max())
        i = bisect.bisect_right(self.starts, lo) - 1
        if i >= 0:
            a = self.allocations[self.starts[i]]
            if lo >= a.address and hi + width <= a.address + a.nbytes:
                return a, addresses.view(np.int64) - a.address  # addresses stay below 2^63
        bad = self._first_bad(addresses, width)
        raise EmulatorError(f"{what} of {width} bytes at address {bad:#x}, outside every buffer"
                            + self._nearest(bad))

    def _first_bad(self, addresses: np.ndarray, width: int) -> int:
        for addr in addresses.tolist():
            i = bisect.bisect_right(self.starts, addr) - 1
            if i < 0:
                return int(addr)
            a = self.allocations[self.starts[i]]
            if addr + width > a.address + a.nbytes:
                return int(addr)
        return int(addresses[0])  # the addresses span several buffers: one access each is fine

    def _nearest(self, addr: int) -> str:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0:
            return ""
        a = self.allocations[self.starts[i]]
        return f" (the buffer at {a.address:#x} has {a.nbytes} bytes; this is byte {addr - a.address})"

    def _groups(self, addresses: np.ndarray, width: int,
                what: str) -> list[tuple[np.ndarray | None, Allocation, np.ndarray]]:
        """Split accesses by buffer: (positions, allocation, offsets) per buffer touched (positions None: all)."""
        try:
            a, offsets = self._locate(addresses, width, what)
            return [(None, a, offsets)]
        except EmulatorError:
            if len(self.starts) < 2:
                raise
        starts = np.asarray(self.starts, dtype=np.uint64)
        which = np.searchsorted(starts, addresses, side="right") - 1
        groups: list[tuple[np.ndarray | None, Allocation, np.ndarray]] = []
        for w in np.unique(which):
            pos = np.nonzero(which == w)[0]
            a, offsets = self._locate(addresses[pos], width, what)
            groups.append((pos, a, offsets))
        return groups

    def load(self, addresses: np.ndarray, dtype: np.dtype[Any], count: int) -> list[np.ndarray]:
        """``count`` consecutive values of ``dtype`` at each address (one array per vector lane)."""
        width = dtype.itemsize * count
        _check_alignment(addresses, width, "load")
        groups = self._groups(addresses, width, "load")
        if len(groups) == 1:  # the common case: one buffer, no scatter needed
            _, a, offsets = groups[0]
            view = a.data.view(dtype)
            index = offsets // dtype.itemsize
            return [view[index + k] if k else view[index] for k in range(count)]
        out = [np.zeros(addresses.size, dtype=dtype) for _ in range(count)]
        for pos, a, offsets in groups:
            view = a.data.view(dtype)
            index = offsets // dtype.itemsize
            for k in range(count):
                out[k][pos if pos is not None else slice(None)] = view[index + k]
        return out

    def store(self, addresses: np.ndarray, values: list[np.ndarray], dtype: np.dtype[Any]) -> None:
        width = dtype.itemsize * len(values)
        _check_alignment(addresses, width, "store")
        for pos, a, offsets in self._groups(addresses, width, "store"):
            view = a.data.view(dtype)
            index = offsets // dtype.itemsize
            for k, v in enumerate(values):
                view[index + k] = v if pos is None else v[pos]


def _check_alignment(addresses: np.ndarray, width: int, what: str) -> None:
    if width & (width - 1) == 0:  # a power of two: one OR over all addresses shows any low bit set
        if not int(np.bitwise_or.reduce(addresses, initial=np.uint64(0))) & (width - 1):
            return
    elif not (addresses % np.uint64(width)).any():
        return
    misaligned = addresses % np.uint64(width) != 0
    if misaligned.any():
        bad = int(addresses[np.argmax(misaligned)])
        raise EmulatorError(f"misaligned {what}: address {bad:#x} is not a multiple of the access size {width}")


class SharedMemory:
    """``.shared`` memory: one zero-filled window of ``nbytes`` per block of the launch chunk.

    ``copies`` tracks ``cp.async`` copies (see :mod:`.sharedops`) once a kernel issues one; every load and store
    then checks that it touches no byte still in flight, nor one another thread's copy wrote since the last barrier.
    """

    def __init__(self, blocks: int, nbytes: int):
        self.nbytes = nbytes
        self.data = np.zeros((blocks, -(-max(nbytes, 1) // 16) * 16), dtype=np.uint8)
        self.copies: Any = None  # a sharedops.AsyncCopies after the first cp.async

    def check_range(self, offsets: np.ndarray, width: int, what: str) -> None:
        if offsets.size and (int(offsets.min()) < 0 or int(offsets.max()) + width > self.nbytes):
            bad = int(offsets[(offsets < 0) | (offsets + width > self.nbytes)][0])
            raise EmulatorError(f"shared-memory {what} of {width} bytes at offset {bad}, outside the "
                                f"{self.nbytes} bytes this kernel declares")

    def _check(self, blocks: np.ndarray, offsets: np.ndarray, width: int, what: str,
               threads: np.ndarray | None) -> None:
        self.check_range(offsets, width, what)
        if (offsets % width).any():
            raise EmulatorError(f"misaligned shared-memory {what}: an offset is not a multiple of {width}")
        if self.copies is not None:
            self.copies.check(blocks, offsets, width, np.arange(offsets.size) if threads is None else threads, what)

    def load(self, blocks: np.ndarray, offsets: np.ndarray, dtype: np.dtype[Any], count: int,
             threads: np.ndarray | None = None) -> list[np.ndarray]:
        """``count`` values of ``dtype`` at each offset; ``threads`` are the reading threads (None: thread i reads
        ``offsets[i]``)."""
        self._check(blocks, offsets, dtype.itemsize * count, "load", threads)
        view = self.data.view(dtype)
        index = offsets // dtype.itemsize
        return [view[blocks, index + k] for k in range(count)]

    def store(self, blocks: np.ndarray, offsets: np.ndarray, values: list[np.ndarray], dtype: np.dtype[Any],
              threads: np.ndarray | None = None) -> None:
        self._check(blocks, offsets, dtype.itemsize * len(values), "store", threads)
        view = self.data.view(dtype)
        index = offsets // dtype.itemsize
        for k, v in enumerate(values):
            view[blocks, index + k] = v
