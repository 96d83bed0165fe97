"""``tg.nn.utils``: gradient clipping as in PyTorch (``clip_grad_norm_``, ``clip_grad_value_``).

Both work on the device (no value is read back), so they can run inside a step wrapped in :func:`tg.jit`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from tg.frontend.grad_mode import no_grad
from tg.frontend.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the gradients so that their total ``norm_type``-norm (all gradients as one vector) is at most
    ``max_norm``: each is multiplied by ``min(1, max_norm / (total + 1e-6))``.  Returns the total norm (before
    clipping) as a 0-d tensor.  ``error_if_nonfinite`` reads the norm back (not inside tg.jit)."""
    params = _grads(parameters)
    norm_type = float(norm_type)
    if not params:
        return Tensor(0.0)
    with no_grad():
        grads = [p.grad.detach().cast("float32") if not p.grad.dtype.is_float else p.grad.detach()
                 for p in params if p.grad is not None]
        if norm_type == math.inf:
            total = Tensor.stack(*[g.abs().max() for g in grads]).max()
        elif norm_type == 2.0:
            total = Tensor.stack(*[(g * g).sum() for g in grads]).sum().sqrt()
        elif norm_type > 0:
            total = Tensor.stack(*[(g.abs() ** norm_type).sum() for g in grads]).sum() ** (1.0 / norm_type)
        else:
            raise ValueError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
        total = total.realize()
        if error_if_nonfinite and not math.isfinite(float(total.item())):
            raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                               "so it cannot be clipped. To disable this error and scale the gradients by the "
                               "non-finite norm anyway, set `error_if_nonfinite=False`")
        coef = (max_norm / (total + 1e-6)).minimum(1.0).realize()
        for p in params:
            assert p.grad is not None
            p.grad = (p.grad * coef).cast(p.grad.dtype).realize()
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value]."""
    with no_grad():
        for p in _grads(parameters):
            assert p.grad is not None
            p.grad = p.grad.clamp(-clip_value, clip_value).realize()
