"""Optimizers and schedulers on the backend under test, against numpy implementations of PyTorch's documented rules.

Each optimizer test runs a few steps on a quadratic loss whose gradient numpy computes the same way, with
parameters of several shapes (updated together, in groups with their own options) and a learning rate that
changes every step, and compares every step with float64 numpy.  Changing the learning rate must compile no
kernel, eagerly and under ``tg.jit`` (whose replays must see each new rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tg
from tg import Tensor, optim
from tg.optim import lr_scheduler

SHAPES = [(3, 4), (5,), (2, 1, 3), ()]
STEPS = 5
LRS = [0.05, 0.1, 0.02, 0.07, 0.0, 0.04]  # one per step: a rate that changes every step (and is 0 once)


def problem() -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    target = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    scale = [rng.uniform(0.5, 2.0, s).astype(np.float32) for s in SHAPES]
    return start, target, scale


def run_tg(make: Callable[[list[Tensor]], optim.Optimizer], lrs: list[float] = LRS) -> list[list[np.ndarray]]:
    """Steps with ``lrs[t]`` set by hand on every group before step t; the parameters after each step."""
    start, target, scale = problem()
    params = [Tensor(s, requires_grad=True) for s in start]
    opt = make(params)
    history = []
    for lr in lrs[:STEPS]:
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        loss = sum(((p - Tensor(t)) ** 2 * Tensor(c)).sum() for p, t, c in zip(params, target, scale))
        assert isinstance(loss, Tensor)
        loss.backward()
        opt.step()
        history.append([p.numpy() for p in params])
    return history


Rule = Callable[[np.ndarray, np.ndarray, dict[str, Any], float, int], np.ndarray]


def run_np(rule: Rule, lrs: list[float] = LRS) -> list[list[np.ndarray]]:
    """The same steps in float64 numpy; ``rule(p, g, state, lr, t)`` returns the new parameter."""
    start, target, scale = problem()
    ps = [s.astype(np.float64) for s in start]
    states: list[dict[str, Any]] = [{} for _ in ps]
    history = []
    for t, lr in enumerate(lrs[:STEPS], start=1):
        ps = [rule(p, 2 * c * (p - tt), st, lr, t) for p, tt, c, st in zip(ps, target, scale, states)]
        history.append([p.copy() for p in ps])
    return history


def sgd_rule(momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> Rule:
    def rule(p: np.ndarray, g: np.ndarray, st: dict[str, Any], lr: float, t: int) -> np.ndarray:
        g = g + weight_decay * p
        if momentum:
            st["b"] = g if "b" not in st else momentum * st["b"] + (1 - dampening) * g
            g = g + momentum * st["b"] if nesterov else st["b"]
        return p - lr * g
    return rule


def adam_rule(betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
              amsgrad: bool = False, decoupled: bool = False) -> Rule:
    def rule(p: np.ndarray, g: np.ndarray, st: dict[str, Any], lr: float, t: int) -> np.ndarray:
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        st["m"] = betas[0] * st.get("m", 0) + (1 - betas[0]) * g
        st["v"] = betas[1] * st.get("v", 0) + (1 - betas[1]) * g * g
        v = st["vmax"] = np.maximum(st.get("vmax", 0), st["v"]) if amsgrad else st["v"]
        return p - lr / (1 - betas[0] ** t) * st["m"] / (np.sqrt(v) / math.sqrt(1 - betas[1] ** t) + eps)
    return rule


def rmsprop_rule(alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> Rule:
    def rule(p: np.ndarray, g: np.ndarray, st: dict[str, Any], lr: float, t: int) -> np.ndarray:
        g = g + weight_decay * p
        st["v"] = alpha * st.get("v", 0) + (1 - alpha) * g * g
        v = st["v"]
        if centered:
            st["avg"] = alpha * st.get("avg", 0) + (1 - alpha) * g
            v = v - st["avg"] ** 2
        d = g / (np.sqrt(v) + eps)
        if momentum:
            d = st["b"] = momentum * st.get("b", 0) + d
        return p - lr * d
    return rule


def adagrad_rule(lr_decay: float = 0.0, weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10) -> Rule:
    def rule(p: np.ndarray, g: np.ndarray, st: dict[str, Any], lr: float, t: int) -> np.ndarray:
        g = g + weight_decay * p
        st["s"] = st.get("s", initial_accumulator_value) + g * g
        return p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(st["s"]) + eps)
    return rule


def assert_same(got: list[list[np.ndarray]], want: list[list[np.ndarray]]) -> None:
    assert len(got) == len(want)
    for step, (g, w) in enumerate(zip(got, want)):
        for i, (a, b) in enumerate(zip(g, w)):
            np.testing.assert_allclose(a, b, rtol=3e-5, atol=3e-6, err_msg=f"step {step + 1}, parameter {i}")


CASES: list[tuple[str, Any, dict[str, Any], Rule]] = [
    ("sgd", optim.SGD, {}, sgd_rule()),
    ("sgd-momentum", optim.SGD, {"momentum": 0.9}, sgd_rule(0.9)),
    ("sgd-dampening", optim.SGD, {"momentum": 0.8, "dampening": 0.3}, sgd_rule(0.8, 0.3)),
    ("sgd-nesterov-wd", optim.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.2},
     sgd_rule(0.9, weight_decay=0.2, nesterov=True)),
    ("adam", optim.Adam, {}, adam_rule()),
    ("adam-options", optim.Adam, {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
     adam_rule((0.8, 0.99), 1e-6, 0.1)),
    ("adam-amsgrad", optim.Adam, {"amsgrad": True}, adam_rule(amsgrad=True)),
    ("adamw", optim.AdamW, {}, adam_rule(weight_decay=1e-2, decoupled=True)),
    ("adamw-options", optim.AdamW, {"weight_decay": 0.5, "betas": (0.5, 0.9)},
     adam_rule((0.5, 0.9), weight_decay=0.5, decoupled=True)),
    ("rmsprop", optim.RMSprop, {}, rmsprop_rule()),
    ("rmsprop-centered-momentum", optim.RMSprop, {"alpha": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.1},
     rmsprop_rule(0.9, weight_decay=0.1, momentum=0.5, centered=True)),
    ("adagrad", optim.Adagrad, {}, adagrad_rule()),
    ("adagrad-options", optim.Adagrad, {"lr_decay": 0.1, "weight_decay": 0.05, "initial_accumulator_value": 0.5},
     adagrad_rule(0.1, 0.05, 0.5)),
]


@pytest.mark.parametrize(("make", "kwargs", "rule"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_optimizer_matches_numpy_with_a_changing_lr(make: Any, kwargs: dict[str, Any], rule: Rule) -> None:
    assert_same(run_tg(lambda ps: make(ps, **kwargs)), run_np(rule))


def test_parameter_groups_have_their_own_options() -> None:
    """Group 0 (two parameters) plain SGD at lr 0.1; group 1 with momentum and weight decay at lr 0.02."""
    def make(ps: list[Tensor]) -> optim.Optimizer:
        opt = optim.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02, "momentum": 0.9, "weight_decay": 0.1}],
                        lr=0.1)
        assert [g["lr"] for g in opt.param_groups] == [0.1, 0.02]
        assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[0]["momentum"] == 0.0
        return opt

    start, target, scale = problem()
    params = [Tensor(s, requires_grad=True) for s in start]
    opt = make(params)
    plain, heavy = sgd_rule(), sgd_rule(0.9, weight_decay=0.1)
    ps = [s.astype(np.float64) for s in start]
    states: list[dict[str, Any]] = [{} for _ in ps]
    for t in range(1, STEPS + 1):
        opt.zero_grad()
        loss = sum(((p - Tensor(tt)) ** 2 * Tensor(c)).sum() for p, tt, c in zip(params, target, scale))
        assert isinstance(loss, Tensor)
        loss.backward()
        opt.step()
        ps = [(plain if i < 2 else heavy)(p, 2 * c * (p - tt), st, 0.1 if i < 2 else 0.02, t)
              for i, (p, tt, c, st) in enumerate(zip(ps, target, scale, states))]
        for i, (got, want) in enumerate(zip(params, ps)):
            np.testing.assert_allclose(got.numpy(), want, rtol=3e-5, atol=3e-6, err_msg=f"step {t}, parameter {i}")


class _CompileCounter:
    """Counts the programs the backend under test compiles (its runtime's ``compile``, called on cache misses only)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from tg.engine.device import device_state

        runtime = device_state().backend.runtime
        original = runtime.compile
        self.count = 0

        def counting(program: Any) -> Any:
            self.count += 1
            return original(program)

        monkeypatch.setattr(runtime, "compile", counting)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.1),
                                  lambda ps: optim.RMSprop(ps, lr=0.01, centered=True),
                                  lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01)],
                         ids=["sgd", "adam", "rmsprop", "adagrad"])
