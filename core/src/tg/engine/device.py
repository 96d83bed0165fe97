"""Device buffers and compiled kernels on a backend: allocation, copies, compile cache, launch.

This is the only module that talks to a :class:`~tg.backends.contract.Runtime`.  A :class:`Buffer` frees its
device memory when nothing refers to it any more.  Compiled programs are cached per backend by source
text, at most ``TG_KERNELS_MAX`` of them (the least recently used go first; a runtime unloads a binary when the
last reference to it goes, so one a jitted function still holds stays loaded); observers registered through the
hook spec hear of every compile and launch.
"""

from __future__ import annotations

import atexit
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import numpy as np

from tg.backends.contract import Backend, Capabilities, KernelCompiled, KernelLaunched
from tg.backends.discovery import PluginRegistry, registry
from tg.backends.selection import parse_backend_list, resolve, select
from tg.codegen.program import Program
from tg.schedule import cache as schedule_cache
from tg.support.dtype import DType
from tg.support.errors import BackendError
from tg.support.helpers import debug_level, getenv

#: ids of the buffers alive (a set of ints: a WeakSet's weak reference and callback per buffer cost ~2 us a launch)
_live_buffers: set[int] = set()


class Buffer:
    """``size`` elements of ``dtype`` in a backend's memory."""

    def __init__(self, backend: Backend, size: int, dtype: DType):
        self.backend, self.size, self.dtype = backend, size, dtype
        self.nbytes = size * dtype.itemsize
        self.handle = backend.runtime.alloc(max(self.nbytes, 8))  # a 0-size buffer still views as its dtype
        _live_buffers.add(id(self))

    def __del__(self) -> None:
        handle = getattr(self, "handle", None)
        if handle is not None:
            _live_buffers.discard(id(self))
            try:
                self.backend.runtime.free(handle)
            except Exception:  # noqa: S110 - interpreter shutdown may have torn the runtime down
                pass

    def copyin(self, array: np.ndarray) -> Buffer:
        data = np.ascontiguousarray(array, dtype=self.dtype.np).reshape(-1)
        assert data.size == self.size, f"copyin of {data.size} elements into a buffer of {self.size}"
        if self.nbytes:
            self.backend.runtime.copyin(self.handle, _bytes_of(data))
        return self

    def numpy(self) -> np.ndarray:
        out = np.empty(self.size, dtype=self.dtype.np)
        if self.nbytes:
            self.backend.runtime.copyout(_bytes_of(out), self.handle)
        return out

    def __repr__(self) -> str:
        return f"<Buffer {self.backend.name} {self.size} x {self.dtype.name}>"


def _bytes_of(array: np.ndarray) -> memoryview:
    return memoryview(array.data).cast("B")


def live_buffer_count() -> int:
    """How many device buffers exist right now (for leak tests)."""
    return len(_live_buffers)


#: The launch values of a kernel without variables (shared, read-only).
EMPTY: Mapping[str, int | float] = MappingProxyType({})

@dataclass(frozen=True)
class ReadyKernel:
    """A kernel ready to launch: the emitter's program, the runtime's binary of it, and figures for TG_DEBUG.

    A kernel built for every outermost size (:mod:`tg.engine.symbolic`) is stored with its ``bound`` (the largest
    size it runs), and at each size it ran as a kernel of its own whose launch is resolved and whose ``values`` (the
    size, ``n0``) go with every launch; ``verify``: TG_SYMBOLIC=verify was on when it was made; ``dynamic``: it is a
    kernel built for every value of a size (:mod:`tg.engine.dynamic`) at one size."""

    program: Program
    binary: Any
    shape: tuple[int, ...] = ()
    bytes_moved: int = 0
    values: Mapping[str, int | float] = field(default_factory=lambda: EMPTY)
    bound: int = 0
    verify: bool = False
    dynamic: bool = False

    def at(self, kernel_shape: tuple[int, ...], bytes_moved: int, values: Mapping[str, int | float], verify: bool,
           dynamic: bool = False) -> ReadyKernel:
        """This kernel for every size, at the size of launch variables ``values`` (its launch resolved)."""
        return ReadyKernel(self.program.resolved(values), self.binary, kernel_shape, bytes_moved, values=values,
                           verify=verify, dynamic=dynamic)


K = TypeVar("K")
V = TypeVar("V")

#: Compiled kernels a backend keeps by default (TG_KERNELS_MAX).
DEFAULT_KERNELS_MAX = 2048


def kernels_max() -> int:
    bound = getenv("TG_KERNELS_MAX", DEFAULT_KERNELS_MAX)
    if bound < 1:
        raise ValueError(f"TG_KERNELS_MAX={bound} must be a positive number of kernels (default {DEFAULT_KERNELS_MAX})")
    return bound


class Recent(Generic[K, V]):
    """A mapping that keeps its ``bound`` most recently used entries (thread-safe)."""

    def __init__(self, bound: int):
        self.bound = bound
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.bound:
                self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[K, V]]:
        """The entries, least recently used first (a copy)."""
        with self._lock:
            return list(self._items.items())

    def values(self) -> list[V]:
        with self._lock:
            return list(self._items.values())


