"""``sort``, ``argsort``, ``topk`` and ``multinomial``, by counting: tg has comparisons and sums, no sort kernel.

The rank of element i along the sorted dim is the number of elements that sort before it (ties broken by
position, so the sort is stable); the k-th output is then the element of rank k (a one-hot where and a sum,
exact for every dtype).  That is O(n^2) comparisons per sorted row (n the length of the dim), done as one
reduction, plus O(n*k) for k outputs: quick for the dims of classes and sequences, absurd for very long ones, so
``sort`` refuses a dim longer than ``MAX_SORT_LENGTH`` (naming the alternatives).  ``topk`` of a long dim (more
than ``COUNTING_LENGTH`` elements, a vocabulary) with a small k selects instead: k rounds, each picking the
best element not taken yet (three reductions of O(n)), so O(n*k) work; k up to ``MAX_SELECT_K``.  As in
PyTorch, NaN sorts after every number (first in a descending sort, and in ``topk(largest=True)``).  Indices are
int32 (tg's default integer; PyTorch's are int64).
"""

# mypy: disable-error-code="misc"
# (mixin methods annotate self as Tensor, their only subclass; mypy wants a supertype there)
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from tg.frontend import deferred_checks
from tg.frontend.scans import scan_last
from tg.frontend.shapes import normalize_axis
from tg.support.dtype import dtypes

if TYPE_CHECKING:
    from tg.frontend.tensor import Tensor

MAX_SORT_LENGTH = 16384
COUNTING_LENGTH = 1024  # topk of a longer dim selects (for k <= COUNTING_K) instead of counting
COUNTING_K = 64
MAX_SELECT_K = 1024


class SortResult(NamedTuple):
    """What ``sort`` and ``topk`` return, as in PyTorch: ``values, indices = t.sort()``."""

    values: Tensor
    indices: Tensor


def _ranks(x: Tensor, descending: bool, op: str) -> Tensor:
    """The stable rank of every element along the last axis (int32, 0 for the first in sorted order)."""
    n = x.shape[-1]
    if n > MAX_SORT_LENGTH:
        raise ValueError(f"{op}: the dim has {n} elements; tg sorts by counting (O(n^2) comparisons per row) and "
                         f"refuses dims longer than {MAX_SORT_LENGTH}: for the largest few use topk(k) (any length), "
                         "else sort on the host (np.sort(t.numpy())) or sort shorter pieces")
    if x.dtype == dtypes.bool:
        x = x.cast(dtypes.int32)
    me, other = x.unsqueeze(-1), x.unsqueeze(-2)  # (..., i, 1) and (..., 1, j): does j sort before i?
    before = other > me if descending else other < me
    equal = other == me
    if x.dtype.is_float:
        nan_me, nan_other = me != me, other != other  # noqa: PLR0124 - x != x is the NaN test
        before = before | ((nan_other & ~nan_me) if descending else (nan_me & ~nan_other))
        equal = equal | (nan_me & nan_other)
    positions = type(x).arange(n, device=x.device)
    earlier = positions.reshape(1, n) < positions.reshape(n, 1)
    return (before | (equal & earlier)).sum(-1).cast(dtypes.int32)


def _place(x: Tensor, ranks: Tensor, k: int) -> SortResult:
    """The elements of ranks 0..k-1 along the last axis, and their positions."""
    n = x.shape[-1]
    hot = ranks.unsqueeze(-2) == type(x).arange(k, device=x.device).reshape(k, 1)  # (..., k, n)
    values = hot.where(x.unsqueeze(-2), False if x.dtype == dtypes.bool else 0).sum(-1).cast(x.dtype)
    indices = hot.where(type(x).arange(n, device=x.device), 0).sum(-1).cast(dtypes.int32)
    return SortResult(values, indices)


def _select(x: Tensor, k: int, largest: bool) -> SortResult:
    """The k first elements along the last axis in the order of ``topk`` (NaN the largest, ties to the lower
    index), by k rounds of selection.  A round looks only at the elements after the previous pick in that order
    (the pick's group, key and position are its state), so every round runs the same kernels."""
    n = x.shape[-1]
    key = x.cast(dtypes.int32) if x.dtype == dtypes.bool else x
    if not largest:  # the smallest first: reverse the order (-x for floats keeps NaN; ~x for integers)
        key = -key if key.dtype.is_float else ~key
    positions = type(x).arange(n, device=x.device)
    countdown = type(x).arange(n, 0, -1, device=x.device)
    lowest = float("-inf") if key.dtype.is_float else -(1 << (8 * key.dtype.itemsize - 1)) \
        if key.dtype.kind == "i" else 0
    # the order: group 0 before group 1 (NaN is group 0 when largest, else 1), then the larger key, then the lower
    # position
    nan = key != key  # noqa: PLR0124 - x != x is the NaN test (all false for integers)
    group = (nan if not largest else ~nan).cast(dtypes.int32)
    picks = []
    pool = None  # the elements after the previous pick (None: all)
    for _ in range(k):
        first_group = (group if pool is None else pool.where(group, 2)).amin(-1, keepdim=True)
        in_group = group == first_group if pool is None else pool & (group == first_group)
        best = (in_group & ~nan).where(key, lowest).amax(-1, keepdim=True)
        cand = in_group & (nan | (key == best))
        pick = n - (cand.cast(dtypes.int32) * countdown).amax(-1, keepdim=True)  # the first candidate
        picks.append(pick)
        tie = nan | (key == best)
        later = tie & (positions > pick)
        pool = (group > first_group) | ((group == first_group) & ((~nan & (key < best)) | later))
    indices = type(x).cat(*picks, dim=-1).cast(dtypes.int32)  # (..., k)
    hot = indices.unsqueeze(-1) == positions  # (..., k, n)
    values = hot.where(x.unsqueeze(-2), False if x.dtype == dtypes.bool else 0).sum(-1).cast(x.dtype)
    return SortResult(values, indices)


