"""tg.nn: layers with parameters found automatically, train/eval modes and state dicts.

>>> from tg import nn
>>> model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
>>> [name for name in model.state_dict()]
['0.weight', '0.bias', '2.weight', '2.bias']

Modes are per module: ``model.train()`` / ``model.eval()`` set the ``training`` flag of the model and
every module inside it; Dropout and BatchNorm read their own flag (``Tensor.training`` is untouched).
Parameters are the tensors with ``requires_grad=True`` that a module holds in its attributes, lists,
dicts, Sequentials, ModuleLists and ModuleDicts (:func:`tg.nn.state.get_parameters` does the same for any
object); ``nn.Parameter(t)`` makes one.  Buffers are the other tensors (``register_buffer``).
:mod:`tg.nn.functional` is PyTorch's functional API (``import tg.nn.functional as F``), :mod:`tg.nn.init` its
initializers, :mod:`tg.nn.utils` gradient clipping.
"""

from __future__ import annotations

from tg.nn import functional, init, state, utils
from tg.nn.attention import MultiheadAttention
from tg.nn.basic import (
    GELU,
    Flatten,
    Identity,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
    Unflatten,
)
from tg.nn.containers import ModuleDict, ModuleList, ParameterDict, ParameterList
from tg.nn.conv import Conv2d
from tg.nn.dropout import Dropout
from tg.nn.embedding import Embedding
from tg.nn.linear import Linear
from tg.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from tg.nn.module import Module, Sequential
from tg.nn.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from tg.nn.parameter import Parameter
from tg.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from tg.nn.state import StateDictError
from tg.nn.sync_norm import SyncBatchNorm

__all__ = ["GELU", "AdaptiveAvgPool2d", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d",
           "Conv2d", "CrossEntropyLoss", "Dropout", "Embedding", "Flatten", "GroupNorm", "Identity", "L1Loss",
           "LayerNorm", "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "ModuleDict",
           "ModuleList", "MultiheadAttention", "NLLLoss", "Parameter", "ParameterDict", "ParameterList", "ReLU",
           "Sequential", "SiLU", "Sigmoid", "Softmax", "StateDictError", "SyncBatchNorm", "Tanh", "Unflatten",
           "functional", "init", "state", "utils"]
