"""Datasets, as PyTorch's: ``Dataset`` (map-style: ``__getitem__`` and ``__len__``), ``IterableDataset`` (a stream:
``__iter__``), ``TensorDataset`` (the rows of tensors that share their first dimension), ``Subset`` and
``random_split``.

The DataLoader takes a whole batch of a ``TensorDataset`` (or of a ``Subset`` of one) at once
(:func:`batch_rows`): the rows are picked from a host copy of each tensor (made on first use, and again whenever
the tensor's value is replaced) and uploaded as one tensor per field.  Stacking one lazy slice per sample would give
the same values, but with the slices' offsets in the kernel: a new kernel for every batch on a compiling backend.
A tensor that requires grad is stacked row by row all the same, so its gradients still flow; a subclass that
overrides ``__getitem__`` is asked sample by sample, as PyTorch asks it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar

import numpy as np

from tg.frontend.tensor import Tensor
from tg.graph.lazy import LazyBuffer
from tg.utils.data.sampler import check_generator, draws

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """A map-style dataset: a subclass defines ``__getitem__(index)`` and ``__len__()``."""

    def __getitem__(self, index: Any) -> T_co:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__ (a map-style dataset), or derive "
                                  "from IterableDataset and define __iter__")


class IterableDataset(Dataset[T_co]):
    """A dataset read as a stream: a subclass defines ``__iter__`` (and ``__len__`` where it knows its length).  The
    DataLoader batches it in the order it yields; it takes no sampler and no shuffle."""

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class TensorDataset(Dataset[tuple[Tensor, ...]]):
    """Sample ``i`` is ``(t[i] for t in tensors)``; every tensor has the same size in its first dimension."""

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset takes tg tensors, got {type(t).__name__} (make one with tg.tensor)")
            if t.ndim == 0:
                raise ValueError("TensorDataset: a 0-d tensor has no rows; give tensors of at least one dimension")
        if len({t.shape[0] for t in tensors}) > 1:
            raise ValueError(f"TensorDataset: size mismatch between tensors: first dimensions "
                             f"{[t.shape[0] for t in tensors]} (every tensor needs one row per sample)")
        self.tensors = tensors
        self._host: list[tuple[LazyBuffer, np.ndarray] | None] = [None] * len(tensors)

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def _rows(self, indices: list[int]) -> list[Tensor] | None:
        if any(t.requires_grad for t in self.tensors):
            return None
        n = len(self)
        picked = np.asarray(indices, dtype=np.int64)
        bad = picked[(picked < -n) | (picked >= n)]
        if bad.size:
            raise IndexError(f"index {bad[0]} is out of range for a TensorDataset of {n} rows")
        return [Tensor(self._host_copy(k)[picked], dtype=t.dtype, device=t.device) for k, t in enumerate(self.tensors)]

    def _host_copy(self, k: int) -> np.ndarray:
        t, cached = self.tensors[k], self._host[k]
        if cached is None or cached[0] is not t.lazydata:  # first use, or the tensor's value was replaced
            cached = self._host[k] = (t.lazydata, t.numpy())
        return cached[1]


class Subset(Dataset[T_co]):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset[T_co], indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, index: int) -> T_co:
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices: list[int]) -> list[T_co]:
        inner = getattr(self.dataset, "__getitems__", None)
        mapped = [self.indices[i] for i in indices]
        return list(inner(mapped)) if callable(inner) else [self.dataset[i] for i in mapped]

    def __len__(self) -> int:
        return len(self.indices)


def batch_rows(dataset: Any, indices: list[int]) -> list[Tensor] | None:
    """What ``default_collate`` would make of the samples at ``indices``, taken at once from a ``TensorDataset``
    (possibly inside Subsets) whose ``__getitem__`` is TensorDataset's own; None for any other dataset."""
    while isinstance(dataset, Subset) and type(dataset).__getitem__ is Subset.__getitem__ and \
            type(dataset).__getitems__ is Subset.__getitems__:
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    if isinstance(dataset, TensorDataset) and type(dataset).__getitem__ is TensorDataset.__getitem__:
        return dataset._rows(indices)
    return None


def random_split(dataset: Dataset[T_co], lengths: Sequence[int | float],
                 generator: np.random.Generator | None = None) -> list[Subset[T_co]]:
    """``dataset`` split at random into non-overlapping Subsets of the given ``lengths``: counts that add up to its
    length, or fractions that add up to 1 (each gets the floor of its share, the rest go one each to the first
    splits, as PyTorch).  The order comes from ``generator`` (numpy's) or the process's generator."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"random_split needs a dataset with a len(), got {type(dataset).__name__}")
    check_generator(generator)
    n = len(dataset)
    sizes = list(lengths)
    if sizes and all(isinstance(f, float) for f in sizes) and math.isclose(sum(sizes), 1) and sum(sizes) <= 1:
        if any(f < 0 for f in sizes):
            raise ValueError(f"random_split: fractions must not be negative, got {sizes}")
        counts = [math.floor(n * f) for f in sizes]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
    else:
        if any(not isinstance(c, (int, np.integer)) or isinstance(c, bool) or c < 0 for c in sizes):
            raise ValueError(f"random_split: lengths must be non-negative ints (or fractions adding up to 1), got "
                             f"{sizes}")
        counts = [int(c) for c in sizes]
        if sum(counts) != n:
            raise ValueError(f"random_split: the lengths add up to {sum(counts)}, the dataset has {n} samples")
    order = draws(generator).permutation(n).tolist()
    starts = np.cumsum([0, *counts]).tolist()
    return [Subset(dataset, order[a:b]) for a, b in zip(starts[:-1], starts[1:])]
