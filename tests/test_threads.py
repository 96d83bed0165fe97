"""Threads: grad mode and jit tracing are per thread, training in several threads at once gives the sequential
results, and plugins load once however many threads ask for them first."""

from __future__ import annotations

import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import tg
from tg import Tensor, nn, no_grad
from tg.backends.discovery import PluginInfo, PluginRegistry
from tg.backends.selection import candidates, resolve
from tg.engine import device
from tg.engine.realize import current_recorder
from tg.hooks import HOOKSPEC_VERSION
from tg.optim import SGD

T = TypeVar("T")
JOIN_S = 120  # generous: a hang fails the test instead of blocking the run


def in_threads(fn: Callable[[int], T], n: int = 4) -> list[T]:
    """fn(0) .. fn(n-1), each in its own thread, all released at once; what each returned, or the first error."""
    start = threading.Barrier(n)
    results: dict[int, Any] = {}

    def run(i: int) -> None:
        try:
            start.wait(timeout=JOIN_S)
            results[i] = ("ok", fn(i))
        except BaseException as exc:  # re-raised below, in the test's thread
            results[i] = ("error", exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=JOIN_S)
    assert not any(t.is_alive() for t in threads), f"a thread was still running after {JOIN_S} s"
    for kind, value in (results[i] for i in range(n)):
        if kind == "error":
            raise value
    return [results[i][1] for i in range(n)]


# -- grad mode ----------------------------------------------------------------------------------------------------


def test_no_grad_in_one_thread_leaves_another_recording() -> None:
    inside, done = threading.Event(), threading.Event()

    def quiet() -> None:
        with no_grad():
            assert Tensor.no_grad
            inside.set()
            assert done.wait(JOIN_S)
            x = Tensor([1.0, 2.0], requires_grad=True)
            assert not (x * 2).requires_grad, "no_grad still holds in its own thread"

    def training() -> None:
        assert inside.wait(JOIN_S)
        try:
            assert not Tensor.no_grad
            x = Tensor([1.0, 2.0], requires_grad=True)
            (x * x).sum().backward()
            assert x.grad is not None and x.grad.tolist() == [2.0, 4.0]
        finally:
            done.set()

    in_threads(lambda i: quiet() if i == 0 else training(), n=2)
    assert not Tensor.no_grad


def test_setting_tensor_no_grad_holds_for_the_calling_thread_only() -> None:
    Tensor.no_grad = True
    try:
        assert in_threads(lambda i: Tensor.no_grad, n=2) == [False, False], "a new thread starts recording"
        assert not Tensor([1.0], requires_grad=True).mul(2).requires_grad
    finally:
        Tensor.no_grad = False
    assert Tensor([1.0], requires_grad=True).mul(2).requires_grad


