"""RMSprop and Adagrad, as PyTorch documents them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tg.frontend.tensor import Tensor
from tg.optim.optimizer import Optimizer


def _check_nonnegative(name: str, options: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if options[key] < 0:
            raise ValueError(f"{name}: invalid {key} {options[key]} (must be >= 0)")


class RMSprop(Optimizer):
    """RMSprop, as in PyTorch::

        g = grad + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        centered: g_avg = alpha * g_avg + (1 - alpha) * g;  v~ = v - g_avg**2,  else v~ = v
        momentum > 0: b = momentum * b + g / (sqrt(v~) + eps);  p = p - lr * b
        else:         p = p - lr * g / (sqrt(v~) + eps)

    State: ``"step"``, ``"square_avg"``, ``"momentum_buffer"`` (momentum > 0), ``"grad_avg"`` (centered).
    """

    structural = ("momentum", "centered")
    counts_steps = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                                  "momentum": momentum, "centered": centered})

    def check_options(self, options: Mapping[str, Any]) -> None:
        super().check_options(options)
        _check_nonnegative("RMSprop", options, ("alpha", "eps", "weight_decay", "momentum"))

    def hyper(self, group: Mapping[str, Any]) -> dict[str, float]:
        return {"lr": group["lr"], "alpha": group["alpha"], "1-alpha": 1.0 - group["alpha"], "eps": group["eps"],
                "weight_decay": group["weight_decay"], "momentum": group["momentum"]}

    def update(self, group: Mapping[str, Any], hyper: dict[str, Tensor], chunk: list[int], p: Tensor, g: Tensor,
               step: int) -> tuple[Tensor, dict[str, Tensor]]:
        g = g + hyper["weight_decay"] * p
        alpha, rest = hyper["alpha"], hyper["1-alpha"]
        v = alpha * self.flat_state(chunk, "square_avg") + rest * (g * g)
        state = {"square_avg": v}
        if group["centered"]:
            avg = state["grad_avg"] = alpha * self.flat_state(chunk, "grad_avg") + rest * g
            v = v - avg * avg
        direction = g / (v.sqrt() + hyper["eps"])
        if group["momentum"]:
            direction = state["momentum_buffer"] = hyper["momentum"] * self.flat_state(chunk, "momentum_buffer") + \
                direction
        return p - hyper["lr"] * direction, state


class Adagrad(Optimizer):
    """Adagrad, as in PyTorch::

        g = grad + weight_decay * p
        lr_t = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g                                 (s starts at initial_accumulator_value)
        p = p - lr_t * g / (sqrt(s) + eps)

    State: ``"step"``, ``"sum"``.
    """

    counts_steps = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value, "eps": eps})

    def check_options(self, options: Mapping[str, Any]) -> None:
        super().check_options(options)
        _check_nonnegative("Adagrad", options, ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"))

    def hyper(self, group: Mapping[str, Any]) -> dict[str, float]:
        return {"lr": group["lr"], "lr_decay": group["lr_decay"], "weight_decay": group["weight_decay"],
                "eps": group["eps"]}

    def update(self, group: Mapping[str, Any], hyper: dict[str, Tensor], chunk: list[int], p: Tensor, g: Tensor,
               step: int) -> tuple[Tensor, dict[str, Tensor]]:
        g = g + hyper["weight_decay"] * p
        s = self.flat_state(chunk, "sum", float(group["initial_accumulator_value"])) + g * g
        lr = (hyper["lr"] / (1 + (hyper["step"] - 1) * hyper["lr_decay"])).realize()
        return p - lr * g / (s.sqrt() + hyper["eps"]), {"sum": s}