def test_changing_the_lr_compiles_nothing_eagerly_or_under_jit(make: Callable[[list[Tensor]], optim.Optimizer],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """10 steps whose lr changes every step (by a scheduler, and by hand on every third): after the first steps no
    kernel is compiled, eagerly or under tg.jit; the jitted run's replays see every new rate (its parameters match
    the eager run's), and the rate matters (a run at a constant rate ends elsewhere)."""
    rng = np.random.default_rng(3)
    x, w0 = rng.standard_normal((8, 5)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    y = rng.standard_normal((8, 3)).astype(np.float32)

    from tg.engine.device import reset_devices

    # a fresh device: a kernel family that earlier tests of this process built could reach its 16th launch at one
    # size here and get its exact kernel (tg.engine.dynamic.EXACT_AFTER), a compile that is not the lr's
    reset_devices()
    compiles = _CompileCounter(monkeypatch)

    def train(jit: bool, schedule: bool = True) -> tuple[list[np.ndarray], list[int], Any]:
        w = Tensor(w0.copy(), requires_grad=True)
        b = Tensor(np.zeros(3, np.float32), requires_grad=True)
        opt = make([w, b])
        sched = lr_scheduler.LambdaLR(opt, lambda e: 1.0 / (1 + e))

        def step(x: Tensor, y: Tensor) -> Tensor:
            opt.zero_grad()
            loss = ((x @ w + b - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss

        fn = tg.jit(step) if jit else step
        history, counts = [], []
        for i in range(10):
            fn(Tensor(x), Tensor(y))
            history.append(w.numpy())
            counts.append(compiles.count)
            if schedule:
                sched.step()
                if i % 3 == 2:
                    opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"] * 1.5  # by hand
        return history, counts, fn

    eager, eager_counts, _ = train(jit=False)
    assert eager_counts[2:] == [eager_counts[2]] * 8, f"kernels compiled while the lr changed: {eager_counts}"
    jitted, jit_counts, fn = train(jit=True)
    assert fn.replays == 7
    assert jit_counts[2:] == [jit_counts[2]] * 8, f"kernels compiled while the lr changed under tg.jit: {jit_counts}"
    for i, (a, b) in enumerate(zip(jitted, eager)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=f"jitted step {i + 1} differs from eager")
    constant, _, _ = train(jit=False, schedule=False)
    assert not np.allclose(constant[-1], eager[-1], rtol=1e-3, atol=1e-4), "the changing lr had no effect"


def test_state_dict_round_trip_continues_identically() -> None:
    start, target, scale = problem()

    def steps(params: list[Tensor], opt: optim.Optimizer, n: int) -> None:
        for _ in range(n):
            opt.zero_grad()
            loss = sum(((p - Tensor(t)) ** 2 * Tensor(c)).sum() for p, t, c in zip(params, target, scale))
            assert isinstance(loss, Tensor)
            loss.backward()
            opt.step()

    a = [Tensor(s, requires_grad=True) for s in start]
    opt_a = optim.Adam([{"params": a[:2]}, {"params": a[2:], "lr": 0.05}], lr=0.1, betas=(0.8, 0.9))
    steps(a, opt_a, 3)
    saved = opt_a.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2, 3]]
    assert int(saved["state"][0]["step"]) == 3 and saved["state"][3]["exp_avg"].shape == ()
    assert opt_a.state[a[1]] is opt_a.state[1] and a[0] in opt_a.state  # PyTorch's state[p]
    b = [Tensor(p.numpy(), requires_grad=True) for p in a]
    opt_b = optim.Adam([{"params": b[:2]}, {"params": b[2:]}], lr=1.0)
    opt_b.load_state_dict({"state": {k: {n: t.numpy() for n, t in v.items()} for k, v in saved["state"].items()},
                           "param_groups": saved["param_groups"]})
    assert opt_b.param_groups[1]["lr"] == 0.05 and opt_b.param_groups[0]["betas"] == (0.8, 0.9)
    steps(a, opt_a, 2)
    steps(b, opt_b, 2)
    for pa, pb in zip(a, b):
        np.testing.assert_allclose(pb.numpy(), pa.numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="parameter groups"):
        opt_b.load_state_dict({"state": {}, "param_groups": saved["param_groups"][:1]})


def test_zero_grad_to_none_or_zeros() -> None:
    p = Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * 2).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and p.grad.numpy().tolist() == [0.0, 0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None


def test_option_errors_are_clear() -> None:
    p = Tensor(np.ones(2, np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="invalid learning rate"):
        optim.Adam([p], lr=-1.0)
    with pytest.raises(TypeError, match=r"pass \[tensor\]"):
        optim.SGD(p, lr=0.1)  # type: ignore[arg-type]
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="invalid learning rate"):
        opt.param_groups[0]["lr"] = "fast"
    with pytest.raises(ValueError, match="invalid momentum"):
        opt.param_groups[0]["momentum"] = -0.5
    assert opt.param_groups[0]["lr"] == 0.1
    (p * p).sum().backward()
    opt.step()
    with pytest.raises(ValueError, match="momentum cannot change from 0.9 to 0"):
        opt.param_groups[0]["momentum"] = 0.0
    opt.param_groups[0]["momentum"] = 0.5  # a nonzero value may change


# -- schedulers: lr sequences as PyTorch documents them ------------------------------------------------------------

def _lrs(make: Callable[[optim.Optimizer], lr_scheduler.LRScheduler], n: int, lr: float = 0.1,
         opt_kind: Any = optim.SGD) -> list[float]:
    opt = opt_kind([Tensor(np.ones(2, np.float32), requires_grad=True)], lr=lr)
    sched = make(opt)
    out = [sched.get_last_lr()[0]]
    for _ in range(n):
        sched.step()
        out.append(sched.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == out[-1]
    return out


def test_step_lr() -> None:
    want = [0.1 * 0.5 ** (e // 3) for e in range(10)]
    np.testing.assert_allclose(_lrs(lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 9), want)


def test_multi_step_and_exponential_lr() -> None:
    want = [0.1 * 0.5 ** sum(m <= e for m in (2, 5, 5)) for e in range(8)]
    np.testing.assert_allclose(_lrs(lambda o: lr_scheduler.MultiStepLR(o, [5, 2, 5], gamma=0.5), 7), want)
    np.testing.assert_allclose(_lrs(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), 5),
                               [0.1 * 0.9 ** e for e in range(6)])


def test_scheduler_records_initial_lr_and_resumes() -> None:
    opt = optim.SGD([Tensor(np.ones(1, np.float32), requires_grad=True)], lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        sched.step()
    assert opt.param_groups[0]["initial_lr"] == 0.1 and sched.get_last_lr() == [0.05]
    saved = sched.state_dict()
    assert saved["last_epoch"] == 3 and "optimizer" not in saved
    again = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5, last_epoch=2)  # resumes at epoch 3
    again.load_state_dict(saved)
    again.step()
    assert again.get_last_lr() == [0.025]
    fresh = optim.SGD([Tensor(np.ones(1, np.float32), requires_grad=True)], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(fresh, step_size=2, last_epoch=4)


def test_reduce_lr_on_plateau() -> None:
    opt = optim.SGD([Tensor(np.ones(1, np.float32), requires_grad=True)], lr=1.0)
    sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, cooldown=1, min_lr=0.2)
    lrs = []
    for metric in [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]:
        sched.step(metric)
        lrs.append(sched.get_last_lr()[0])
    # better, better, bad 1, bad 2 (> patience: halve, cooldown 1), cooldown, bad 1, bad 2 (halve), better, bad 1,
    # bad 2 (halve, held at min_lr 0.2), cooldown, bad 1, bad 2 (already 0.2: unchanged)
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]
    maximize = lr_scheduler.ReduceLROnPlateau(opt, mode="max", threshold=0.1, threshold_mode="abs", patience=0)
    maximize.step(1.0)
    maximize.step(1.05)  # not better by more than 0.1: one bad epoch > patience 0
    assert maximize.get_last_lr() == [pytest.approx(0.02)]
    with pytest.raises(ValueError, match="factor should be < 1.0"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=2.0)


def test_cosine_annealing_lr() -> None:
    want = [0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * e / 8)) / 2 for e in range(12)]
    np.testing.assert_allclose(_lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=0.01), 11), want)