class DeviceState:
    """Per-backend compile cache and statistics."""

    def __init__(self, backend: Backend, reg: PluginRegistry):
        self.backend, self.registry = backend, reg
        bound = kernels_max()
        self.binaries: Recent[tuple[str, str], Any] = Recent(bound)  # (entry name, source) -> the runtime's binary
        self.kernels: Recent[tuple[object, ...], ReadyKernel] = Recent(bound)  # kernel structure -> ready kernel
        #: symbolic keys the backend builds for exact sizes only (bounded: a forgotten one is refused again, no more)
        self.not_symbolic: Recent[tuple[object, ...], bool] = Recent(bound)
        self.symbolic_sizes: Recent[tuple[object, ...], int] = Recent(bound)  # symbolic key -> the first size seen
        self.exact_kernels: Recent[tuple[object, ...], ReadyKernel] = Recent(bound)  # TG_SYMBOLIC=verify's references
        self.symbolic_launch = bool(backend.runtime.symbolic_launch) and "int32" in self.capabilities.variables
        #: kernels built for every value of a size anywhere (tg.engine.dynamic), by lowered structure
        self.dynamic_shapes = self.symbolic_launch and bool(backend.runtime.dynamic_shapes)
        self.families: Recent[tuple[object, ...], Any] = Recent(bound)
        self.outlines: Recent[tuple[object, ...], Any] = Recent(bound)  # kernels' outlines met (tg.engine.dynamic)
        self.dynamic_launches: Recent[int, int] = Recent(bound)  # id of a ReadyKernel at one size -> its launches
        self.kernel_count = 0
        self.kernel_seconds = 0.0
        passes = reg.manager.hook.tg_lowering_passes(target=backend.emitter.target,
                                                     capabilities=backend.emitter.capabilities)
        self.plugin_passes = [p for result in passes if result for p in result]

    @property
    def capabilities(self) -> Capabilities:
        """The emitter's capabilities, with launch variables only of the dtypes the runtime also passes."""
        caps = self.backend.emitter.capabilities
        usable = caps.variables & self.backend.runtime.variable_dtypes
        return caps if usable == caps.variables else replace(caps, variables=usable)

    @property
    def scalar_params(self) -> bool:
        """Whether the backend takes a kernel's Python floats as float32 launch variables (else they are constants)."""
        return "float32" in self.backend.emitter.capabilities.variables and \
            "float32" in self.backend.runtime.variable_dtypes

    def compile(self, program: Program) -> Any:
        """The runtime's binary of ``program`` (compiled once per process for each source text)."""
        key = (program.name, program.source)
        binary = self.binaries.get(key)
        cached = binary is not None
        start = time.perf_counter()
        if binary is None:
            binary = self.backend.runtime.compile(program)
            self.binaries[key] = binary
        elapsed = time.perf_counter() - start
        observers = _observers(self.registry, "tg_kernel_compiled")
        if observers is not None:
            _notify(observers, "tg_kernel_compiled", KernelCompiled(self.backend.name, program, elapsed, cached))
        return binary

    def compile_many(self, programs: Sequence[Program]) -> list[Any]:
        """:meth:`compile` of each of ``programs``; the ones not compiled in this process yet go to the runtime in one
        ``Runtime.compile_many`` call (each reported to observers with an equal share of its time)."""
        keys = [(p.name, p.source) for p in programs]
        found = {k: b for k in keys if (b := self.binaries.get(k)) is not None}
        todo = {k: p for k, p in zip(keys, programs) if k not in found}
        start = time.perf_counter()
        if todo:
            made = self.backend.runtime.compile_many(list(todo.values()))
            if len(made) != len(todo):
                raise BackendError(f"backend {self.backend.name!r}: its Runtime.compile_many returned {len(made)} "
                                   f"binaries for {len(todo)} programs (one per program, in order): a plugin bug")
            for k, binary in zip(todo, made):
                found[k] = self.binaries[k] = binary
        share = (time.perf_counter() - start) / max(len(todo), 1)
        observers = _observers(self.registry, "tg_kernel_compiled")
        if observers is not None:
            reported: set[tuple[str, str]] = set()
            for k, p in zip(keys, programs):
                new = k in todo and k not in reported  # (a program listed twice is compiled once, as by compile)
                reported.add(k)
                _notify(observers, "tg_kernel_compiled", KernelCompiled(self.backend.name, p, share if new else 0.0,
                                                                        not new))
        return [found[k] for k in keys]

    def launch(self, kernel: ReadyKernel, buffers: list[Buffer], values: Mapping[str, int | float] = EMPTY,
               debug: int | None = None) -> None:
        """Run ``kernel`` over ``buffers`` (the output first, then the inputs: the program's buffer order) with the
        launch variables ``values`` by name; ``debug`` is the TG_DEBUG level when the caller has read it already."""
        prog, bytes_moved = kernel.program, kernel.bytes_moved
        if 0 in prog.global_size or 0 in prog.local_size:  # an empty tensor: no work (and CUDA refuses the launch)
            return
        start = time.perf_counter()
        measured = self.backend.runtime.launch(prog, kernel.binary, [b.handle for b in buffers], values)
        seconds = measured if measured is not None else time.perf_counter() - start
        self.kernel_count += 1
        self.kernel_seconds += seconds
        if (debug_level() if debug is None else debug) >= 2:
            print(f"*** {self.backend.name:<10} {self.kernel_count:4d} {prog.name:<32} shape {str(kernel.shape):<16} "
                  f"global {prog.global_size} local {prog.local_size}  {seconds * 1e6:9.1f} us  "
                  f"{bytes_moved / 1e6:8.3f} MB  {bytes_moved / max(seconds, 1e-9) / 1e9:7.2f} GB/s")
        observers = _observers(self.registry, "tg_kernel_launched")
        if observers is not None:  # no event is made when nobody listens (most launches of a training step)
            _notify(observers, "tg_kernel_launched", KernelLaunched(self.backend.name, prog, measured, bytes_moved))


