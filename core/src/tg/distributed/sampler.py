"""DistributedSampler: each rank's share of a dataset's indices, as PyTorch's ``DistributedSampler``.

Every epoch, the indices ``0..n-1`` are shuffled with ``seed + epoch`` (the same order on every rank; call
:meth:`DistributedSampler.set_epoch` each epoch), padded by repeating the first ones until they divide evenly
(or, with ``drop_last``, cut to a multiple of the number of replicas), and rank r takes every
``num_replicas``-th index starting at r.  The ranks' shares never overlap (without padding) and together
cover the dataset.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized

import numpy as np

from tg.distributed import group as G


class DistributedSampler:
    """Indices of one rank's shard.  ``dataset``: a length or anything with ``len()``; ``num_replicas`` and
    ``rank`` default to the initialised world's."""

    def __init__(self, dataset: int | Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        self.length = dataset if isinstance(dataset, int) else len(dataset)
        self.num_replicas = num_replicas if num_replicas is not None else G.get_world_size()
        self.rank = rank if rank is not None else G.get_rank()
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"DistributedSampler: rank {self.rank} is not in [0, {self.num_replicas})")
        if self.length < 0:
            raise ValueError(f"DistributedSampler: negative dataset length {self.length}")
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        if drop_last:
            self.num_samples = self.length // self.num_replicas
        else:
            self.num_samples = math.ceil(self.length / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch`` (every rank must set the same one)."""
        self.epoch = epoch

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch."""
        order = (np.random.default_rng(self.seed + self.epoch).permutation(self.length) if self.shuffle
                 else np.arange(self.length))
        if self.total_size > self.length and self.length:
            order = np.concatenate([order, np.resize(order, self.total_size - self.length)])
        order = order[:self.total_size]
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples
