"""tg.utils.data: datasets, samplers, default_collate and the DataLoader, under PyTorch's rules."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict, namedtuple
from collections.abc import Iterator

import numpy as np
import pytest
import tg
from tg import Tensor
from tg.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
    default_collate,
    default_convert,
    random_split,
)


def _dataset(n: int = 10) -> tuple[np.ndarray, np.ndarray, TensorDataset]:
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = (np.arange(n) % 4).astype(np.int32)
    return x, y, TensorDataset(Tensor(x), Tensor(y))


class Rows(Dataset[tuple[np.ndarray, int]]):
    """A map-style dataset of numpy rows and Python int labels."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.x[i], int(self.y[i])

    def __len__(self) -> int:
        return len(self.x)


def test_tensor_dataset() -> None:
    x, y, ds = _dataset()
    assert len(ds) == 10
    xi, yi = ds[3]
    assert xi.tolist() == x[3].tolist() and yi.item() == y[3]
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(Tensor(x), Tensor(y[:5]))
    with pytest.raises(TypeError, match="tg tensors"):
        TensorDataset(x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_in_order(drop_last: bool) -> None:
    x, y, ds = _dataset()
    loader = DataLoader(ds, batch_size=4, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(batches) == (2 if drop_last else 3)
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3)] + ([] if drop_last else [(2, 3)])
    got_x = np.concatenate([b[0].numpy() for b in batches])
    got_y = np.concatenate([b[1].numpy() for b in batches])
    keep = 8 if drop_last else 10
    np.testing.assert_array_equal(got_x, x[:keep])
    np.testing.assert_array_equal(got_y, y[:keep])
    assert batches[0][0].dtype == tg.float32 and batches[0][1].dtype == tg.int32
    assert isinstance(batches[0], list)  # default_collate makes a list of a tuple sample, as PyTorch


