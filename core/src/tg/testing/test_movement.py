"""Movement ops and indexing against numpy: reshape to repeat, getitem, cat/stack/split, views of views."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tg import Tensor, dtypes
from tg.testing import DTYPE_NAMES, assert_close, case_id, random_array, require, tensor


class _Index:
    """``IX[1:3, None]`` is the key ``(slice(1, 3), None)``: lets tests list index expressions as data."""

    def __getitem__(self, key: Any) -> Any:
        return key


IX = _Index()


def _x(rng: np.random.Generator, shape: tuple[int, ...] = (4, 5, 6)) -> tuple[np.ndarray, Tensor]:
    x = random_array(shape, "float32", rng)
    return x, tensor(x, "float32")


@pytest.mark.parametrize(("src", "dst"), [
    ((2, 3, 4), (6, 4)), ((2, 3, 4), (24,)), ((2, 3, 4), (4, -1)), ((2, 3, 4), (-1,)), ((2, 3, 4), (1, 2, 1, 12, 1)),
    ((2, 3, 4), (2, 3, 4)), ((6,), (3, 2)), ((1,), ()), ((), (1, 1)), ((2, 0, 3), (0, 6)),
], ids=case_id)
def test_reshape(src: tuple[int, ...], dst: tuple[int, ...], rng: np.random.Generator) -> None:
    x, t = _x(rng, src)
    assert_close(t.reshape(*dst) if dst else t.reshape(()), x.reshape(dst))


def test_reshape_accepts_a_tuple(rng: np.random.Generator) -> None:
    x, t = _x(rng, (2, 3, 4))
    assert_close(t.reshape((4, 6)), x.reshape(4, 6))
    assert_close(t.reshape((3, -1)), x.reshape(3, -1))


def test_reshape_of_non_contiguous_views(rng: np.random.Generator) -> None:
    x, t = _x(rng, (4, 5, 6))
    assert_close(t.permute(2, 0, 1).reshape(6, 20), x.transpose(2, 0, 1).reshape(6, 20))
    assert_close(t.permute(1, 2, 0).reshape(-1), x.transpose(1, 2, 0).reshape(-1))
    assert_close(t[:, ::2].reshape(4, 18), x[:, ::2].reshape(4, 18))
    assert_close(t.flip(1).reshape(20, 6), x[:, ::-1].reshape(20, 6))


def test_permute_3d(rng: np.random.Generator) -> None:
    x, t = _x(rng, (2, 3, 4))
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        assert_close(t.permute(*perm), x.transpose(perm), msg=f"permute{perm}")


def test_permute_4d_and_transpose(rng: np.random.Generator) -> None:
    x, t = _x(rng, (2, 3, 1, 4))
    assert_close(t.permute(3, 1, 0, 2), x.transpose(3, 1, 0, 2))
    assert_close(t.transpose(0, 1), np.swapaxes(x, 0, 1))
    assert_close(t.transpose(-1, -2), np.swapaxes(x, -1, -2))
    assert_close(t.transpose(0, 3), np.swapaxes(x, 0, 3))
    assert_close(t.transpose(1, 1), x)


@pytest.mark.parametrize(("src", "dst", "np_dst"), [
    ((1, 3), (4, 3), (4, 3)), ((3, 1), (3, 5), (3, 5)), ((3,), (2, 3), (2, 3)), ((1, 1), (2, 3), (2, 3)),
    ((2, 1, 3), (2, 4, 3), (2, 4, 3)), ((3, 1), (-1, 4), (3, 4)), ((1,), (1,), (1,)), ((), (2, 2), (2, 2)),
    ((2, 1), (3, 2, 5), (3, 2, 5)),
], ids=case_id)
def test_expand(src: tuple[int, ...], dst: tuple[int, ...], np_dst: tuple[int, ...], rng: np.random.Generator) -> None:
    """Sizes broadcast like PyTorch's expand: new leading dims, size-1 dims grow, -1 keeps a size."""
    x, t = _x(rng, src)
    assert_close(t.expand(*dst), np.broadcast_to(x, np_dst))


def test_flatten(rng: np.random.Generator) -> None:
    x, t = _x(rng, (2, 3, 2, 4))
    for start, end in ((0, -1), (1, -1), (0, 1), (1, 2), (2, 3), (3, 3), (-2, -1)):
        s, e = start % 4, end % 4
        want = x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])
        assert_close(t.flatten(start, end), want, msg=f"flatten({start}, {end})")
        assert_close(t.flatten(start_dim=start, end_dim=end), want, msg=f"flatten({start}, {end}) by keyword")


