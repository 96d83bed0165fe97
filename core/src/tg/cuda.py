"""``tg.cuda``: PyTorch's ``torch.cuda.is_available()`` idiom, so that a port chooses its device as it did.

The device ``"cuda"`` (or ``"cuda:0"``) is tg's ``ptx`` backend on this machine's NVIDIA GPU, and ``"cpu"`` is
``clang`` where it runs, else ``numpy``.  tg drives one GPU per process: choose which with
``CUDA_VISIBLE_DEVICES`` (under ``tg.distributed`` each rank takes its local one).
"""

from __future__ import annotations


def is_available() -> bool:
    """Whether the ``ptx`` backend can run on an NVIDIA GPU here (tg-ptx installed, a driver, a GPU)."""
    from tg.backends.selection import resolve
    from tg.support.errors import BackendError

    try:
        resolve("ptx")
    except BackendError:
        return False
    return True


def device_count() -> int:
    """GPUs this process can use: 1 when :func:`is_available`, else 0."""
    return int(is_available())
