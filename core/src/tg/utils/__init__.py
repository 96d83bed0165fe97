"""PyTorch's ``torch.utils`` counterpart: :mod:`tg.utils.data` (datasets, samplers and the DataLoader).

Offered lazily by :mod:`tg` (``tg.utils.data.DataLoader`` works after a bare ``import tg``), and lazy itself:
``import tg.utils`` imports nothing heavy until ``tg.utils.data`` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tg.support.lazy import lazy_attributes

if TYPE_CHECKING:
    from tg.utils import data

__getattr__ = lazy_attributes(__name__, {"data": "tg.utils.data"})

__all__ = ["data"]
