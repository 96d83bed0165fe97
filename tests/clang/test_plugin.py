"""tg-clang as a plugin: its entry points, a light import, its place in backend selection and `tg backends`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distribution

import tg
from tg.hooks import Ops


def test_entry_points_declare_the_backend_and_the_hookspec() -> None:
    eps = distribution("tg-clang").entry_points
    backends = {ep.name: ep.value for ep in eps if ep.group == "tg.backends"}
    specs = {ep.name: ep.value for ep in eps if ep.group == "tg.hookspec"}
    assert backends == {"clang": "tg_clang.plugin"}
    assert specs == {"clang": "tg.hooks:v2"}
    assert distribution("tg-clang").version == "0.1.0"


def test_importing_the_plugin_module_is_light() -> None:
    code = ("import sys, tg_clang.plugin; heavy = [m for m in ('tg_clang.emitter', 'tg_clang.runtime', "
            "'tg_clang.compiler', 'ctypes', 'tg.frontend.tensor') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_clang_is_listed_available_with_its_priority() -> None:
    env = {**os.environ, "TG_PLUGINS": "clang"}
    out = subprocess.run([sys.executable, "-m", "tg", "backends", "--check", "--json"], capture_output=True,
                         text=True, check=True, env=env, timeout=120)
    rows = {row["backend"]: row for row in json.loads(out.stdout)["backends"]}
    assert rows["clang"]["available"] and rows["clang"]["priority"] == 100
    assert rows["clang"]["distribution"] == "tg-clang"


def test_clang_is_chosen_by_default_over_numpy() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TG_BACKEND"} | {"TG_PLUGINS": "clang"}
    out = subprocess.run([sys.executable, "-c", "import tg; print(tg.default_backend_name())"], env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "clang"


def test_capabilities() -> None:
    caps = tg.backend_capabilities("clang")
    assert set(caps.dtypes) == {"bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"}
    assert Ops.MULACC in caps.renders and caps.group_size == 1 and caps.vector_width == 1
