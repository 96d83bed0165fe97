"""Errors a user meets: they must be raised (not wrong answers) and say what went wrong.

Shapes are expected in the message as Python prints a shape tuple, e.g. ``(2, 3)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tg import Tensor, dtypes
from tg.testing import DTYPE_NAMES, backend_name, case_id, supports


def _message(exc: BaseException) -> str:
    return str(exc).lower()


SHAPE_ERRORS: dict[str, tuple[Callable[[Any, Any], Any], tuple[int, ...], tuple[int, ...], tuple[str, ...]]] = {
    # name: (op, shape a, shape b, any of these words names the op)
    "add": (lambda a, b: a + b, (2, 3), (4, 3), ("add", "+")),
    "mul": (lambda a, b: a * b, (2, 3), (2, 4), ("mul", "*")),
    "lt": (lambda a, b: a < b, (5,), (3,), ("lt", "<", "less", "cmp", "compar")),
    "where": (lambda a, b: (a > 0).where(a, b), (2, 3), (3, 2), ("where",)),
    "maximum": (lambda a, b: a.maximum(b), (3, 1, 2), (4, 5), ("max",)),
    "matmul": (lambda a, b: a @ b, (2, 3), (4, 5), ("matmul", "@")),
    "matmul_batch": (lambda a, b: a @ b, (2, 3, 4), (3, 4, 5), ("matmul", "@")),
    "dot": (lambda a, b: a.dot(b), (3,), (4,), ("dot", "matmul", "@")),
    "cat": (lambda a, b: Tensor.cat(a, b, dim=0), (2, 3), (2, 4), ("cat",)),
    "stack": (lambda a, b: Tensor.stack(a, b), (2, 3), (3, 2), ("stack", "cat")),
    "conv2d": (lambda a, b: a.conv2d(b), (1, 3, 5, 5), (2, 4, 3, 3), ("conv",)),
}


@pytest.mark.parametrize("name", SHAPE_ERRORS)
def test_incompatible_shapes_name_both_shapes_and_the_op(name: str) -> None:
    op, sa, sb, words = SHAPE_ERRORS[name]
    a, b = Tensor.ones(*sa), Tensor.ones(*sb)
    with pytest.raises(ValueError) as info:
        op(a, b).realize()
    msg = _message(info.value)
    assert str(sa) in msg and str(sb) in msg, f"{name}: message does not name both shapes {sa}, {sb}: {msg!r}"
    assert any(w in msg for w in words), f"{name}: message does not name the op ({' or '.join(words)}): {msg!r}"


@pytest.mark.parametrize(("src", "dst"), [((2, 3), (4, 2)), ((6,), (4, -1)), ((2, 3), (-1, -1))], ids=case_id)
def test_bad_reshape(src: tuple[int, ...], dst: tuple[int, ...]) -> None:
    with pytest.raises(ValueError) as info:
        Tensor.ones(*src).reshape(*dst)
    assert str(src) in _message(info.value) or "reshape" in _message(info.value)


def test_bad_expand() -> None:
    with pytest.raises(ValueError) as info:
        Tensor.ones(2, 3).expand(4, 3)
    assert "(2, 3)" in _message(info.value)


BAD_AXIS: dict[str, tuple[Callable[[Any], Any], int]] = {
    # name: (op on a 3-D tensor of shape (4, 5, 6), the bad axis it uses)
    "sum": (lambda t: t.sum(axis=4), 4),
    "sum_negative": (lambda t: t.sum(axis=-4), -4),
    "sum_tuple": (lambda t: t.sum(axis=(0, 7)), 7),
    "max": (lambda t: t.max(axis=5), 5),
    "mean": (lambda t: t.mean(axis=-7), -7),
    "argmax": (lambda t: t.argmax(axis=5), 5),
    "softmax": (lambda t: t.softmax(axis=4), 4),
    "flip": (lambda t: t.flip(6), 6),
    "transpose": (lambda t: t.transpose(0, 7), 7),
    "cat": (lambda t: Tensor.cat(t, t, dim=4), 4),
    "permute": (lambda t: t.permute(0, 1, 7), 7),
}


@pytest.mark.parametrize("name", BAD_AXIS)
def test_bad_axis_names_the_axis_and_the_rank(name: str) -> None:
    op, axis = BAD_AXIS[name]
    with pytest.raises((IndexError, ValueError)) as info:
        op(Tensor.ones(4, 5, 6)).realize()
    msg = _message(info.value)
    assert str(axis) in msg, f"{name}: message does not name the axis {axis}: {msg!r}"
    assert "3" in msg.replace(str(axis), ""), f"{name}: message does not name the rank 3: {msg!r}"


def test_index_out_of_range() -> None:
    with pytest.raises(IndexError):
        Tensor.ones(2, 3)[5]
    with pytest.raises(IndexError):
        Tensor.ones(2, 3)[:, -4]
    with pytest.raises(IndexError):
        Tensor.ones(2, 3)[0, 0, 0]


def test_backward_on_non_scalar() -> None:
    x = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    with pytest.raises(Exception) as info:
        (x * 2).backward()
    assert "scalar" in _message(info.value)


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_unsupported_dtype_names_dtype_and_backend(name: str) -> None:
    """Asking for a dtype the backend does not declare is an error naming both, never a wrong answer."""
    if supports(name):
        pytest.skip(f"backend {backend_name()!r} supports {name}")
    with pytest.raises(Exception) as info:
        t = Tensor(np.ones(3, dtype=name), dtype=getattr(dtypes, name))
        (t + t).numpy()
    msg = str(info.value)
    assert name in msg, f"message does not name the dtype {name}: {msg!r}"
    assert backend_name() in msg, f"message does not name the backend {backend_name()!r}: {msg!r}"


def test_out_of_range_index_tensors_raise_at_the_next_read() -> None:
    """An index past the end used to read zeros silently (PyTorch raises): tg checks on the device and raises
    IndexError at the next read of any tensor."""
    from tg import nn

    x = Tensor.arange(5)
    np.testing.assert_array_equal(x[Tensor([1, -1, -5, 4])].numpy(), [1, 4, 0, 4])
    for bad in ([1, 9], [-6, 0]):
        with pytest.raises(IndexError, match=r"out of range for dimension 0 of size 5 \(valid: -5 to 4\)"):
            x[Tensor(bad)].numpy()
    table = nn.Embedding(4, 2)
    with pytest.raises(IndexError, match="size 4"):
        table(Tensor([0, 4])).numpy()
    logits = Tensor(np.zeros((3, 5), np.float32))
    loss = logits.cross_entropy(Tensor([0, 5, 1]))
    with pytest.raises(IndexError, match=r"class index is out of range for 5 classes"):
        Tensor([1.0]).numpy()  # any read raises it, once
    assert abs(loss.item() - np.log(5) * 2 / 3) < 1e-5  # the bad target contributed nothing, as one_hot makes it
    with pytest.raises(IndexError, match="out of range for 3 classes"):
        Tensor([0, 3, -1]).one_hot(3).numpy()

