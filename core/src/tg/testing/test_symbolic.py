"""Symbolic outermost sizes: a new batch size or sequence length reuses the kernels of the last one.

Where the runtime declares ``Runtime.symbolic_launch``, core lowers a kernel whose outermost output dimension is
not reduced and is read through plain views once for every size ``N >= 2`` of that dimension (the launch variable
``n0``) when it meets a second size of it (the first gets a kernel for its exact size), unless the emitter refuses
(``NotSymbolic``) and the kernel is built for each exact size.  Every answer
must be numpy's at every size, in any order of sizes (``N = 1`` first: its size-1 dimension has stride 0 and must
not be reused for real rows), and where a kernel was built symbolically, a later size compiles nothing.  On a
backend without symbolic launches the same programs run with a kernel per size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tg import Tensor
from tg.testing import assert_close, reference, require

SIZES = [2, 3, 64, 65, 127, 128, 129, 1000]
#: Fewer sizes for the graphs of several kernels (each size is a launch of each on an emulator)
FEWER_SIZES = [2, 3, 65, 128, 129]


def _state() -> Any:
    from tg.engine.device import device_state

    return device_state()


def _symbolic_on() -> bool:
    from tg.engine.symbolic import symbolic_mode

    return bool(_state().symbolic_launch) and symbolic_mode() != "0"


def _verifying() -> bool:
    from tg.engine.symbolic import symbolic_mode

    return symbolic_mode() == "verify"


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _elementwise(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    x = rng.standard_normal((n, 24)).astype(np.float32)
    bias = rng.standard_normal(24).astype(np.float32)
    return (Tensor(x) * 2.0 + Tensor(bias)).relu(), np.maximum(x * np.float32(2.0) + bias, 0)


def _row_sums(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    x = rng.standard_normal((n, 40)).astype(np.float32)
    return (Tensor(x) * Tensor(x)).sum(axis=1), (x * x).sum(axis=1)


def _matmul(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    a = rng.standard_normal((n, 8)).astype(np.float32)
    w = np.linspace(-1, 1, 8 * 32, dtype=np.float32).reshape(8, 32)
    return Tensor(a) @ Tensor(w), a @ w


def _shifted(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    x = rng.standard_normal((n + 1, 12)).astype(np.float32)
    return Tensor(x)[1:] + 1.0, x[1:] + np.float32(1.0)


def _int32(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    x = rng.integers(-1000, 1000, (n, 10)).astype(np.int32)
    return Tensor(x) * 3 - Tensor(x[0]), x * 3 - x[0]


def _float16(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    x = rng.standard_normal((n, 16)).astype(np.float16)
    return Tensor(x) * Tensor(x) + Tensor(x), x * x + x


def _one_sequence(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    x = rng.standard_normal((1, n, 12)).astype(np.float32)
    w = np.linspace(-1, 1, 12 * 20, dtype=np.float32).reshape(12, 20)
    return (Tensor(x) @ Tensor(w)).relu(), np.maximum(x @ w, 0)


def _softmax(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    x = rng.standard_normal((n, 24)).astype(np.float32) * np.float32(4.0)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return Tensor(x).softmax(-1), e / e.sum(axis=1, keepdims=True)


def _layernorm(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    """Rows of 38 (two gangs of 16 and a leftover on tg-clang), in a batch of ``n`` sequences of 3 tokens; rows far
    apart in scale and offset, so a row that read another's mean or variance is off."""
    x = (rng.standard_normal((n, 3, 38)) * (1 + np.arange(3 * n).reshape(n, 3, 1) % 5)).astype(np.float32)
    return Tensor(x).layernorm(-1), reference.layernorm(x.astype(np.float64))


