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
