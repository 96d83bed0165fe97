"""PyTorch's ``torch.utils.data``: map-style and iterable datasets, samplers, ``default_collate`` and a ``DataLoader``
that batches in the calling process (no worker processes: ``num_workers`` must be 0).

::

    from tg.utils.data import DataLoader, TensorDataset
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    for epoch in range(epochs):
        for xb, yb in loader:
            ...

``tg.distributed.DistributedSampler`` is a sampler like any other here (``sampler=DistributedSampler(...)``, and
``loader.sampler.set_epoch(epoch)`` each epoch).
"""

from __future__ import annotations

from tg.utils.data.collate import default_collate, default_convert
from tg.utils.data.dataloader import DataLoader
from tg.utils.data.dataset import Dataset, IterableDataset, Subset, TensorDataset, random_split
from tg.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["BatchSampler", "DataLoader", "Dataset", "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler",
           "Subset", "TensorDataset", "default_collate", "default_convert", "random_split"]
