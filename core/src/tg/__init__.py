"""tg: a small deep-learning framework with pluggable compiler backends.

``import tg`` is cheap and never imports a backend plugin: plugins are discovered from package
metadata and imported only when their backend is selected.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any  # noqa: E402

from tg.errors import BackendError, JitError, PluginError, PluginWarning, TgError  # noqa: E402
from tg.hooks import HOOKSPEC_VERSION, hookimpl, hookspec  # noqa: E402

if TYPE_CHECKING:
    from tg.backend_types import Capabilities
    from tg.dtype import dtypes
    from tg.replay import JitFunction, jit
    from tg.tensor import Tensor, no_grad

# Imported on first use, so `import tg` stays cheap (the helper processes import it too).
_LAZY = {"Tensor": "tg.tensor", "no_grad": "tg.tensor", "dtypes": "tg.dtype", "Capabilities": "tg.backend_types",
         "jit": "tg.replay", "JitFunction": "tg.replay"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tg' has no attribute {name!r}")


def default_backend_name() -> str:
    """The backend tensors go to when no device is given (TG_BACKEND's choice, else by priority)."""
    from tg.device import canonical_name

    return canonical_name(None)


def backend_capabilities(device: str | None = None) -> Capabilities:
    """What backend ``device`` (default: the default backend) declares it can do."""
    from tg.device import device_state

    return device_state(device).capabilities


__all__ = ["HOOKSPEC_VERSION", "BackendError", "Capabilities", "JitError", "JitFunction", "PluginError",
           "PluginWarning", "Tensor", "TgError", "__version__", "backend_capabilities", "default_backend_name",
           "dtypes", "hookimpl", "hookspec", "jit", "no_grad"]
