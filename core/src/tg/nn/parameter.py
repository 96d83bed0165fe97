"""``nn.Parameter``: in tg a parameter is any tensor with ``requires_grad=True`` held by a module.

``nn.Parameter(t)`` returns a tensor with ``t``'s values that requires grad (``requires_grad=False`` makes a
frozen one, which tg's state walk treats as a buffer).  ``isinstance(x, nn.Parameter)`` is True for every tensor
that requires grad, so PyTorch code that checks for parameters keeps working.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tg.frontend.grad_mode import GradModeMeta
from tg.frontend.tensor import Tensor


class _ParameterMeta(GradModeMeta):
    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, Tensor) and instance.requires_grad is True


class Parameter(Tensor, metaclass=_ParameterMeta):
    """A trainable tensor: ``nn.Parameter(data, requires_grad=True)`` (data: a Tensor, an array or a list)."""

    __slots__ = ()

    def __new__(cls, data: Any = None, requires_grad: bool = True) -> Tensor:  # type: ignore[misc]
        if data is None:
            out = Tensor(np.empty(0, dtype=np.float32))
        elif isinstance(data, Tensor):
            out = Tensor(data.detach().lazydata)
        else:
            out = Tensor(data)
        out.requires_grad = requires_grad
        return out
