"""tg-clang's kernels for every size against random programs: softmaxes, sums and products over a size ``t`` that
crosses a gang (16 lanes: row passes in lanes from there, one thread per row below), exp/log/sin of views that follow
``t``, run at random sizes in random order with TG_SYMBOLIC=verify (each reuse checked bit for bit against the
kernel built for its size), and every answer against numpy."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tg import Tensor

Graph = Callable[[Tensor, np.ndarray, int], tuple[Tensor, np.ndarray]]


def _softmax_rows(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    e = np.exp(a.astype(np.float64) - a.max(-1, keepdims=True))
    return x.softmax(-1), e / e.sum(-1, keepdims=True)


def _causal_attention(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    mask = np.tril(np.ones((t, t), dtype=bool))
    s = np.where(mask, a.T.astype(np.float64) @ a, -1e9)
    e = np.exp(s - s.max(-1, keepdims=True))
    return Tensor(mask, device="clang").where(x.T @ x, -1e9).softmax(-1) @ x.T, (e / e.sum(-1, keepdims=True)) @ a.T


def _sum_and_max(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    return x.sum(axis=1) + x.T.max(axis=0), a.sum(axis=1) + a.max(axis=1)


def _normalize(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    y, b = x - x.mean(axis=-1, keepdim=True), a - a.mean(-1, keepdims=True)
    return y / ((y * y).sum(axis=-1, keepdim=True) + 1.0).sqrt(), b / np.sqrt((b * b).sum(-1, keepdims=True) + 1.0)


def _transcendental(x: Tensor, a: np.ndarray, t: int) -> tuple[Tensor, np.ndarray]:
    return x.T.exp() + (x.abs() + 1.0).log().T + x.T.sin(), np.exp(a.T) + np.log(np.abs(a) + 1).T + np.sin(a.T)


GRAPHS: list[Graph] = [_softmax_rows, _causal_attention, _sum_and_max, _normalize, _transcendental]


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch, fresh_devices: None, cache_dir: object) -> Iterator[None]:
    monkeypatch.setenv("TG_SYMBOLIC", "verify")
    yield


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=st.sampled_from(GRAPHS), rows=st.integers(2, 4),
       sizes=st.lists(st.integers(1, 40), min_size=4, max_size=6))
def test_random_sizes_match_the_exact_kernels(verified: None, graph: Graph, rows: int, sizes: list[int]) -> None:
    for k, t in enumerate(sizes):
        a = np.random.default_rng(k).standard_normal((rows, t)).astype(np.float32)
        got, want = graph(Tensor(a, device="clang"), a, t)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4, err_msg=f"t={t}")


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.__name__.strip("_") for g in GRAPHS])
def test_every_graph_reaches_a_kernel_for_every_size(verified: None, graph: Graph, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    """Each graph above does reach a kernel for every size (so the random test checks reuse, not only exact
    kernels), in row lanes where it has row passes."""
    from tg.engine.device import device_state

    runtime, programs = device_state("clang").backend.runtime, []
    compile_ = runtime.compile
    monkeypatch.setattr(runtime, "compile", lambda p: programs.append(p) or compile_(p))
    for k, t in enumerate([5, 6, 7, 9, 3, 20, 33]):
        a = np.random.default_rng(k).standard_normal((3, t)).astype(np.float32)
        got, want = graph(Tensor(a, device="clang"), a, t)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4, err_msg=f"t={t}")
    dynamic = [p.attributes["strategy"] for p in programs if "n0" in p.variables]
    assert dynamic, [p.name for p in programs]
    if graph in (_softmax_rows, _normalize):  # (the causal softmax fuses its scores' product: loops in loops)
        assert any(s.startswith("rows") for s in dynamic), dynamic
