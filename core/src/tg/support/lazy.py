"""Module attributes imported on first use (PEP 562), so importing a light module never pulls in a heavy one."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_attributes(module: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` (a module path) on first access of ``name`` and keeps
    the value as the module's attribute; any other name is an AttributeError.  Use:
    ``__getattr__ = lazy_attributes(__name__, {"Tensor": "tg.frontend.tensor"})``.  A submodule of the package
    maps to its own path (``{"nn": "tg.nn"}``): ``tg.nn`` then works after a bare ``import tg``."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        imported = importlib.import_module(table[name])
        value = imported if table[name] == f"{module}.{name}" else getattr(imported, name)
        setattr(sys.modules[module], name, value)
        return value

    return __getattr__
