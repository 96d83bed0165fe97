"""The set of loaded kernels is bounded (TG_KERNELS_MAX): tg-clang unmaps a kernel's shared object once core has let
it go and nothing else holds it, and a kernel a jitted function still holds keeps running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_PROGRAM = """
import gc, json, os, sys
import numpy as np
import tg
from tg import Tensor
from tg.engine.device import device_state

def mapped_kernels():  # shared objects mapped from this run's kernel cache (not numpy's or the venv's)
    folder = os.path.realpath(os.path.join(os.environ["TG_CACHE_DIR"], "clang")) + os.sep
    with open("/proc/self/maps") as f:
        return len({line.split()[-1] for line in f if line.split()[-1].startswith(folder)})

x = np.arange(12, dtype=np.float32).reshape(3, 4)
f = tg.jit(lambda a: (a * 3 + 1).sum(axis=1))
want = (x * 3 + 1).sum(axis=1)
for _ in range(3):  # traced, then replayed
    got = f(Tensor(x)).numpy()
ok = [bool(np.array_equal(got, want))]
for n in range(1, 41):  # 40 kernels of different shapes push the jitted function's kernels out of core's cache
    v = np.arange(n, dtype=np.float32)
    ok.append(bool(np.array_equal((Tensor(v) * n + 0.5).numpy(), v * n + 0.5)))
gc.collect()
ok.append(bool(np.array_equal(f(Tensor(x)).numpy(), want)))  # replays the kernels it holds
state = device_state()
print(json.dumps({"ok": ok, "kernels": len(state.kernels), "binaries": len(state.binaries),
                  "mapped": mapped_kernels()}))
"""


def _run(tmp: Path, bound: str | None) -> dict[str, object]:
    import json

    env = {**os.environ, "TG_BACKEND": "clang", "TG_PLUGINS": "clang", "TG_CACHE_DIR": str(tmp)}
    env.pop("TG_KERNELS_MAX", None)
    if bound is not None:
        env["TG_KERNELS_MAX"] = bound
    out = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_loaded_kernels_stay_under_the_bound_and_jitted_ones_keep_running(tmp_path: Path) -> None:
    bounded = _run(tmp_path, "4")
    assert all(bounded["ok"])  # type: ignore[arg-type]
    assert bounded["kernels"] == 4 and bounded["binaries"] == 4
    # core's four, the jitted function's own, and a few a collection has not reached: far fewer than 40
    assert bounded["mapped"] <= 12, bounded  # type: ignore[operator]
    unbounded = _run(tmp_path, None)  # the default bound (2048) keeps every one of them loaded
    assert all(unbounded["ok"]) and unbounded["mapped"] >= 40, unbounded  # type: ignore[arg-type,operator]
