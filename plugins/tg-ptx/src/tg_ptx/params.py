"""The ``.entry``'s parameter list, in the order a launch passes the values, and how each one is read at entry.

First every buffer's address: ``.param .u64 data<i>`` in core's buffer order, read with ``ld.param.u64`` and made a
global address with ``cvta.to.global``.  Then every launch variable (``DEFINE_VAR``), in ``Program.variables`` order
(the micro-ops' order): ``.param .u32`` for an int32, ``.param .f32`` for a float32, named as the variable and read
once with ``ld.param``, so the kernel takes the 32 bits the launch packed, unconverted.  :func:`variable_values`
gives a runtime those values as numpy scalars of the parameters' types (never a Python float, which a binding
would pack as a 64-bit double).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
from tg.codegen.program import Program
from tg.support.dtype import DType

from tg_ptx.writer import ADDR, Writer, ptx_type

#: The ``.param`` type of a launch variable of each dtype (``.u32``: the launch packs an int32's 32 bits as they are).
VARIABLE_TYPES = {"int32": "u32", "float32": "f32"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUFFER_NAME = re.compile(r"data\d+")


class EntryParams:
    """The parameters one kernel declares, collected while its micro-ops are rendered."""

    def __init__(self) -> None:
        self.buffers: dict[int, str] = {}  # buffer index -> its declaration
        self.variables: list[str] = []  # declarations, in the order the DEFINE_VARs were rendered

    def buffer(self, w: Writer, index: int) -> str:
        """Declare buffer ``index``'s address and return the register holding it as a global address."""
        reg = w.reg(ADDR)
        self.buffers[index] = f".param .u64 data{index}"
        w.op(f"ld.param.u64 {reg}, [data{index}]")
        w.op(f"cvta.to.global.u64 {reg}, {reg}")
        return reg

    def variable(self, w: Writer, name: str, dtype: DType) -> str:
        """Declare launch variable ``name`` of ``dtype`` after those declared so far; return the register it is read
        into (int32 in an ``.s32`` register, float32 in an ``.f32`` one)."""
        if dtype.name not in VARIABLE_TYPES:
            raise NotImplementedError(f"tg-ptx: launch variable {name!r} of dtype {dtype.name}: only "
                                      f"{sorted(VARIABLE_TYPES)} are passed by value")
        # two parameters of one name would make the launch's values land in the wrong place: refuse what could clash
        declared = {d.rsplit(" ", 1)[1] for d in self.variables}
        if not _IDENTIFIER.fullmatch(name) or _BUFFER_NAME.fullmatch(name) or name in declared:
            raise NotImplementedError(f"tg-ptx: launch variable name {name!r} is not a fresh PTX identifier")
        kind = VARIABLE_TYPES[dtype.name]
        self.variables.append(f".param .{kind} {name}")
        reg = w.reg(ptx_type(dtype).reg)
        w.op(f"ld.param.{kind} {reg}, [{name}]")
        return reg

    def declarations(self) -> list[str]:
        """Every declaration in launch order: the buffers by index, then the variables."""
        return [self.buffers[i] for i in sorted(self.buffers)] + self.variables


def variable_values(program: Program, values: Mapping[str, int | float]) -> list[np.int32 | np.float32]:
    """``program``'s launch variables in parameter order, each as the numpy scalar of its dtype (``np.float32``: the
    float's 32 bits, -0.0, NaN, inf and subnormals included); ``values`` may hold more names than the kernel takes."""
    dtypes = program.variable_dtypes or ("int32",) * len(program.variables)  # a Program that names no dtypes: int32
    if len(dtypes) != len(program.variables):
        raise ValueError(f"tg-ptx: kernel {program.name} has {len(program.variables)} variables but "
                         f"{len(dtypes)} variable dtypes")
    unknown = sorted(set(dtypes) - set(VARIABLE_TYPES))
    if unknown:
        raise ValueError(f"tg-ptx: kernel {program.name} takes launch variables of dtype {unknown}; tg-ptx passes "
                         f"{sorted(VARIABLE_TYPES)}")
    return [_scalar(name, dtype, values[name]) for name, dtype in zip(program.variables, dtypes)]


def _scalar(name: str, dtype: str, value: int | float) -> np.int32 | np.float32:
    if dtype == "float32":
        with np.errstate(over="ignore"):
            single = np.float32(value)
        if np.isinf(single) and not math.isinf(value):  # never round a finite value to inf
            raise OverflowError(f"tg-ptx: float32 launch variable {name} given {value!r}, beyond float32")
        return single
    if not isinstance(value, (int, np.integer)):  # never truncate a float into an int32
        raise TypeError(f"tg-ptx: int32 launch variable {name} given {value!r}")
    return np.int32(value)  # an int beyond int32 raises OverflowError
