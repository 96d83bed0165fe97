"""Host memory for the ``clang`` runtime: 64-byte aligned buffers, and freed ones kept for reuse.

A training step frees and allocates buffers of the same sizes every time.  Handed back to ``malloc``, the large
ones (hundreds of KiB) let glibc shrink its heap at the end of a step and grow it again in the next, and every page
of the regrown heap is faulted in and zeroed by the kernel when a kernel first writes it: ~500 page faults and
~0.5 ms per step of a small MLP.  :class:`BufferCache` keeps freed buffers (up to ``CACHE_BYTES`` in all, the
oldest sizes dropped first) and hands one back for an allocation of the same size.  A buffer's contents are
undefined after ``alloc`` either way.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

#: Bytes of freed buffers kept for reuse at most.
CACHE_BYTES = 256 << 20
ALIGNMENT = 64


@dataclass
class HostBuffer:
    """A buffer in host memory: the numpy array the kernel works on, its address, and the address as the ctypes
    object a launch passes (made once: converting an int on every call costs more than the call)."""

    array: np.ndarray
    ptr: int
    arg: ctypes.c_void_p | None = None

    def __post_init__(self) -> None:
        if self.arg is None:
            self.arg = ctypes.c_void_p(self.ptr)


def new_buffer(nbytes: int) -> HostBuffer:
    """A fresh ``nbytes`` buffer aligned to ``ALIGNMENT`` bytes."""
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    offset = (-raw.ctypes.data) % ALIGNMENT
    array = raw[offset:offset + nbytes]
    return HostBuffer(array, array.ctypes.data)


class BufferCache:
    """Freed buffers by size, for reuse: ``take`` one of a size (or None), ``give`` one back."""

    def __init__(self, limit: int = CACHE_BYTES):
        self.limit = limit
        self.cached = 0  # bytes held
        self._free: dict[int, list[HostBuffer]] = {}  # size -> buffers; sizes in the order they were first freed
        # Reentrant: a garbage collection that runs while the lock is held may free a buffer on the same thread.
        self._lock = threading.RLock()

    def take(self, nbytes: int) -> HostBuffer | None:
        with self._lock:
            buffers = self._free.get(nbytes)
            if not buffers:
                return None
            buffer = buffers.pop()  # the most recently freed: the likeliest still in the CPU's caches
            if not buffers:
                del self._free[nbytes]
            self.cached -= nbytes
            return buffer

    def give(self, buffer: HostBuffer) -> None:
        nbytes = buffer.array.nbytes
        if nbytes > self.limit:
            return
        with self._lock:
            self._free.setdefault(nbytes, []).append(buffer)
            self.cached += nbytes
            while self.cached > self.limit:  # drop the buffers of the sizes freed longest ago
                size, buffers = next(iter(self._free.items()))
                buffers.pop(0)
                if not buffers:
                    del self._free[size]
                self.cached -= size

    def clear(self) -> None:
        with self._lock:
            self._free.clear()
            self.cached = 0
