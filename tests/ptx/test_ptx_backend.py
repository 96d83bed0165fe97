"""tg-ptx as tg's users see it: tensors on ``ptx:emu`` against numpy, selection and its messages, lazy imports,
and the GPU runtime's code paths driven through a stand-in for pycuda (there is no GPU here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tg_ptx", reason="tg-ptx is not installed (nox -s ptx runs these tests)")

import ptx_programs as P  # noqa: E402
from tg import Tensor, dtypes  # noqa: E402
from tg_ptx import runtime_cuda  # noqa: E402
from tg_ptx.arch import set_detected_arch  # noqa: E402
from tg_ptx.emulator import GlobalMemory, compile_kernel, run_kernel  # noqa: E402

DEV = "ptx:emu"
RNG = np.random.default_rng(5)


def on(x: np.ndarray) -> Tensor:
    return Tensor(x, device=DEV)


def rand(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return RNG.uniform(-1, 1, shape).astype(dtype)


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("TG_")}
    out["TG_PLUGINS"] = "ptx"
    out.update(extra)
    return out


# -- numbers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "k", "n"), [(5, 7, 3), (64, 32, 48), (1, 300, 1)])
def test_matmul(m: int, k: int, n: int) -> None:
    a, b = rand(m, k), rand(k, n)
    np.testing.assert_allclose((on(a) @ on(b)).numpy(), a @ b, rtol=1e-5, atol=1e-5)


def test_matmul_float16() -> None:
    a, b = rand(16, 24, dtype=np.float16), rand(24, 8, dtype=np.float16)
    want = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose((on(a) @ on(b)).numpy().astype(np.float32), want, rtol=1e-2, atol=1e-2)


def test_conv2d() -> None:
    x, w, bias = rand(2, 3, 9, 9), rand(4, 3, 3, 3), rand(4)
    got = on(x).conv2d(on(w), on(bias), padding=1).numpy()
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((2, 4, 9, 9), np.float64)
    for i in range(9):
        for j in range(9):
            want[:, :, i, j] = np.einsum("bchw,ochw->bo", xp[:, :, i:i + 3, j:j + 3], w)
    np.testing.assert_allclose(got, want + bias[None, :, None, None], rtol=1e-4, atol=1e-5)


def test_big_reductions_use_work_groups_and_shared_memory(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    x = rand(3, 5001)  # a shape no other test uses: fresh kernels, whose source TG_DEBUG=4 prints
    monkeypatch.setenv("TG_DEBUG", "4")
    got_sum, got_max = on(x).sum(axis=1).numpy(), on(x).max(axis=1).numpy()
    assert "bar.sync 0" in capsys.readouterr().out
    np.testing.assert_allclose(got_sum, x.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got_max, x.max(axis=1))


def test_softmax_and_log_softmax() -> None:
    x = rand(7, 33) * 20
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(on(x).softmax(-1).numpy(), e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_elementwise_chain_with_vectors_and_float16() -> None:
    x = rand(8, 64)
    got = ((on(x) * 3 + 1).exp2().log2().sin() - on(x).sqrt()).numpy()
    with np.errstate(invalid="ignore"):
        want = np.sin(np.log2(np.exp2(x.astype(np.float64) * 3 + 1))) - np.sqrt(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    h = rand(4, 16, dtype=np.float16)
    np.testing.assert_allclose((on(h) * on(h) + 1).numpy().astype(np.float32),
                               (h * h + np.float16(1)).astype(np.float32), rtol=1e-3)


def test_movement_ops_padding_flips_and_slices() -> None:
    x = rand(5, 6)
    got = on(x).flip(1).pad(((1, 2), (0, 3)))[1:, ::2].permute(1, 0).numpy()
    want = np.pad(x[:, ::-1], ((1, 2), (0, 3)))[1:, ::2].T
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(Tensor.cat(on(x), on(x[:2]), dim=0).numpy(), np.concatenate([x, x[:2]]))


def test_integers_wrap_and_divide_like_c() -> None:
    a = np.array([100, -100, 127, -128, 50], np.int8)
    np.testing.assert_array_equal((on(a) + on(a)).numpy(), a + a)
    b = np.array([7, -7, 9, -9], np.int32)
    np.testing.assert_array_equal((on(b) // 2).numpy(), b // 2)
    np.testing.assert_array_equal(on(b).argmax().numpy(), np.argmax(b))


def test_comparisons_where_and_casts() -> None:
    x, y = rand(50), rand(50)
    got = (on(x) < on(y)).where(on(x), on(y)).numpy()
    np.testing.assert_array_equal(got, np.where(x < y, x, y))
    np.testing.assert_array_equal(on(x * 100).cast(dtypes.int8).cast(dtypes.float64).numpy(),
                                  (x * 100).astype(np.int8).astype(np.float64))


def test_a_training_step_matches_the_numpy_backend() -> None:
    def step(device: str) -> list[np.ndarray]:
        Tensor.manual_seed(0)
        w1 = Tensor(rand(8, 16) * 0 + np.linspace(-1, 1, 128).reshape(8, 16).astype(np.float32), device=device,
                    requires_grad=True)
        x = Tensor(np.linspace(-2, 2, 32).reshape(4, 8).astype(np.float32), device=device)
        loss = (x @ w1).relu().softmax(-1).log().mean()
        loss.backward()
        assert w1.grad is not None
        return [loss.numpy(), w1.grad.numpy()]

    for got, want in zip(step(DEV), step("numpy")):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_copies_between_backends() -> None:
    x = rand(10)
    np.testing.assert_array_equal(on(x).to("numpy").numpy(), x)
    np.testing.assert_array_equal(Tensor(x, device="numpy").to(DEV).numpy(), x)


# -- selection, messages, lazy imports -------------------------------------------------------------------------


def test_tg_backend_ptx_without_a_gpu_names_the_missing_piece() -> None:
    code = "from tg import Tensor; Tensor([1.0]).numpy()"
    r = subprocess.run([sys.executable, "-c", code], env=env(TG_BACKEND="ptx"), capture_output=True, text=True)
    assert r.returncode != 0
    assert "backend 'ptx' is installed but cannot run here" in r.stderr
    reasons = ("pycuda is not installed", "no NVIDIA driver (libcuda.so not found)", "no CUDA device")
    assert any(reason in r.stderr for reason in reasons), r.stderr
    assert "Fix:" in r.stderr


def test_tg_backends_check_lists_both_runtimes_with_reasons() -> None:
    r = subprocess.run([sys.executable, "-m", "tg", "backends", "--check", "--json"], env=env(),
                       capture_output=True, text=True, check=True)
    rows = {row["backend"]: row for row in json.loads(r.stdout)["backends"]}
    assert rows["ptx:emu"]["available"] is True and rows["ptx:emu"]["priority"] == -100
    assert rows["ptx"]["priority"] == 300 and rows["ptx"]["distribution"] == "tg-ptx"
    if not rows["ptx"]["available"]:
        assert rows["ptx"]["problem"] and rows["ptx"]["remedy"]


def test_import_tg_imports_no_tg_ptx_module_and_no_pycuda() -> None:
    code = """