def test_lambda_lr_per_group() -> None:
    opt = optim.SGD([{"params": [Tensor(np.ones(1, np.float32), requires_grad=True)]},
                     {"params": [Tensor(np.ones(1, np.float32), requires_grad=True)], "lr": 1.0}], lr=0.1)
    sched = lr_scheduler.LambdaLR(opt, [lambda e: 0.5 ** e, lambda e: e + 1])
    for e in range(1, 4):
        sched.step()
        np.testing.assert_allclose(sched.get_last_lr(), [0.1 * 0.5 ** e, 1.0 * (e + 1)])
    with pytest.raises(ValueError, match="one per parameter group"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1.0])


def test_linear_lr() -> None:
    want = [0.1 * (0.25 + 0.75 * min(e, 4) / 4) for e in range(8)]
    np.testing.assert_allclose(_lrs(lambda o: lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4), 7), want)


def _one_cycle_np(total: int, max_lr: float, pct: float, div: float, final_div: float, three_phase: bool,
                  strategy: str) -> tuple[list[float], list[float]]:
    """PyTorch's documented 1cycle schedule: (lr, momentum) at each of ``total`` steps."""
    def anneal(a: float, b: float, x: float) -> float:
        return b + (a - b) / 2 * (math.cos(math.pi * x) + 1) if strategy == "cos" else a + (b - a) * x
    initial = max_lr / div
    low = initial / final_div
    if three_phase:
        phases = [(pct * total - 1, initial, max_lr, 0.95, 0.85), (2 * pct * total - 2, max_lr, initial, 0.85, 0.95),
                  (total - 1, initial, low, 0.95, 0.95)]
    else:
        phases = [(pct * total - 1, initial, max_lr, 0.95, 0.85), (total - 1, max_lr, low, 0.85, 0.95)]
    lrs, moms = [], []
    for step in range(total):
        begin = 0.0
        for i, (end, a, b, ma, mb) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                x = (step - begin) / (end - begin)
                lrs.append(anneal(a, b, x))
                moms.append(anneal(ma, mb, x))
                break
            begin = end
    return lrs, moms