def test_shuffle_visits_every_sample_once_per_epoch_in_a_new_order() -> None:
    x, _, ds = _dataset(50)
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    tg.manual_seed(0)
    epochs = [np.concatenate([b[0].numpy()[:, 0] for b in loader]) // 3 for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(50))
    assert epochs[0].tolist() != epochs[1].tolist() and epochs[0].tolist() != list(range(50))
    tg.manual_seed(0)
    again = np.concatenate([b[0].numpy()[:, 0] for b in loader]) // 3
    assert again.tolist() == epochs[0].tolist()  # tg.manual_seed makes the shuffling reproducible
    seeded = [[int(v) for b in DataLoader(ds, batch_size=8, shuffle=True, generator=np.random.default_rng(5))
               for v in b[1].numpy()] for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_tensor_dataset_batches_equal_stacked_samples() -> None:
    """The whole-batch path of a TensorDataset gives what stacking its samples gives, and sees later updates."""
    x, y, ds = _dataset(12)
    indices = [7, 0, 11, 3, 3]
    fast = DataLoader(ds, batch_sampler=[indices])
    slow = DataLoader(ds, batch_sampler=[indices], collate_fn=lambda samples: default_collate(samples))
    for a, b in zip(next(iter(fast)), next(iter(slow))):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(next(iter(fast))[0].numpy(), x[indices])
    ds.tensors[0].add_(100.0)  # the tensor's value is replaced: the host copy must not go stale
    np.testing.assert_array_equal(next(iter(fast))[0].numpy(), x[indices] + 100)
    split = Subset(Subset(ds, [5, 6, 7, 8]), [3, 0])
    np.testing.assert_array_equal(next(iter(DataLoader(split, batch_size=2)))[1].numpy(), y[[8, 5]])
    with pytest.raises(IndexError, match="out of range"):
        next(iter(DataLoader(ds, batch_sampler=[[12]])))


def test_gradients_reach_a_dataset_tensor_that_requires_grad() -> None:
    w = Tensor(np.ones((4, 2), np.float32), requires_grad=True)
    xb, = next(iter(DataLoader(TensorDataset(w), batch_size=3)))
    (xb * 2).sum().backward()
    assert w.grad is not None and w.grad.numpy().tolist() == [[2.0, 2.0]] * 3 + [[0.0, 0.0]]


def test_an_overridden_getitem_is_asked_for_every_sample() -> None:
    class Doubled(TensorDataset):
        def __getitem__(self, index: int) -> tuple[Tensor, ...]:
            return tuple(t[index] * 2 for t in self.tensors)

    xb, = next(iter(DataLoader(Doubled(Tensor([1.0, 2.0, 3.0])), batch_size=3)))
    assert xb.tolist() == [2.0, 4.0, 6.0]


def test_a_custom_dataset_of_numpy_rows_and_int_labels() -> None:
    x, y, _ = _dataset(7)
    batches = list(DataLoader(Rows(x.astype(np.float64), y), batch_size=3, shuffle=False))
    assert len(batches) == 3
    xb, yb = batches[0]
    assert xb.dtype == tg.float64 and xb.shape == (3, 3)  # numpy arrays keep their dtype, as PyTorch
    assert yb.dtype == tg.int32 and yb.tolist() == y[:3].tolist()  # Python ints: tg's default int


def test_default_collate_kinds() -> None:
    floats = default_collate([1.5, 2.0])
    assert floats.dtype == tg.float32 and floats.tolist() == [1.5, 2.0]
    assert default_collate([True, False]).dtype == tg.bool and default_collate([2**40, 1]).dtype == tg.int64
    scalars = default_collate([np.float64(1.0), np.float64(2.5)])
    assert scalars.dtype == tg.float64 and scalars.shape == (2,)
    stacked = default_collate([Tensor([1.0, 2.0]), Tensor([3.0, 4.0])])
    assert stacked.shape == (2, 2) and stacked.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert default_collate(["a", "b"]) == ["a", "b"]
    out = default_collate([{"x": np.zeros(2, np.float32), "name": "a"}, {"x": np.ones(2, np.float32), "name": "b"}])
    assert set(out) == {"x", "name"} and out["x"].tolist() == [[0, 0], [1, 1]] and out["name"] == ["a", "b"]
    ordered = default_collate([OrderedDict(a=1), OrderedDict(a=2)])
    assert isinstance(ordered, OrderedDict) and ordered["a"].tolist() == [1, 2]
    Point = namedtuple("Point", "x y")
    point = default_collate([Point(1.0, [1, 2]), Point(2.0, [3, 4])])
    assert isinstance(point, Point) and point.x.tolist() == [1.0, 2.0]
    assert [t.tolist() for t in point.y] == [[1, 3], [2, 4]]
    nested = default_collate([(1, (2.0, "s")), (3, (4.0, "t"))])
    assert nested[0].tolist() == [1, 3] and nested[1][0].tolist() == [2.0, 4.0] and nested[1][1] == ["s", "t"]


def test_default_collate_refuses_what_it_cannot_batch() -> None:
    with pytest.raises(ValueError, match=r"shapes \(2,\) and \(3,\)"):
        default_collate([Tensor([1.0, 2.0]), Tensor([1.0, 2.0, 3.0])])
    with pytest.raises(ValueError, match="cannot be stacked"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([(1, 2), (1, 2, 3)])
    with pytest.raises(TypeError, match="found NoneType"):
        default_collate([None, None])
    with pytest.raises(TypeError, match="holds a Tensor and a ndarray"):
        default_collate([Tensor([1.0]), np.zeros(1)])
    with pytest.raises(ValueError, match="same keys"):
        default_collate([{"a": 1}, {"b": 1}])
    with pytest.raises(TypeError, match="non-empty list"):
        default_collate([])


def test_collate_fn_and_unbatched_loading() -> None:
    x, y, _ = _dataset(5)
    sizes = list(DataLoader(Rows(x, y), batch_size=2, collate_fn=len))
    assert sizes == [2, 2, 1]
    single = list(DataLoader(Rows(x, y), batch_size=None))
    assert len(single) == 5 and len(DataLoader(Rows(x, y), batch_size=None)) == 5
    first_x, first_y = single[0]
    assert isinstance(first_x, Tensor) and first_x.tolist() == x[0].tolist() and first_y == y[0]
    assert default_convert({"a": (np.float32(1.5), "s")})["a"][1] == "s"


def test_samplers() -> None:
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    rs = RandomSampler(range(5), generator=np.random.default_rng(0))
    assert sorted(rs) == [0, 1, 2, 3, 4] and len(rs) == 5
    long = list(RandomSampler(range(3), num_samples=7, generator=np.random.default_rng(1)))
    assert len(long) == 7 and sorted(long[:3]) == sorted(long[3:6]) == [0, 1, 2]
    drawn = list(RandomSampler(range(3), replacement=True, num_samples=20, generator=np.random.default_rng(2)))
    assert len(drawn) == 20 and set(drawn) <= {0, 1, 2}
    bs = BatchSampler(SequentialSampler(range(7)), 3, drop_last=False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]] and len(bs) == 3
    assert len(BatchSampler(range(7), 3, drop_last=True)) == 2
    with pytest.raises(ValueError, match="positive integer"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(range(3), num_samples=0)


class Countdown(IterableDataset[int]):
    def __init__(self, n: int):
        self.n = n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n, 0, -1))

    def __len__(self) -> int:
        return self.n


def test_iterable_dataset() -> None:
    loader = DataLoader(Countdown(5), batch_size=2)
    assert [b.tolist() for b in loader] == [[5, 4], [3, 2], [1]] and len(loader) == 3
    assert [b.tolist() for b in DataLoader(Countdown(5), batch_size=2, drop_last=True)] == [[5, 4], [3, 2]]
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Countdown(3), shuffle=True)
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Countdown(3), sampler=[0, 1])