def test_dropout_module_leaves_the_shared_training_flag_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tensor.training is one flag for every thread: nn.Dropout must not set it, even for a moment."""
    seen: list[bool] = []
    rand = Tensor.rand

    def watching_rand(*shape: Any, **kwargs: Any) -> Tensor:
        seen.append(Tensor.training)  # what another thread's Tensor.dropout would see right now
        return rand(*shape, **kwargs)

    monkeypatch.setattr(Tensor, "rand", staticmethod(watching_rand))
    monkeypatch.setattr(Tensor, "training", False)
    layer = nn.Dropout(0.5)
    layer.train()
    out = layer(Tensor(np.ones(256, dtype=np.float32))).numpy()
    assert seen == [False]
    assert 0 < np.count_nonzero(out) < 256 and set(np.unique(out)) <= {0.0, 2.0}, "the module did drop"


def _train(seed: int, device_name: str, steps: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    model = nn.Linear(6, 3)
    model.weight = Tensor(rng.standard_normal((3, 6)).astype(np.float32), device=device_name, requires_grad=True)
    assert model.bias is not None
    model.bias = Tensor(rng.standard_normal(3).astype(np.float32), device=device_name, requires_grad=True)
    opt = SGD([model.weight, model.bias], lr=0.05, momentum=0.9)
    x = Tensor(rng.standard_normal((16, 6)).astype(np.float32), device=device_name)
    y = Tensor(rng.standard_normal((16, 3)).astype(np.float32), device=device_name)
    for _ in range(steps):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    return [model.weight.numpy(), model.bias.numpy()]


@pytest.mark.parametrize("device_name", ["numpy", None], ids=["numpy", "default"])
def test_four_threads_train_four_models_like_one_after_another(device_name: str | None) -> None:
    name = device.canonical_name(device_name)
    sequential = [_train(seed, name) for seed in range(4)]
    concurrent = in_threads(lambda seed: _train(seed, name))
    for seed, (alone, together) in enumerate(zip(sequential, concurrent)):
        for a, b in zip(alone, together):
            np.testing.assert_array_equal(b, a, err_msg=f"model {seed} trained differently in a thread on {name}")


# -- jit ----------------------------------------------------------------------------------------------------------


def test_item_in_one_thread_while_another_traces() -> None:
    capturing, read = threading.Event(), threading.Event()

    @tg.jit
    def step(x: Tensor) -> Tensor:
        recorder = current_recorder()
        if recorder is not None and recorder.refuse_reads_for:  # the capture: the other thread reads meanwhile
            capturing.set()
            assert read.wait(JOIN_S)
        return x * 2 + 1

    def tracer() -> list[float]:
        return [step(Tensor(np.full(3, float(k), dtype=np.float32))).tolist() for k in range(5)][-1]

    def reader() -> float:
        assert capturing.wait(JOIN_S)
        try:
            return (Tensor([1.0, 2.0]) * 3).sum().item()  # a read is refused only in the capturing thread
        finally:
            read.set()

    traced, value = in_threads(lambda i: tracer() if i == 0 else reader(), n=2)
    assert value == 9.0
    assert traced == [9.0, 9.0, 9.0] and step.replays == 2


@pytest.mark.parametrize("device_name", ["numpy", None], ids=["numpy", "default"])
def test_one_jitted_function_called_from_four_threads(device_name: str | None) -> None:
    name = device.canonical_name(device_name)

    @tg.jit
    def affine(x: Tensor, w: Tensor) -> Tensor:  # two kernels: the second reads the first's intermediate buffer
        return (x * w).sum(axis=0).contiguous().exp2() + 1

    w_host = np.linspace(-1, 1, 512, dtype=np.float32)
    w = Tensor(w_host, device=name).realize()

    def calls(i: int) -> list[bool]:
        ok = []
        for k in range(12):
            x = np.full((64, 512), (i * 12 + k) / 100, dtype=np.float32)
            want = np.exp2((x * w_host).sum(axis=0)) + 1
            ok.append(bool(np.allclose(affine(Tensor(x, device=name), w).numpy(), want, rtol=1e-4)))
        return ok

    assert in_threads(calls) == [[True] * 12] * 4
    assert affine.replays == 4 * 12 - 3


# -- plugins ------------------------------------------------------------------------------------------------------

_SLOW_PLUGIN = '''
"""A plugin whose import takes a while, so that threads asking for it at once overlap."""
import time
from tg import hooks
from tg.backends.contract import Emitter, Runtime
from tg.hooks import Program

time.sleep(0.5)


class SlowEmitter(Emitter):
    language = target = "{name}"

    def render(self, kernel):
        return Program.of(kernel, kernel.name)


class SlowRuntime(Runtime):
    language = name = "{name}"
    priority = -1

    def compile(self, program):
        return program.source

    def launch(self, program, binary, buffers, values):
        return None

    def alloc(self, nbytes):
        return bytearray(nbytes)

    def copyin(self, buffer, host):
        buffer[:] = host

    def copyout(self, host, buffer):
        host[:] = buffer


@hooks.hookimpl
def tg_emitters():
    return [SlowEmitter()]


@hooks.hookimpl
def tg_runtimes():
    return [SlowRuntime()]
'''


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[warnings.WarningMessage]]:
    """TG_STRICT_PLUGINS=1 and every warning recorded (a spurious one fails the test as surely as an error)."""
    monkeypatch.setenv("TG_STRICT_PLUGINS", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def test_first_use_of_a_slow_plugin_from_four_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      strict: list[warnings.WarningMessage]) -> None:
    name = f"slow{uuid.uuid4().hex[:8]}"
    (tmp_path / f"tg_{name}.py").write_text(_SLOW_PLUGIN.replace("{name}", name))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TG_PLUGINS", "")  # only the built-in numpy plugin, and the one added below
    reg = PluginRegistry()
    reg.plugins[name] = PluginInfo(name, f"tg_{name}", f"tg-{name}", "1.0", HOOKSPEC_VERSION)
    try:
        backends = in_threads(lambda i: resolve(name, None, reg))
    finally:
        sys.modules.pop(f"tg_{name}", None)
    assert [b.name for b in backends] == [name] * 4
    assert len({id(b.emitter) for b in backends}) == 1, "the plugin was registered once"
    assert reg.plugins[name].state == "loaded"
    assert [str(w.message) for w in strict] == []


def test_first_use_of_the_installed_plugins_from_four_threads(monkeypatch: pytest.MonkeyPatch,
                                                              strict: list[warnings.WarningMessage]) -> None:
    monkeypatch.delenv("TG_PLUGINS", raising=False)
    reg = PluginRegistry()
    found = in_threads(lambda i: [b.name for b in candidates(reg)])
    assert found[0] and all(names == found[0] for names in found), found
    assert "numpy" in found[0]
    assert [str(w.message) for w in strict] == []


def test_first_use_of_a_device_from_four_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "_states", {})
    monkeypatch.setattr(device, "_default", None)
    states = in_threads(lambda i: device.device_state(None))
    assert len({id(s) for s in states}) == 1
