"""ModuleList, ModuleDict, ParameterList, ParameterDict: modules or parameters in a list or a dict, registered so
that their parameters train.

(Plain Python lists and dicts of modules work in tg too; these give PyTorch's names and methods.)  State names
are the positions (``"blocks.0.weight"``) and the keys (``"heads.cls.bias"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tg.frontend.tensor import Tensor
from tg.nn.module import Module
from tg.nn.parameter import Parameter


def _check(module: Any, where: str) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{where}: {type(module).__name__} is not a Module (hold tensors and functions as plain "
                        "attributes)")
    return module


class ModuleList(Module):
    """A list of modules: index, slice, iterate, ``append``, ``extend``, ``insert``."""

    def __init__(self, modules: Iterable[Module] | None = None):
        self.items: list[Module] = [_check(m, "ModuleList") for m in (modules or ())]

    def named_state_children(self) -> Iterator[tuple[str, Any]]:
        return ((str(i), m) for i, m in enumerate(self.items))

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ModuleList(self.items[index])
        return self.items[index]

    def __setitem__(self, index: int, module: Module) -> None:
        self.items[index] = _check(module, "ModuleList")

    def __delitem__(self, index: int | slice) -> None:
        del self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.items)

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        self.items.append(_check(module, "ModuleList.append"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        self.items.extend(_check(m, "ModuleList.extend") for m in modules)
        return self

    def insert(self, index: int, module: Module) -> None:
        self.items.insert(index, _check(module, "ModuleList.insert"))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(): iterate over it (for layer in self.layers: ...)")

    def __repr__(self) -> str:
        body = "".join(f"\n  ({i}): {m!r}" for i, m in enumerate(self.items))
        return f"ModuleList({body}\n)"


class _Keyed(Module):
    """What ModuleDict and ParameterDict share: ``entries`` by string key, in insertion order, read as a dict."""

    entries: dict[str, Any]

    def named_state_children(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self.entries.items()))

    def _key(self, key: Any) -> str:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"{type(self).__name__} keys must be non-empty strings without '.', got {key!r}")
        return key

    def __getitem__(self, key: str) -> Any:
        return self.entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def keys(self) -> Any:
        return self.entries.keys()

    def values(self) -> Any:
        return self.entries.values()

    def items(self) -> Any:
        return self.entries.items()


class ModuleDict(_Keyed):
    """A dict of modules by string key, in insertion order: ``d[key]``, ``keys()``, ``items()``, ``update``..."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None):
        self.entries: dict[str, Module] = {}
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        module: Module = self.entries[key]
        return module

    def __setitem__(self, key: str, module: Module) -> None:
        self.entries[self._key(key)] = _check(module, f"ModuleDict[{key!r}]")

    def __delitem__(self, key: str) -> None:
        del self.entries[key]

    def pop(self, key: str) -> Module:
        return self.entries.pop(key)

    def clear(self) -> None:
        self.entries.clear()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in pairs:
            self[key] = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward(): index it (self.heads['cls'](x))")

    def __repr__(self) -> str:
        body = "".join(f"\n  ({k}): {m!r}" for k, m in self.entries.items())
        return f"ModuleDict({body}\n)"


def _param(value: Any, where: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{where}: expected a Tensor (nn.Parameter), got {type(value).__name__}")
    if value.requires_grad is not True:
        value = Parameter(value)
    return value


class ParameterList(Module):
    """A list of parameters (tensors are made parameters: ``requires_grad=True``); state names are positions."""

    def __init__(self, values: Iterable[Tensor] | None = None):
        self.items: list[Tensor] = [_param(v, "ParameterList") for v in (values or ())]

    def named_state_children(self) -> Iterator[tuple[str, Any]]:
        return ((str(i), t) for i, t in enumerate(self.items))

    def __getitem__(self, index: int) -> Tensor:
        return self.items[index]

    def __setitem__(self, index: int, value: Tensor) -> None:
        self.items[index] = _param(value, "ParameterList")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.items)

    def append(self, value: Tensor) -> ParameterList:
        self.items.append(_param(value, "ParameterList.append"))
        return self

    def extend(self, values: Iterable[Tensor]) -> ParameterList:
        for v in values:
            self.append(v)
        return self


class ParameterDict(_Keyed):
    """A dict of parameters by string key; state names are the keys."""

    def __init__(self, values: Mapping[str, Tensor] | None = None):
        self.entries: dict[str, Tensor] = {}
        for key, value in (values or {}).items():
            self[key] = value

    def __getitem__(self, key: str) -> Tensor:
        value: Tensor = self.entries[key]
        return value

    def __setitem__(self, key: str, value: Tensor) -> None:
        self.entries[self._key(key)] = _param(value, f"ParameterDict[{key!r}]")
