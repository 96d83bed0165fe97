"""``default_collate`` and ``default_convert``, as PyTorch's: how the DataLoader makes a batch of a list of samples
(with ``batch_size``), or converts each sample (``batch_size=None``).

``default_collate(samples)`` looks at what the samples are (all must be the same kind):

- tg tensors: stacked along a new first dimension (same shapes and device; gradients flow back to the samples);
- numpy arrays and numpy scalars: stacked into one tensor of their dtype (float64 arrays give float64, as PyTorch);
- Python numbers: one tensor with tg's default dtypes, as ``tg.tensor(samples)`` makes it: float32 for floats,
  int32 for ints (int64 for an int that does not fit), bool for bools.  PyTorch makes float64 and int64 here; tg
  keeps its defaults, so a batch of float targets does not turn a float32 model's loss into float64;
- strings and bytes: the list as it is;
- mappings: a mapping of the same type (a dict where that type cannot be built from one) of each key collated;
- named tuples: the same named tuple of each field collated; other tuples and lists: a list of each position
  collated (the samples must have one length), as PyTorch.

Anything else, None included, is a TypeError naming it: write a ``collate_fn`` for such samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tg.frontend.tensor import Tensor


def _kind(sample: Any) -> str:
    if isinstance(sample, Tensor):
        return "tensor"
    if isinstance(sample, (np.ndarray, np.bool_, np.number)):
        return "numpy"
    if isinstance(sample, (bool, int, float)):
        return "number"
    if isinstance(sample, (str, bytes)):
        return "string"
    if isinstance(sample, Mapping):
        return "mapping"
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return "namedtuple"
    if isinstance(sample, (tuple, list)):
        return "sequence"
    raise TypeError(f"default_collate: samples must be tensors, numpy arrays, numbers, strings, dicts, tuples or "
                    f"lists (nested as you like); found {type(sample).__name__}. Pass a collate_fn for such samples")


def _stack_tensors(batch: Sequence[Tensor]) -> Tensor:
    first = batch[0]
    for t in batch[1:]:
        if t.shape != first.shape:
            raise ValueError(f"default_collate: samples of shapes {first.shape} and {t.shape} cannot be stacked into "
                             "a batch: pad them to one shape, or pass a collate_fn")
        if t.device != first.device:
            raise ValueError(f"default_collate: samples on {first.device} and on {t.device}: move them to one device")
    return Tensor.stack(*batch, dim=0)


def _stack_numpy(batch: Sequence[Any]) -> Tensor:
    arrays = [np.asarray(a) for a in batch]
    for a in arrays[1:]:
        if a.shape != arrays[0].shape:
            raise ValueError(f"default_collate: numpy samples of shapes {arrays[0].shape} and {a.shape} cannot be "
                             "stacked into a batch: pad them to one shape, or pass a collate_fn")
    stacked = np.stack(arrays)
    if stacked.dtype.kind not in "biuf":
        raise TypeError(f"default_collate: numpy samples of dtype {stacked.dtype} cannot make a tensor")
    return Tensor(stacked)


def default_collate(batch: Sequence[Any]) -> Any:
    """A batch made of the list of samples ``batch`` (see the module's documentation for each kind of sample)."""
    if not isinstance(batch, Sequence) or isinstance(batch, (str, bytes)) or not batch:
        raise TypeError(f"default_collate takes a non-empty list of samples, got {batch!r:.80}")
    elem = batch[0]
    kind = _kind(elem)
    for other in batch[1:]:
        if _kind(other) != kind or (kind in ("mapping", "namedtuple") and type(other) is not type(elem)):
            raise TypeError(f"default_collate: one batch holds a {type(elem).__name__} and a {type(other).__name__}: "
                            "make the samples the same kind, or pass a collate_fn")
    if kind == "tensor":
        return _stack_tensors(batch)
    if kind == "numpy":
        return _stack_numpy(batch)
    if kind == "number":
        return Tensor(list(batch))
    if kind == "string":
        return list(batch)
    if kind == "mapping":
        for other in batch[1:]:
            if set(other) != set(elem):
                raise ValueError(f"default_collate: samples with keys {sorted(map(str, elem))} and "
                                 f"{sorted(map(str, other))}: every sample needs the same keys")
        return _same_mapping(elem, {key: default_collate([d[key] for d in batch]) for key in elem})
    for other in batch[1:]:
        if len(other) != len(elem):
            raise RuntimeError(f"default_collate: each element in list of batch should be of equal size (got "
                               f"{len(elem)} and {len(other)})")
    columns = [default_collate(list(column)) for column in zip(*batch)]
    return type(elem)(*columns) if kind == "namedtuple" else columns


def default_convert(data: Any) -> Any:
    """One sample as the DataLoader yields it without batching: numpy arrays and numpy scalars become tensors, inside
    mappings and sequences too (tuples become lists, as PyTorch); everything else is left as it is."""
    if isinstance(data, (np.ndarray, np.bool_, np.number)):
        array = np.asarray(data)
        return Tensor(array) if array.dtype.kind in "biuf" else data
    if isinstance(data, Mapping):
        return _same_mapping(data, {key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (tuple, list)):
        return [default_convert(d) for d in data]
    return data


def _same_mapping(like: Mapping[Any, Any], values: dict[Any, Any]) -> Mapping[Any, Any]:
    try:
        return type(like)(values)  # type: ignore[call-arg]
    except TypeError:
        return values
