"""tg: a small deep-learning framework with pluggable compiler backends.

``import tg`` is cheap and never imports a backend plugin: plugins are discovered from package
metadata and imported only when their backend is selected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tg.frontend.torch_functions import TENSOR_METHODS
from tg.hooks import HOOKSPEC_VERSION, hookimpl, hookspec
from tg.support.errors import BackendError, JitError, PluginError, PluginWarning, TgError
from tg.support.lazy import lazy_attributes
from tg.support.version import __version__

if TYPE_CHECKING:
    from tg import checkpoint, cuda, nn, optim, utils
    from tg.backends.contract import Capabilities
    from tg.frontend.api import (
        arange,
        argsort,
        bmm,
        cat,
        clone,
        cumprod,
        cumsum,
        einsum,
        empty,
        erf,
        expm1,
        from_numpy,
        full,
        full_like,
        gather,
        isfinite,
        isinf,
        isnan,
        log1p,
        manual_seed,
        masked_fill,
        matmul,
        multinomial,
        norm,
        ones,
        ones_like,
        outer,
        prod,
        rand,
        randint,
        randn,
        roll,
        scatter,
        scatter_add,
        scatter_reduce,
        sort,
        stack,
        tensor,
        topk,
        tril,
        triu,
        where,
        zeros,
        zeros_like,
    )
    from tg.frontend.grad_mode import no_grad
    from tg.frontend.jit import JitFunction, jit
    from tg.frontend.tensor import Tensor
    from tg.support.dtype import dtypes

# Imported on first use, so `import tg` stays cheap (the helper processes import it too).
_LAZY = {"Tensor": "tg.frontend.tensor", "no_grad": "tg.frontend.grad_mode", "dtypes": "tg.support.dtype",
         "Capabilities": "tg.codegen.capabilities", "jit": "tg.frontend.jit", "JitFunction": "tg.frontend.jit",
         "nn": "tg.nn", "optim": "tg.optim", "checkpoint": "tg.checkpoint", "cuda": "tg.cuda", "utils": "tg.utils"}
# PyTorch's module-level functions (tg.zeros, tg.cat, ...): thin wrappers in tg.frontend.api
_TORCH_STYLE = ("arange", "argsort", "bmm", "cat", "clone", "cumprod", "cumsum", "einsum", "empty", "erf", "expm1",
                "from_numpy", "full", "full_like", "gather", "isfinite", "isinf", "isnan", "log1p", "manual_seed",
                "masked_fill", "matmul", "multinomial", "norm", "ones", "ones_like", "outer", "prod", "rand", "randint",
                "randn", "roll", "scatter", "scatter_add", "scatter_reduce", "sort", "stack", "tensor", "topk", "tril",
                "triu", "where", "zeros", "zeros_like")
_TORCH_MORE = ("allclose", "device", "empty_like", "eye", "inference_mode", "is_tensor", "isclose", "linspace",
               "rand_like", "randn_like", "randperm", "set_grad_enabled")
_LAZY.update(dict.fromkeys(_TORCH_STYLE + TENSOR_METHODS + _TORCH_MORE, "tg.frontend.api"))
_LAZY.update({"save": "tg.nn.serialization", "load": "tg.nn.serialization"})
# PyTorch's dtype names (tg.float32, tg.long, ...)
_LAZY.update(dict.fromkeys(("float32", "float", "float16", "half", "float64", "double", "int8", "uint8", "int32",
                            "int64", "long", "int", "bool"), "tg.frontend.torch_dtypes"))


__getattr__ = lazy_attributes(__name__, _LAZY)


def default_backend_name() -> str:
    """The backend tensors go to when no device is given (TG_BACKEND's choice, else by priority)."""
    from tg.engine.device import canonical_name

    return canonical_name(None)


def backend_capabilities(device: str | None = None) -> Capabilities:
    """What backend ``device`` (default: the default backend) declares it can do."""
    from tg.engine.device import device_state

    return device_state(device).capabilities


__all__ = ["BackendError", "Capabilities", "HOOKSPEC_VERSION", "JitError", "JitFunction", "PluginError",
           "PluginWarning", "Tensor", "TgError", "__version__", "allclose", "arange", "argsort",
           "backend_capabilities", "bmm", "bool", "cat", "checkpoint", "clone", "cuda", "cumprod", "cumsum",
           "default_backend_name", "device", "double", "dtypes", "einsum", "empty", "empty_like", "erf",
           "expm1", "eye", "float", "float16", "float32", "float64", "from_numpy", "full", "full_like",
           "gather", "half", "hookimpl", "hookspec", "inference_mode", "int", "int32", "int64", "int8",
           "is_tensor", "isclose", "isfinite", "isinf", "isnan", "jit", "linspace", "load", "log1p", "long",
           "manual_seed", "masked_fill", "matmul", "multinomial", "nn", "no_grad", "norm", "ones",
           "ones_like", "optim", "outer", "prod", "rand", "rand_like", "randint", "randn", "randn_like",
           "randperm", "roll", "save", "scatter", "scatter_add", "scatter_reduce", "set_grad_enabled", "sort", "stack",
           "tensor", "topk", "tril", "triu", "uint8", "utils", "where", "zeros", "zeros_like"]
