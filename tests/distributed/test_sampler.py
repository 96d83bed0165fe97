"""DistributedSampler alone (no MPI processes): shards never overlap, cover the dataset, follow the epoch."""

from __future__ import annotations

import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed: pip install 'tg-core[distributed]'")

from tg.distributed import DistributedSampler  # noqa: E402


@pytest.mark.parametrize("length", [0, 1, 7, 12, 101])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_cover_without_overlap(length: int, replicas: int, shuffle: bool) -> None:
    shards = [list(DistributedSampler(length, replicas, r, shuffle=shuffle, seed=3)) for r in range(replicas)]
    assert len({len(s) for s in shards}) == 1 and all(len(s) == len(DistributedSampler(length, replicas, 0))
                                                       for s in shards)
    together = [i for s in shards for i in s]
    assert set(together) == set(range(length))
    padding = len(together) - length
    assert 0 <= padding < replicas  # repeated indices only to even the shards out, fewer than one per rank
    if padding == 0:
        assert len(set(together)) == length


@pytest.mark.parametrize("length", [7, 12, 101])
def test_drop_last_never_repeats(length: int) -> None:
    shards = [list(DistributedSampler(length, 4, r, drop_last=True)) for r in range(4)]
    together = [i for s in shards for i in s]
    assert len(together) == len(set(together)) == length // 4 * 4


def test_epochs_reorder_alike_on_every_rank() -> None:
    a, b = DistributedSampler(50, 2, 0, seed=1), DistributedSampler(50, 2, 1, seed=1)
    first = (list(a), list(b))
    a.set_epoch(1)
    b.set_epoch(1)
    second = (list(a), list(b))
    assert first != second and set(second[0]) | set(second[1]) == set(range(50))
    assert not set(second[0]) & set(second[1])
    assert list(DistributedSampler(50, 2, 0, seed=2)) != first[0]  # the seed matters
    assert list(DistributedSampler(10, 2, 1, shuffle=False)) == [1, 3, 5, 7, 9]


def test_a_bad_rank_is_refused() -> None:
    with pytest.raises(ValueError, match="rank 2 is not in"):
        DistributedSampler(10, 2, 2)
