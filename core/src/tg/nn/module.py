"""Module, the base class of layers, and Sequential, which chains layers.

Train/eval mode is a per-module flag: ``module.train()`` and ``module.eval()`` set ``training`` on the
module and on every module inside it, and the layers whose behaviour depends on it (Dropout,
BatchNorm2d) read their own flag.  The global ``Tensor.training`` is left alone, so two models in
different modes can run side by side.  A module is in training mode when it is created, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

from tg.frontend.tensor import Tensor
from tg.nn import state

T = TypeVar("T")


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(..., strict=False)`` left out: the model's names not given, the names not used."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class IterList(list[T]):
    """A list that is also an iterator, so both tg's ``len(model.parameters())`` and PyTorch's
    ``next(model.parameters())`` (PyTorch returns a generator) work."""

    def __next__(self) -> T:
        cursor: Iterator[T] | None = self.__dict__.get("_cursor")
        if cursor is None:
            cursor = iter(list(self))
            self.__dict__["_cursor"] = cursor
        return next(cursor)


class Module:
    """A layer or a model: holds tensors (found automatically) and computes ``forward``.

    Subclasses assign tensors, modules, and lists/dicts of them as attributes; ``parameters()`` and
    ``state_dict()`` find them.  Attributes whose name starts with ``_`` are private and not walked, except a
    module (PyTorch registers ``self._block = Linear(...)`` too: its parameters must train).  A parameter (a
    tensor that requires grad) is replaced only by another one: assigning a plain tensor over ``lin.weight``
    raises instead of silently taking the weight out of training.
    """

    training: bool = True

    def __setattr__(self, name: str, value: Any) -> None:
        old = self.__dict__.get(name)
        if isinstance(old, Tensor) and old.requires_grad and isinstance(value, Tensor) and not value.requires_grad:
            raise TypeError(f"cannot assign a tensor that does not require grad over parameter {name!r} of "
                            f"{type(self).__name__} (it would silently stop training): create it with "
                            f"requires_grad=True, or change the values in place with .{name}.assign(...)")
        object.__setattr__(self, name, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- registering -----------------------------------------------------------------------------------------

    def _non_persistent(self) -> set[str]:
        found: set[str] | None = self.__dict__.get("_non_persistent_buffers")
        if found is None:
            found = set()
            object.__setattr__(self, "_non_persistent_buffers", found)
        return found

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Hold ``tensor`` as a buffer: in the state dict (unless ``persistent=False``), moved by ``to()``, never a
        parameter.  ``None`` reserves the name (nothing is saved)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor or None, got {type(tensor).__name__}")
        if tensor is not None and tensor.requires_grad:
            raise ValueError(f"register_buffer({name!r}): a buffer must not require grad (it would be trained as a "
                             "parameter); pass tensor.detach(), or hold a parameter as a plain attribute")
        if name in self.__dict__ and isinstance(self.__dict__[name], Tensor) and self.__dict__[name].requires_grad:
            raise KeyError(f"register_buffer({name!r}): {type(self).__name__} already has a parameter of that name")
        object.__setattr__(self, name, tensor)
        if persistent:
            self._non_persistent().discard(name)
        else:
            self._non_persistent().add(name)

    def register_parameter(self, name: str, param: Tensor | None) -> None:
        """Hold ``param`` (a tensor that requires grad, or None) as a parameter named ``name``."""
        if param is not None and not (isinstance(param, Tensor) and param.requires_grad):
            raise TypeError(f"register_parameter({name!r}): expected a tensor with requires_grad=True (nn.Parameter) "
                            f"or None, got {param!r}")
        setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Hold ``module`` as a submodule named ``name`` (``setattr`` does the same)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): {type(module).__name__} is not a Module")
        setattr(self, name, module)

    register_module = add_module

    # -- what the module holds -----------------------------------------------------------------------------

    def named_state_children(self) -> Iterator[tuple[str, Any]]:
        """The named attributes the state walk descends into (override to rename, as Sequential does)."""
        hidden = self.__dict__.get("_non_persistent_buffers") or ()
        return ((k, v) for k, v in vars(self).items()
                if (not k.startswith("_") or isinstance(v, Module)) and k != "training" and k not in hidden)

    def modules(self) -> Iterator[Module]:
        """This module and every module inside it (each once), depth first."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The modules directly inside this one (also those in its lists and dicts, named ``"layers.0"``)."""
        seen: set[int] = set()
        stack: list[tuple[str, Any]] = list(reversed(list(self.named_state_children())))
        while stack:
            name, node = stack.pop()
            if isinstance(node, Module):
                if id(node) not in seen:
                    seen.add(id(node))
                    yield name, node
            elif isinstance(node, (list, tuple)):
                stack.extend(reversed([(f"{name}.{i}", v) for i, v in enumerate(node)]))
            elif isinstance(node, dict):
                stack.extend(reversed([(f"{name}.{k}", v) for k, v in node.items() if isinstance(k, str)]))

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module (name ``prefix``) and every module inside it, parents first."""
        memo = set() if memo is None else memo
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in memo:
                    continue
                memo.add(id(module))
            yield name, module
            stack.extend(reversed([(f"{name}.{k}" if name else k, m) for k, m in module.named_children()]))

    def parameters(self, recurse: bool = True) -> IterList[Tensor]:
        """The trainable tensors (``requires_grad=True``) of this module and those inside it, each once."""
        if recurse:
            return IterList(state.get_parameters(self))
        return IterList(t for _, t in self.named_parameters(recurse=False))

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> IterList[tuple[str, Tensor]]:
        """(dotted name, parameter) pairs; a parameter shared by two layers comes once unless ``remove_duplicate``
        is False."""
        return IterList(self._named_tensors(prefix, recurse, remove_duplicate, parameters=True))

    def buffers(self, recurse: bool = True) -> IterList[Tensor]:
        return IterList(t for _, t in self.named_buffers(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> IterList[tuple[str, Tensor]]:
        """The tensors that are not parameters (running statistics, masks...), non-persistent ones included."""
        return IterList(self._named_tensors(prefix, recurse, remove_duplicate, parameters=False))

    def _named_tensors(self, prefix: str, recurse: bool, remove_duplicate: bool,
                       parameters: bool) -> list[tuple[str, Tensor]]:
        """Tensors in definition order (the state dict's), non-persistent buffers after; shared ones once."""
        if recurse:
            found = list(state.named_tensors(self, prefix))
            hidden = [(name, m) for name, m in self.named_modules(prefix=prefix)
                      if m.__dict__.get("_non_persistent_buffers")]
        else:
            found = [(f"{prefix}.{k}" if prefix else k, t) for k, v in self.named_state_children()
                     if not isinstance(v, Module) for k, t in state.named_tensors(v, k)]
            hidden = [(prefix, self)] if self.__dict__.get("_non_persistent_buffers") else []
        for name, m in hidden:
            names = sorted(m.__dict__["_non_persistent_buffers"])
            found += [(f"{name}.{k}" if name else k, m.__dict__[k]) for k in names
                      if isinstance(m.__dict__.get(k), Tensor)]
        out, seen = [], set()
        for key, t in found:
            if bool(t.requires_grad) != parameters or (remove_duplicate and id(t) in seen):
                continue
            seen.add(id(t))
            out.append((key, t))
        return out

    def state_dict(self) -> dict[str, Tensor]:
        """Every tensor, parameters and buffers, by dotted name (``"0.weight"``, ``"layers.1.bias"``)."""
        return state.get_state_dict(self)

    def load_state_dict(self, values: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Load names -> arrays or tensors; checks everything first (see :func:`tg.nn.state.load_state_dict`).

        Returns PyTorch's ``(missing_keys, unexpected_keys)`` named tuple (both empty unless ``strict=False``)."""
        own = self.state_dict()
        state.load_state_dict(self, values, strict)
        return IncompatibleKeys([n for n in own if n not in values], [n for n in values if n not in own])

    def get_submodule(self, target: str) -> Module:
        """The module at dotted path ``target`` (``"blocks.0.attn"``; ``""`` is this module)."""
        for name, module in self.named_modules():
            if name == target:
                return module
        raise AttributeError(f"{type(self).__name__} has no submodule {target!r}")

    def get_parameter(self, target: str) -> Tensor:
        """The parameter at dotted path ``target`` (``"blocks.0.attn.in_proj_weight"``)."""
        found = dict(self.named_parameters()).get(target)
        if found is None:
            raise AttributeError(f"{type(self).__name__} has no parameter {target!r}")
        return found

    # -- whole-module operations -------------------------------------------------------------------------------

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first), then on this module; returns self (``m.apply(init)``)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter: to None (default), or to zeros with ``set_to_none=False``."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor.zeros(*p.shape, dtype=p.grad.dtype, device=p.grad.device)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze the parameters; returns self.  tg tells parameters by ``requires_grad``, so a
        frozen parameter counts as a buffer until unfrozen; unfreezing turns back exactly the ones frozen here."""
        frozen: set[int] = self.__dict__.setdefault("_frozen_parameters", set())
        if not requires_grad:
            for p in self.parameters():
                p.requires_grad = False
                frozen.add(id(p))
        else:
            for _, t in state.named_tensors(self):
                if id(t) in frozen:
                    t.requires_grad = True
            frozen.clear()
        return self

    def to(self, device: str | None = None, dtype: Any = None) -> Module:
        """Move every parameter and buffer to ``device`` and/or cast floating ones to ``dtype``, in place; returns
        self.  Tensors are replaced by moved copies (create the optimizer after moving the model, as in PyTorch)."""
        from tg.engine.device import canonical_name
        from tg.support.dtype import DType, dtypes

        if isinstance(device, (DType, type(None))) and dtype is None:  # to(dtype)
            device, dtype = None, device
        target = dtypes.from_any(dtype) if dtype is not None else None

        def move(t: Tensor) -> Tensor:
            # realized here first: Tensor.to of an unrealized broadcast constant (Tensor.ones(n)) fails to copy
            out = t.detach().contiguous().realize().to(device) if device is not None and \
                t.device != canonical_name(device) else t
            if target is not None and t.dtype.is_float and t.dtype != target:
                out = out.detach().cast(target)
            if out is t:
                return t
            moved = Tensor(out.realize().lazydata, requires_grad=t.requires_grad)
            return moved

        for module in self.modules():
            for key, value in list(vars(module).items()):
                if isinstance(value, Tensor):
                    object.__setattr__(module, key, move(value))
                elif isinstance(value, (list, dict)) and not isinstance(value, Module):
                    _move_in(value, move)
        return self

    def _place(self, device: str | None, dtype: Any) -> None:
        """PyTorch's ``device=``/``dtype=`` constructor arguments: move the new layer's tensors there."""
        if device is not None or dtype is not None:
            self.to(device, dtype)

    def float(self) -> Module:
        return self.to(dtype="float32")

    def half(self) -> Module:
        return self.to(dtype="float16")

    def double(self) -> Module:
        return self.to(dtype="float64")

    # -- modes -----------------------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every module inside it; returns self."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode: Dropout passes values through, BatchNorm2d uses its running statistics."""
        return self.train(False)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v.shape if isinstance(v, Tensor) else v!r}" for k, v in self.named_state_children()
                          if not isinstance(v, Module))
        return f"{type(self).__name__}({inner})"


