"""mpi4py's ``MPI`` module, or an ImportError that says how to install it (``tg-core[distributed]``).

Importing it starts MPI in this process (alone, a world of one, when not launched by ``mpiexec``).
"""

from __future__ import annotations

try:
    from mpi4py import MPI
except ImportError as exc:  # pragma: no cover - the tests of this path run without mpi4py in a subprocess
    raise ImportError(f"tg.distributed needs mpi4py and an MPI library ({exc}): pip install 'tg-core[distributed]' "
                      "(mpi4py with MPICH's wheel, mpiexec included), or mpi4py built against your cluster's "
                      "MPI") from exc

__all__ = ["MPI"]