def test_random_split() -> None:
    _, _, ds = _dataset(10)
    parts = random_split(ds, [7, 3], generator=np.random.default_rng(0))
    assert [len(p) for p in parts] == [7, 3]
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))  # type: ignore[operator]
    thirds = random_split(range(10), [0.5, 0.25, 0.25])  # type: ignore[arg-type]
    assert [len(p) for p in thirds] == [6, 2, 2]  # floors 5, 2, 2; the one left over goes to the first, as PyTorch
    with pytest.raises(ValueError, match="add up to 11"):
        random_split(ds, [8, 3])


def test_loader_options_pytorch_refuses_and_workers() -> None:
    _, _, ds = _dataset()
    with pytest.raises(NotImplementedError, match="num_workers=0"):
        DataLoader(ds, num_workers=2)
    with pytest.raises(ValueError, match="worker processes"):
        DataLoader(ds, persistent_workers=True)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, shuffle=True, sampler=SequentialSampler(ds))
    with pytest.raises(ValueError, match="batch_sampler option"):
        DataLoader(ds, batch_size=4, batch_sampler=[[0, 1]])
    with pytest.raises(ValueError, match="positive integer"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="drop_last"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        DataLoader(ds, shuffle=True, generator=3)  # type: ignore[arg-type]
    assert DataLoader(ds, pin_memory=True).pin_memory  # accepted, no effect


class ShardSampler:
    """DistributedSampler's interface (iteration, len, set_epoch) without MPI: every other index, from ``rank``."""

    def __init__(self, n: int, rank: int):
        self.n, self.rank, self.epoch = n, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng(self.epoch).permutation(self.n)
        return iter(order[self.rank::2].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.n, 2))


def test_a_sampler_with_set_epoch_shards_the_data() -> None:
    x, _, ds = _dataset(9)
    loaders = [DataLoader(ds, batch_size=2, sampler=ShardSampler(9, rank)) for rank in (0, 1)]
    assert [len(loader) for loader in loaders] == [3, 2]
    seen = [np.concatenate([b[0].numpy()[:, 0] // 3 for b in loader]).tolist() for loader in loaders]
    assert sorted(seen[0] + seen[1]) == list(range(9))
    for loader in loaders:
        loader.sampler.set_epoch(1)  # type: ignore[union-attr]
    assert [np.concatenate([b[0].numpy()[:, 0] // 3 for b in loader]).tolist() for loader in loaders] != seen


def test_with_tg_distributed_sampler() -> None:
    """The real DistributedSampler (in a child process: importing it starts MPI), where mpi4py and an MPI exist."""
    code = ("import numpy as np, tg\n"
            "from tg.distributed import DistributedSampler\n"
            "from tg.utils.data import DataLoader, TensorDataset\n"
            "ds = TensorDataset(tg.arange(11))\n"
            "out = []\n"
            "for rank in (0, 1):\n"
            "    sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)\n"
            "    loader = DataLoader(ds, batch_size=4, sampler=sampler)\n"
            "    epochs = []\n"
            "    for epoch in (0, 1):\n"
            "        loader.sampler.set_epoch(epoch)\n"
            "        epochs.append([v for (b,) in loader for v in b.tolist()])\n"
            "    out.append((len(loader), epochs))\n"
            "print(out)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if done.returncode and "tg.distributed needs mpi4py" in done.stderr:
        pytest.skip("tg.distributed needs mpi4py and an MPI here")
    assert done.returncode == 0, done.stderr
    (len0, epochs0), (len1, epochs1) = eval(done.stdout)
    assert len0 == len1 == 2  # 6 indices each (11 padded to 12), in batches of 4
    for epoch in (0, 1):
        both = epochs0[epoch] + epochs1[epoch]
        assert len(both) == 12 and set(both) == set(range(11))
    assert epochs0[0] != epochs0[1]  # set_epoch reshuffles


def test_a_training_loop() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y = (x @ np.array([[2.0], [-1.0]], np.float32) + 0.5).astype(np.float32)
    model = tg.nn.Linear(2, 1)
    opt = tg.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(Tensor(x), Tensor(y)), batch_size=16, shuffle=True)
    for _ in range(30):
        for xb, yb in loader:
            loss = ((model(xb) - yb) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    np.testing.assert_allclose(model.weight.numpy(), [[2.0, -1.0]], atol=1e-2)
    np.testing.assert_allclose(model.bias.numpy(), [0.5], atol=1e-2)