def _log_softmax(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    x = (rng.standard_normal((n, 35)) * 3 - 7.0 * np.arange(n).reshape(n, 1)).astype(np.float32)
    return Tensor(x).log_softmax(-1), reference.log_softmax(x.astype(np.float64))


def _two_layers(n: int, rng: np.random.Generator) -> tuple[Tensor, np.ndarray]:
    """Linear, relu, Linear: the second matmul reads the first's bias through two views (broadcast to the rows, then
    to the second's output columns), fused with the relu."""
    x = rng.standard_normal((n, 12)).astype(np.float32)
    w1 = np.linspace(-1, 1, 12 * 20, dtype=np.float32).reshape(12, 20)
    b1 = np.linspace(-0.5, 0.5, 20, dtype=np.float32)
    w2 = np.linspace(1, -1, 20 * 32, dtype=np.float32).reshape(20, 32)
    h = (Tensor(x) @ Tensor(w1) + Tensor(b1)).relu()
    return h @ Tensor(w2), np.maximum(x @ w1 + b1, 0) @ w2



GRAPHS: dict[str, Callable[[int, np.random.Generator], tuple[Tensor, np.ndarray]]] = {
    "elementwise with a broadcast bias": _elementwise, "last-axis reduction": _row_sums, "matmul": _matmul,
    "rows 1: of a tensor": _shifted, "int32": _int32, "float16": _float16,
    "a batch of one sequence": _one_sequence, "softmax (row-fused reductions)": _softmax,
    "layernorm of sequences (row-fused)": _layernorm, "log_softmax (row-fused)": _log_softmax,
    "a bias read through two views": _two_layers,
}
SEVERAL_KERNELS = {"layernorm of sequences (row-fused)", "log_softmax (row-fused)", "a bias read through two views"}


@pytest.mark.parametrize("graph", list(GRAPHS))
def test_every_size_right_and_compiled_once(graph: str, compiles: list[Any]) -> None:
    """The graph at each size of SIZES (FEWER_SIZES) equals numpy; where its kernel was built for every size (at the
    second size), the later sizes compile nothing (outside TG_SYMBOLIC=verify, which builds the exact kernels too),
    and where it was not, the backend either takes no symbolic launch or refused that kernel (``NotSymbolic``)."""
    if graph == "int32":
        require("int32")
    if graph == "float16":
        require("float16")
    make = GRAPHS[graph]
    per_size = []
    for k, n in enumerate(FEWER_SIZES if graph in SEVERAL_KERNELS else SIZES):
        before = len(compiles)
        got, want = make(n, _rng(k))
        assert_close(got.numpy(), want, "float16" if graph == "float16" else "float32", msg=f"N={n}")
        per_size.append(compiles[before:])
    symbolic = [p for new in per_size for p in new if p.launch_vars]
    names = [p.name for p in symbolic]
    # once; with dynamic shapes, again where a later size misfit the formulas of the first build (a refit)
    from tg.engine.dynamic import MAX_REFITS

    most = 1 + MAX_REFITS if _state().dynamic_shapes else 1
    assert all(names.count(name) <= most for name in names), f"{graph}: built for every size too often: {names}"
    if symbolic:
        assert _symbolic_on() and all("_n" in name for name in names), names
        # built at the second size; with dynamic shapes (tg.engine.dynamic), a kernel may be built for every size at
        # any size: its lowered structure may have been met at other sizes, by this graph or by another test's
        if not _state().dynamic_shapes:
            assert not any(p.launch_vars for new in [per_size[0], *per_size[2:]] for p in new), f"{graph}: {names}"
        if not _verifying() and all(p.launch_vars for p in per_size[1]):
            assert all(not new for new in per_size[2:]), \
                f"{graph}: compiled again at a new size: {[[p.name for p in new] for new in per_size]}"
    elif _symbolic_on():
        assert _state().not_symbolic, f"{graph}: symbolic launches are on, yet no kernel was built for every size " \
                                      "and none was refused"


def test_an_elementwise_kernel_is_the_same_code_at_every_size() -> None:
    """Lowered for every size at N=3 and at N=1000, the micro-ops and the name are identical: no size leaks into
    the code (merged dims, register tiles, thread counts, bounds)."""
    from tg.codegen.lower import lower
    from tg.codegen.uops import format_uops
    from tg.schedule.scheduler import Kernel, create_schedule

    def lowered(n: int) -> Any:
        t, _ = _elementwise(n, _rng(n))
        (kernel,) = [k for k in create_schedule([t.lazydata]) if isinstance(k, Kernel)]
        return lower(kernel, _state().capabilities, symbolic=True)

    small, large = lowered(3), lowered(1000)
    assert small.name == large.name
    assert format_uops(small.uops) == format_uops(large.uops)
    assert small.global_size == large.global_size and small.launch_vars == large.launch_vars
    reduced_small, reduced_large = [lower_rows(n) for n in (3, 1000)]
    assert format_uops(reduced_small.uops) == format_uops(reduced_large.uops)


def lower_rows(n: int) -> Any:
    """The row-sum graph's kernel lowered for every size for the backend under test without its work groups and
    tensor cores (a reduction in work groups is built per size)."""
    from dataclasses import replace

    from tg.codegen.lower import lower
    from tg.schedule.scheduler import Kernel, create_schedule

    t, _ = _row_sums(n, _rng(n))
    (kernel,) = [k for k in create_schedule([t.lazydata]) if isinstance(k, Kernel)]
    return lower(kernel, replace(_state().capabilities, group_size=1, tensor_cores=()), symbolic=True)


def test_one_row_first_then_more_rows() -> None:
    """N=1 (whose size-1 dimension has stride 0, like a broadcast) is never reused for N=2, 3 and 4, and the kernel
    built for every size at N=3 serves N=4."""
    for n in (1, 2, 3, 1, 4, 3):
        got, want = _elementwise(n, _rng(10 + n))
        assert_close(got.numpy(), want, msg=f"N={n}")
        got, want = _row_sums(n, _rng(20 + n))
        assert_close(got.numpy(), want, msg=f"N={n}")


@pytest.mark.parametrize("graph", ["layernorm of sequences (row-fused)", "a bias read through two views"])
def test_row_fused_and_two_view_kernels_from_one_row(graph: str) -> None:
    """One row first, then odd and even sizes, one row again, and sizes below and above the one the kernel for every
    size was built at: every row of every size is its own."""
    make = GRAPHS[graph]
    for k, n in enumerate((1, 2, 5, 1, 3, 9)):
        got, want = make(n, _rng(60 + k))
        assert_close(got.numpy(), want, msg=f"N={n}")


@pytest.mark.parametrize("n", [3, 5, 4, 3])
def test_flipped_and_transposed_rows(n: int) -> None:
    """A flip along the outermost dimension (its offset depends on N) and a transposed input (its stride does) are
    right at every size."""
    x = _rng(n).standard_normal((n, 6)).astype(np.float32)
    assert_close((Tensor(x).flip(0) * 2.0).numpy(), x[::-1] * np.float32(2.0), msg=f"flip N={n}")
    y = _rng(n + 1).standard_normal((6, n)).astype(np.float32)
    assert_close((Tensor(y).T + 1.0).numpy(), y.T + np.float32(1.0), msg=f"transposed N={n}")
    assert_close((Tensor(y).T * Tensor(x)).sum(axis=1).numpy(), (y.T * x).sum(axis=1), msg=f"both N={n}")


def test_sizes_alternate_with_one_binary() -> None:
    """Sizes 5, 9, 5, 70, 2 in turn through one kernel: nothing of an earlier launch's size stays."""
    for n in (5, 9, 5, 70, 2):
        got, want = _elementwise(n, _rng(30 + n))
        assert_close(got.numpy(), want, msg=f"N={n}")


def test_row_offsets_and_row_strides_are_kept() -> None:
    """Views that differ only in where the rows start (``x[k:]``) or how far apart they are (the first 6 columns of
    wider and wider rows) are different kernels (or one kernel given them), never one kernel's rows for another's."""
    for k, (n, start) in enumerate([(3, 1), (3, 2), (5, 0), (4, 3), (3, 1)]):
        x = _rng(40 + k).standard_normal((n + start, 6)).astype(np.float32)
        assert_close((Tensor(x)[start:] * 3.0).numpy(), x[start:] * np.float32(3.0), msg=f"x[{start}:], N={n}")
    for k, (n, width) in enumerate([(3, 12), (3, 18), (5, 6), (4, 30), (3, 12)]):
        x = _rng(50 + k).standard_normal((n, width)).astype(np.float32)
        assert_close((Tensor(x)[:, :6] + 1.0).numpy(), x[:, :6] + np.float32(1.0), msg=f"width {width}, N={n}")
        assert_close(Tensor(x)[:, :6].sum(axis=1).numpy(), x[:, :6].sum(axis=1), msg=f"sum, width {width}, N={n}")


def test_a_mean_across_the_rows_is_never_built_for_every_size(compiles: list[Any]) -> None:
    """A mean over the outermost dimension, which row fusion may put in the kernel that subtracts it, sums every row:
    no kernel that reduces (``r`` in its name) is built for every size, and each size is right.  (Without row fusion
    the subtraction is a kernel of its own, which may be.)"""
    for k, n in enumerate((2, 3, 7, 4)):
        x = _rng(70 + k).standard_normal((n, 16)).astype(np.float32)
        got = (Tensor(x) - Tensor(x).mean(0)).numpy()
        assert_close(got, x - x.mean(0, dtype=np.float64).astype(np.float32), msg=f"N={n}")
    reducing = [p.name for p in compiles if p.launch_vars and "r" in p.name.split("_")]
    assert not reducing, reducing
