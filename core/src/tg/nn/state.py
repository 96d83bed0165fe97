"""Finding the tensors an object holds: parameters, state dicts, and loading a state dict back.

Names follow PyTorch: attribute names joined with dots, list and ``Sequential`` positions as numbers
(``"0.weight"``, ``"layers.1.bias"``).  The walk looks into :class:`~tg.nn.Module` attributes (except
names starting with ``_``), lists, tuples and dicts with string keys; the object passed in may also be
any plain object, whose attributes are walked the same way.  A *parameter* is a tensor with
``requires_grad=True``; the state dict also holds tensors that do not (buffers such as BatchNorm's
running statistics).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from tg.frontend.tensor import Tensor
from tg.support.errors import TgError


class StateDictError(TgError, ValueError):
    """A state dict does not fit the model: names missing or unexpected, or shapes that differ.

    ``missing``, ``unexpected`` and ``mismatched`` (name, expected shape, given shape) list every problem.
    """

    def __init__(self, missing: list[str], unexpected: list[str],
                 mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]], source: str = "state dict"):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        lines = [f"{source} does not match the model; nothing was loaded:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): {', '.join(unexpected)}")
        for name, want, got in mismatched:
            lines.append(f"  shape mismatch for {name}: the model has {want}, {source} has {got}")
        super().__init__("\n".join(lines))


def _children(obj: Any, root: bool) -> Iterator[tuple[str, Any]]:
    """The named values one level below ``obj`` that may hold tensors."""
    children = getattr(obj, "named_state_children", None)  # a tg.nn.Module (which imports this module)
    if children is not None and not isinstance(obj, type):
        yield from children()
    elif isinstance(obj, (list, tuple)):
        yield from ((str(i), v) for i, v in enumerate(obj))
    elif isinstance(obj, dict):
        yield from ((k, v) for k, v in obj.items() if isinstance(k, str))
    elif root and hasattr(obj, "__dict__") and not isinstance(obj, type):
        yield from ((k, v) for k, v in vars(obj).items() if not k.startswith("_"))


def named_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
    """Every (dotted name, tensor) reachable from ``obj``; a shared tensor appears under each of its names."""

    def walk(node: Any, name: str, ancestors: frozenset[int], root: bool) -> Iterator[tuple[str, Tensor]]:
        if isinstance(node, Tensor):
            yield name, node
            return
        if id(node) in ancestors:  # a cycle: the object holds itself
            return
        inner = ancestors | {id(node)}
        for key, value in _children(node, root):
            yield from walk(value, f"{name}.{key}" if name else key, inner, False)

    yield from walk(obj, prefix, frozenset(), True)


def get_state_dict(obj: Any, prefix: str = "") -> dict[str, Tensor]:
    """Every tensor ``obj`` holds (parameters and buffers) by dotted name, in definition order."""
    return dict(named_tensors(obj, prefix))


def get_parameters(obj: Any) -> list[Tensor]:
    """The trainable tensors (``requires_grad=True``) ``obj`` holds, each once, in definition order."""
    seen: set[int] = set()
    out: list[Tensor] = []
    for _, t in named_tensors(obj):
        if t.requires_grad and id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _as_array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"state dict entry {name!r} is not an array: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"state dict entry {name!r} has unsupported dtype {array.dtype}")
    return array


def load_state_dict(obj: Any, state: Mapping[str, Any], strict: bool = True, source: str = "state dict") -> None:
    """Copy ``state`` (name -> Tensor or array) into the tensors ``obj`` holds, after checking all of it.

    Every name must match (unless ``strict=False``, which ignores missing and unexpected names) and every
    shape must match; otherwise :class:`StateDictError` lists all the problems and no tensor is changed.
    Values are converted to each tensor's dtype and device.
    """
    own = get_state_dict(obj)
    missing = [n for n in own if n not in state] if strict else []
    unexpected = [n for n in state if n not in own] if strict else []
    arrays = {n: _as_array(n, v) for n, v in state.items() if n in own}
    mismatched = [(n, own[n].shape, tuple(a.shape)) for n, a in arrays.items() if tuple(a.shape) != own[n].shape]
    if missing or unexpected or mismatched:
        raise StateDictError(missing, unexpected, mismatched, source)
    for name, array in arrays.items():
        target = own[name]
        target.assign(Tensor(np.array(array, order="C"), dtype=target.dtype, device=target.device))
        target.realize()