def _move_in(container: list[Any] | dict[Any, Any], move: Callable[[Tensor], Tensor]) -> None:
    """Replace the tensors held in nested lists and dicts by ``move(tensor)``."""
    stack: list[Any] = [container]
    while stack:
        node = stack.pop()
        keys = range(len(node)) if isinstance(node, list) else list(node)
        for k in keys:
            v = node[k]
            if isinstance(v, Tensor):
                node[k] = move(v)
            elif isinstance(v, (list, dict)):
                stack.append(v)


Layer = Callable[[Tensor], Tensor]


class Sequential(Module):
    """Layers applied in order; any callable taking and returning a Tensor may be a layer (``Tensor.relu``).

    State names are the positions (``"0.weight"``, ``"2.bias"``), or the keys of an ``OrderedDict`` given instead
    of layers, as in PyTorch.
    """

    def __init__(self, *layers: Any):
        names: list[str] | None = None
        if len(layers) == 1 and isinstance(layers[0], dict):
            names, layers = [str(k) for k in layers[0]], tuple(layers[0].values())
        elif len(layers) == 1 and isinstance(layers[0], list):
            layers = tuple(layers[0])
        self.layers: list[Layer] = list(layers)
        object.__setattr__(self, "_names", names)

    def named_state_children(self) -> Iterator[tuple[str, Any]]:
        names = self._names if self._names is not None else [str(i) for i in range(len(self.layers))]
        return zip(names, self.layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __getattr__(self, name: str) -> Any:  # an OrderedDict's names are attributes, as in PyTorch
        names = self.__dict__.get("_names")
        if names is not None and name in names:
            return self.layers[names.index(name)]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def append(self, layer: Layer) -> Sequential:
        if self._names is not None:
            self._names.append(str(len(self._names)))
        self.layers.append(layer)
        return self

    def __repr__(self) -> str:
        body = "".join(f"\n  ({name}): {layer!r}" for name, layer in self.named_state_children())
        return f"Sequential({body}\n)"
