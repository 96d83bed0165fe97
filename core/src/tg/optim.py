"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam and AdamW, following PyTorch's documented algorithms.

``step()`` computes every update under ``no_grad`` and realizes the new parameters and optimizer state,
so the graph never grows from one step to the next.  Parameters that share a device, a dtype and a step
count are updated together: their values, gradients and state are viewed as one flat vector, so a step
runs a few kernels in all rather than a few per parameter, and each parameter (and its state) then
views its slice of the result.  Values that change from step to step (learning rate, bias corrections)
reach the backend as small buffers, not as constants baked into kernels, so a compiled backend compiles
the update kernels once.  A parameter whose ``.grad`` is None is skipped, its state untouched.

Everything a step changes lives on the device and is changed with ``assign`` (parameters, momentum and
moment buffers, Adam's bias corrections), so a training step wrapped in :func:`tg.jit` keeps
training when it is replayed; setting ``lr`` writes the new rate into its device buffer in place, which a
replay reads too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tg.frontend.grad_mode import no_grad
from tg.frontend.tensor import Tensor

MAX_FUSED = 16  # parameters updated by one kernel at most (each adds a masked load to every element)


def _flat(tensors: list[Tensor]) -> Tensor:
    pieces = [t.reshape(-1) for t in tensors]
    return pieces[0] if len(pieces) == 1 else Tensor.cat(*pieces)


def _slices(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    out, offset = [], 0
    for t in like:
        out.append(flat.shrink(((offset, offset + t.numel()),)).reshape(t.shape))
        offset += t.numel()
    return out


class Optimizer:
    """Holds the parameters; ``zero_grad()`` clears their gradients, ``step()`` updates them.

    Subclasses define ``_update(chunk, p, g, step)`` on flat vectors (see :meth:`_update`).
    """

    def __init__(self, params: Iterable[Tensor], lr: float):
        unique: dict[int, Tensor] = {}
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got {type(p).__name__}")
            if p.requires_grad is False:
                raise ValueError(f"{type(self).__name__}: parameter {p} has requires_grad=False")
            p.requires_grad = True
            unique.setdefault(id(p), p)
        if not unique:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr}")
        self.params = list(unique.values())
        self._lr = lr
        self._constants: dict[tuple[str, str, str], Tensor] = {}  # (name, device, dtype) -> values on the device
        #: per parameter: "step" (updates so far) and the optimizer's tensors for it
        self.state: list[dict[str, Any]] = [{"step": 0} for _ in self.params]

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {value}")
        self._lr = value
        for (name, _, _), t in self._constants.items():  # in place: a replayed jit step reads the same buffer
            if name == "lr":
                t.lazydata.base.realized.copyin(np.array(value, dtype=t.dtype.np))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        chunks: dict[tuple[Any, ...], list[int]] = {}
        for i, p in enumerate(self.params):
            if p.grad is not None and p.numel() > 0:
                chunks.setdefault((p.device, p.dtype.name, self.state[i]["step"]), []).append(i)
        for key, indices in chunks.items():
            for start in range(0, len(indices), MAX_FUSED):
                self._step_chunk(indices[start:start + MAX_FUSED], key[2] + 1)

    def _step_chunk(self, chunk: list[int], step: int) -> None:
        params = [self.params[i] for i in chunk]
        with no_grad():
            grad = _flat([p.grad.detach() for p in params if p.grad is not None]).realize()
            new_p, new_state = self._update(chunk, _flat(params), grad, step)
        for name, value in new_state.items():  # state first: the new parameters read it
            value.realize()  # a flat vector sliced per parameter, or one value the whole chunk shares
            views = _slices(value, params) if value.shape == new_p.shape else [value] * len(chunk)
            for i, view in zip(chunk, views):
                if name in self.state[i]:
                    self.state[i][name].assign(view)
                else:
                    self.state[i][name] = view
        new_p.realize()
        for p, view in zip(params, _slices(new_p, params)):
            p.assign(view)
        for i in chunk:
            self.state[i]["step"] = step

    def _flat_state(self, chunk: list[int], name: str) -> Tensor:
        """The flat vector of state ``name`` for the parameters in ``chunk`` (zeros where not set yet)."""
        pieces = [self.state[i].get(name) for i in chunk]
        return _flat([t if t is not None else Tensor.zeros(*self.params[i].shape, dtype=self.params[i].dtype,
                                                            device=self.params[i].device)
                      for t, i in zip(pieces, chunk)])

    def _on_device(self, name: str, values: Any, like: Tensor) -> Tensor:
        """``values`` in a buffer on ``like``'s device, copied there once (not every step); changing the buffer
        (as setting ``lr`` does) changes no kernel."""
        key = (name, like.device, like.dtype.name)
        if key not in self._constants:
            self._constants[key] = Tensor(np.array(values, dtype=like.dtype.np), device=like.device).realize()
        return self._constants[key]

    def _update(self, chunk: list[int], p: Tensor, g: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        """From the flat parameters ``p`` and gradients ``g`` of ``chunk`` at update number ``step`` (1 first),
        return the new flat parameters and the new state tensors by name (flat like ``p``, or of another
        shape for one value the whole chunk shares)."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, as in PyTorch::

        g = grad + weight_decay * p
        b = g (first step), else momentum * b + (1 - dampening) * g        (when momentum != 0)
        g = g + momentum * b (nesterov), else b
        p = p - lr * g
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: invalid momentum {momentum} or weight_decay {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening, self.weight_decay, self.nesterov = momentum, dampening, weight_decay, nesterov

    def _update(self, chunk: list[int], p: Tensor, g: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        if self.weight_decay:
            g = g + self.weight_decay * p
        state: dict[str, Tensor] = {}
        if self.momentum:
            buf = g if step == 1 else self.momentum * self._flat_state(chunk, "momentum") + (1 - self.dampening) * g
            state["momentum"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return p - self._on_device("lr", self._lr, p) * g, state


class Adam(Optimizer):
    """Adam (Kingma & Ba), as in PyTorch; ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2)::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    decoupled = False

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: invalid betas {betas}, eps {eps} or weight_decay {weight_decay}")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def _update(self, chunk: list[int], p: Tensor, g: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        b1, b2 = self.betas
        lr = self._on_device("lr", self._lr, p)
        if self.weight_decay and self.decoupled:
            p = p * (1 - lr * self.weight_decay)
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m = b1 * self._flat_state(chunk, "exp_avg") + (1 - b1) * g
        v = b2 * self._flat_state(chunk, "exp_avg_sq") + (1 - b2) * (g * g)
        # 1 - beta**t for both betas, on the device (every parameter of a chunk has the same t); kept as
        # c_t = (1 - beta) + beta * c_(t-1), which has no cancellation in float32, unlike 1 - beta**t
        betas = self._on_device("betas", self.betas, p)
        one_minus = self._on_device("1-betas", [1 - b1, 1 - b2], p)  # rounded once, not twice
        previous = self.state[chunk[0]].get("bias_corrections")  # c_0 = 0
        if previous is None:
            previous = Tensor.zeros(2, dtype=p.dtype, device=p.device)
        corrections = one_minus + betas * previous
        step_size, correction = lr / corrections[0], corrections[1].sqrt()
        new_p = p - step_size * m / (v.sqrt() / correction + self.eps)
        return new_p, {"exp_avg": m, "exp_avg_sq": v, "bias_corrections": corrections}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p = p * (1 - lr * weight_decay)`` first."""

    decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]
