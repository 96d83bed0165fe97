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


UNCLEAR_BEFORE: dict[str, tuple[Callable[[], Any], type[Exception], str]] = {
    # name: (what the user did, the error, words of its message) -- each gave a bare ZeroDivisionError,
    # IndexError or TypeError from inside tg, or was accepted silently
    "conv2d stride 0": (lambda: Tensor.ones(1, 2, 5, 5).conv2d(Tensor.ones(3, 2, 3, 3), stride=0), ValueError,
                        "stride must be positive"),
    "conv2d padding -2": (lambda: Tensor.ones(1, 2, 5, 5).conv2d(Tensor.ones(3, 2, 3, 3), padding=-2), ValueError,
                          "padding must be non-negative"),
    "chunk 0": (lambda: Tensor.ones(4).chunk(0), ValueError, "number of chunks must be a positive int"),
    "cat nothing": (lambda: Tensor.cat(), ValueError, "at least one tensor"),
    "cat 0-d": (lambda: Tensor.cat(Tensor(1.0), Tensor(2.0)), ValueError, "0-d tensor cannot be concatenated"),
    "sum float axis": (lambda: Tensor.ones(2, 2).sum(axis=1.0), TypeError, "axis must be an int"),
    "reshape float": (lambda: Tensor.ones(6).reshape(2.0, 3), TypeError, "sizes must be ints"),
    "pad odd flat": (lambda: Tensor.ones(2, 2).pad((1, 1, 1)), ValueError, "even number of ints"),
}


@pytest.mark.parametrize("name", UNCLEAR_BEFORE)
def test_errors_that_used_to_be_unclear(name: str) -> None:
    action, error, words = UNCLEAR_BEFORE[name]
    with pytest.raises(error, match=words):
        action()


def test_edge_shapes_that_used_to_fail() -> None:
    """What PyTorch does with empty and 0-d tensors: softmax of (3, 0) is empty, a 0-d tensor takes axis 0 or -1
    (softmax, sum, flip), the sum of an empty tensor has an (empty) gradient; PyTorch's flat pad tuple works."""
    assert Tensor.zeros(3, 0).softmax(-1).shape == (3, 0)
    assert Tensor.zeros(3, 0).log_softmax(-1).shape == (3, 0)
    assert float(Tensor(2.0).softmax().numpy()) == 1.0
    assert float(Tensor(3.0).sum(0).numpy()) == 3.0 and float(Tensor(3.0).flip(0).numpy()) == 3.0
    x = Tensor.zeros(0, 3, requires_grad=True)
    x.sum().backward()
    assert x.grad is not None and x.grad.shape == (0, 3)
    np.testing.assert_array_equal(Tensor.zeros(0, 3).sum(0).numpy(), [0.0, 0.0, 0.0])
    padded = Tensor.ones(2, 2).pad((1, 1, 0, 1)).numpy()  # last dim by 1 and 1, the one before by 0 and 1
    np.testing.assert_array_equal(padded, np.pad(np.ones((2, 2)), ((0, 1), (1, 1))))