@pytest.mark.parametrize(("three_phase", "strategy"), [(False, "cos"), (True, "linear"), (False, "linear")])
def test_one_cycle_lr_and_momentum(three_phase: bool, strategy: str) -> None:
    want_lr, want_m = _one_cycle_np(20, 1.0, 0.3, 25.0, 1e4, three_phase, strategy)
    for kind in (optim.SGD, optim.Adam):
        opt = kind([Tensor(np.ones(1, np.float32), requires_grad=True)], lr=0.1)
        sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=20, three_phase=three_phase,
                                        anneal_strategy=strategy)
        lrs, moms = [], []
        for step in range(20):
            lrs.append(sched.get_last_lr()[0])
            group = opt.param_groups[0]
            moms.append(group["betas"][0] if kind is optim.Adam else group["momentum"])
            if step < 19:
                sched.step()
        np.testing.assert_allclose(lrs, want_lr, rtol=1e-12, err_msg=kind.__name__)
        np.testing.assert_allclose(moms, want_m, rtol=1e-12, err_msg=kind.__name__)
        sched.step()  # step 20 == total_steps is allowed (PyTorch checks step > total_steps)
        with pytest.raises(ValueError, match="total_steps=20"):
            sched.step()
    with pytest.raises(ValueError, match="momentum or beta1"):
        lr_scheduler.OneCycleLR(optim.Adagrad([Tensor(np.ones(1, np.float32), requires_grad=True)]), max_lr=1.0,
                                total_steps=5)