def test_flatten_defaults(rng: np.random.Generator) -> None:
    x, t = _x(rng, (2, 3, 4))
    assert_close(t.flatten(), x.reshape(-1))
    assert_close(t.flatten(1), x.reshape(2, 12))


def test_squeeze_unsqueeze(rng: np.random.Generator) -> None:
    x, t = _x(rng, (1, 3, 1, 2))
    assert_close(t.squeeze(), x.reshape(3, 2))
    assert_close(t.squeeze(0), x.reshape(3, 1, 2))
    assert_close(t.squeeze(2), x.reshape(1, 3, 2))
    assert_close(t.squeeze(-2), x.reshape(1, 3, 2))
    assert_close(t.squeeze(1), x)  # a dim that is not 1 stays, like PyTorch
    y, u = _x(rng, (3, 2))
    for dim, shape in ((0, (1, 3, 2)), (1, (3, 1, 2)), (2, (3, 2, 1)), (-1, (3, 2, 1)), (-3, (1, 3, 2))):
        assert_close(u.unsqueeze(dim), y.reshape(shape), msg=f"unsqueeze({dim})")
    assert_close(Tensor(2.0).unsqueeze(0), np.array([2.0]))


@pytest.mark.parametrize(("shape", "padding"), [
    ((3, 4), ((1, 2), (0, 3))), ((3, 4), ((0, 0), (2, 2))), ((3, 4), ((0, 0), (0, 0))),
    ((2, 3, 4), ((1, 1), (0, 0), (3, 1))), ((5,), ((4, 0),)), ((1, 2, 2, 3), ((0, 0), (0, 0), (1, 1), (2, 2))),
], ids=case_id)
def test_pad(shape: tuple[int, ...], padding: tuple[tuple[int, int], ...], rng: np.random.Generator) -> None:
    x, t = _x(rng, shape)
    assert_close(t.pad(padding), np.pad(x, padding))
    assert_close(t.pad(padding, value=-1.5), np.pad(x, padding, constant_values=-1.5))


@pytest.mark.parametrize(("shape", "arg"), [
    ((5, 6), ((1, 3), (0, 6))), ((5, 6), ((0, 5), (2, 3))), ((5, 6), ((4, 5), (5, 6))),
    ((2, 3, 4), ((0, 2), (1, 3), (1, 2))), ((7,), ((2, 2),)),
], ids=case_id)
def test_shrink(shape: tuple[int, ...], arg: tuple[tuple[int, int], ...], rng: np.random.Generator) -> None:
    x, t = _x(rng, shape)
    assert_close(t.shrink(arg), x[tuple(slice(s, e) for s, e in arg)])


@pytest.mark.parametrize("axis", [0, 1, -1, (0, 1), (0, 2), (2, 1, 0)], ids=case_id)
def test_flip(axis: int | tuple[int, ...], rng: np.random.Generator) -> None:
    x, t = _x(rng, (3, 4, 5))
    assert_close(t.flip(axis), np.flip(x, axis))


@pytest.mark.parametrize(("shape", "repeats"), [
    ((2, 3), (2, 1)), ((2, 3), (1, 3)), ((2, 3), (2, 2, 2)), ((4,), (3,)), ((1, 2), (3, 1)), ((2, 1, 2), (1, 2, 3)),
], ids=case_id)
def test_repeat(shape: tuple[int, ...], repeats: tuple[int, ...], rng: np.random.Generator) -> None:
    """``repeat`` tiles like PyTorch's (numpy's ``tile``), adding leading dims when given more repeats."""
    x, t = _x(rng, shape)
    assert_close(t.repeat(*repeats), np.tile(x, repeats))


GETITEM_KEYS = [
    IX[1], IX[-1], IX[1:3], IX[::2], IX[::-1], IX[-3:-1], IX[3:0:-2], IX[:, 2], IX[..., 1], IX[None], IX[:, None, 1:4],
    IX[1, ..., ::-2], IX[1, 2, 3], IX[-1, -2, -3], IX[:, :, -1:], IX[2:10], IX[3:1], IX[-2:, ::-2, 1::3], IX[..., None],
    IX[1, None, -1], IX[:, -4:-1:2, ...], IX[::3, ::-4, 5:0:-2], IX[...], IX[:, 4], IX[-10:2],
]