import sys, tg
from tg.backends.discovery import registry
reg = registry()
assert 'ptx' in reg.plugins, reg.plugins
before = sorted(m for m in sys.modules if m.startswith(('tg_ptx', 'pycuda')))
from tg import Tensor
Tensor([1.0, 2.0], device='ptx:emu').numpy()
after = sorted(m for m in sys.modules if m.startswith(('tg_ptx', 'pycuda')))
print(before, 'pycuda' in after, 'tg_ptx.plugin' in after)
"""
    r = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["[]", "False", "True"], r.stdout + r.stderr


def test_availability_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = runtime_cuda.importlib.util.find_spec

    def no_pycuda(name: str, *args: Any) -> Any:
        return None if name == "pycuda" else real_find_spec(name, *args)

    monkeypatch.setattr(runtime_cuda.importlib.util, "find_spec", no_pycuda)
    status = runtime_cuda.CudaRuntime().available()
    assert (status.ok, status.reason) == (False, "pycuda is not installed")
    assert status.remedy == "pip install 'tg-ptx[cuda]' (needs a CUDA toolkit to build)"

    monkeypatch.setattr(runtime_cuda.importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(runtime_cuda, "_load_driver", lambda: None)
    assert runtime_cuda.check_available().reason == "no NVIDIA driver (libcuda.so not found)"

    class Driver:
        def __init__(self, init: int, count: int, cc: tuple[int, int] = (8, 0)):
            self.init, self.count, self.cc = init, count, cc

        def cuInit(self, flags: int) -> int:  # noqa: N802 - the driver's names
            return self.init

        def cuDeviceGetCount(self, out: Any) -> int:  # noqa: N802
            out._obj.value = self.count
            return 0

        def cuDeviceGet(self, out: Any, ordinal: int) -> int:  # noqa: N802
            out._obj.value = ordinal
            return 0

        def cuDeviceGetAttribute(self, out: Any, attribute: int, device: Any) -> int:  # noqa: N802
            out._obj.value = {75: self.cc[0], 76: self.cc[1]}[attribute]
            return 0

    monkeypatch.setattr(runtime_cuda, "_load_driver", lambda: Driver(100, 0))
    assert runtime_cuda.check_available().reason == "no CUDA device"
    monkeypatch.setattr(runtime_cuda, "_load_driver", lambda: Driver(0, 0))
    assert runtime_cuda.check_available().reason == "no CUDA device"
    monkeypatch.setattr(runtime_cuda, "_load_driver", lambda: Driver(999, 0))
    assert "failed to initialise" in runtime_cuda.check_available().reason
    monkeypatch.setattr(runtime_cuda, "_load_driver", lambda: Driver(0, 2))
    assert runtime_cuda.check_available().ok
    monkeypatch.setattr(runtime_cuda, "_load_driver", lambda: Driver(0, 1, (7, 5)))
    assert runtime_cuda.check_available().reason == "the GPU is sm_75, and tg-ptx emits PTX for sm_80 and newer"

    def broken() -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(runtime_cuda, "_load_driver", lambda: types.SimpleNamespace(cuInit=broken))
    status = runtime_cuda.check_available()
    assert not status.ok and "could not be queried" in status.reason


# -- the GPU runtime, through a stand-in for pycuda that runs kernels on the emulator ----------------------------


class _FakeFunction:
    def __init__(self, driver: Any, source: str, name: str):
        self.driver, self.name, self.kernel = driver, name, compile_kernel(source, name)

    def __call__(self, *args: Any, grid: tuple[int, ...], block: tuple[int, ...]) -> None:
        assert len(grid) == 3 and len(block) == 3
        values = [a.address if hasattr(a, "address") else a.item() for a in args]
        self.driver.launches.append((self.name, values, grid, block))
        run_kernel(self.kernel, self.driver.memory, grid[0], block[0], values)


def fake_pycuda() -> types.ModuleType:
    """A pycuda.driver look-alike: allocations in an emulator heap, modules JIT-ed by the emulator."""
    driver = types.ModuleType("pycuda.driver")
    d: Any = driver
    d.memory, d.launches, d.modules = GlobalMemory(), [], []
    d.init = lambda: None

    class Context:
        def push(self) -> None: ...
        def pop(self) -> None: ...
        def synchronize(self) -> None: ...

    class Device:
        def __init__(self, index: int): ...
        def retain_primary_context(self) -> Context:
            return Context()
        def compute_capability(self) -> tuple[int, int]:
            return (8, 6)

    class Event:
        def record(self) -> None: ...
        def synchronize(self) -> None: ...
        def time_till(self, other: Any) -> float:
            return 0.25

    class Module:
        def __init__(self, source: bytes):
            self.source = source.decode()
            d.modules.append(self.source)

        def get_function(self, name: str) -> _FakeFunction:
            return _FakeFunction(d, self.source, name)

    def memcpy_htod(dst: Any, src: np.ndarray) -> None:
        dst.data[: src.nbytes] = src.view(np.uint8)

    def memcpy_dtoh(dst: np.ndarray, src: Any) -> None:
        dst[:] = src.data[: dst.nbytes]

    class Allocation:
        def __init__(self, nbytes: int):
            self.inner = d.memory.alloc(nbytes)
            self.address, self.data = self.inner.address, self.inner.data

        def free(self) -> None:
            d.memory.free(self.inner)

    d.Device, d.Event, d.mem_alloc, d.module_from_buffer = Device, Event, Allocation, Module
    d.memcpy_htod, d.memcpy_dtoh = memcpy_htod, memcpy_dtoh
    return driver


def test_the_gpu_runtime_loads_launches_and_times(monkeypatch: pytest.MonkeyPatch) -> None:
    driver: Any = fake_pycuda()
    package = types.ModuleType("pycuda")
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.delenv("TG_PTX_ARCH", raising=False)
    runtime = runtime_cuda.CudaRuntime()
    try:
        program = P.scale_program()
        handles = []
        for b in program.buffers:
            h = runtime.alloc(b.nbytes)
            runtime.copyin(h, b.view(np.uint8).data)
            handles.append(h)
        rendered = program.rendered()  # rendered once the device is open: for its target
        assert rendered.source.count(".target sm_86") == 1  # the device's target
        compiled = runtime.compile(rendered)
        assert driver.modules == [rendered.source] and compiled.function.name == rendered.name == "scale_by_5"
        seconds = runtime.launch(rendered, compiled, handles, {})
        runtime.synchronize()
        assert seconds == pytest.approx(0.25e-3)
        # the two device pointers, in the Program's buffer order; the grid and block from the Program
        assert [b.name for b in rendered.buffers] == ["data0", "data1"]
        assert driver.launches == [("scale_by_5", [handles[0].address, handles[1].address], (8, 1, 1), (1, 1, 1))]
        assert handles[0].address != handles[1].address
        out = np.zeros(8, np.int32)
        runtime.copyout(out.view(np.uint8).data, handles[0])
        np.testing.assert_array_equal(out, np.arange(8) * 5)
        for h in handles:
            runtime.free(h)
    finally:
        runtime._close()
        set_detected_arch(None)
