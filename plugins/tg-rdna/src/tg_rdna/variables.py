"""How a launch packs its variables (``Program.variables``) for a tg-rdna kernel: 4 bytes each, in order, after the
buffers' addresses (the layout :class:`tg_rdna.codeobject.KernelDescription` declares and the emitter reads with
``s_load_b32``): an int32 as ``<i``, a float32 as ``<f`` (its bits exactly: -0.0, NaN, inf, subnormals).

``struct`` refuses a float for an int32, an int beyond int32 and a float too large for a float32, so a value is
never converted silently.  Both runtimes use :func:`pack`: the emulator's kernarg segment holds its bytes, the
OpenCL runtime passes them as numpy scalars (:func:`scalars`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from tg.codegen.program import Program

#: The ``struct`` format of a launch variable of each dtype.
FORMATS = {"int32": "i", "float32": "f"}


def formats(program: Program) -> str:
    """The ``struct`` format of ``program``'s variables, in order (a Program that names no dtypes: int32 each)."""
    dtypes = program.variable_dtypes or ("int32",) * len(program.variables)
    if len(dtypes) != len(program.variables) or not set(dtypes) <= set(FORMATS):
        raise ValueError(f"tg-rdna: kernel {program.name} takes variables {program.variables} of dtypes {dtypes}; "
                         f"tg-rdna passes {sorted(FORMATS)}")
    return "".join(FORMATS[d] for d in dtypes)


def pack(program: Program, values: Mapping[str, int | float]) -> bytes:
    """``program``'s variables, little-endian, 4 bytes each in order (``values`` may hold more names)."""
    return struct.pack("<" + formats(program), *(values[v] for v in program.variables))


def scalars(program: Program, values: Mapping[str, int | float]) -> list[Any]:
    """The packed variables as numpy scalars (``np.int32``, ``np.float32``) read back from :func:`pack`'s bytes."""
    import numpy as np

    data = pack(program, values)
    return [np.frombuffer(data, "<i4" if f == "i" else "<f4", 1, 4 * k)[0] for k, f in enumerate(formats(program))]