@pytest.mark.parametrize("key", GETITEM_KEYS, ids=case_id)
def test_getitem(key: Any, rng: np.random.Generator) -> None:
    x, t = _x(rng, (4, 5, 6))
    assert_close(t[key], x[key])


def test_getitem_of_getitem(rng: np.random.Generator) -> None:
    x, t = _x(rng, (6, 7, 8))
    assert_close(t[1:][::2][:, ::-1][..., 2:7:2], x[1:][::2][:, ::-1][..., 2:7:2])
    assert_close(t[::-1][1][::-2][None], x[::-1][1][::-2][None])


@pytest.mark.parametrize(("name", "idx"), [
    ("1d", np.array([0, 3, 3, 1])), ("2d", np.array([[0, 1], [4, 2]])), ("negative", np.array([-1, 0, -5, 2])),
    ("single", np.array([2])), ("repeated", np.array([4, 4, 4, 4, 4, 4])),
])
def test_integer_tensor_index(name: str, idx: np.ndarray, rng: np.random.Generator) -> None:
    """``x[idx]`` with an int32 tensor gathers along the first dim (negative indices count from the end)."""
    x, t = _x(rng, (5, 4))
    assert_close(t[tensor(idx, "int32")], x[idx])


def test_integer_tensor_index_later_dims(rng: np.random.Generator) -> None:
    x, t = _x(rng, (3, 5, 4))
    idx = np.array([4, 0, 2])
    assert_close(t[:, tensor(idx, "int32")], x[:, idx])
    assert_close(t[1, tensor(idx, "int32")], x[1, idx])
    assert_close(t[..., tensor(np.array([3, 1]), "int32")], x[..., [3, 1]])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim: int, rng: np.random.Generator) -> None:
    shapes = [[(2, 3, 4), (1, 3, 4), (3, 3, 4)], [(2, 1, 4), (2, 3, 4), (2, 2, 4)], [(2, 3, 1), (2, 3, 4), (2, 3, 2)]]
    arrays = [random_array(s, "float32", rng) for s in shapes[dim % 3]]
    assert_close(Tensor.cat(*(tensor(a, "float32") for a in arrays), dim=dim), np.concatenate(arrays, axis=dim))
    assert_close(Tensor.cat(tensor(arrays[0], "float32"), dim=dim), arrays[0])


def test_cat_default_dim_and_views(rng: np.random.Generator) -> None:
    a, b = random_array((2, 3), "float32", rng), random_array((3, 2), "float32", rng)
    ta, tb = tensor(a, "float32"), tensor(b, "float32")
    assert_close(Tensor.cat(ta, tb.permute(1, 0)), np.concatenate([a, b.T]))
    assert_close(Tensor.cat(ta.flip(1), ta[:, ::2], dim=1) * 2, np.concatenate([a[:, ::-1], a[:, ::2]], axis=1) * 2)
    empty = Tensor(np.zeros((0, 3), np.float32))
    assert_close(Tensor.cat(empty, ta, empty), a)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim: int, rng: np.random.Generator) -> None:
    arrays = [random_array((3, 4), "float32", rng) for _ in range(3)]
    assert_close(Tensor.stack(*(tensor(a, "float32") for a in arrays), dim=dim), np.stack(arrays, axis=dim))


def test_stack_default_dim(rng: np.random.Generator) -> None:
    a, b = random_array((2,), "float32", rng), random_array((2,), "float32", rng)
    assert_close(Tensor.stack(tensor(a, "float32"), tensor(b, "float32")), np.stack([a, b]))


@pytest.mark.parametrize(("size", "dim"), [(2, 0), (3, 0), (7, 0), ([1, 4, 2], 0), (2, 1), ([3, 2], 1), ([5], 1)],
                         ids=case_id)
def test_split(size: int | list[int], dim: int, rng: np.random.Generator) -> None:
    """``split(int)`` cuts pieces of that size (the last may be smaller); ``split(list)`` uses the sizes given."""
    x, t = _x(rng, (7, 5))
    n = x.shape[dim]
    sizes = size if isinstance(size, list) else [min(size, n - i) for i in range(0, n, size)]
    bounds = np.cumsum(sizes)[:-1]
    want = np.split(x, bounds, axis=dim)
    got = t.split(size, dim=dim)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_close(g, w)


