"""Module, the base class of layers, and Sequential, which chains layers.

Train/eval mode is a per-module flag: ``module.train()`` and ``module.eval()`` set ``training`` on the
module and on every module inside it, and the layers whose behaviour depends on it (Dropout,
BatchNorm2d) read their own flag.  The global ``Tensor.training`` is left alone, so two models in
different modes can run side by side.  A module is in training mode when it is created, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tg.frontend.tensor import Tensor
from tg.nn import state


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

    # -- what the module holds -----------------------------------------------------------------------------

    def named_state_children(self) -> Iterator[tuple[str, Any]]:
        """The named attributes the state walk descends into (override to rename, as Sequential does)."""
        return ((k, v) for k, v in vars(self).items()
                if (not k.startswith("_") or isinstance(v, Module)) and k != "training")

    def modules(self) -> Iterator[Module]:
        """This module and every module inside it (each once), depth first."""
        seen: set[int] = set()
        stack: list[Any] = [self]
        while stack:
            node = stack.pop()
            if isinstance(node, Tensor) or id(node) in seen:
                continue
            seen.add(id(node))
            children: list[tuple[Any, Any]]
            if isinstance(node, Module):
                yield node
                children = list(node.named_state_children())
            elif isinstance(node, (list, tuple)):
                children = list(enumerate(node))
            elif isinstance(node, dict):
                children = list(node.items())
            else:
                continue
            stack.extend(v for _, v in reversed(children))

    def parameters(self) -> list[Tensor]:
        """The trainable tensors (``requires_grad=True``) of this module and those inside it, each once."""
        return state.get_parameters(self)

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        return [(n, t) for n, t in state.named_tensors(self) if t.requires_grad]

    def state_dict(self) -> dict[str, Tensor]:
        """Every tensor, parameters and buffers, by dotted name (``"0.weight"``, ``"layers.1.bias"``)."""
        return state.get_state_dict(self)

    def load_state_dict(self, values: Mapping[str, Any], strict: bool = True) -> None:
        """Load names -> arrays or tensors; checks everything first (see :func:`tg.nn.state.load_state_dict`)."""
        state.load_state_dict(self, values, strict)

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


Layer = Callable[[Tensor], Tensor]


class Sequential(Module):
    """Layers applied in order; any callable taking and returning a Tensor may be a layer (``Tensor.relu``).

    State names are the positions: ``"0.weight"``, ``"2.bias"``.
    """

    def __init__(self, *layers: Layer):
        self.layers: list[Layer] = list(layers[0]) if len(layers) == 1 and isinstance(layers[0], list) else \
            list(layers)

    def named_state_children(self) -> Iterator[tuple[str, Any]]:
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def append(self, layer: Layer) -> Sequential:
        self.layers.append(layer)
        return self

    def __repr__(self) -> str:
        body = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({body}\n)"
