"""Module state that used to go missing silently: modules kept under private names, parameters replaced by plain
tensors."""

from __future__ import annotations

import numpy as np
import pytest
from tg import Tensor, nn, no_grad


class Private(nn.Module):
    def __init__(self) -> None:
        self._inner = nn.Linear(3, 2)  # PyTorch registers it: its parameters must train
        self._cache = Tensor(np.zeros(2, np.float32))  # a private tensor stays private
        self.out = nn.Linear(2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self._inner(x))


def test_a_module_under_a_private_name_contributes_its_parameters() -> None:
    m = Private()
    assert len(m.parameters()) == 4
    assert sorted(m.state_dict()) == ["_inner.bias", "_inner.weight", "out.bias", "out.weight"]
    assert m._inner in list(m.modules())


def test_a_plain_tensor_over_a_parameter_is_refused() -> None:
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"over parameter 'weight' of Linear .* \.weight\.assign"):
        lin.weight = Tensor(np.ones((2, 2), np.float32))
    assert len(lin.parameters()) == 2
    lin.weight = Tensor(np.ones((2, 2), np.float32), requires_grad=True)  # another parameter is fine
    with no_grad():
        lin.weight.assign(Tensor(np.zeros((2, 2), np.float32)))  # and so is changing its values
    assert lin.weight.requires_grad and len(lin.parameters()) == 2
