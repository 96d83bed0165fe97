"""Checkpoints in the safetensors format: save a model's state dict, load it back all-or-nothing.

``save(model, path)`` writes every tensor of ``model.state_dict()`` (or of any object, see
:mod:`tg.nn.state`) with a SHA-256 of the tensor data in the file's metadata, to a temporary file that is
then renamed, so an interrupted save never leaves a half-written checkpoint under ``path``.
``load(model, path)`` reads and checks the whole file first (a truncated or corrupt file, or a checksum
that does not match, raises :class:`CheckpointError` naming the file), then checks names and shapes
against the model (:class:`tg.nn.StateDictError` lists every missing, unexpected and mis-shaped
tensor), and only then assigns: a failed load leaves the model as it was.

``save(model, path, optimizer=opt)`` also stores the optimizer's state (its tensors under
``optimizer/<parameter index>/<name>``, its parameter groups' options as JSON in the metadata), and
``load(model, path, optimizer=opt)`` restores both, checking the optimizer's part before anything changes.
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
OPTIMIZER_KEY = "tg.optimizer"  # metadata: the optimizer's type and parameter groups, as JSON
OPTIMIZER_PREFIX = "optimizer/"  # tensor names of the optimizer's state


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


def _optimizer_part(optimizer: Any) -> tuple[dict[str, np.ndarray], str]:
    state = optimizer.state_dict()
    arrays = {f"{OPTIMIZER_PREFIX}{i}/{name}": np.array(v.numpy() if isinstance(v, Tensor) else v, order="C")
              for i, entries in state["state"].items() for name, v in entries.items()}
    try:
        groups = json.dumps({"type": type(optimizer).__name__, "param_groups": state["param_groups"]})
    except TypeError as exc:
        raise TypeError(f"cannot save the optimizer's parameter groups in a checkpoint: {exc} (options must be "
                        "numbers, strings, bools, lists or None)") from None
    return arrays, groups


def _optimizer_state(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str], optimizer: Any,
                     path: Path) -> dict[str, Any]:
    if OPTIMIZER_KEY not in metadata:
        raise CheckpointError(f"checkpoint {path} holds no optimizer state (save it with save(..., optimizer=opt))")
    saved = json.loads(metadata[OPTIMIZER_KEY])
    if saved["type"] != type(optimizer).__name__:
        raise CheckpointError(f"checkpoint {path} holds the state of a {saved['type']} optimizer, not of a "
                              f"{type(optimizer).__name__}")
    state: dict[int, dict[str, np.ndarray]] = {}
    for name, array in arrays.items():
        index, entry = name[len(OPTIMIZER_PREFIX):].split("/", 1)
        state.setdefault(int(index), {})[entry] = array
    return {"state": state, "param_groups": saved["param_groups"]}


def save(obj: Any, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None,
         optimizer: Any = None) -> Path:
    """Write the tensors of ``obj`` (a module, any object holding tensors, or a name -> array mapping).

    ``metadata`` is stored in the header (as text: values go through ``str``) beside the checksum; ``optimizer`` (a
    :class:`tg.optim.Optimizer`) saves its state too.  Returns the path written.
    """
    from safetensors.numpy import save_file

    target = Path(path)
    arrays = _arrays(obj)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    if optimizer is not None:
        clash = [n for n in arrays if n.startswith(OPTIMIZER_PREFIX)]
        if clash:
            raise ValueError(f"cannot save an optimizer beside tensors named {clash[0]!r}: names starting with "
                             f"{OPTIMIZER_PREFIX!r} hold the optimizer's state")
        extra, meta[OPTIMIZER_KEY] = _optimizer_part(optimizer)
        arrays.update(extra)
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


def load(obj: Any, path: str | os.PathLike[str], strict: bool = True, optimizer: Any = None) -> dict[str, str]:
    """Load the file into the tensors of ``obj``, all or nothing; returns the file's metadata.

    ``strict=False`` ignores missing and unexpected names (shapes must still match).  ``optimizer`` loads the
    optimizer state saved with the model (an error if there is none); without it that state is ignored.
    """
    arrays, metadata = read(path)
    model = {n: a for n, a in arrays.items() if not n.startswith(OPTIMIZER_PREFIX)}
    opt_state = None
    if optimizer is not None:
        opt_arrays = {n: a for n, a in arrays.items() if n.startswith(OPTIMIZER_PREFIX)}
        opt_state = _optimizer_state(opt_arrays, metadata, optimizer, Path(path))
        optimizer.check_state_dict(opt_state)
    load_state_dict(obj, model, strict=strict, source=f"checkpoint {Path(path)}")
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)
    return metadata


__all__ = ["CHECKSUM_KEY", "OPTIMIZER_KEY", "OPTIMIZER_PREFIX", "CheckpointError", "StateDictError", "load", "read",
           "save"]
