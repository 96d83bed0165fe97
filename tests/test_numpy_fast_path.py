"""The numpy backend's fast path (tg.backends.numpy_fast): which kernels take it, and that each one computes what the
micro-op interpreter computes.

The ``shadowed`` fixture runs every kernel a program launches twice: the fast path on the real buffers, the
interpreter on copies of them, and compares the outputs (exactly for integers and bools, within a tolerance for
floats, whose sums may add in another order).
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from tg import Tensor, dtypes, nn, optim
from tg.backends import numpy_fast_ops, numpy_fast_plan
from tg.backends.numpy_backend import NumpyEmitter, NumpyRuntime
from tg.codegen.builder import KernelBuilder
from tg.codegen.capabilities import Capabilities
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.uops import Ops
from tg.engine.device import Recent, device_state, reset_devices
from tg.testing import test_fuzz

TOLERANCE = {"float16": 2e-2, "float32": 1e-4, "float64": 1e-10}


class Shadow:
    """What the shadowed kernels did: each rendered program, and how many kernels took each path."""

    def __init__(self) -> None:
        self.programs: list[Program] = []
        self.paths: collections.Counter[str] = collections.Counter()

    def sources(self, path: str = "fast") -> str:
        return "\n".join(p.source for p in self.programs if p.attributes["path"] == path)


def _compare(fast: np.ndarray, interpreted: np.ndarray, name: str) -> None:
    """Integers and bools equal; floats within a tolerance of the output's largest magnitude, NaN and infinities in
    the same places (beyond 1e30 only the sign counts: one rounding decides between a huge value and inf)."""
    if fast.dtype.kind != "f":
        np.testing.assert_array_equal(fast, interpreted, err_msg=name)
        return
    got, want = fast.astype(np.float64), interpreted.astype(np.float64)
    finite = want[np.isfinite(want)]
    tol = TOLERANCE[fast.dtype.name] * max(1.0, float(np.abs(finite).max()) if finite.size else 1.0)
    with np.errstate(invalid="ignore"):
        huge = ((np.abs(got) > 1e30) | (np.abs(want) > 1e30)) & (np.sign(got) == np.sign(want))
        same = (np.isnan(got) & np.isnan(want)) | (got == want) | huge | (np.abs(got - want) <= tol)
    assert same.all(), f"{name}: at {np.argwhere(~same)[:5].tolist()} fast {got[~same][:5]} != {want[~same][:5]}"


@pytest.fixture(autouse=True)
def numpy_by_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tensors made without a device run on the numpy backend, whatever plugins are installed."""
    monkeypatch.setenv("TG_BACKEND", "numpy")
    monkeypatch.delenv("TG_NUMPY_CAPS", raising=False)
    reset_devices()
    yield
    reset_devices()


@pytest.fixture
def shadowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Shadow]:
    state = device_state("numpy")
    emitter, runtime = state.backend.emitter, state.backend.runtime
    assert isinstance(emitter, NumpyEmitter)
    shadow, twins = Shadow(), {}
    render_fast = type(emitter)(emitter.capabilities, fast=True).render
    interpreter = type(emitter)(emitter.capabilities)

    def render(kernel: LoweredKernel) -> Program:
        program = render_fast(kernel)
        shadow.programs.append(program)
        shadow.paths[program.attributes["path"]] += 1
        twins[(program.name, program.source)] = NumpyRuntime().compile(interpreter.render(kernel))
        return program

    launch = runtime.launch

    def launch_both(program: Program, binary: Any, buffers: Any, values: Any) -> float | None:
        copies = [np.array(b, copy=True) for b in buffers]
        launch(program, binary, buffers, values)
        with np.errstate(all="ignore"):
            twins[(program.name, program.source)](copies, values)
        dtype = np.dtype(program.buffers[0].dtype.name)
        _compare(buffers[0].view(dtype), copies[0].view(dtype), program.name)
        return None

    monkeypatch.setattr(emitter, "render", render)
    monkeypatch.setattr(runtime, "launch", launch_both)
    monkeypatch.setattr(state, "kernels", Recent(256))  # every kernel rendered afresh, so every one is shadowed
    yield shadow


