"""The ``torch.*`` functions that are simply the Tensor method of the same name on their first argument
(``torch.flatten(x, 1)`` is ``x.flatten(1)``): one list, which :mod:`tg` offers lazily and :mod:`tg.frontend.api`
defines.  A light module: ``import tg`` reads it."""

from __future__ import annotations

TENSOR_METHODS = ("abs", "all", "amax", "amin", "any", "argmax", "argmin", "ceil", "chunk", "clamp", "clip", "cos",
                  "exp", "exp2", "flatten", "flip", "floor", "log", "log2", "log_softmax", "logsumexp", "max",
                  "maximum", "mean", "min", "minimum", "neg", "numel", "permute", "pow", "reciprocal", "relu",
                  "reshape", "rsqrt", "sigmoid", "sign", "sin", "softmax", "split", "sqrt", "square", "squeeze",
                  "std", "sum", "tanh", "transpose", "unsqueeze", "var")
