"""The device's flat 64-bit address space: numpy-backed allocations, bounds-checked gathers/scatters.

Allocations sit at 16-byte aligned addresses above 4 GiB with unmapped gaps between them, so an
address that is not inside an allocation (a missing offset, a wrong stride) is an error, never a
silent read of a neighbour.
"""

from __future__ import annotations

import bisect

import numpy as np

from tg_rdna.emulator.errors import EmulatorError

_BASE = 1 << 32
_GAP = 1 << 16


class Memory:
    """Device memory for :meth:`CodeObject.launch`: ``allocate``/``write``/``read``/``free``."""

    def __init__(self) -> None:
        self._bases: list[int] = []
        self._arrays: dict[int, np.ndarray] = {}
        self._next = _BASE
        self._table: tuple[np.ndarray, np.ndarray] | None = None  # bases and sizes as arrays, for _locate

    def allocate(self, nbytes: int) -> int:
        if nbytes < 0:
            raise EmulatorError(f"cannot allocate {nbytes} bytes")
        addr = self._next
        self._next = (addr + max(nbytes, 1) + _GAP + 255) & ~255
        bisect.insort(self._bases, addr)
        self._arrays[addr] = np.zeros(nbytes, dtype=np.uint8)
        self._table = None
        return addr

    def free(self, addr: int) -> None:
        if addr not in self._arrays:
            raise EmulatorError(f"free of 0x{addr:x}, which is not an allocation")
        del self._arrays[addr]
        self._bases.remove(addr)
        self._table = None

    def _find(self, addr: int, nbytes: int) -> tuple[np.ndarray, int]:
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            base = self._bases[i]
            arr = self._arrays[base]
            if addr + nbytes <= base + arr.size:
                return arr, addr - base
        raise EmulatorError(f"host access to [0x{addr:x}, 0x{addr + nbytes:x}) is outside every allocation")

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        raw = np.frombuffer(bytes(data), dtype=np.uint8)
        arr, off = self._find(addr, raw.size)
        arr[off:off + raw.size] = raw

    def read(self, addr: int, nbytes: int) -> bytes:
        arr, off = self._find(addr, nbytes)
        return arr[off:off + nbytes].tobytes()

    # ---- vectorized device accesses -------------------------------------------------------------
    def _locate(self, addrs: np.ndarray, nbytes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
        """Allocation index and offset of every address; an error for any out-of-bounds access."""
        if self._table is None:
            self._table = (np.asarray(self._bases, dtype=np.uint64),
                           np.asarray([self._arrays[b].size for b in self._bases], dtype=np.uint64))
        bases, sizes = self._table
        idx = np.searchsorted(bases, addrs, side="right").astype(np.int64) - 1
        ok = idx >= 0
        safe = np.where(ok, idx, 0)
        if bases.size:
            off = addrs - bases[safe]
            ok &= off + np.uint64(nbytes) <= sizes[safe]
        else:
            off = addrs
            ok[:] = False
        if not ok.all():
            bad = int(addrs[~ok][0])
            raise EmulatorError(f"{what} of {nbytes} bytes at 0x{bad:x} is outside every allocation")
        return safe, off.astype(np.int64)

    def _within_one(self, addrs: np.ndarray, nbytes: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The usual case, checked from the lowest and highest address alone: every access inside one allocation
        (its array, and each address's offset in it); None otherwise."""
        low, high = int(addrs.min()), int(addrs.max())
        i = bisect.bisect_right(self._bases, low) - 1
        if i < 0:
            return None
        base = self._bases[i]
        arr = self._arrays[base]
        if high + nbytes > base + arr.size:
            return None
        return arr, (addrs - np.uint64(base)).astype(np.int64)

    def gather(self, addrs: np.ndarray, nbytes: int, what: str) -> np.ndarray:
        """Bytes at each address: a (n, nbytes) uint8 array."""
        out = np.empty((addrs.size, nbytes), dtype=np.uint8)
        if addrs.size == 0:
            return out
        one = self._within_one(addrs, nbytes)
        if one is not None:
            arr, off = one
            return arr[off[:, None] + np.arange(nbytes, dtype=np.int64)]
        idx, off = self._locate(addrs, nbytes, what)
        cols = np.arange(nbytes, dtype=np.int64)
        if idx.min() == idx.max():  # the usual case: one buffer
            return self._arrays[self._bases[int(idx[0])]][off[:, None] + cols]
        for k in np.unique(idx):
            sel = idx == k
            out[sel] = self._arrays[self._bases[int(k)]][off[sel][:, None] + cols]
        return out

    def scatter(self, addrs: np.ndarray, data: np.ndarray, what: str) -> None:
        """Store row i of ``data`` (n, nbytes) uint8 at ``addrs[i]`` (later rows win on overlap)."""
        if addrs.size == 0:
            return
        nbytes = data.shape[1]
        one = self._within_one(addrs, nbytes)
        if one is not None:
            arr, off = one
            arr[off[:, None] + np.arange(nbytes, dtype=np.int64)] = data
            return
        idx, off = self._locate(addrs, nbytes, what)
        cols = np.arange(nbytes, dtype=np.int64)
        if idx.min() == idx.max():
            self._arrays[self._bases[int(idx[0])]][off[:, None] + cols] = data
            return
        for k in np.unique(idx):
            sel = idx == k
            self._arrays[self._bases[int(k)]][off[sel][:, None] + cols] = data[sel]
