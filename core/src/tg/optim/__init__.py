"""tg.optim: PyTorch's optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) and learning-rate schedulers.

>>> from tg import nn, optim
>>> model = nn.Linear(4, 2)
>>> opt = optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.01}], lr=0.1, momentum=0.9)
>>> [g["lr"] for g in opt.param_groups]
[0.1, 0.01]

Learning rates and the other options reach the kernels as data (see :mod:`tg.optim.optimizer`): changing one,
by hand or with :mod:`tg.optim.lr_scheduler`, compiles nothing and works under :func:`tg.jit`.
"""

from __future__ import annotations

from tg.optim import lr_scheduler
from tg.optim.adam import Adam, AdamW
from tg.optim.adaptive import Adagrad, RMSprop
from tg.optim.optimizer import MAX_FUSED, Optimizer, OptimizerState, ParamGroup
from tg.optim.sgd import SGD

__all__ = ["MAX_FUSED", "SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "OptimizerState", "ParamGroup", "RMSprop",
           "lr_scheduler"]