def test_one_cycle_adam_with_clipping_replays_like_eager() -> None:
    """OneCycleLR changes Adam's lr and beta1 every step and clip_grad_norm_ rescales the gradients on the device: a
    jitted step replays all of it (parameters equal the eager run's at every step)."""
    from tg import nn

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16).astype(np.int32)

    def build() -> tuple[nn.Module, optim.Optimizer, lr_scheduler.LRScheduler]:
        Tensor.manual_seed(2)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = optim.Adam(model.parameters(), lr=0.01)
        return model, opt, lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)

    def step(model: nn.Module, opt: optim.Optimizer, x: Tensor, y: Tensor) -> Tensor:
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        return norm

    (m1, o1, s1), (m2, o2, s2) = build(), build()
    jitted = tg.jit(lambda x, y: step(m2, o2, x, y))
    betas = []
    for i in range(9):
        want = step(m1, o1, Tensor(x), Tensor(y)).numpy()
        np.testing.assert_allclose(jitted(Tensor(x), Tensor(y)).numpy(), want, rtol=1e-4, err_msg=f"step {i + 1}")
        for a, b in zip(m2.parameters(), m1.parameters()):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=f"step {i + 1}")
        s1.step()
        s2.step()
        betas.append(o2.param_groups[0]["betas"][0])
    assert jitted.replays == 6 and len(set(betas)) == 9