def rand(*shape: int, dtype: Any = np.float32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(dtype)


def conv_training_step() -> Any:
    Tensor.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 6, (1, 3), stride=(1, 2), padding=(0, 1)), nn.ReLU(), nn.Flatten(),
                          nn.Linear(6 * 4 * 2, 10))
    model.train()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x, y = Tensor(rand(8, 1, 8, 8)), Tensor(np.arange(8, dtype=np.int32) % 10)
    for _ in range(2):
        loss = model(x).cross_entropy(y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model[0].weight.numpy()


PROGRAMS: dict[str, Callable[[], Any]] = {
    "matmul": lambda: (Tensor(rand(33, 20)) @ Tensor(rand(20, 17))).numpy(),
    "matmul in row blocks of one-thread BLAS calls": lambda: (Tensor(rand(600, 64)) @ Tensor(rand(64, 40))).numpy(),
    "batched matmul, transposed": lambda: (Tensor(rand(3, 20, 9)).transpose(-1, -2) @ Tensor(rand(3, 20, 5))).numpy(),
    "float16 matmul": lambda: (Tensor(rand(16, 24, dtype=np.float16)) @ Tensor(rand(24, 8, dtype=np.float16))).numpy(),
    "float64 matmul": lambda: (Tensor(rand(7, 9, dtype=np.float64)) @ Tensor(rand(9, 4, dtype=np.float64))).numpy(),
    "int32 matmul that wraps": lambda: (Tensor(np.full((4, 8), 1 << 20, np.int32))
                                        @ Tensor(np.arange(24, dtype=np.int32).reshape(8, 3) << 14)).numpy(),
    "int8 sum that wraps": lambda: Tensor(np.full((5, 300), 7, np.int8)).sum(axis=1, dtype=dtypes.int8).numpy(),
    "sums and maxima": lambda: [Tensor(rand(6, 7, 8)).sum(axis=a).numpy() for a in (0, 1, 2, (0, 2))]
                               + [Tensor(rand(6, 7, 8)).max(axis=a).numpy() for a in (0, 1, 2, None)],
    "sum of a broadcast value": lambda: Tensor(rand(5, 1)).expand(5, 9).sum(axis=1).numpy(),
    "nan and inf propagate": lambda: [
        Tensor(np.array([[1, np.nan, 2], [np.inf, 1, 2], [np.inf, -np.inf, 0]], np.float32)).sum(axis=1).numpy(),
        Tensor(np.array([[1, np.nan, 2], [np.inf, 1, 2], [-np.inf, -np.inf, 0]], np.float32)).max(axis=1).numpy(),
        (Tensor(np.array([[np.nan, 1], [np.inf, 0]], np.float32)) @ Tensor(np.ones((2, 2), np.float32))).numpy()],
    "bool reductions": lambda: [(Tensor(rand(4, 9)) > 1).any(axis=1).numpy(), (Tensor(rand(4, 9)) > -2).all().numpy()],
    "row-fused softmax, log_softmax, layernorm (stores inside loops)": lambda: [
        f(Tensor(rand(9, 33) * np.arange(1, 10, dtype=np.float32)[:, None] * 20)).numpy()
        for f in (lambda t: t.softmax(-1), lambda t: t.log_softmax(-1), lambda t: t.layernorm(-1),
                  lambda t: t.transpose(0, 1).softmax(-1), lambda t: t.softmax(0))],
    "softmax and cumsum": lambda: [Tensor(rand(5, 11)).softmax(-1).numpy(), Tensor(rand(4, 13)).cumsum(1).numpy()],
    "padding and strided conv (gated loads)": lambda: Tensor(rand(2, 3, 9, 7)).conv2d(
        Tensor(rand(4, 3, 3, 3)), stride=2, padding=1).numpy(),
    "float16 conv": lambda: Tensor(rand(2, 3, 6, 6, dtype=np.float16)).conv2d(
        Tensor(rand(2, 3, 3, 3, dtype=np.float16)), padding=1).numpy(),
    "integer division by constants": lambda: [f(Tensor(np.arange(-50, 50, dtype=dt))).numpy()
                                              for dt in (np.int32, np.int8)
                                              for f in (lambda t: t // 7, lambda t: t // -3, lambda t: (t * 3) // 5)],
    "gather by index": lambda: Tensor(rand(10, 4))[Tensor(np.array([3, 0, 9, 3], np.int32))].numpy(),
    "a conv net's training steps": conv_training_step,
    "Python floats as launch variables": lambda: [((Tensor(rand(33, 17)) * s) @ Tensor(rand(17, 5)) + s * 2).numpy()
                                                  for s in (0.37, -1.5)],
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_each_kernel_of_a_program_matches_the_interpreter(shadowed: Shadow, name: str) -> None:
    PROGRAMS[name]()
    assert shadowed.paths["fast"] > 0 and shadowed.paths["interpreter"] == 0, shadowed.paths


@settings(max_examples=int(os.environ.get("TG_FUZZ_EXAMPLES", "40")), deadline=None, derandomize=True,
          database=None, suppress_health_check=list(HealthCheck))
@given(test_fuzz.programs())
def test_random_programs_match_the_interpreter_kernel_by_kernel(shadowed: Shadow, program: Any) -> None:
    """The conformance kit's random programs (edge values, mixed dtypes, broadcasting, reductions, matmuls)."""
    test_fuzz._run(program, "numpy", [len(program.inputs) + len(program.steps) - 1])


def test_a_float_matmul_and_a_conv_are_blas_products_and_a_sum_a_reduction(shadowed: Shadow) -> None:
    (Tensor(rand(8, 16)) @ Tensor(rand(16, 4))).numpy()
    assert "_accumulate_product(" in shadowed.sources()
    shadowed.programs.clear()
    Tensor(rand(2, 3, 8, 8)).conv2d(Tensor(rand(4, 3, 3, 3)), padding=1).numpy()
    assert "_accumulate_product(" in shadowed.sources()
    shadowed.programs.clear()
    Tensor(rand(64, 64)).sum(axis=1).numpy()
    assert "_accumulate(np.add" in shadowed.sources()
    assert "for _k1 in range(0, 64, 64):" in shadowed.sources()  # one trip for all 64 iterations


def test_an_integer_contraction_is_not_sent_to_blas(shadowed: Shadow) -> None:
    (Tensor(np.ones((4, 8), np.int32)) @ Tensor(np.ones((8, 2), np.int32))).numpy()
    assert "_accumulate_product(" not in shadowed.sources() and "_accumulate(np.add" in shadowed.sources()


def test_big_kernels_run_in_chunks_of_threads_and_of_loop_iterations(shadowed: Shadow,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numpy_fast_plan, "CHUNK_BYTES", 1 << 12)
    a, b = rand(40, 30), rand(30, 20)
    np.testing.assert_allclose((Tensor(a) @ Tensor(b)).numpy(), a @ b, rtol=1e-5, atol=1e-5)
    x = rand(3, 5000)
    np.testing.assert_allclose(Tensor(x).sum(axis=1).numpy(), x.sum(axis=1), rtol=1e-5, atol=1e-4)
    chunked = [(name, int(size), int(step)) for name, size, step in
               re.findall(r"for (_c|_k\d+) in range\(0, (\d+), (\d+)\)", shadowed.sources())]
    assert any(name == "_c" and step < size for name, size, step in chunked), chunked  # threads
    assert any(name != "_c" and step < size for name, size, step in chunked), chunked  # loop iterations


# -- kernels written as micro-ops: what the fast path refuses, and gated loads ---------------------------------------

def run(program: Program, n_out: int, *inputs: np.ndarray) -> np.ndarray:
    runtime = NumpyRuntime()
    buffers = [np.zeros(n_out * 4, np.uint8), *(np.frombuffer(x.tobytes(), np.uint8).copy() for x in inputs)]
    runtime.launch(program, runtime.compile(program), buffers, {})
    return buffers[0].view(np.float32)


def both(kernel: LoweredKernel) -> tuple[Program, Program]:
    return NumpyEmitter(Capabilities(), fast=True).render(kernel), NumpyEmitter(Capabilities()).render(kernel)


def looped_kernel(update: Callable[[KernelBuilder, Any, Any], Any], store_in_loop: bool = False) -> LoweredKernel:
    """4 threads, each looping over 8 inputs: acc = update(acc, x)."""
    b = KernelBuilder()
    f32, i32 = dtypes.float32, dtypes.int32
    out, inp = b.define_global(0, f32, True), b.define_global(1, f32, False)
    g = b.special("gidx0", 4)
    acc = b.define_acc(0.0, f32)
    r = b.range(0, 8)
    x = b.load(inp, b.alu(Ops.ADD, b.alu(Ops.MUL, g, b.const(8, i32)), r), f32)
    b.assign(acc, update(b, acc, x))
    if store_in_loop:
        b.store(out, g, acc)
    b.end_range(r)
    b.store(out, g, acc)
    return LoweredKernel("looped", b.uops, (4,), (1,))


@pytest.mark.parametrize(("name", "update", "reason"), [
    ("horner", lambda b, acc, x: b.alu(Ops.ADD, b.alu(Ops.MUL, acc, b.const(0.5, dtypes.float32)), x),
     "an accumulator read before its loops end"),
    ("product", lambda b, acc, x: b.alu(Ops.MUL, acc, x), "an accumulation by MUL"),
])
def test_a_loop_that_is_not_a_pure_accumulation_runs_on_the_interpreter(name: str, update: Any, reason: str) -> None:
    fast, plain = both(looped_kernel(update))
    assert fast.attributes["path"] == "interpreter" and fast.attributes["not_fast"].startswith(reason)
    assert fast.source == plain.source
    x = rand(32)
    if name == "horner":
        want = np.zeros(4, np.float32)
        for k in range(8):
            want = want * np.float32(0.5) + x.reshape(4, 8)[:, k]
        np.testing.assert_allclose(run(fast, 4, x), want, rtol=1e-6)


def test_a_store_inside_a_loop_runs_on_the_interpreter_where_it_reads_its_accumulator_or_may_repeat() -> None:
    fast, _ = both(looped_kernel(lambda b, acc, x: b.alu(Ops.ADD, acc, x), store_in_loop=True))
    assert fast.attributes["not_fast"].startswith("an accumulator read before its loops end")
    b = KernelBuilder()
    f32, i32 = dtypes.float32, dtypes.int32
    out, inp = b.define_global(0, f32, True), b.define_global(1, f32, False)
    g = b.special("gidx0", 4)
    r = b.range(0, 8)
    b.store(out, g, b.load(inp, b.alu(Ops.ADD, b.alu(Ops.MUL, g, b.const(8, i32)), r), f32))  # 8 times to out[g]
    b.end_range(r)
    fast, plain = both(LoweredKernel("repeat", b.uops, (4,), (1,)))
    assert fast.attributes["not_fast"] == "a store inside a loop whose index may repeat"
    x = rand(32)
    np.testing.assert_array_equal(run(fast, 4, x), x.reshape(4, 8)[:, -1])  # the last iteration's store wins


def test_row_passes_store_through_strided_views_in_chunks(shadowed: Shadow, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row-fused softmax stores inside its last loop: through a view of the output, per chunk of threads and of
    the loop's iterations."""
    monkeypatch.setattr(numpy_fast_plan, "CHUNK_BYTES", 1 << 12)
    x = rand(37, 300) * 10
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(Tensor(x).softmax(-1).numpy(), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert shadowed.paths["interpreter"] == 0 and "_store_affine(" in shadowed.sources(), shadowed.paths
    chunked = [(name, int(size), int(step)) for name, size, step in
               re.findall(r"for (_c|_k\d+) in range\(0, (\d+), (\d+)\)", shadowed.sources())]
    assert any(name != "_c" and step < size for name, size, step in chunked), chunked


def test_a_pure_accumulation_written_by_hand_takes_the_fast_path() -> None:
    fast, plain = both(looped_kernel(lambda b, acc, x: b.alu(Ops.MAX, x, acc)))
    assert fast.attributes["path"] == "fast"
    x = rand(32)
    np.testing.assert_array_equal(run(fast, 4, x), run(plain, 4, x))
    np.testing.assert_array_equal(run(fast, 4, x), x.reshape(4, 8).max(1))


def test_work_groups_and_local_memory_run_on_the_interpreter() -> None:
    b = KernelBuilder()
    out = b.define_global(0, dtypes.float32, True)
    lane = b.special("lidx0", 4)
    local = b.define_local("partials", dtypes.float32, 4)
    b.store(local, lane, b.cast(lane, dtypes.float32))
    b.barrier()
    b.store(out, lane, b.load(local, lane, dtypes.float32))
    fast = NumpyEmitter(Capabilities(local_memory=64, group_size=4), fast=True).render(
        LoweredKernel("grouped", b.uops, (1,), (4,)))
    assert fast.attributes == {"path": "interpreter", "not_fast": "work groups"}


def test_a_gated_load_never_reads_outside_its_buffer() -> None:
    """out[i] = in[i - 3] where i >= 3 else -1, over a buffer of exactly 5: threads 0..2 would read in[-3..-1]."""
    b = KernelBuilder()
    f32, i32 = dtypes.float32, dtypes.int32
    out, inp = b.define_global(0, f32, True), b.define_global(1, f32, False)
    g = b.special("gidx0", 8)
    index = b.alu(Ops.ADD, g, b.const(-3, i32))
    gate = b.alu(Ops.CMPLT, b.const(2, i32), g)
    b.store(out, g, b.load(inp, index, f32, gate, b.const(-1.0, f32)))
    fast, plain = both(LoweredKernel("shifted", b.uops, (8,), (1,)))
    assert fast.attributes["path"] == "fast"
    x = np.arange(5, dtype=np.float32) + 10
    np.testing.assert_array_equal(run(fast, 8, x), [-1, -1, -1, 10, 11, 12, 13, 14])
    np.testing.assert_array_equal(run(fast, 8, x), run(plain, 8, x))


def test_the_interpreter_is_what_any_capability_setting_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from tg.backends.numpy_backend import capabilities_from_env, fast_path_from_env

    for setting, fast in (("", True), ("interpret", False), ("no_div", False), (" ", True)):
        monkeypatch.setenv("TG_NUMPY_CAPS", setting)
        assert fast_path_from_env() is fast
    monkeypatch.setenv("TG_NUMPY_CAPS", "interpret")
    interpreted = capabilities_from_env()
    monkeypatch.delenv("TG_NUMPY_CAPS")
    assert fast_path_from_env() and capabilities_from_env() == interpreted  # the same lowering, another renderer


@pytest.mark.parametrize("pad_limit", [numpy_fast_ops.PAD_LIMIT, -(1 << 40)])
def test_affine_loads_past_the_ends_read_like_the_interpreter(monkeypatch: pytest.MonkeyPatch, pad_limit: int) -> None:
    """in[i - 3], gated (masked lanes read a zero-padded copy, or, past PAD_LIMIT, are gathered) and not gated (lanes
    0..2 read in[-3..-1]: numpy's negative indices, as the interpreter reads them)."""
    monkeypatch.setattr(numpy_fast_ops, "PAD_LIMIT", pad_limit)
    f32, i32 = dtypes.float32, dtypes.int32
    for gated in (True, False):
        b = KernelBuilder()
        out, inp = b.define_global(0, f32, True), b.define_global(1, f32, False)
        g = b.special("gidx0", 8)
        index = b.alu(Ops.ADD, g, b.const(-3, i32))
        gate = b.alu(Ops.CMPLT, b.const(2, i32), g) if gated else None
        b.store(out, g, b.load(inp, index, f32, gate, b.const(-1.0, f32) if gated else None))
        fast, plain = both(LoweredKernel("shifted", b.uops, (8,), (1,)))
        assert "_load_affine(" in fast.source
        x = np.arange(5, dtype=np.float32) + 10
        np.testing.assert_array_equal(run(fast, 8, x), run(plain, 8, x))


def test_small_products_are_split_into_row_blocks_that_give_the_same_product(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    matmul = np.matmul
    monkeypatch.setattr(numpy_fast_ops.np, "matmul", lambda *a, **k: calls.append(a[0].shape) or matmul(*a, **k))
    a, b = rand(2, 600, 64), rand(2, 64, 40)
    np.testing.assert_allclose(numpy_fast_ops.blas_matmul(a, b), a @ b, rtol=1e-5, atol=1e-5)
    rows = numpy_fast_ops.ONE_THREAD_MNK // (64 * 40)
    assert calls == [(2, rows, 64)] * (600 // rows) + [(2, 600 % rows, 64)]
