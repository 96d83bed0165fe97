"""Parameter discovery, state dict names, train/eval propagation and load_state_dict's all-or-nothing checks."""

from __future__ import annotations

import numpy as np
import pytest
from tg import Tensor, nn
from tg.nn.state import get_parameters, get_state_dict


class Block(nn.Module):
    def __init__(self) -> None:
        self.conv = nn.Conv2d(1, 2, 3)
        self.norm = nn.BatchNorm2d(2)
        self.layers = [nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1))]
        self.heads = {"a": nn.Linear(1, 1, bias=False)}
        self.scale = Tensor.ones(1)  # a buffer: no gradient
        self._cache = Tensor.zeros(3, requires_grad=True)  # private: not walked
        self.name = "block"

    def forward(self, x: Tensor) -> Tensor:
        return x


def test_state_dict_names_follow_attributes_lists_dicts_and_sequentials() -> None:
    names = list(Block().state_dict())
    assert names == ["conv.weight", "conv.bias", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var",
                     "norm.num_batches_tracked", "layers.0.weight", "layers.0.bias", "layers.1.1.weight",
                     "layers.1.1.bias", "heads.a.weight", "scale"]
    seq = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_parameters_are_the_trainable_tensors_each_once() -> None:
    block = Block()
    params = block.parameters()
    assert len(params) == 9  # conv 2, norm 2, layers 4, heads 1: no buffers, nothing private
    assert all(p.requires_grad for p in params)
    assert not any(p is block.scale or p is block._cache for p in params)
    assert [n for n, _ in block.named_parameters()][:3] == ["conv.weight", "conv.bias", "norm.weight"]
    shared = nn.Linear(2, 2)
    tied = nn.Sequential(shared, shared)
    assert len(tied.parameters()) == 2 and list(tied.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_get_parameters_walks_plain_objects_and_containers() -> None:
    class Plain:
        def __init__(self) -> None:
            self.fc = nn.Linear(2, 3)
            self.extra = [Tensor.zeros(2, requires_grad=True)]

    plain = Plain()
    assert len(get_parameters(plain)) == 3
    assert list(get_state_dict(plain)) == ["fc.weight", "fc.bias", "extra.0"]
    assert len(get_parameters([nn.Linear(1, 1), {"b": nn.Linear(1, 1)}])) == 4
    looped = nn.Sequential(nn.Linear(1, 1))
    looped.layers.append(looped)  # a cycle does not recurse forever
    assert len(looped.parameters()) == 2


def test_train_and_eval_reach_every_module() -> None:
    block = Block()
    assert block.training and block.norm.training
    assert block.eval() is block
    assert not any(m.training for m in block.modules())
    inner = block.layers[1]
    assert isinstance(inner, nn.Sequential) and not inner.training
    block.train()
    assert all(m.training for m in block.modules())
    assert len(list(block.modules())) == 8  # block, conv, norm, 2 in layers, ReLU and Linear inside, heads' Linear


def test_load_state_dict_round_trip() -> None:
    Tensor.manual_seed(0)
    a, b = Block(), Block()
    a.norm(Tensor.randn(4, 2, 3, 3))  # move the running statistics away from their initial values
    b.load_state_dict(a.state_dict())
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=name)
        assert x.dtype == y.dtype
    c = Block()
    c.load_state_dict({k: v.numpy().astype(np.float64) for k, v in a.state_dict().items()})  # cast on load
    assert c.conv.weight.dtype == a.conv.weight.dtype


def test_load_state_dict_lists_every_problem_and_changes_nothing() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    before = {k: v.numpy() for k, v in model.state_dict().items()}
    bad = {k: v * 0 + 5 for k, v in before.items()}
    del bad["1.bias"]
    bad["2.weight"] = np.zeros((1, 1))
    bad["0.weight"] = np.zeros((3, 2))
    with pytest.raises(nn.StateDictError) as info:
        model.load_state_dict(bad)
    message = str(info.value)
    assert "missing (1): 1.bias" in message
    assert "unexpected (1): 2.weight" in message
    assert "shape mismatch for 0.weight: the model has (2, 3), state dict has (3, 2)" in message
    assert info.value.missing == ["1.bias"] and info.value.unexpected == ["2.weight"]
    assert info.value.mismatched == [("0.weight", (2, 3), (3, 2))]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])  # the good entries were not loaded either
    with pytest.raises(nn.StateDictError, match="shape mismatch for 0.weight"):
        model.load_state_dict(bad, strict=False)  # not strict: names may be missing or extra, shapes must match
    bad["0.weight"] = np.full((2, 3), 5.0)
    model.load_state_dict(bad, strict=False)  # loads every name the model has, ignores 2.weight
    np.testing.assert_array_equal(model.state_dict()["0.weight"].numpy(), 5.0)
    np.testing.assert_array_equal(model.state_dict()["1.bias"].numpy(), before["1.bias"])
