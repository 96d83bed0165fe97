"""The optimizer base class: parameter groups, hyperparameters as device data, fused steps, state dicts.

A parameter group is a dict, as in PyTorch: ``{"params": [...], "lr": 0.1, ...}``; options a group does not
give come from the optimizer's defaults.  Every numeric option of a group (``lr``, momentum, betas, eps,
weight decay...) reaches the kernels as *data*: a small vector on each device the group's parameters live on,
rewritten in place whenever an option changes (``group["lr"] = x``, a scheduler's ``step()``, ``opt.lr = x``).
Changing a hyperparameter therefore compiles no kernel, and a step captured by :func:`tg.jit` reads the new
value when it is replayed.  Only the *structure* of an update is fixed by Python values: whether a momentum
buffer exists (``momentum == 0`` or not), ``nesterov``, ``amsgrad``, ``centered``; turning one of those on or
off after the first step is refused (state would appear or vanish between steps).

``step()`` computes every update under ``no_grad`` and realizes the new parameters and state, so no graph
grows from step to step.  Parameters of one group that share a device, a dtype and a step count are updated
together, viewed as one flat vector (at most :data:`MAX_FUSED` per kernel).  A parameter whose ``.grad`` is
None is skipped, its state untouched.  Everything a step changes lives on the device and changes by
``assign``, so a jitted training step keeps training when replayed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from tg.engine.realize import current_recorder
from tg.frontend.grad_mode import no_grad
from tg.frontend.tensor import Tensor
from tg.graph.lazy import LazyBuffer
from tg.support.dtype import DType, dtypes
from tg.support.errors import JitError
from tg.support.ops import Ops

MAX_FUSED = 16  # parameters updated by one kernel at most (each adds a masked load to every element)


def _flat(tensors: list[Tensor]) -> Tensor:
    """``Tensor.cat`` of the tensors flattened, as data outside autograd: the same lazy graph (each piece reshaped,
    zero-padded to the total length, the pieces added in order) made on the LazyBuffers directly, without a Function
    per op (a step calls this under ``no_grad`` on every parameter's gradient)."""
    if any(t.dtype != tensors[0].dtype for t in tensors):  # mixed dtypes: cat's promotion rules decide
        return Tensor.cat(*[t.reshape(-1) for t in tensors])
    if len(tensors) == 1:
        return tensors[0].reshape(-1)
    total = sum(t.numel() for t in tensors)
    out: LazyBuffer | None = None
    offset = 0
    for t in tensors:
        n = t.numel()
        piece = t.lazydata.reshape((n,)).pad(((offset, total - offset - n),))
        out = piece if out is None else out.alu(Ops.ADD, piece)
        offset += n
    assert out is not None
    return Tensor(out, requires_grad=False)


def _slices(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    """``flat.shrink(...).reshape(t.shape)`` for each tensor ``t`` of ``like`` in turn, made on the LazyBuffers (as
    :func:`_flat`); each is a view (``flat`` itself where it is the whole of it, as ``shrink`` and ``reshape`` give)."""
    out, offset = [], 0
    lb, length = flat.lazydata, flat.shape[0]
    for t in like:
        n = t.numel()
        view = lb if (offset, n) == (0, length) else lb.shrink(((offset, offset + n),))
        if view.shape != t.shape:
            view = view.reshape(t.shape)
        if view is lb:
            out.append(flat)
        else:
            piece = Tensor(view, requires_grad=False)
            piece._view = True
            out.append(piece)
        offset += n
    return out


def hyper_dtype(dtype: DType) -> DType:
    """The dtype hyperparameters and step counts are kept in for parameters of ``dtype`` (float32 at least)."""
    return dtypes.float64 if dtype == dtypes.float64 else dtypes.float32


def log_or_inf(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


class ParamGroup(dict[str, Any]):
    """One parameter group: ``"params"`` and the options.  Setting an option updates the kernels' copy of it."""

    def __init__(self, owner: Optimizer, values: Mapping[str, Any]):
        super().__init__(values)
        self._owner = owner

    def __setitem__(self, key: str, value: Any) -> None:
        if key == "params":
            raise KeyError("a parameter group's 'params' cannot be replaced: build a new optimizer, or add a "
                           "group with add_param_group()")
        self._owner._check_change(self, key, value)
        super().__setitem__(key, value)
        self._owner._write_hyper(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


class OptimizerState(list[dict[str, Any]]):
    """Each parameter's state (a dict of tensors by PyTorch's names), indexed by position (``state[0]``) or, as in
    PyTorch, by the parameter itself (``state[p]``)."""

    def __init__(self) -> None:
        super().__init__()
        self._index: dict[int, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, Tensor):
            if id(key) not in self._index:
                raise KeyError("this tensor is not a parameter of the optimizer")
            return super().__getitem__(self._index[id(key)])
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, Tensor):
            return id(key) in self._index and bool(super().__getitem__(self._index[id(key)]))
        return super().__contains__(key)


class Optimizer:
    """Holds parameter groups; ``zero_grad()`` clears the gradients, ``step()`` updates the parameters.

    ``params`` is an iterable of tensors, or of dicts (parameter groups) each with ``"params"`` and per-group
    options.  Subclasses set ``defaults``, list their structural options in ``structural`` and define
    :meth:`hyper` (the group's numeric options as named floats) and :meth:`update`.
    """

    #: options whose value decides which state exists (zero or not, or a flag): fixed after the first step
    structural: tuple[str, ...] = ()
    #: whether the state holds a device step count, "step" (PyTorch's Adam family does; SGD does not)
    counts_steps = False

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, got one "
                            "Tensor: pass [tensor]")
        self.defaults = dict(defaults)
        self.param_groups: list[ParamGroup] = []
        self.params: list[Tensor] = []
        #: per parameter (in the order of ``params``; also ``state[p]``): its state tensors by PyTorch's names
        self.state = OptimizerState()
        self._group_of: list[int] = []
        self._counts: list[int] = []  # updates so far, per parameter (decides which updates fuse)
        #: (chunk, name) -> the flat vector a step wrote and the lazy data of the per-parameter views of it that it
        #: handed out: while those views are still what the tensors hold, the next step reads the vector as is
        self._flats: dict[tuple[tuple[int, ...], str], tuple[Tensor, list[Any]]] = {}
        self._hyper: dict[tuple[int, str, str], Tensor] = {}  # (group, device, dtype) -> the options on the device
        #: the same key -> (the vector's lazy data, the option names, the 0-d views of it by name), made once
        self._hyper_views: dict[tuple[int, str, str], tuple[Any, tuple[str, ...], dict[str, Tensor]]] = {}
        self._stepped = False
        items: list[Any] = list(params)
        if not items:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for group in items if isinstance(items[0], dict) else [{"params": items}]:
            self.add_param_group(group)

    # -- groups ----------------------------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (a dict with ``"params"`` and options; missing options take the defaults)."""
        name = type(self).__name__
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{name}: a parameter group is a dict with a 'params' entry, got {param_group!r}")
        raw = param_group["params"]
        tensors = [raw] if isinstance(raw, Tensor) else list(raw)
        unique: dict[int, Tensor] = {}
        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameters must be Tensors, got {type(p).__name__}")
            if p.requires_grad is False:
                raise ValueError(f"{name}: parameter {p} has requires_grad=False")
            p.requires_grad = True
            unique.setdefault(id(p), p)
        if not unique:
            raise ValueError(f"{name}: got an empty parameter list")
        known = {id(p) for p in self.params}
        if any(i in known for i in unique):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        options = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self.check_options(options)
        group = ParamGroup(self, {"params": list(unique.values()), **options})
        index = len(self.param_groups)
        self.param_groups.append(group)
        for p in unique.values():
            self.state._index[id(p)] = len(self.params)
            self.params.append(p)
            self.state.append({})
            self._group_of.append(index)
            self._counts.append(0)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise ValueError for an invalid option (subclasses extend; the base checks ``lr``)."""
        lr = options.get("lr")
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr!r} (a number >= 0)")

    def _check_change(self, group: ParamGroup, key: str, value: Any) -> None:
        recorder = current_recorder()
        if recorder is not None and recorder.refuse_reads_for is not None:
            raise JitError(f"jit: {recorder.refuse_reads_for} changes the optimizer option {key!r} while being "
                           "captured; a replay runs only kernels, so the option would silently keep this value. Fix: "
                           "change it (or call the scheduler's step()) outside the jitted function, between calls.")
        if key == "lr":  # any real number: a schedule may go below 0 at its very end, as PyTorch's do
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{type(self).__name__}: invalid learning rate {value!r} (a number)")
        else:  # the other options checked as at construction (an lr a schedule took below 0 is not their fault)
            lr = group.get("lr")
            self.check_options({**group, key: value, "lr": abs(lr) if isinstance(lr, (int, float)) else lr})
        if key in self.structural and self._stepped and _structure(group.get(key)) != _structure(value):
            raise ValueError(f"{type(self).__name__}: {key} cannot change from {group.get(key)!r} to {value!r} after "
                             f"the first step (that adds or removes optimizer state); create the optimizer with "
                             f"the {key} you need (a nonzero value may change freely)")

    @property
    def lr(self) -> float:
        """The first group's learning rate; setting it sets every group's (as ``group["lr"] = x`` does)."""
        return float(self.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = value

    # -- hyperparameters on the device -------------------------------------------------------------------------

    def hyper(self, group: Mapping[str, Any]) -> dict[str, float]:
        """The group's numeric options the kernels read, as floats (derived values are computed here, in float64)."""
        return {"lr": float(group["lr"])}

    def _hyper_array(self, group: Mapping[str, Any], dtype: DType) -> np.ndarray:
        return np.array(list(self.hyper(group).values()), dtype=dtype.np)

    def _write_hyper(self, group: ParamGroup) -> None:
        """Copy the group's options into its device vectors, in place: kernels and jit replays read the new values."""
        index = next(i for i, g in enumerate(self.param_groups) if g is group)
        for (gi, _, _), t in self._hyper.items():
            if gi == index:
                t.lazydata.base.realized.copyin(self._hyper_array(group, t.dtype))

    def _hyper_tensors(self, index: int, like: Tensor) -> dict[str, Tensor]:
        """The group's options as 0-d views of one vector on ``like``'s device (made once, then rewritten in place)."""
        group, dtype = self.param_groups[index], hyper_dtype(like.dtype)
        key = (index, like.device, dtype.name)
        if key not in self._hyper:
            self._hyper[key] = Tensor(self._hyper_array(group, dtype), device=like.device).realize()
        vector = self._hyper[key]
        names = tuple(self.hyper(group))
        views = self._hyper_views.get(key)
        if views is None or views[0] is not vector.lazydata or views[1] != names:  # made once per vector
            views = (vector.lazydata, names, {name: vector.shrink(((k, k + 1),)).reshape(())
                                              for k, name in enumerate(names)})
            self._hyper_views[key] = views
        return dict(views[2])

    # -- steps -----------------------------------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: to None (default), or to zeros in place with ``set_to_none=False``."""
        for p in self.params:
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.assign(Tensor.zeros(*p.grad.shape, dtype=p.grad.dtype, device=p.grad.device)).realize()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; with ``closure``, calls it first and returns its loss."""
        loss = closure() if closure is not None else None
        chunks: dict[tuple[Any, ...], list[int]] = {}
        for i, p in enumerate(self.params):
            if p.grad is not None and p.numel() > 0:
                chunks.setdefault((self._group_of[i], p.device, p.dtype.name, self._counts[i]), []).append(i)
        for (group, _, _, count), indices in chunks.items():
            for start in range(0, len(indices), MAX_FUSED):
                self._step_chunk(group, indices[start:start + MAX_FUSED], count + 1)
        self._stepped = self._stepped or bool(chunks)
        return loss

    def _step_chunk(self, index: int, chunk: list[int], step: int) -> None:
        params = [self.params[i] for i in chunk]
        with no_grad():
            grad = _flat([p.grad for p in params if p.grad is not None]).realize()
            p = self._cached_flat(chunk, "", params)
            hyper = self._hyper_tensors(index, p)
            extra: dict[str, Tensor] = {}
            if self.counts_steps:
                previous = self.state[chunk[0]].get("step")
                t = Tensor.full((), 1.0, dtype=hyper_dtype(p.dtype), device=p.device) if previous is None \
                    else previous + 1
                extra["step"] = t  # (computed with the state below; an update that reads it computes it too)
                hyper = {**hyper, "step": extra["step"]}
            new_p, new_state = self.update(self.param_groups[index], hyper, chunk, p, grad, step)
        for name, value in {**extra, **new_state}.items():  # state first: the new parameters read it
            value.realize()  # a flat vector sliced per parameter, or one value the whole chunk shares
            # one tensor object per parameter, even for a value the chunk shares (a step count): each can be
            # loaded or assigned on its own later
            views = _slices(value, params) if value.shape == new_p.shape and value.ndim else \
                [Tensor(value.lazydata) for _ in chunk]
            for i, view in zip(chunk, views):
                if name in self.state[i]:
                    self.state[i][name].assign(view)
                else:
                    self.state[i][name] = view
            if value.shape == new_p.shape and value.ndim:  # (a tensor that cast its view on assign misses)
                self._flats[(tuple(chunk), name)] = (value, [view.lazydata for view in views])
        new_p.realize()
        views = _slices(new_p, params)
        for param, view in zip(params, views):
            param.assign(view)
        self._flats[(tuple(chunk), "")] = (new_p, [view.lazydata for view in views])
        for i in chunk:
            self._counts[i] = step

    def _cached_flat(self, chunk: list[int], name: str, tensors: list[Tensor]) -> Tensor:
        """``_flat(tensors)``; the vector the last step wrote when ``tensors`` still hold its views, unchanged."""
        cached = self._flats.get((tuple(chunk), name))
        if cached is not None and len(cached[1]) == len(tensors) and \
                all(t.lazydata is lb for t, lb in zip(tensors, cached[1])):
            return cached[0]
        return _flat(tensors)

    def flat_state(self, chunk: list[int], name: str, fill: float = 0.0) -> Tensor:
        """The flat vector of state ``name`` for the parameters in ``chunk`` (``fill`` where not set yet)."""
        pieces = [self.state[i].get(name) for i in chunk]
        if all(t is not None for t in pieces):
            return self._cached_flat(chunk, name, pieces)
        return _flat([t if t is not None else Tensor.full(self.params[i].shape, fill, dtype=self.params[i].dtype,
                                                           device=self.params[i].device)
                      for t, i in zip(pieces, chunk)])

    def update(self, group: Mapping[str, Any], hyper: dict[str, Tensor], chunk: list[int], p: Tensor, g: Tensor,
               step: int) -> tuple[Tensor, dict[str, Tensor]]:
        """From the flat parameters ``p`` and gradients ``g`` of ``chunk`` at update number ``step`` (1 first),
        return the new flat parameters and the new state tensors by name (flat like ``p``, or one value the chunk
        shares).  ``hyper`` holds the group's options as device scalars (and ``"step"``, the device step count,
        for optimizers that count steps: not computed yet, it is computed with the state, and a kernel that reads
        it computes it too); ``group`` is for structural choices only."""
        raise NotImplementedError

    # -- state dicts ---------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout: ``{"state": {index: {name: tensor}}, "param_groups": [{options, "params": [index]}]}``;
        parameters are numbered in the order of the groups."""
        groups, first = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            options = {k: v for k, v in group.items() if k != "params"}
            groups.append({**options, "params": list(range(first, first + n))})
            first += n
        return {"state": {i: dict(s) for i, s in enumerate(self.state) if s}, "param_groups": groups}

    def check_state_dict(self, state_dict: Mapping[str, Any]) -> dict[int, dict[str, np.ndarray]]:
        """Check that ``state_dict`` fits this optimizer (raising ValueError naming the problem); its arrays."""
        name = type(self).__name__
        groups, state = state_dict.get("param_groups"), state_dict.get("state")
        if not isinstance(groups, list) or not isinstance(state, Mapping):
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        if [len(g.get("params", ())) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(f"{name}.load_state_dict: the state dict's parameter groups (sizes "
                             f"{[len(g.get('params', ())) for g in groups]}) do not match the optimizer's "
                             f"({[len(g['params']) for g in self.param_groups]})")
        arrays: dict[int, dict[str, np.ndarray]] = {}
        for key, entries in state.items():
            i = int(key)
            if not 0 <= i < len(self.params):
                raise ValueError(f"{name}.load_state_dict: state for parameter {i}, but there are {len(self.params)}")
            arrays[i] = {}
            for entry, value in entries.items():
                a = np.asarray(value.numpy() if isinstance(value, Tensor) else value)
                if a.shape not in (self.params[i].shape, ()):
                    raise ValueError(f"{name}.load_state_dict: state {entry!r} of parameter {i} has shape {a.shape}, "
                                     f"the parameter has {self.params[i].shape}")
                arrays[i][entry] = a
        for group, saved in zip(self.param_groups, groups):
            self.check_options({**group, **_options(group, saved)})
        return arrays

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a :meth:`state_dict` (tensors or arrays); everything is checked before anything changes."""
        arrays = self.check_state_dict(state_dict)
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            dict.update(group, _options(group, saved))
            self._write_hyper(group)
        for i, entries in arrays.items():
            p = self.params[i]
            for entry, a in entries.items():
                dtype = hyper_dtype(p.dtype) if entry == "step" else p.dtype
                value = Tensor(np.array(a, dtype=dtype.np), device=p.device).realize()
                if entry in self.state[i]:  # in place: a jitted step holds these tensors
                    self.state[i][entry].assign(value).realize()
                else:
                    self.state[i][entry] = value
            step = entries.get("step")
            self._counts[i] = int(step) if step is not None else (1 if entries else 0)
        self._stepped = self._stepped or bool(arrays)


def _options(group: Mapping[str, Any], saved: Mapping[str, Any]) -> dict[str, Any]:
    """A saved group's options; lists (from JSON) become tuples where the group holds a tuple (``betas``)."""
    return {k: tuple(v) if isinstance(group.get(k), tuple) else v for k, v in saved.items() if k != "params"}


def _structure(value: Any) -> Any:
    return bool(value) if isinstance(value, (int, float)) else value
