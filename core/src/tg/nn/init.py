"""Initial values for parameters, matching PyTorch's defaults; reproducible with ``Tensor.manual_seed``.

PyTorch initialises Linear and Conv2d weights with ``kaiming_uniform_(a=sqrt(5))``: the bound is
``gain * sqrt(3 / fan_in)`` with ``gain = sqrt(2 / (1 + a**2)) = sqrt(1/3)``, which is ``1 / sqrt(fan_in)``;
their biases are uniform in the same ``(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
"""

from __future__ import annotations

import math

from tg.frontend.tensor import Tensor


def uniform(*shape: int, bound: float) -> Tensor:
    """A trainable tensor uniform in ``(-bound, bound)``."""
    return Tensor.uniform(*shape, low=-bound, high=bound, requires_grad=True)


def kaiming_uniform(*shape: int, fan_in: int, a: float = math.sqrt(5)) -> Tensor:
    """He-uniform with negative slope ``a``: bound ``sqrt(2 / (1 + a**2)) * sqrt(3 / fan_in)``."""
    gain = math.sqrt(2.0 / (1.0 + a * a))
    return uniform(*shape, bound=gain * math.sqrt(3.0 / max(fan_in, 1)))


def fan_in_bound(fan_in: int) -> float:
    """The bias bound PyTorch uses for a layer with ``fan_in`` inputs per output."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
