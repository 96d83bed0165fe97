"""Dynamic shapes against random programs: graphs whose views, reductions and masks follow a size ``t`` (slices that
end at ``t``, flips, pads, transposes, broadcasts, sums and matmuls over ``t``, causal masks), run at random sizes
in random order on numpy's interpreter with TG_SYMBOLIC=verify, so that every kernel reused for another size is
checked bit for bit against the kernel built for that size, and every answer against numpy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tg import Tensor

Graph = Callable[[Tensor, np.ndarray, int], tuple[Tensor, np.ndarray]]


def _slice_end(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    return x[:, 1:] * 2.0 + x[:, :-1], a[:, 1:] * np.float32(2.0) + a[:, :-1]


def _flip_transpose(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    return x.flip(1).T + 1.0, a[:, ::-1].T + np.float32(1.0)


def _pad(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    return x.pad(((1, 0), (0, 2))) - 3.0, np.pad(a, ((1, 0), (0, 2))) - np.float32(3.0)


def _sum_rows(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    return (x * x).sum(axis=1), (a * a).sum(axis=1)


def _outer_max(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    return (x[0].reshape(t, 1) * x[-1].reshape(1, t)).max(axis=0), (a[0][:, None] * a[-1][None, :]).max(axis=0)


def _gram(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    return x.T @ x, a.T.astype(np.float64) @ a


def _causal(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    mask = np.tril(np.ones((t, t), dtype=bool))
    scores = x.T @ x
    return Tensor(mask).where(scores, -1e9).softmax(-1), _softmax(np.where(mask, a.T.astype(np.float64) @ a, -1e9))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


GRAPHS: list[Graph] = [_slice_end, _flip_transpose, _pad, _sum_rows, _outer_max, _gram, _causal]


@pytest.fixture
def verified(interpreter: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TG_SYMBOLIC", "verify")
    return interpreter


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=st.sampled_from(GRAPHS), rows=st.integers(2, 5),
       sizes=st.lists(st.integers(1, 24), min_size=4, max_size=7))
def test_random_sizes_match_the_exact_kernels(verified: Any, graph: Graph, rows: int, sizes: list[int]) -> None:
    for k, t in enumerate(sizes):
        a = np.random.default_rng(k).standard_normal((rows, t)).astype(np.float32)
        got, want = graph(Tensor(a), a, t)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4, err_msg=f"t={t}")


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.__name__.strip("_") for g in GRAPHS])
def test_every_graph_is_built_for_every_size(verified: Any, graph: Graph) -> None:
    """Each graph above does reach a kernel built for every size (so the random test checks reuse, not only exact
    kernels)."""
    for k, t in enumerate([5, 6, 7, 9, 3, 12]):
        a = np.random.default_rng(k).standard_normal((3, t)).astype(np.float32)
        got, want = graph(Tensor(a), a, t)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4, err_msg=f"t={t}")
    assert any(p.launch_vars or "n0" in p.variables for p in verified.compiled), [p.name for p in verified.compiled]
