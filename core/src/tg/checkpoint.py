"""Checkpoints in the safetensors format: save a model's state dict, load it back all-or-nothing.

``save(model, path)`` writes every tensor of ``model.state_dict()`` (or of any object, see
:mod:`tg.nn.state`) with a SHA-256 of the tensor data in the file's metadata, to a temporary file that is
then renamed, so an interrupted save never leaves a half-written checkpoint under ``path``.
``load(model, path)`` reads and checks the whole file first (a truncated or corrupt file, or a checksum
that does not match, raises :class:`CheckpointError` naming the file), then checks names and shapes
against the model (:class:`tg.nn.StateDictError` lists every missing, unexpected and mis-shaped
tensor), and only then assigns: a failed load leaves the model as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tg.frontend.tensor import Tensor
from tg.nn.state import StateDictError, get_state_dict, load_state_dict
from tg.support.errors import TgError

CHECKSUM_KEY = "tg.sha256"


class CheckpointError(TgError, ValueError):
    """A checkpoint file cannot be read: missing pieces, not safetensors, or its data is corrupt."""


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.array(arrays[name], order="C")
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _arrays(obj: Any) -> dict[str, np.ndarray]:
    if isinstance(obj, Mapping):
        items = obj.items()
    else:
        items = get_state_dict(obj).items()
    return {name: np.array(v.numpy() if isinstance(v, Tensor) else v, order="C") for name, v in items}


def save(obj: Any, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the tensors of ``obj`` (a module, any object holding tensors, or a name -> array mapping).

    ``metadata`` is stored in the header (as text: values go through ``str``) beside the checksum.  Returns the
    path written.
    """
    from safetensors.numpy import save_file

    target = Path(path)
    arrays = _arrays(obj)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta[CHECKSUM_KEY] = _digest(arrays)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        save_file(arrays, str(tmp), metadata=meta)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor in the file (as numpy arrays, fully read) and its metadata; checks the checksum if present."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    try:
        with safe_open(str(p), framework="np") as f:
            metadata = dict(f.metadata() or {})
            arrays = {name: np.array(f.get_tensor(name)) for name in f.keys()}
    except Exception as exc:  # safetensors raises its own error types, and OSError/ValueError for bad bytes
        raise CheckpointError(f"cannot read checkpoint {p}: it is truncated, corrupt or not a safetensors "
                              f"file ({type(exc).__name__}: {exc})") from exc
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and _digest(arrays) != expected:
        raise CheckpointError(f"checkpoint {p} is corrupt: its tensor data does not match the checksum stored "
                              "when it was saved")
    return arrays, metadata


def load(obj: Any, path: str | os.PathLike[str], strict: bool = True) -> dict[str, str]:
    """Load the file into the tensors of ``obj``, all or nothing; returns the file's metadata.

    ``strict=False`` ignores missing and unexpected names (shapes must still match).
    """
    arrays, metadata = read(path)
    load_state_dict(obj, arrays, strict=strict, source=f"checkpoint {Path(path)}")
    return metadata


__all__ = ["CHECKSUM_KEY", "CheckpointError", "StateDictError", "load", "read", "save"]
