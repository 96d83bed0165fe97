"""Dynamic shapes: a size that appears anywhere in a kernel (a sequence length) reuses one kernel for every value.

Where the runtime declares ``Runtime.dynamic_shapes``, core groups kernels by the structure of their exact lowering
and builds one kernel for every size once a structure has been met at three sizes whose integers follow the size by
a quadratic (:mod:`tg.engine.dynamic`); a later size reuses it only when its own lowering has that structure and
those integers.  Every answer must be numpy's at every size, in any order of sizes (one token first and in between),
including where a quadratic fitted at three sizes is the wrong guess for the fourth (a cube's ``t**3`` elements).
On other backends the same programs run with a kernel per size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tg import Tensor, no_grad
from tg.testing import assert_close

#: Sequence lengths in a mixed order: below, between and above the first three, one token in between.
LENGTHS = [5, 6, 7, 2, 9, 1, 12, 8]


def _state() -> Any:
    from tg.engine.device import device_state

    return device_state()


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _attention(t: int, rng: np.random.Generator, heads: int = 4, dim: int = 8) -> tuple[Tensor, np.ndarray]:
    """Causal self-attention of one sequence of ``t`` tokens (``heads`` of ``dim``) from one projection: scores
    (1, heads, t, t), their softmax over ``t`` keys, and the weighted sum over ``t`` values."""
    import tg.nn.functional as F

    x = rng.standard_normal((1, t, 3 * heads * dim)).astype(np.float32)
    qkv = Tensor(x).reshape(1, t, 3, heads, dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    with no_grad():
        got = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    qn, kn, vn = x.astype(np.float64).reshape(1, t, 3, heads, dim).transpose(2, 0, 3, 1, 4)
    scores = qn @ kn.transpose(0, 1, 3, 2) / np.sqrt(dim)
    scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return got, (weights / weights.sum(-1, keepdims=True)) @ vn


def _sum_over_length(t: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    x = rng.standard_normal((3, t, 5)).astype(np.float32)
    return Tensor(x).sum(axis=1), x.sum(axis=1, dtype=np.float64)


def _contract_over_length(t: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    a, b = rng.standard_normal((6, t)).astype(np.float32), rng.standard_normal((t, 4)).astype(np.float32)
    return Tensor(a) @ Tensor(b), a.astype(np.float64) @ b


def _last_row_and_transpose(t: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    """An offset that follows the size (the last of ``t`` rows) and a transposed ``(t, t + 1)`` input."""
    x = rng.standard_normal((t, t + 1)).astype(np.float32)
    return Tensor(x).T[-1:] * 2.0 + Tensor(x)[t - 1:, :1].T, x.T[-1:] * np.float32(2.0) + x[t - 1:, :1].T


def _cube(t: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    """``t**3`` elements: the quadratic through three sizes is the wrong guess at a fourth, which must be built for
    its exact size."""
    x = rng.standard_normal((t, t, t)).astype(np.float32)
    return (Tensor(x) * 3.0).relu(), np.maximum(x * np.float32(3.0), 0)


GRAPHS: dict[str, Callable[[int, np.random.Generator], tuple[Tensor, np.ndarray]]] = {
    "causal attention": _attention, "a sum over the length": _sum_over_length,
    "a contraction over the length": _contract_over_length, "an offset and a transposed input": _last_row_and_transpose,
    "a cube": _cube,
}


@pytest.mark.parametrize("graph", list(GRAPHS))
def test_every_length_right(graph: str) -> None:
    """Each graph equals numpy at every length of LENGTHS, in that order."""
    for k, t in enumerate(LENGTHS):
        got, want = GRAPHS[graph](t, _rng(k))
        assert_close(got.numpy(), want, msg=f"{graph}, t={t}")


def test_attention_at_a_new_length_compiles_nothing(compiles: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the backend takes dynamic shapes (outside TG_SYMBOLIC=verify, which builds the exact kernels too), the
    attention kernels (3 heads of 12, met here first) are built for every length once their structure has been met at
    three lengths, and then a new length compiles nothing.  A structure may depend on how a length divides (a target's
    work groups: a launch whose threads fill its last group has no gate), so each such class of lengths is met three
    times first (and a kernel met first by another test's graph may join late): odd lengths 5..29, the last two of
    which must compile nothing.  Work groups of more than 8 threads in a one-dimensional launch split their thread
    ids by the length (``128 % t``), which no quadratic follows: there the kernels are built per length (a known limit
    of tg.engine.dynamic), and only the answers are checked.  A kernel for every length that the backend's emitter
    refuses (``NotSymbolic``: its bits could differ from an exact kernel's) is built per length; only kernels of such
    structures may be compiled at a new length."""
    from tg.backends.contract import NotSymbolic
    from tg.engine.symbolic import symbolic_mode

    if not _state().dynamic_shapes or symbolic_mode() != "1":
        pytest.skip("the backend builds kernels for exact sizes here (no Runtime.dynamic_shapes, or TG_SYMBOLIC is 0 "
                    "or verify): test_every_length_right checks the answers")
    emitter, refused = _state().backend.emitter, []
    render = emitter.render

    def recording(kernel: Any) -> Any:
        try:
            return render(kernel)
        except NotSymbolic:
            if kernel.dynamic:
                refused.append(kernel.name)
            raise

    monkeypatch.setattr(emitter, "render", recording)
    per_length = []
    caps = _state().capabilities
    for t in range(5, 31, 2):
        before = len(compiles)
        got, want = _attention(t, _rng(100 + t), heads=3, dim=12)
        assert_close(got.numpy(), want, msg=f"t={t}")
        per_length.append([p.name for p in compiles[before:]])
    if caps.group_size > 8 and caps.launch_dims == 1:
        pytest.skip("work groups of more than 8 threads in a flat launch: thread ids split by the length, kernels "
                    "built per length; the answers were checked")
    for late in per_length[-2:]:  # (a name without its sizes: the kernels of one structure share it)
        assert len(late) <= len(refused), (per_length, refused)
        assert {_ops(n) for n in late} <= {_ops(n) for n in refused}, (per_length, refused)
    assert any(p.launch_vars for p in compiles) or refused, per_length  # (some kernel was built for every length)


def _ops(name: str) -> str:
    """A kernel's name without its sizes (``mul_r_add_1_3_n_n_1``: ``mul_r_add``)."""
    return "_".join(part for part in name.split("_") if not part.isdigit() and part != "n")
