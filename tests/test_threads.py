"""Threads: grad mode and jit tracing are per thread, and training in several threads at once gives the sequential
results."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pytest
import tg
from tg import Tensor, nn, no_grad
from tg.engine import device
from tg.engine.realize import current_recorder
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
