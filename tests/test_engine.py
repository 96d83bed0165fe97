"""The engine's inner contracts: laziness, fusion (kernel counts), views without copies, IR shape, memory.

The conformance kit (tg.testing) checks numbers on every backend; these pin how the core gets there.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from tg import Tensor, dtypes
from tg.codegen.builder import KernelBuilder
from tg.codegen.indexing import view_index
from tg.codegen.lower import lower
from tg.codegen.uops import Ops
from tg.engine.device import live_buffer_count
from tg.graph.lazy import LazyBuffer
from tg.graph.shapetracker import ShapeTracker, View
from tg.schedule.scheduler import Kernel, create_schedule


def kernels(*tensors: Tensor) -> list[Kernel]:
    return [k for k in create_schedule([t.lazydata for t in tensors]) if isinstance(k, Kernel)]


def realized(*shape: int) -> Tensor:
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32)).realize()


def test_nothing_computes_before_realize() -> None:
    a = realized(4, 4)
    b = (a * 2 + 1).exp()
    assert b.lazydata.base.realized is None
    b.realize()
    assert b.lazydata.base.realized is not None


def test_fused_elementwise_into_reduce_is_one_kernel() -> None:
    a, b, c = realized(16, 16), realized(16, 16), realized(16, 16)
    assert len(kernels((a * b + c).relu().sum())) == 1


def test_elementwise_chain_is_one_kernel() -> None:
    a, b = realized(8, 8), realized(8)
    assert len(kernels(((a + b) * a.exp() - 3).sqrt())) == 1


def test_softmax_is_at_most_three_kernels() -> None:
    assert len(kernels(realized(32, 10).softmax(-1))) <= 3


def test_matmul_is_one_kernel() -> None:
    assert len(kernels(realized(8, 16) @ realized(16, 4))) == 1


def test_an_empty_output_builds_and_launches_nothing() -> None:
    """A kernel whose output has no element is neither built nor launched (its index math would divide by 0)."""
    from tg.engine.device import device_state

    a, b = realized(7, 4), realized(0, 4)
    state = device_state(a.device)
    built, launched = len(state.kernels), state.kernel_count
    out = (a.unsqueeze(1) * b.unsqueeze(0)).sum(-1)  # (7, 0): a reduction over 4 into nothing
    assert out.numpy().shape == (7, 0)
    assert (len(state.kernels), state.kernel_count) == (built, launched)
    assert (out + 1).sum().item() == 0.0  # the empty buffer feeds what follows


def test_movement_ops_make_views_not_copies() -> None:
    a = realized(4, 6)
    v = a.permute(1, 0).reshape(2, 12).flip(0)[:, 2:9]
    assert v.lazydata.base is a.lazydata.base
    assert kernels(v) == []


def test_padded_elementwise_is_computed_before_padding() -> None:
    a = realized(3, 3)
    out = (a.exp()).pad(((1, 1), (1, 1)))  # the padding must read 0, not exp(0)
    np.testing.assert_allclose(out.numpy(), np.pad(np.exp(a.numpy()), 1), rtol=1e-6)


def test_long_reduction_is_split() -> None:
    a = realized(1 << 16)
    assert len(kernels(a.sum())) == 2
    np.testing.assert_allclose(a.sum().numpy(), a.numpy().astype(np.float64).sum(), rtol=1e-5)


def test_contiguous_elementwise_index_is_the_thread_id() -> None:
    a, b = realized(4, 5, 6), realized(4, 5, 6)
    (kernel,) = kernels(a + b)
    from tg.backends.numpy_backend import capabilities_from_env

    uops = lower(kernel, capabilities_from_env()).uops
    assert not [u for u in uops if u.op in (Ops.IDIV, Ops.MOD)], "dims that walk contiguously must merge"


def test_masked_loads_have_gates() -> None:
    a = realized(5)
    (kernel,) = kernels(a.pad(((2, 3),)) + 1)
    from tg.backends.numpy_backend import capabilities_from_env

    loads = [u for u in lower(kernel, capabilities_from_env()).uops if u.op is Ops.LOAD]
    assert loads and all(len(u.src) == 4 for u in loads), "a padded load must carry a gate and an alternative"


def test_index_simplification() -> None:
    b = KernelBuilder()
    g = b.special("gidx0", 60)
    i32 = dtypes.int32
    idx = b.alu(Ops.ADD, b.alu(Ops.MUL, b.alu(Ops.IDIV, g, b.const(6, i32)), b.const(6, i32)),
                b.alu(Ops.MOD, g, b.const(6, i32)))
    assert b.alu(Ops.MOD, b.alu(Ops.MOD, g, b.const(6, i32)), b.const(6, i32)).op is Ops.MOD
    assert b.alu(Ops.IDIV, idx, b.const(6, i32)).op is Ops.IDIV
    assert b.alu(Ops.MOD, g, b.const(64, i32)) is g
    assert b.alu(Ops.CMPLT, g, b.const(60, i32)).arg is True
    assert b.alu(Ops.ADD, b.const(2, i32), b.const(3, i32)).arg == 5


@pytest.mark.parametrize("shape,strides,new", [((4, 6), (6, 1), (2, 12)), ((4, 6), (1, 4), (4, 2, 3)),
                                              ((2, 3, 4), (12, 4, 1), (6, 4))])
def test_view_reshape_matches_numpy(shape: tuple[int, ...], strides: tuple[int, ...], new: tuple[int, ...]) -> None:
    base = np.arange(64)
    view = View.create(shape, strides)
    st = ShapeTracker((view,)).reshape(new)
    b = KernelBuilder()
    got = np.zeros(new, dtype=np.int64)
    for pos in np.ndindex(*new):
        index, _ = view_index(b, st, [b.const(p, dtypes.int32) for p in pos])
        got[pos] = base[index.arg]
    want = np.lib.stride_tricks.as_strided(base, shape, [s * 8 for s in strides]).reshape(new)
    np.testing.assert_array_equal(got, want)


def test_composing_onto_a_contiguous_view_gives_the_other_view() -> None:
    """``a + b`` with ``a`` one contiguous view and ``b`` one view is ``b`` (the scheduler's common case takes that
    shortcut); the general composition must agree on every kind of view."""
    base = ShapeTracker.contiguous((4, 6))
    others = [base, base.reshape((24,)), base.reshape((2, 12)), base.permute((1, 0)), base.shrink(((1, 3), (0, 6))),
              base.pad(((1, 0), (0, 2))), base.flip((0,)), base.reshape((4, 1, 6)).expand((4, 5, 6)),
              ShapeTracker.contiguous((4, 6)).pad(((0, 0), (3, 3))).shrink(((0, 4), (2, 10)))]
    for other in others:
        assert len(other.views) == 1
        assert base + other == base._compose(other) == other
    two_views = base.permute((1, 0)).reshape((24,))
    assert len(two_views.views) == 2 and base + two_views == base._compose(two_views)


def test_training_like_loop_does_not_leak_buffers() -> None:
    rng = np.random.default_rng(0)
    w = Tensor(rng.standard_normal((8, 4)).astype(np.float32), requires_grad=True)
    x = Tensor(rng.standard_normal((16, 8)).astype(np.float32))
    y = Tensor(rng.integers(0, 4, 16).astype(np.int32))

    def step() -> None:
        loss = (x @ w).cross_entropy(y)
        loss.backward()
        assert w.grad is not None
        w.assign((w - 0.1 * w.grad).detach().realize())
        w.grad = None
        loss.item()

    for _ in range(10):
        step()
    gc.collect()
    before = live_buffer_count()
    for _ in range(1000):
        step()
    gc.collect()
    assert live_buffer_count() <= before


def test_backend_error_for_unknown_backend_names_known_ones() -> None:
    code = "from tg import Tensor; Tensor([1.0]).numpy()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={"TG_BACKEND": "nope", "TG_PLUGINS": "", "PATH": ""})
    assert result.returncode != 0
    assert "unknown backend 'nope'" in result.stderr and "numpy" in result.stderr


def test_errors_name_shapes_and_axes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        realized(2, 3) + realized(4)
    with pytest.raises(IndexError, match="axis 2 is out of range for a tensor of rank 2"):
        realized(2, 3).sum(2)
    with pytest.raises(RuntimeError, match="scalar"):
        Tensor([1.0, 2.0], requires_grad=True).exp().backward()


def test_const_buffers_are_not_materialized() -> None:
    lb = LazyBuffer.const(3.0, dtypes.float32, "numpy", (4, 4))
    assert lb.base.op is not None and lb.base.shape == ()


def _lowered_ops(kernel: Kernel, caps_text: str, monkeypatch: pytest.MonkeyPatch) -> list[Ops]:
    from tg.backends.numpy_backend import capabilities_from_env
    from tg.codegen.rewrites import apply_capabilities

    monkeypatch.setenv("TG_NUMPY_CAPS", caps_text)
    caps = capabilities_from_env()
    return [u.op for u in apply_capabilities(lower(kernel, caps).uops, caps)]


def test_vector_width_gives_vector_loads_and_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    (kernel,) = kernels(realized(4, 8) * 2 + realized(4, 8))
    ops = _lowered_ops(kernel, "vector_width=4", monkeypatch)
    assert Ops.VECTORIZE in ops and Ops.GEP in ops


def test_work_groups_reduce_through_local_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    (kernel,) = kernels(realized(4, 300).sum(1))
    ops = _lowered_ops(kernel, "group_size=8", monkeypatch)
    assert Ops.DEFINE_LOCAL in ops and Ops.BARRIER in ops


@pytest.mark.parametrize(("caps", "gone", "present"), [("no_div", Ops.DIV, Ops.RECIP), ("mulacc", None, Ops.MULACC),
                                                      ("no_pow", Ops.POW, Ops.EXP2)])
def test_capability_rewrites(caps: str, gone: Ops | None, present: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = realized(4, 4).abs(), realized(4, 4)
    (kernel,) = kernels(a / b + a * b + a ** b)
    ops = _lowered_ops(kernel, caps, monkeypatch)
    assert present in ops and (gone is None or gone not in ops)


def test_unsupported_dtype_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tg.backends.numpy_backend import capabilities_from_env
    from tg.codegen.rewrites import check_dtypes
    from tg.support.errors import BackendError

    (kernel,) = kernels(realized(3).double() * 2)
    monkeypatch.setenv("TG_NUMPY_CAPS", "no_float64")
    caps = capabilities_from_env()
    with pytest.raises(BackendError, match="does not support dtype float64"):
        check_dtypes(lower(kernel, caps).uops, caps, "numpy")


def test_upcast_gives_matmul_a_register_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    (kernel,) = kernels(realized(16, 32) @ realized(32, 24))
    ops = _lowered_ops(kernel, "upcast=16,vector_width=4", monkeypatch)
    assert ops.count(Ops.DEFINE_ACC) == 16, "a 4x4 tile of accumulators per thread"
    assert ops.count(Ops.LOAD) == 5, "per step: 4 values of A and one vector of 4 values of B"


def test_a_chain_a_reduction_would_recompute_many_times_is_computed_once() -> None:
    h, g, x = realized(16, 32), realized(16, 32), realized(16, 64)
    relu_grad = (h > 0).cast(dtypes.float32) * g * 0.5  # an elementwise chain of several ops
    grad_w = x.T @ relu_grad  # every one of the 64 rows of the output would recompute it
    ks = kernels(grad_w)
    assert len(ks) == 2 and ks[0].output.shape == (16, 32)
    np.testing.assert_allclose(grad_w.numpy(), x.numpy().T @ relu_grad.numpy(), rtol=1e-5, atol=1e-5)
    assert len(kernels((realized(8, 8) * 2).sum())) == 1, "no broadcast: the chain still fuses"


@pytest.mark.parametrize(("caps", "gone", "present"), [("no_sub", Ops.SUB, Ops.NEG), ("no_cmpeq", Ops.CMPEQ, Ops.XOR),
                                                      ("no_mod", Ops.MOD, Ops.IDIV)])
def test_an_optional_op_the_target_does_not_render_is_decomposed(caps: str, gone: Ops, present: Ops,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a = Tensor(np.arange(24, dtype=np.float32)).realize()
    mixed = a.reshape(2, 3, 4).permute(2, 0, 1).reshape(4, 6)  # its index needs // and %
    (kernel,) = kernels(((mixed - a.reshape(4, 6)) == mixed).cast(dtypes.float32))
    assert gone in _lowered_ops(kernel, "", monkeypatch), "the kernel must hold the op when it is rendered"
    ops = _lowered_ops(kernel, caps, monkeypatch)
    assert gone not in ops and present in ops


def test_a_pass_that_makes_an_op_the_target_does_not_render_is_refused() -> None:
    from tg.codegen.capabilities import Capabilities
    from tg.codegen.rewrites import check_rendered
    from tg.support.errors import BackendError

    b = KernelBuilder()
    x = b.const(3, dtypes.int32)
    uops = [*b.uops, b.alu(Ops.MOD, b.special("gidx0", 4), x)]
    with pytest.raises(BackendError, match=r"micro-op MOD, which its target does not render"):
        check_rendered(uops, Capabilities(), "mychip")
    check_rendered(uops, Capabilities(renders=frozenset({Ops.MOD, Ops.DIV})), "mychip")


def test_capabilities_refuse_a_required_op_as_optional() -> None:
    from tg.codegen.capabilities import Capabilities

    with pytest.raises(ValueError, match=r"\['ADD'\] are not optional micro-ops"):
        Capabilities(renders=frozenset({Ops.ADD}))


def test_micro_op_kinds_an_emitter_must_render() -> None:
    """26 kinds every emitter renders; 2 more with vector lanes, 2 with work groups (30 at most); the rest are
    optional, each with a decomposition in core (MULACC: a fusion core makes only where declared), WMMA only where
    the target declares tensor cores, and DEFINE_VAR only where it declares launch variables."""
    from tg.codegen.capabilities import Capabilities
    from tg.codegen.rewrites import DECOMPOSITIONS
    from tg.codegen.tensor_cores import MMA_16x8x16_F16_F32
    from tg.support.ops import OPTIONAL

    conditional = {Ops.VECTORIZE, Ops.GEP, Ops.DEFINE_LOCAL, Ops.BARRIER}
    required = set(Ops) - OPTIONAL - conditional - {Ops.WMMA, Ops.DEFINE_VAR}
    assert len(required) == 26 and len(required | conditional) == 30
    assert not Capabilities().rendered(Ops.WMMA)
    assert Capabilities(tensor_cores=(MMA_16x8x16_F16_F32,)).rendered(Ops.WMMA)
    assert not Capabilities().rendered(Ops.DEFINE_VAR)
    assert Capabilities(variables=frozenset({"float32"})).rendered(Ops.DEFINE_VAR)
    assert OPTIONAL == {Ops.NEG, Ops.RECIP, Ops.SUB, Ops.CMPEQ, Ops.MOD, Ops.POW, Ops.DIV, Ops.MULACC}
    assert {op for op, _ in DECOMPOSITIONS} == OPTIONAL - {Ops.MULACC}


def test_without_neg_a_negation_is_a_product(monkeypatch: pytest.MonkeyPatch) -> None:
    (kernel,) = kernels(-realized(4, 4) * 3)
    assert Ops.NEG in _lowered_ops(kernel, "", monkeypatch)
    ops = _lowered_ops(kernel, "no_neg", monkeypatch)
    assert Ops.NEG not in ops and ops.count(Ops.MUL) == 2


def test_without_recip_a_reciprocal_is_a_division(monkeypatch: pytest.MonkeyPatch) -> None:
    (kernel,) = kernels(realized(4, 4).reciprocal())
    assert Ops.RECIP in _lowered_ops(kernel, "", monkeypatch)
    ops = _lowered_ops(kernel, "no_recip", monkeypatch)
    assert Ops.RECIP not in ops and Ops.DIV in ops


def test_a_target_without_div_and_recip_is_refused() -> None:
    from tg.codegen.capabilities import Capabilities

    with pytest.raises(ValueError, match="declare DIV or RECIP"):
        Capabilities(renders=frozenset({Ops.NEG}))


def _lowered(kernel: Kernel, caps_text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], Any]:
    from tg.backends.numpy_backend import capabilities_from_env

    monkeypatch.setenv("TG_NUMPY_CAPS", caps_text)
    lowered = lower(kernel, capabilities_from_env())
    return lowered.uops, lowered


def test_shaped_launch_gives_one_index_per_output_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    a = realized(4, 6, 8)
    (kernel,) = kernels(a.permute(2, 1, 0).contiguous())  # no two output dims merge: the view is transposed
    uops, lowered = _lowered(kernel, "launch_dims=3", monkeypatch)
    specials = {u.arg for u in uops if u.op is Ops.SPECIAL}
    assert specials == {("gidx0", 4), ("gidx1", 6), ("gidx2", 8)} and lowered.global_size == (4, 6, 8)
    assert not any(u.op in (Ops.IDIV, Ops.MOD) for u in uops), "no index is unravelled"
    uops, lowered = _lowered(kernel, "launch_dims=2", monkeypatch)
    assert {u.arg for u in uops if u.op is Ops.SPECIAL} == {("gidx0", 4), ("gidx1", 48)}
    assert lowered.global_size == (4, 48), "the outer dimensions fold into the last launch dimension"
    flat_uops, flat = _lowered(kernel, "", monkeypatch)
    assert flat.global_size == (192,) and any(u.op is Ops.IDIV for u in flat_uops)


def test_shaped_launch_groups_the_innermost_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    (kernel,) = kernels(realized(3, 10).T + 1)  # 10 rows of 3, narrower than a group: launched flat
    uops, lowered = _lowered(kernel, "launch_dims=2,group_size=4", monkeypatch)
    assert lowered.global_size == (8,) and lowered.local_size == (4,)  # not 10 groups of 3 (a lane idle in each)
    (kernel,) = kernels(realized(10, 3).T + 1)
    uops, lowered = _lowered(kernel, "launch_dims=2,group_size=4", monkeypatch)
    assert lowered.global_size == (3, 3) and lowered.local_size == (4, 1)  # 10 = 3 groups of 4, the last gated
    assert any(u.op is Ops.CMPLT for u in uops)
    result = (Tensor(np.arange(30, dtype=np.float32).reshape(10, 3), device="numpy").T + 1).numpy()
    np.testing.assert_array_equal(result, np.arange(30, dtype=np.float32).reshape(10, 3).T + 1)


@pytest.mark.parametrize("interpreter", ["interpret,launch_dims=3,group_size=32,vector_width=4"], indirect=True)
def test_a_dim_of_one_thread_takes_no_launch_dimension(interpreter: Any) -> None:
    """A batch-norm-like kernel (64, 32, 2, 2) merges to (64, 32, 4); the vector lanes take the 4, so a thread index
    walks 64 x 32 only.  Its groups are rows of 32 threads, not one thread each (a launch dimension for the 4)."""
    x, scale = realized(64, 32, 2, 2), realized(1, 32, 1, 1)
    (kernel,) = kernels(x * scale + 1)
    lowered = lower(kernel, interpreter.backend.emitter.capabilities)
    assert lowered.global_size == (1, 64) and lowered.local_size == (32, 1)
    np.testing.assert_array_equal((x * scale + 1).numpy(), x.numpy() * scale.numpy() + 1)  # (run by the interpreter)
    assert [(p.global_size, p.local_size) for p in interpreter.compiled] == [((1, 64), (32, 1))]


def test_a_realized_constant_still_casts_and_folds() -> None:
    """A constant tensor that was realized keeps its value for the graph: casting it crashed (its value was
    dropped with the graph), and a reduction of it folds to a constant."""
    x = Tensor.full((3, 4), 2.0)
    x.realize()
    np.testing.assert_array_equal(x.cast("int32").numpy(), np.full((3, 4), 2, np.int32))
    np.testing.assert_array_equal(x.sum(1).numpy(), [8.0, 8.0, 8.0])


def test_recent_keeps_the_most_recently_used() -> None:
    from tg.engine.device import Recent

    r: Recent[str, int] = Recent(2)
    r["a"], r["b"] = 1, 2
    assert r.get("a") == 1  # a is now the most recent
    r["c"] = 3
    assert "b" not in r and r.get("a") == 1 and r.get("c") == 3 and len(r) == 2


def test_a_bad_kernel_bound_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from tg.engine.device import kernels_max

    monkeypatch.setenv("TG_KERNELS_MAX", "0")
    with pytest.raises(ValueError, match="TG_KERNELS_MAX=0 must be a positive number"):
        kernels_max()
