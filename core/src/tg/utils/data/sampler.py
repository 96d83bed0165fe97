"""Samplers, as PyTorch's: the order in which a DataLoader visits a map-style dataset's indices.

``SequentialSampler`` goes 0, 1, ..., n-1; ``RandomSampler`` draws a new order each time it is iterated (each
epoch), from the ``generator`` given (a ``numpy.random.Generator``: tg has no Generator type of its own) or else
from the process's generator, so ``tg.manual_seed`` makes the shuffling reproducible; ``BatchSampler`` groups
another sampler's indices into lists.  Any iterable of indices with a ``len()`` serves as a sampler
(``tg.distributed.DistributedSampler`` included).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Any, Generic, TypeVar

import numpy as np

from tg.frontend.random import host_generator

T_co = TypeVar("T_co", covariant=True)


def check_generator(generator: Any) -> np.random.Generator | None:
    """``generator`` if it is None or a numpy generator, else a TypeError that says what to pass."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"generator must be a numpy.random.Generator (tg has no Generator type of its own), e.g. "
                    f"numpy.random.default_rng(0), not {type(generator).__name__}; without one, the order follows "
                    "tg.manual_seed")


def draws(generator: np.random.Generator | None) -> np.random.Generator:
    """Where random orders come from: ``generator``, or the process's generator (seeded by ``tg.manual_seed``)."""
    return generator if generator is not None else host_generator()


def positive_int(value: Any, name: str, owner: str) -> int:
    """``value`` as an int, or a ValueError from ``owner`` when it is not a positive integer."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: {name} should be a positive integer, got {name}={value!r}")
    return int(value)


class Sampler(Generic[T_co]):
    """The base of samplers: a subclass defines ``__iter__`` (and ``__len__`` where it knows its length)."""

    def __init__(self, data_source: Sized | None = None) -> None:
        pass

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler[int]):
    """The indices 0, 1, ..., len(data_source) - 1, in order."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """The indices in a new random order each epoch; ``num_samples`` of them (default: all).  Without replacement,
    more samples than indices are whole permutations one after another; with it, independent uniform draws."""

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: np.random.Generator | None = None) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a bool, got {replacement!r}")
        self.data_source, self.replacement = data_source, replacement
        self._num_samples = None if num_samples is None else positive_int(num_samples, "num_samples",
                                                                            "RandomSampler")
        self.generator = check_generator(generator)

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, count, rng = len(self.data_source), self.num_samples, draws(self.generator)
        if n == 0:
            return iter(())
        if self.replacement:
            order = rng.integers(0, n, count)
        else:
            order = np.concatenate([rng.permutation(n) for _ in range(-(-count // n))])[:count]
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler[list[int]]):
    """``sampler``'s indices in lists of ``batch_size``; the last, shorter one is dropped when ``drop_last``."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.batch_size = positive_int(batch_size, "batch_size", "BatchSampler")
        if not isinstance(drop_last, bool):
            raise TypeError(f"BatchSampler: drop_last should be a bool, got {drop_last!r}")
        self.sampler, self.drop_last = sampler, drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        if not isinstance(self.sampler, Sized):
            raise TypeError(f"BatchSampler: its sampler ({type(self.sampler).__name__}) has no len()")
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
