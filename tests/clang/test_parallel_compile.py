"""A schedule's new kernels compile in parallel (TG_EXEC_JOBS at a time), with the same results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_PROGRAM = """
import json, threading, time
import numpy as np
from tg import Tensor
from tg_clang import compiler

active, most, lock = 0, 0, threading.Lock()
original = compiler.KernelCache._build  # one kernel's compile and link

def tracked(*args, **kwargs):
    global active, most
    with lock:
        active += 1
        most = max(most, active)
    try:
        return original(*args, **kwargs)
    finally:
        with lock:
            active -= 1

compiler.KernelCache._build = tracked
x = np.arange(12, dtype=np.float32).reshape(3, 4)
t = Tensor(x)
outs = [(t * 2 + 1).sum(axis=0), (t - 3).exp().max(axis=1), (t @ t.T).relu(), (t.T * t.T).mean()]
got = [o.numpy() for o in outs]
want = [(x * 2 + 1).sum(axis=0), np.exp(x - 3).max(axis=1), np.maximum(x @ x.T, 0), (x.T * x.T).mean()]
ok = all(np.allclose(g, w, rtol=1e-5) for g, w in zip(got, want))
print(json.dumps({"ok": ok, "most": most}))
"""


def _run(tmp: Path, jobs: str) -> dict[str, object]:
    env = {**os.environ, "TG_BACKEND": "clang", "TG_PLUGINS": "clang", "TG_CACHE_DIR": str(tmp / jobs),
           "TG_EXEC_JOBS": jobs}
    out = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_new_kernels_of_a_schedule_compile_together(tmp_path: Path) -> None:
    # each read realizes a schedule of several new kernels (a reduction, a matmul, a mean): they compile together
    two = _run(tmp_path, "2")
    assert two["ok"] and two["most"] == 2, two
    one = _run(tmp_path, "1")
    assert one["ok"] and one["most"] == 1, one


_EMPTY_AHEAD = """
import json
import numpy as np
from tg import Tensor
from tg.engine.realize import realize
from tg_clang import compiler

built = []
original = compiler.KernelCache._build
compiler.KernelCache._build = lambda self, source, *a, **k: built.append(source) or original(self, source, *a, **k)
a = Tensor(np.arange(28, dtype=np.float32).reshape(7, 4)).realize()
b = Tensor(np.zeros((0, 4), np.float32)).realize()
x = (a.exp() + 1).sum(-1)  # first in the schedule: its compile takes the kernels after it along
y = (a.unsqueeze(1) * b.unsqueeze(0)).sum(-1)  # (7, 0): nothing to compute
realize([x.lazydata, y.lazydata])
print(json.dumps({"built": len(built), "shape": list(y.numpy().shape)}))
"""


def test_an_empty_kernel_is_not_compiled_along_with_the_one_before(tmp_path: Path) -> None:
    env = {**os.environ, "TG_BACKEND": "clang", "TG_PLUGINS": "clang", "TG_CACHE_DIR": str(tmp_path),
           "TG_EXEC_JOBS": "2"}
    out = subprocess.run([sys.executable, "-c", _EMPTY_AHEAD], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"built": 1, "shape": [7, 0]}
