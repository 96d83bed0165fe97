"""Rank 0 alone logs and writes checkpoints: :func:`print0` and :func:`save_checkpoint`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tg import checkpoint
from tg.distributed import group as G


def print0(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only (flushed: several processes share one terminal)."""
    if G.get_rank() == 0:
        print(*args, **{"flush": True, **kwargs})


def save_checkpoint(obj: Any, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
                    ) -> Path | None:
    """Rank 0 writes ``obj``'s checkpoint (see :func:`tg.checkpoint.save`), then every rank waits for it (a
    barrier, when initialised), so that any rank may read it afterwards.  Returns the path on rank 0, else
    None."""
    written = checkpoint.save(obj, path, metadata) if G.get_rank() == 0 else None
    if G.is_initialized():
        G.barrier()
    return written
