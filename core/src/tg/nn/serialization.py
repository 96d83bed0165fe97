"""``tg.save`` and ``tg.load``, PyTorch's names for saving a state dict: tensors to a safetensors file (through
:mod:`tg.checkpoint`), never a pickle, which would run code when loaded."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tg import checkpoint
from tg.frontend.tensor import Tensor


def save(obj: Any, f: str | os.PathLike[str]) -> None:
    """Save a state dict (``model.state_dict()``) or a module's tensors to a safetensors file; an optimizer's state
    goes with ``tg.checkpoint.save(model, path, optimizer=opt)``.  tg saves tensors and never pickles (a pickle
    runs code when it is loaded)."""
    if not isinstance(obj, Mapping) and not hasattr(obj, "state_dict"):
        raise TypeError(f"tg.save saves tensors (a state dict or a module) to safetensors, not a {type(obj).__name__}: "
                        "tg never pickles objects. Fix: save model.state_dict(), and keep other values in JSON")
    checkpoint.save(obj, f)


def load(f: str | os.PathLike[str], map_location: str | None = None) -> dict[str, Tensor]:
    """The state dict saved by :func:`save` (name -> Tensor), on ``map_location`` (default: the default backend)."""
    arrays, _ = checkpoint.read(f)
    return {name: Tensor(array, device=map_location) for name, array in arrays.items()}