@pytest.mark.parametrize(("n", "dim", "length"), [(3, 0, 6), (3, 0, 7), (4, 0, 6), (1, 0, 5), (2, 1, 4), (5, 1, 5)],
                         ids=case_id)
def test_chunk(n: int, dim: int, length: int, rng: np.random.Generator) -> None:
    """Like PyTorch: chunks of ceil(len / n), so there may be fewer than n (7 in 3 -> 3, 3, 1; 6 in 4 -> 2, 2, 2)."""
    shape = (length, 3) if dim == 0 else (3, length)
    x, t = _x(rng, shape)
    step = -(-length // n)
    want = [np.take(x, range(i, min(i + step, length)), axis=dim) for i in range(0, length, step)]
    got = t.chunk(n, dim=dim)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_close(g, w)


def test_views_of_views(rng: np.random.Generator) -> None:
    """Chains of movement ops, then elementwise work, all against the same chains in numpy."""
    x, t = _x(rng, (4, 5, 6))
    y, u = _x(rng, (6, 4))
    # permute, slice, reshape, flip, then elementwise
    got = t.permute(2, 0, 1)[1:5, ::-1, 1::2].reshape(4, 8).flip(0) * 2 + 1
    want = x.transpose(2, 0, 1)[1:5, ::-1, 1::2].reshape(4, 8)[::-1] * 2 + 1
    assert_close(got, want)
    # expand, permute, shrink, pad, then a binary op with another view
    got = t[:, :1].expand(4, 3, 6).permute(1, 0, 2).shrink(((0, 2), (1, 4), (0, 6))).pad(((0, 0), (1, 0), (0, 0)))
    want = np.pad(np.broadcast_to(x[:, :1], (4, 3, 6)).transpose(1, 0, 2)[0:2, 1:4, 0:6], ((0, 0), (1, 0), (0, 0)))
    assert_close(got + u.transpose(0, 1)[:4].unsqueeze(0), want + y.T[:4][None])
    # pad, slice into the padding, flip, transpose
    got = t.pad(((1, 1), (2, 0), (0, 3)))[::-2, 1:6, 4:].flip(2).transpose(0, 2)
    want = np.pad(x, ((1, 1), (2, 0), (0, 3)))[::-2, 1:6, 4:][:, :, ::-1].swapaxes(0, 2)
    assert_close(got, want)
    # repeat, slice, permute, reshape, then a reduction
    got = u.repeat(2, 3)[1::3, ::-2].permute(1, 0).reshape(-1, 2).sum(axis=1)
    want = np.tile(y, (2, 3))[1::3, ::-2].T.reshape(-1, 2).sum(axis=1)
    assert_close(got, want)
    # flip twice is the identity; unsqueeze/expand/reshape mixes
    assert_close(t.flip(0).flip(0), x)
    got = u.unsqueeze(1).expand(6, 3, 4).reshape(18, 4)[::5]
    assert_close(got, np.broadcast_to(y[:, None], (6, 3, 4)).reshape(18, 4)[::5])


def test_contiguous_after_views(rng: np.random.Generator) -> None:
    x, t = _x(rng, (3, 4, 5))
    v = t.permute(2, 1, 0)[::2, 1:, ::-1]
    assert_close(v.contiguous(), x.transpose(2, 1, 0)[::2, 1:, ::-1])
    assert_close(v.contiguous().reshape(-1) + 1, x.transpose(2, 1, 0)[::2, 1:, ::-1].reshape(-1) + 1)


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
def test_movement_dtypes(dtype: str, rng: np.random.Generator) -> None:
    """Movement ops carry every dtype unchanged; padding fills with zero (False for bool)."""
    require(dtype)
    x = random_array((3, 4, 2), dtype, rng)
    t = tensor(x, dtype)
    got = t.permute(1, 2, 0).flip(0).pad(((1, 0), (0, 1), (2, 2)))[::2, :, 1:]
    want = np.pad(x.transpose(1, 2, 0)[::-1], ((1, 0), (0, 1), (2, 2)))[::2, :, 1:]
    assert got.dtype == getattr(dtypes, dtype)
    assert_close(got, want, dtype)
    assert_close(Tensor.cat(t, t[:1], dim=0), np.concatenate([x, x[:1]]), dtype)
    assert_close(t.reshape(6, 4).expand(2, 6, 4), np.broadcast_to(x.reshape(6, 4), (2, 6, 4)), dtype)
    assert_close(t[tensor(np.array([2, 0]), "int32")], x[[2, 0]], dtype)
