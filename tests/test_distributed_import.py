"""``import tg`` never imports mpi4py; ``import tg.distributed`` without it says which extra to install."""

from __future__ import annotations

import subprocess
import sys

BLOCK_MPI4PY = "import sys; sys.modules['mpi4py'] = None\n"


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_tg_does_not_import_mpi4py() -> None:
    done = run("import sys, tg, tg.nn, tg.optim\nassert 'mpi4py' not in sys.modules, 'mpi4py imported'\n"
               "assert 'tg.distributed' not in sys.modules\nprint('ok')")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_tg_distributed_without_mpi4py_names_the_extra() -> None:
    done = run(BLOCK_MPI4PY + "import tg.distributed")
    assert done.returncode != 0
    assert "ImportError: tg.distributed needs mpi4py" in done.stderr, done.stderr
    assert "pip install 'tg-core[distributed]'" in done.stderr
