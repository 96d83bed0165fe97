"""Adam and AdamW (with AMSGrad), as PyTorch documents them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tg.frontend.tensor import Tensor
from tg.optim.optimizer import Optimizer, log_or_inf
from tg.support.dtype import dtypes


def one_minus_power(log_beta: Tensor, t: Tensor) -> Tensor:
    """``1 - beta**t`` from ``log(beta)``, without the cancellation of ``1 - beta**t`` in float32.

    ``-expm1(y)`` with ``y = t * log(beta)``, by Kahan's formula ``expm1(y) = (u - 1) * y / log(u)``, ``u = exp(y)``
    (exact to a few units in the last place, as the rounding of ``u`` cancels), and ``u - 1`` where ``y < -1``."""
    y = t * log_beta
    u = y.exp()
    um1 = u - 1
    small = (um1 == 0).where(y, um1 * y / u.log())
    return -((y > -1).where(small, um1))


class Adam(Optimizer):
    """Adam (Kingma & Ba), as in PyTorch; ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2)::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g          (amsgrad: v_max = max(v_max, v), used below for v)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    State: ``"step"``, ``"exp_avg"``, ``"exp_avg_sq"`` (and ``"max_exp_avg_sq"``); ``betas`` may change between steps
    (a scheduler's ``cycle_momentum``): the bias corrections use the current betas, as PyTorch's do.
    """

    decoupled = False
    structural = ("amsgrad",)
    counts_steps = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "amsgrad": amsgrad})

    def check_options(self, options: Mapping[str, Any]) -> None:
        super().check_options(options)
        betas, eps, wd = options["betas"], options["eps"], options["weight_decay"]
        if len(betas) != 2 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0 or wd < 0:
            raise ValueError(f"{type(self).__name__}: invalid betas {betas}, eps {eps} or weight_decay {wd}")

    def hyper(self, group: Mapping[str, Any]) -> dict[str, float]:
        b1, b2 = group["betas"]
        return {"lr": group["lr"], "beta1": b1, "beta2": b2, "1-beta1": 1.0 - b1, "1-beta2": 1.0 - b2,
                "log_beta1": log_or_inf(b1), "log_beta2": log_or_inf(b2), "eps": group["eps"],
                "weight_decay": group["weight_decay"]}

    def update(self, group: Mapping[str, Any], hyper: dict[str, Tensor], chunk: list[int], p: Tensor, g: Tensor,
               step: int) -> tuple[Tensor, dict[str, Tensor]]:
        lr, wd = hyper["lr"], hyper["weight_decay"]
        if self.decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = hyper["beta1"] * self.flat_state(chunk, "exp_avg") + hyper["1-beta1"] * g
        v = hyper["beta2"] * self.flat_state(chunk, "exp_avg_sq") + hyper["1-beta2"] * (g * g)
        state = {"exp_avg": m, "exp_avg_sq": v}
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"] = self.flat_state(chunk, "max_exp_avg_sq").maximum(v)
        # the step size and sqrt(1 - beta2**t): two numbers, computed once (not once per element), by one kernel
        powers = one_minus_power(Tensor.stack(hyper["log_beta1"], hyper["log_beta2"]), hyper["step"])
        first = Tensor.ones(1, dtype=dtypes.bool, device=p.device).pad(((0, 1),))  # [True, False], a constant
        factors = first.where(lr / powers, powers.sqrt()).realize()
        new_p = p - factors[0] * m / (v.sqrt() / factors[1] + hyper["eps"])
        return new_p, state


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p = p * (1 - lr * weight_decay)`` first."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
