"""SGD with momentum, dampening, Nesterov momentum and weight decay, as PyTorch documents it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tg.frontend.tensor import Tensor
from tg.optim.optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent, as in PyTorch::

        g = grad + weight_decay * p
        b = g (first step), else momentum * b + (1 - dampening) * g        (when momentum != 0)
        g = g + momentum * b (nesterov), else b
        p = p - lr * g

    The momentum buffer is state ``"momentum_buffer"``.  ``momentum`` may change between steps (a scheduler's
    ``cycle_momentum``) but not between zero and nonzero after the first step.
    """

    structural = ("momentum", "nesterov")

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def check_options(self, options: Mapping[str, Any]) -> None:
        super().check_options(options)
        if options["momentum"] < 0 or options["weight_decay"] < 0:
            raise ValueError(f"SGD: invalid momentum {options['momentum']} or weight_decay {options['weight_decay']}")
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")

    def hyper(self, group: Mapping[str, Any]) -> dict[str, float]:
        return {"lr": group["lr"], "momentum": group["momentum"], "1-dampening": 1.0 - group["dampening"],
                "weight_decay": group["weight_decay"]}

    def update(self, group: Mapping[str, Any], hyper: dict[str, Tensor], chunk: list[int], p: Tensor, g: Tensor,
               step: int) -> tuple[Tensor, dict[str, Tensor]]:
        g = g + hyper["weight_decay"] * p
        state: dict[str, Tensor] = {}
        if group["momentum"]:
            momentum = hyper["momentum"]
            previous = self.state[chunk[0]].get("momentum_buffer")
            buf = g if previous is None else momentum * self.flat_state(chunk, "momentum_buffer") + \
                hyper["1-dampening"] * g
            state["momentum_buffer"] = buf
            g = g + momentum * buf if group["nesterov"] else buf
        return p - hyper["lr"] * g, state