def _observers(reg: PluginRegistry, hook: str) -> Any:
    """The caller of observer hook ``hook``, or None when no plugin implements it."""
    caller = getattr(reg.manager.hook, hook)
    return caller if caller.get_hookimpls() else None


def _notify(caller: Any, hook: str, event: Any) -> None:
    try:
        caller(event=event)
    except Exception as exc:  # an observer must never break a computation
        warnings.warn(f"tg: an observer of {hook} raised {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=3)


_states: dict[str, DeviceState] = {}
_default: str | None = None
_first_use = threading.RLock()  # threads that first use a backend at once get one state (and one choice) for it


def device_state(name: str | None = None) -> DeviceState:
    """The state of backend ``name`` (default: TG_BACKEND's choice), resolving it on first use."""
    state = _states.get(name) if name is not None else None  # a key of _states is a canonical name already
    if state is not None:
        return state
    name = canonical_name(name)
    state = _states.get(name)
    if state is not None:
        return state
    with _first_use:
        if name not in _states:
            reg = registry()
            target, runtime = parse_backend_list(name)[0]
            if not _states:
                atexit.register(_print_totals)
            _states[name] = DeviceState(resolve(target, runtime, reg), reg)
        return _states[name]


def _print_totals() -> None:
    """TG_DEBUG>=1: how many kernels ran, and for how long, on each backend."""
    if debug_level() >= 1:
        for name, state in _states.items():
            print(f"tg: {name}: {state.kernel_count} kernels, {state.kernel_seconds * 1e3:.2f} ms")


#: PyTorch's device names, so that a port's ``.to("cuda")`` or ``device="cpu"`` works: the tg backends each means
#: (the first of the list that runs here).
TORCH_DEVICES = {"cpu": "clang,numpy", "cuda": "ptx"}
_torch_resolved: dict[str, str] = {}


def _torch_device(name: str) -> str | None:
    """The tg backend PyTorch's device ``name`` (``cpu``, ``cuda``, ``cuda:0``) means here; None for other names."""
    base, colon, index = name.partition(":")
    if base not in TORCH_DEVICES:
        return None
    if colon and (base == "cpu" or index != "0"):
        raise BackendError(f"device {name!r}: tg drives one GPU per process, which is 'cuda' (or 'cuda:0'). Fix: "
                           "choose the GPU with CUDA_VISIBLE_DEVICES (tg.distributed gives each rank its local one)"
                           if base == "cuda" else f"device {name!r}: the CPU has no index; use 'cpu'")
    if base not in _torch_resolved:
        _torch_resolved[base] = select(TORCH_DEVICES[base]).name
    return _torch_resolved[base]


def canonical_name(name: str | None) -> str:
    """The backend name a ``device=`` argument means: None is the default backend; PyTorch's ``cpu`` is clang where
    it runs, else numpy, and ``cuda`` is ptx (see :data:`TORCH_DEVICES`)."""
    global _default
    if name is None:
        if _default is None:
            with _first_use:
                if _default is None:
                    _default = select(getenv("TG_BACKEND", "")).name
        return _default
    if isinstance(name, str) and (torch := _torch_device(name.strip())) is not None:
        return torch
    if not isinstance(name, str) or "," in name:
        raise BackendError(f"device must be one backend name such as 'numpy' or 'ptx:emu', not {name!r}")
    items = parse_backend_list(name)
    if len(items) != 1:
        raise BackendError(f"device must be one backend name such as 'numpy' or 'ptx:emu', not {name!r}")
    target, runtime = items[0]
    return target if runtime is None or runtime == target else f"{target}:{runtime}"


def reset_devices() -> None:
    """Forget the chosen default and every backend's state (for tests that change TG_BACKEND)."""
    global _default
    with _first_use:
        _default = None
        _states.clear()
        _torch_resolved.clear()
    schedule_cache.clear()  # schedules made under the old backends' capabilities (row fusion) are not reused
