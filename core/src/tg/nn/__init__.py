"""tg.nn: layers with parameters found automatically, train/eval modes and state dicts.

>>> from tg import nn
>>> model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
>>> [name for name in model.state_dict()]
['0.weight', '0.bias', '2.weight', '2.bias']

Modes are per module: ``model.train()`` / ``model.eval()`` set the ``training`` flag of the model and
every module inside it; Dropout and BatchNorm2d read their own flag (``Tensor.training`` is untouched).
Parameters are the tensors with ``requires_grad=True`` that a module holds in its attributes, lists,
dicts and Sequentials (:func:`tg.nn.state.get_parameters` does the same for any object).
:mod:`tg.nn.functional` is PyTorch's functional API (``import tg.nn.functional as F``).
"""

from __future__ import annotations

from tg.nn import functional, state
from tg.nn.basic import Flatten, ReLU
from tg.nn.conv import Conv2d
from tg.nn.dropout import Dropout
from tg.nn.embedding import Embedding
from tg.nn.linear import Linear
from tg.nn.module import Module, Sequential
from tg.nn.norm import BatchNorm2d, LayerNorm
from tg.nn.pooling import MaxPool2d
from tg.nn.state import StateDictError

__all__ = ["BatchNorm2d", "Conv2d", "Dropout", "Embedding", "Flatten", "LayerNorm", "Linear", "MaxPool2d", "Module",
           "ReLU", "Sequential", "StateDictError", "functional", "state"]
