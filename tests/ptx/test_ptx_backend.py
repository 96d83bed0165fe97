"""tg-ptx as tg's users see it: tensors on ``ptx:emu`` against numpy, selection and its messages, lazy imports,
and the GPU runtime's code paths driven through a stand-in for pycuda (there is no GPU here)."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
import threading
import types
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tg_ptx", reason="tg-ptx is not installed (nox -s ptx runs these tests)")

import fake_cuda  # noqa: E402
import ptx_programs as P  # noqa: E402
from tg import Tensor, dtypes  # noqa: E402
from tg_ptx import runtime_cuda  # noqa: E402
from tg_ptx.arch import set_detected_arch  # noqa: E402
from tg_ptx.gpu import probe  # noqa: E402
from tg_ptx.gpu.device import CudaError  # noqa: E402

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
    reasons = ("no NVIDIA driver here", "reports no GPU", "neither cuda-bindings nor pycuda is installed")
    assert any(reason in r.stderr for reason in reasons), r.stderr
    if "no NVIDIA driver here" in r.stderr:  # the machines CI runs on: the fix names the emulator and a fallback
        assert "TG_BACKEND=ptx:emu" in r.stderr and "TG_BACKEND=ptx,clang" in r.stderr, r.stderr
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


class _Driver:
    """libcuda through ctypes, as the probe calls it."""

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

    def cuDeviceGetName(self, out: Any, length: int, device: Any) -> int:  # noqa: N802
        out.value = b"Fake GPU"
        return 0

    def cuDeviceGetAttribute(self, out: Any, attribute: int, device: Any) -> int:  # noqa: N802
        out._obj.value = {75: self.cc[0], 76: self.cc[1]}[attribute]
        return 0


def test_availability_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"pycuda": False, "cuda.bindings": True}
    monkeypatch.setattr(probe, "_installed", lambda module: installed[module])
    monkeypatch.delenv("TG_PTX_DRIVER", raising=False)

    monkeypatch.setattr(probe, "load_driver", lambda: None)
    status = runtime_cuda.CudaRuntime().available()
    assert (status.ok, status.reason) == (False, "no NVIDIA driver here (libcuda.so not found), so no GPU to run on")
    assert "TG_BACKEND=ptx:emu" in status.remedy and "TG_BACKEND=ptx,clang" in status.remedy

    for init, count in ((100, 0), (0, 0)):
        monkeypatch.setattr(probe, "load_driver", lambda i=init, c=count: _Driver(i, c))
        assert runtime_cuda.check_available().reason == "the NVIDIA driver is installed but reports no GPU"
    monkeypatch.setattr(probe, "load_driver", lambda: _Driver(999, 0))
    assert "failed to initialise" in runtime_cuda.check_available().reason
    monkeypatch.setattr(probe, "load_driver", lambda: _Driver(0, 1, (7, 5)))
    assert runtime_cuda.check_available().reason == \
        "the GPU (Fake GPU) is sm_75, and tg-ptx emits PTX for sm_80 and newer"

    # a GPU: which binding drives it, and why
    monkeypatch.setattr(probe, "load_driver", lambda: _Driver(0, 2, (9, 0)))
    status = runtime_cuda.check_available()
    assert status.ok and status.detail.startswith("Fake GPU (sm_90) through cuda-bindings ")
    assert status.detail.endswith("; pycuda not installed")
    installed["pycuda"] = True
    assert runtime_cuda.check_available().detail.startswith("Fake GPU (sm_90) through pycuda ")
    monkeypatch.setenv("TG_PTX_DRIVER", "cuda-bindings")
    assert runtime_cuda.check_available().detail.startswith("Fake GPU (sm_90) through cuda-bindings ")
    installed.update({"pycuda": False, "cuda.bindings": False})
    status = runtime_cuda.check_available()
    assert status.reason == "Fake GPU found, but TG_PTX_DRIVER=cuda-bindings but cuda-bindings is not installed"
    monkeypatch.setenv("TG_PTX_DRIVER", "cupy")
    assert "TG_PTX_DRIVER='cupy' is not one of pycuda, cuda-bindings" in runtime_cuda.check_available().reason
    monkeypatch.delenv("TG_PTX_DRIVER")
    status = runtime_cuda.check_available()
    assert status.reason == "Fake GPU found, but neither cuda-bindings nor pycuda is installed"
    assert status.remedy.startswith("pip install 'tg-ptx[cuda]'")

    def broken() -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(probe, "load_driver", lambda: types.SimpleNamespace(cuInit=broken))
    status = runtime_cuda.check_available()
    assert not status.ok and "could not be queried" in status.reason


# -- the GPU runtime, through stand-ins for both bindings that run kernels on the emulator ------------------------


def _run_scale(runtime: runtime_cuda.CudaRuntime) -> tuple[Any, list[Any], float | None]:
    """Allocate, copy in, compile, launch and copy out the scale-by-5 kernel; its Program, buffers and time."""
    program = P.scale_program()
    handles = []
    for b in program.buffers:
        h = runtime.alloc(b.nbytes)
        runtime.copyin(h, b.view(np.uint8).data)
        handles.append(h)
    rendered = program.rendered()  # rendered once the device is open: for its target
    compiled = runtime.compile(rendered)
    seconds = runtime.launch(rendered, compiled, handles, {})
    runtime.synchronize()
    out = np.zeros(8, np.int32)
    runtime.copyout(out.view(np.uint8).data, handles[0])
    np.testing.assert_array_equal(out, np.arange(8) * 5)
    assert [b.name for b in rendered.buffers] == ["data0", "data1"]
    return rendered, handles, seconds


@pytest.fixture
def fresh_arch(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("TG_PTX_ARCH", raising=False)
    yield
    set_detected_arch(None)


def test_the_gpu_runtime_through_pycuda(monkeypatch: pytest.MonkeyPatch, fresh_arch: Any) -> None:
    driver = fake_cuda.install_pycuda(monkeypatch)
    runtime = runtime_cuda.CudaRuntime()
    rendered, handles, seconds = _run_scale(runtime)
    assert runtime.device().binding == "pycuda" and rendered.source.count(".target sm_86") == 1
    assert driver.modules == [rendered.source] and seconds == pytest.approx(0.25e-3)
    # the two device pointers, in the Program's buffer order; the grid and block from the Program
    assert driver.launches == [("scale_by_5", [handles[0].address, handles[1].address], (8, 1, 1), (1, 1, 1))]
    for h in handles:
        runtime.free(h)
    runtime.device().close()
    with pytest.raises(CudaError, match="already closed"):
        runtime.alloc(8)


def test_the_gpu_runtime_through_cuda_bindings(monkeypatch: pytest.MonkeyPatch, fresh_arch: Any) -> None:
    driver = fake_cuda.install_cuda_bindings(monkeypatch)
    runtime = runtime_cuda.CudaRuntime()
    rendered, handles, seconds = _run_scale(runtime)
    device = runtime.device()
    assert (device.binding, device.name, device.sm) == ("cuda-bindings", "Fake H100", 90)
    assert rendered.source.count(".target sm_90") == 1 and seconds == pytest.approx(0.5e-3)
    # the parameters as the driver reads them: each pointer 64 bits wide, in the Program's buffer order
    assert driver.launches == [("scale_by_5", [int(handles[0]), int(handles[1])], (8, 1, 1), (1, 1, 1))]
    assert driver.current == ["context"]  # made current once in this thread

    # a work-group kernel: the block size reaches the launch, and another thread gets the context made current
    program = P.local_programs()[0]
    buffers = [runtime.alloc(b.nbytes) for b in program.buffers]
    for h, b in zip(buffers, program.buffers):
        runtime.copyin(h, b.view(np.uint8).data)
    rendered = program.rendered()
    thread = threading.Thread(target=lambda: runtime.launch(rendered, runtime.compile(rendered), buffers, {}))
    thread.start()
    thread.join()
    assert driver.current == ["context", "context"] and driver.launches[-1][2:] == ((5, 1, 1), (8, 1, 1))
    out = np.zeros_like(program.buffers[0])
    runtime.copyout(out.view(np.uint8).data, buffers[0])
    np.testing.assert_allclose(out, program.buffers[1].reshape(5, -1).sum(axis=1), rtol=1e-5)

    # a module is unloaded when the last reference to what compile gave goes (core let it go, no jit holds it)
    binary = runtime.compile(rendered)
    gc.collect()
    unloaded = len(driver.unloaded)  # (the modules of the launches above went with their last reference)
    del binary
    gc.collect()
    assert len(driver.unloaded) == unloaded + 1 and driver.unloaded[-1] == rendered.source

    # a module the driver refuses: the error names the call, the driver's error and (with ptxas) why
    bad = dataclasses.replace(rendered, source=rendered.source + "\n// invalid\n")
    with pytest.raises(CudaError, match=r"cuModuleLoadData \(group_reduce_float32\) failed: CUDA_ERROR_INVALID_PTX"):
        runtime.compile(bad)
    for h in [*handles, *buffers]:
        runtime.free(h)
    device.close()
    assert driver.released == 1