def test_a_scheduler_stepped_inside_a_jitted_function_is_refused() -> None:
    """A replay runs no Python, so a scheduler inside the jitted step would silently freeze the lr: refused, with
    the fix, when the call is captured (eager calls before it are fine)."""
    p = Tensor(np.ones(2, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    @tg.jit
    def step() -> None:
        opt.zero_grad()
        (p * p).sum().backward()
        opt.step()
        sched.step()

    step()
    step()
    with pytest.raises(tg.JitError, match="outside the jitted function"):
        step()


def test_loaded_step_counts_stay_per_parameter() -> None:
    """Two parameters updated together share a step count; loading different counts keeps each its own (their
    Adam bias corrections then differ, as if they had been trained apart)."""
    a, b = (Tensor(np.ones(2, np.float32), requires_grad=True) for _ in range(2))
    opt = optim.Adam([a, b], lr=0.1)

    def step() -> None:
        opt.zero_grad()
        ((a * a).sum() + (b * b).sum()).backward()
        opt.step()

    step()
    saved = opt.state_dict()
    state = {i: {k: v.numpy() for k, v in s.items()} for i, s in saved["state"].items()}
    state[1]["step"] = np.array(5.0, np.float32)
    opt.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    step()
    assert [int(opt.state[i]["step"]) for i in (0, 1)] == [2, 6]
    p1 = 1.0 - 0.1 / 0.1 * 0.2 / (math.sqrt(0.004) / math.sqrt(0.001) + 1e-8)  # both after step 1 (t = 1)
    g = 2 * p1
    m, v = 0.9 * 0.2 + 0.1 * g, 0.999 * 0.004 + 0.001 * g * g
    for t, p in ((2, a), (6, b)):
        want = p1 - 0.1 / (1 - 0.9 ** t) * m / (math.sqrt(v) / math.sqrt(1 - 0.999 ** t) + 1e-8)
        np.testing.assert_allclose(p.numpy(), [want, want], rtol=2e-5, err_msg=f"t={t}")
