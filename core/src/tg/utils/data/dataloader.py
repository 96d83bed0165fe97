"""``DataLoader``: PyTorch's, loading in the calling process.

``DataLoader(dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
collate_fn=None, pin_memory=False, drop_last=False, generator=None)`` yields batches: the samples at each list of
indices the batch sampler gives, collated by ``collate_fn`` (default: :func:`~tg.utils.data.default_collate`).
The batch sampler is ``BatchSampler(sampler, batch_size, drop_last)``, the sampler ``RandomSampler`` (a new order
each epoch, from ``generator`` or the process's generator) when ``shuffle``, else ``SequentialSampler``; give
either one yourself instead (``sampler=tg.distributed.DistributedSampler(...)``).  ``batch_size=None`` turns
batching off: each sample is converted (:func:`~tg.utils.data.default_convert`) and yielded alone.  An
``IterableDataset`` is batched in the order it yields.  ``len(loader)`` is the number of batches.

There are no worker processes: ``num_workers`` above 0 is refused, as are the options that only configure workers
(``timeout``, ``worker_init_fn``, ``prefetch_factor``, ``persistent_workers``); ``pin_memory`` is accepted and has
no effect (tg copies to a device from the host data it is given).  The combinations PyTorch refuses are refused
with its reasons (``shuffle`` with a ``sampler``; ``batch_sampler`` with ``batch_size``, ``shuffle``, ``sampler``
or ``drop_last``; a sampler or shuffle for an ``IterableDataset``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, Generic, TypeVar

import numpy as np

from tg.utils.data.collate import default_collate, default_convert
from tg.utils.data.dataset import IterableDataset, batch_rows
from tg.utils.data.sampler import BatchSampler, RandomSampler, SequentialSampler, check_generator, positive_int

T_co = TypeVar("T_co", covariant=True)


class DataLoader(Generic[T_co]):
    """Batches of ``dataset``'s samples (see the module's documentation)."""

    def __init__(self, dataset: Any, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Iterable[Any] | None = None, batch_sampler: Iterable[list[Any]] | None = None,
                 num_workers: int = 0, collate_fn: Callable[[Any], Any] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Callable[[int], None] | None = None,
                 generator: np.random.Generator | None = None, *, prefetch_factor: int | None = None,
                 persistent_workers: bool = False) -> None:
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers should be a non-negative integer, got {num_workers!r}")
        if num_workers > 0:
            raise NotImplementedError(f"DataLoader(num_workers={num_workers}): tg's DataLoader loads in the calling "
                                      "process and starts no workers; pass num_workers=0")
        if timeout or worker_init_fn is not None or prefetch_factor is not None or persistent_workers:
            raise ValueError("DataLoader: timeout, worker_init_fn, prefetch_factor and persistent_workers configure "
                             "worker processes, which tg's DataLoader does not start; leave them out")
        self.generator = check_generator(generator)
        iterable = isinstance(dataset, IterableDataset)
        if iterable and (shuffle or sampler is not None or batch_sampler is not None):
            raise ValueError("DataLoader with an IterableDataset: it yields samples in its own order, so it takes no "
                             "shuffle, sampler or batch_sampler (shuffle inside the dataset's __iter__)")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: the sampler option is mutually exclusive with shuffle (the sampler decides "
                             "the order; DistributedSampler shuffles with shuffle=True of its own)")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: the batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("DataLoader: batch_size=None turns batching off, so drop_last has nothing to drop")
        else:
            batch_size = positive_int(batch_size, "batch_size", "DataLoader")
        if sampler is None and not iterable:
            sampler = RandomSampler(dataset, generator=self.generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)  # type: ignore[arg-type]
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.num_workers, self.pin_memory = 0, pin_memory
        batching = batch_sampler is not None or (iterable and batch_size is not None)
        self.collate_fn = collate_fn if collate_fn is not None else default_collate if batching else default_convert

    def __iter__(self) -> Iterator[Any]:
        if isinstance(self.dataset, IterableDataset):
            return self._stream()
        if self.batch_sampler is None:
            assert self.sampler is not None
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        return (self._fetch(list(indices)) for indices in self.batch_sampler)

    def _fetch(self, indices: list[Any]) -> Any:
        if self.collate_fn is default_collate:
            rows = batch_rows(self.dataset, indices)
            if rows is not None:
                return rows
        getitems = getattr(self.dataset, "__getitems__", None)
        samples = list(getitems(indices)) if callable(getitems) else [self.dataset[i] for i in indices]
        return self.collate_fn(samples)

    def _stream(self) -> Iterator[Any]:
        if self.batch_size is None:
            for sample in self.dataset:
                yield self.collate_fn(sample)
            return
        batch: list[Any] = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            if not isinstance(self.dataset, Sized):
                raise TypeError(f"len(DataLoader): the IterableDataset {type(self.dataset).__name__} has no __len__")
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        counted = self.batch_sampler if self.batch_sampler is not None else self.sampler
        if not isinstance(counted, Sized):
            raise TypeError(f"len(DataLoader): its sampler ({type(counted).__name__}) has no len()")
        return len(counted)
