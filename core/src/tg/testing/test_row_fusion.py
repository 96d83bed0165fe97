"""Row fusion (a softmax's max, sum and quotient in one kernel) against numpy: rows of 1, 7, 1024, 1025 elements,
rows whose scales differ wildly (a pass that read another row's accumulator, or its own before its loop ended,
would be far off), non-contiguous inputs, float16, and the gradients through the fused kernels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tg import Tensor
from tg.testing import assert_close, check_grad, random_array, reference, require, tensor

OPS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[np.ndarray], np.ndarray]]] = {
    "softmax": (lambda t: t.softmax(-1), reference.softmax),
    "log_softmax": (lambda t: t.log_softmax(-1), reference.log_softmax),
    "layernorm": (lambda t: t.layernorm(-1), reference.layernorm),
    "logsumexp": (lambda t: t.logsumexp(-1), lambda x: reference.logsumexp(x, axis=-1)),
}
SHAPES = [(5, 1), (9, 7), (3, 1024), (3, 1025), (2, 3, 33), (1, 64)]


def _staggered(shape: tuple[int, ...], rng: np.random.Generator, step: float) -> np.ndarray:
    """Random rows, row i shifted by ``i * step`` and scaled by ``1 + i``: a row's max, mean or sum read from the
    wrong row (or from before its loop ended) gives values far from these rows' own."""
    x = rng.standard_normal(shape)
    rows = np.arange(int(np.prod(shape[:-1]))).reshape(shape[:-1] + (1,))
    return x * (1 + rows % 5) + rows * step


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("op", OPS)
def test_fused_rows_match_numpy(op: str, shape: tuple[int, ...], rng: np.random.Generator) -> None:
    tg_fn, np_fn = OPS[op]
    for step in (-50.0, 50.0):  # the max falling and rising from row to row
        x = _staggered(shape, rng, step).astype(np.float32)
        got = tg_fn(tensor(x, "float32")).numpy()
        want = np_fn(x.astype(np.float64))
        # a float32 row sum is exact to about its length's ulps; layernorm's rows sit at up to 50 * rows
        atol = 1e-5 * max(1.0, float(np.abs(x).max())) if op == "layernorm" else 1e-5
        assert_close(got, want, rtol=1e-4, atol=atol)


def test_a_pass_reads_its_own_row_max() -> None:
    """softmax of rows whose exp would underflow at another row's max (0/0: NaN) or overflow below its own."""
    x = np.array([[300.0, 299.0, 298.0], [-300.0, -301.0, -302.0], [0.0, 1.0, 2.0]] * 6, dtype=np.float32)
    got = tensor(x, "float32").softmax(-1).numpy()
    assert np.isfinite(got).all()
    assert_close(got, reference.softmax(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("view", ["transposed", "sliced", "expanded"])
def test_non_contiguous_rows(view: str, rng: np.random.Generator) -> None:
    base = random_array((40, 70), "float32", rng, -4, 4)
    t = tensor(base, "float32")
    views: dict[str, tuple[Any, np.ndarray]] = {
        "transposed": (t.transpose(0, 1), base.T),
        "sliced": (t[3:37:2, ::-3], base[3:37:2, ::-3]),
        "expanded": (t[:1].expand(6, 70), np.broadcast_to(base[:1], (6, 70))),
    }
    tv, xv = views[view]
    for op, (tg_fn, np_fn) in OPS.items():
        assert_close(tg_fn(tv).numpy(), np_fn(xv.astype(np.float64)), rtol=1e-4, atol=1e-4, msg=op)
    assert_close(tv.softmax(0).numpy(), reference.softmax(xv.astype(np.float64), axis=0), rtol=1e-4, atol=1e-5)


def test_float16_rows(rng: np.random.Generator) -> None:
    require("float16")
    x = random_array((6, 300), "float16", rng, -4, 4)
    for op, (tg_fn, np_fn) in OPS.items():
        assert_close(tg_fn(tensor(x, "float16")).numpy().astype(np.float64), np_fn(x.astype(np.float64)),
                     rtol=2e-2, atol=2e-2, msg=op)


def test_cross_entropy_through_fused_rows(rng: np.random.Generator) -> None:
    logits = _staggered((16, 37), rng, 20.0).astype(np.float32)
    target = rng.integers(0, 37, 16)
    got = tensor(logits, "float32").cross_entropy(tensor(target.astype(np.int32), "int32")).numpy()
    assert_close(got, reference.cross_entropy(logits.astype(np.float64), target), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "layernorm"])
def test_gradients_through_fused_rows(op: str, rng: np.random.Generator) -> None:
    tg_fn, np_fn = OPS[op]
    check_grad(tg_fn, np_fn, [random_array((4, 33), "float32", rng, -3, 3)], rng)