def _moved(x: Tensor, dim: int, op: str) -> tuple[Tensor, int]:
    if x.ndim == 0:
        normalize_axis(dim, 0, op)
        return x.reshape(1), -1
    d = normalize_axis(dim, x.ndim, op)
    return (x if d == x.ndim - 1 else x.transpose(d, -1)), d


def _back(t: Tensor, like: Tensor, d: int) -> Tensor:
    if like.ndim == 0:
        return t.reshape(())
    return t if d == like.ndim - 1 else t.transpose(d, -1)


class SortMixin:
    """Tensor's sorting and sampling ops (mixed into :class:`~tg.frontend.tensor.Tensor`)."""

    __slots__ = ()

    def sort(self: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> SortResult:
        """``(values, indices)`` sorted along ``dim``; equal elements keep their order (every tg sort is stable)."""
        x, d = _moved(self, dim, "sort")
        values, indices = _place(x, _ranks(x, descending, "sort"), x.shape[-1])
        return SortResult(_back(values, self, d), _back(indices, self, d))

    def argsort(self: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        """The indices that sort this tensor along ``dim`` (int32)."""
        return self.sort(dim, descending, stable).indices

    def topk(self: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> SortResult:
        """``(values, indices)`` of the ``k`` largest (or smallest) elements along ``dim``, largest first (smallest
        first for ``largest=False``); ties go to the lower index."""
        x, d = _moved(self, dim, "topk")
        n = x.shape[-1]
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
            raise ValueError(f"topk: k={k!r} must be an int from 0 to the size of dim {dim} ({n})")
        if k and (n > MAX_SORT_LENGTH or (n > COUNTING_LENGTH and k <= COUNTING_K)):
            if k > MAX_SELECT_K:
                raise ValueError(f"topk: k={k} of a dim of {n} elements: tg selects the top k of a dim this long in k "
                                 f"rounds and refuses k > {MAX_SELECT_K}; take a smaller k, or sort on the host")
            values, indices = _select(x, k, largest)
        else:
            values, indices = _place(x, _ranks(x, largest, "topk"), k)
        return SortResult(_back(values, self, d), _back(indices, self, d))

    def multinomial(self: Tensor, num_samples: int, replacement: bool = False) -> Tensor:
        """Category indices (int32) drawn from the non-negative weights of each row (1-D: one row): with
        ``replacement``, independently by inverting the running total; without, by an exponential race (the
        ``num_samples`` smallest of ``-log(u) / w``, u uniform), as many as the row's non-zero weights at most."""
        if self.ndim not in (1, 2):
            raise ValueError(f"multinomial needs a 1-D or 2-D tensor of weights, got shape {self.shape}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"multinomial: num_samples must be a positive int, got {num_samples!r}")
        w = self._float().reshape(-1, self.shape[-1])
        rows, n = w.shape
        if n == 0:
            raise ValueError("multinomial: a row of weights has no categories")
        if not replacement and num_samples > n:
            raise ValueError(f"multinomial: cannot draw {num_samples} samples without replacement from {n} "
                             "categories: draw fewer, or pass replacement=True")
        w = w.detach()
        deferred_checks.defer((w < 0) | ~w.isfinite(), "multinomial: the weights must be finite and not negative",
                              ValueError)
        if replacement:
            deferred_checks.defer(w.sum(-1) <= 0, "multinomial: a row of weights sums to 0", ValueError)
            cdf = scan_last(w, multiply=False)  # (rows, n)
            total = cdf.shrink([None, (n - 1, n)])
            target = type(self).rand(rows, num_samples, device=self.device) * total  # (rows, samples) in [0, total)
            out = (cdf.unsqueeze(1) <= target.unsqueeze(-1)).sum(-1).minimum(n - 1)
        else:
            deferred_checks.defer((w > 0).sum(-1) < num_samples,
                                  f"multinomial: a row has fewer than {num_samples} non-zero weights to draw without "
                                  "replacement: draw fewer, or pass replacement=True", ValueError)
            race = type(self).rand(rows, n, device=self.device).log() / w  # the largest come first; w = 0 -> -inf
            out = race.topk(num_samples).indices
        out = out.cast(dtypes.int32)
        return out.reshape(num_samples) if self.ndim == 1 else out
