"""What an emitter receives and what it returns: a lowered kernel in, a :class:`Program` out.

A :class:`LoweredKernel` is core's micro-op list for one kernel with the launch core planned for it.  A
:class:`Program` is everything a runtime needs to compile and launch that kernel — the source text, the entry's
name, its buffer parameters in launch order with their dtypes, the launch dims, the symbolic variables, and any
attributes the emitter wants its own runtime to have — so that no runtime ever parses source text to learn
how to launch it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tg.codegen.uops import Ops, PtrDType, UOp
from tg.support.dtype import DType


@dataclass(frozen=True)
class KernelParam:
    """One buffer parameter of a kernel.

    ``index`` is its place in a launch's buffer list (0 is the output, then the inputs in order), ``name`` its
    name in the source (the ``DEFINE_GLOBAL``'s), ``dtype`` its element type, ``writable`` whether the kernel
    stores into it (only the output today).
    """

    index: int
    name: str
    dtype: DType
    writable: bool


@dataclass(frozen=True)
class SymbolicSize:
    """A launch dimension that follows the int32 launch variable ``var``: ``ceil(var * scale / divisor) * blocks``
    work groups (a kernel lowered once for every size of its outermost dimension, see :mod:`tg.engine.symbolic`).
    A kernel lowered for every size of a dimension anywhere (:mod:`tg.engine.dynamic`, only for a runtime that
    declares ``dynamic_shapes``) may follow a quadratic: ``var * var * square + var * scale + offset`` in place of
    ``var * scale``."""

    var: str
    scale: int = 1
    divisor: int = 1
    blocks: int = 1
    square: int = 0
    offset: int = 0

    def of(self, value: int) -> int:
        return -(-((self.square * value + self.scale) * value + self.offset) // self.divisor) * self.blocks


LaunchVars = tuple[tuple[int, SymbolicSize], ...]


@dataclass(frozen=True)
class LoweredKernel:
    """One kernel as core lowered it: ``uops`` (see :mod:`tg.codegen.uops`) and the launch core planned.

    ``global_size`` counts work groups and ``local_size`` threads per group, per launch dimension (the
    ``SPECIAL`` micro-ops ``gidx<d>``/``lidx<d>`` index them).  ``bytes_moved`` is what the kernel reads and
    writes at least, for bandwidth figures.  ``launch_vars`` (launch dimension, :class:`SymbolicSize`) pairs say
    which launch dims follow a launch variable: ``global_size`` then holds them at the variable's upper bound, and
    core resolves them before each launch.  ``dynamic``: the kernel was built for every value of a size that may
    appear anywhere in it (:mod:`tg.engine.dynamic`, only for a runtime that declares ``dynamic_shapes``): ``n0``
    may be a factor of any int32 value, a ``RANGE``'s end included, and the launch is one-dimensional unless the
    target has work groups.
    """

    name: str
    uops: list[UOp]
    global_size: tuple[int, ...]
    local_size: tuple[int, ...]
    bytes_moved: int = 0
    launch_vars: LaunchVars = ()
    dynamic: bool = False

    @property
    def buffers(self) -> tuple[KernelParam, ...]:
        """The kernel's buffer parameters in launch order."""
        return buffer_params(self.uops)


def buffer_params(uops: list[UOp]) -> tuple[KernelParam, ...]:
    """The ``DEFINE_GLOBAL`` micro-ops of ``uops`` as parameters, in launch order (by index)."""
    params = {}
    for u in uops:
        if u.op is Ops.DEFINE_GLOBAL:
            assert isinstance(u.dtype, PtrDType)
            index, name, writable = u.arg
            params[index] = KernelParam(index, name, u.dtype.base, writable)
    return tuple(params[i] for i in sorted(params))


def variable_params(uops: list[UOp]) -> list[UOp]:
    """The ``DEFINE_VAR`` micro-ops of ``uops``: the scalar parameters after the buffers, in order."""
    return [u for u in uops if u.op is Ops.DEFINE_VAR]


def _dtype_name(u: UOp) -> str:
    assert u.dtype is not None
    return u.dtype.name


@dataclass(frozen=True)
class Program:
    """A kernel an emitter rendered: what its runtime compiles and launches.

    - ``name``: the entry point's name in ``source`` (the symbol a runtime looks up);
    - ``source``: the text (C, PTX, assembly...), in the emitter's ``language``;
    - ``buffers``: the buffer parameters in launch order — a launch passes exactly these buffers, in this order;
    - ``variables``: names of the scalar parameters that follow the buffers (``DEFINE_VAR``), in order; a launch
      gives their values by name.  ``variable_dtypes`` holds each one's dtype (``"int32"`` or ``"float32"``);
    - ``global_size`` / ``local_size``: the launch dims: how many work groups, and threads per group, per
      dimension (an emitter may choose its own decomposition, e.g. tg-clang's work units);
    - ``attributes``: whatever else the emitter tells its runtime (a cost estimate, a strategy...).  Core
      never reads it;
    - ``launch_vars``: (launch dimension, :class:`SymbolicSize`) pairs: the dims of ``global_size`` that follow an
      int32 launch variable (there ``global_size`` holds their upper bound).  Core resolves them with
      :meth:`resolved` before each launch, so a runtime only ever sees concrete sizes.
    """

    name: str
    source: str
    buffers: tuple[KernelParam, ...]
    global_size: tuple[int, ...]
    local_size: tuple[int, ...]
    variables: tuple[str, ...] = ()
    variable_dtypes: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    launch_vars: LaunchVars = ()

    @classmethod
    def of(cls, kernel: LoweredKernel, source: str, name: str | None = None, **attributes: Any) -> Program:
        """The program rendering ``kernel`` as ``source`` with core's launch (the usual case)."""
        variables = variable_params(kernel.uops)
        return cls(name or kernel.name, source, kernel.buffers, kernel.global_size, kernel.local_size,
                   tuple(v.arg[0] for v in variables), tuple(_dtype_name(v) for v in variables),
                   attributes=attributes, launch_vars=kernel.launch_vars)

    def launched_as(self, global_size: tuple[int, ...], local_size: tuple[int, ...] = (1,),
                    launch_vars: LaunchVars = ()) -> Program:
        """This program with other launch dims (an emitter that decomposes the work its own way).  ``launch_vars``
        says which of the new dims follow a launch variable; without them the launch is fixed, and core does not
        reuse the program for other sizes."""
        return replace(self, global_size=global_size, local_size=local_size, launch_vars=launch_vars)

    def resolved(self, values: Mapping[str, int | float]) -> Program:
        """This program with the launch dims of ``launch_vars`` computed from the launch variables ``values``."""
        sizes = list(self.global_size)
        for axis, size in self.launch_vars:
            sizes[axis] = size.of(int(values[size.var]))
        return replace(self, global_size=tuple(sizes), launch_vars=())
