"""The module-level API a PyTorch user reaches for: ``tg.zeros``, ``tg.cat``, ``tg.manual_seed``, ``tg.nn``..., and
``import tg`` staying cheap while offering them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tg


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.strip()


def test_import_tg_loads_neither_tensors_nor_submodules() -> None:
    heavy = ("numpy", "tg.frontend.tensor", "tg.frontend.api", "tg.nn", "tg.optim", "tg.checkpoint", "tg.utils")
    code = f"import sys, tg; print([m for m in {heavy!r} if m in sys.modules])"
    assert _run(code) == "[]"


def test_submodules_are_reachable_after_a_bare_import_tg() -> None:
    code = ("import tg; print(tg.nn.Linear.__name__, tg.optim.SGD.__name__, tg.checkpoint.__name__, "
            "tg.nn.functional.__name__, tg.utils.data.DataLoader.__name__)")
    assert _run(code) == "Linear SGD tg.checkpoint tg.nn.functional DataLoader"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'no_such_function'"):
        tg.no_such_function  # noqa: B018 - the access is the test


def test_every_name_in_all_resolves() -> None:
    for name in tg.__all__:
        assert getattr(tg, name) is not None, name


def test_creation_functions() -> None:
    assert tg.zeros(2, 3).shape == (2, 3) and tg.zeros((2, 3)).numpy().sum() == 0
    assert tg.ones([4]).numpy().tolist() == [1.0] * 4
    t = tg.full((2, 2), 7, dtype="int32")
    assert t.dtype.name == "int32" and t.numpy().tolist() == [[7, 7], [7, 7]]
    assert tg.empty(3, 1).shape == (3, 1)
    assert tg.arange(5).numpy().tolist() == [0, 1, 2, 3, 4]
    assert tg.arange(1, 2, 0.25).numpy().tolist() == [1.0, 1.25, 1.5, 1.75]
    x = tg.tensor([[1.0, 2.0]], requires_grad=True)
    assert x.requires_grad and x.shape == (1, 2)
    assert tg.tensor([1, 2]).dtype.name == "int32" and tg.tensor([1, 2], dtype="float32").dtype.name == "float32"
    assert not tg.tensor([1.0]).requires_grad


def test_like_functions_keep_shape_dtype_and_device() -> None:
    base = tg.tensor([[1, 2, 3]], dtype="int32")
    for t, value in ((tg.zeros_like(base), 0), (tg.ones_like(base), 1), (tg.full_like(base, 5), 5)):
        assert t.shape == (1, 3) and t.dtype.name == "int32" and t.device == base.device
        assert t.numpy().tolist() == [[value] * 3]
    assert tg.zeros_like(base, dtype="float32").dtype.name == "float32"
    assert tg.ones_like(base, requires_grad=True).requires_grad


def test_from_numpy_keeps_dtype_and_copies() -> None:
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    t = tg.from_numpy(a)
    assert t.dtype.name == "int64" and t.shape == (2, 3)
    a[0, 0] = 99  # tg does not share memory with the array (documented)
    assert t.numpy()[0, 0] == 0
    with pytest.raises(TypeError, match="tg.tensor"):
        tg.from_numpy([1, 2])  # type: ignore[arg-type]


def test_random_functions_and_manual_seed() -> None:
    tg.manual_seed(5)
    first = (tg.rand(3).numpy(), tg.randn(2, 2).numpy(), tg.randint(0, 10, (4,)).numpy())
    tg.manual_seed(5)
    second = (tg.rand(3).numpy(), tg.randn(2, 2).numpy(), tg.randint(0, 10, (4,)).numpy())
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert tg.randint(3, (5,)).numpy().max() < 3
    assert tg.rand(2, requires_grad=True).requires_grad


def test_cat_stack_where() -> None:
    a, b = tg.tensor([[1.0, 2.0]]), tg.tensor([[3.0, 4.0]])
    assert tg.cat([a, b]).numpy().tolist() == [[1, 2], [3, 4]]
    assert tg.cat((a, b), dim=1).numpy().tolist() == [[1, 2, 3, 4]]
    assert tg.stack([a, b], dim=1).shape == (1, 2, 2)
    with pytest.raises(TypeError, match=r"tg.cat\(\[a, b\]"):
        tg.cat(a)  # type: ignore[arg-type]
    cond = tg.tensor([True, False])
    assert tg.where(cond, tg.tensor([1.0, 2.0]), 0.0).numpy().tolist() == [1.0, 0.0]
    assert tg.where(cond, 1, 2).numpy().tolist() == [1, 2]
    with pytest.raises(TypeError, match="where\\(condition, input, other\\)"):
        tg.where(cond)


def test_no_grad_at_module_level() -> None:
    x = tg.tensor([1.0], requires_grad=True)
    with tg.no_grad():
        y = x * 2
    assert y._ctx is None


_DEVICES = """
import json, tg
from tg import Tensor
out = {"cpu": Tensor([1.0]).to("cpu").device, "cpu_arg": tg.zeros(2, device="cpu").device,
       "cuda_available": tg.cuda.is_available(), "count": tg.cuda.device_count()}
for name in ("cuda", "cuda:1", "cpu:0"):
    try:
        Tensor([1.0]).to(name)
        out[name] = "ok"
    except tg.BackendError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def _devices(plugins: str) -> dict[str, object]:
    import json
    import os

    env = {**os.environ, "TG_PLUGINS": plugins}
    env.pop("TG_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", _DEVICES], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_pytorch_device_names_map_to_backends() -> None:
    """``.to("cpu")`` is clang where it runs, else numpy; ``"cuda"`` is ptx, which names what is missing here."""
    alone = _devices("")  # only the built-in numpy backend
    assert alone["cpu"] == alone["cpu_arg"] == "numpy"
    assert alone["cuda_available"] is False and alone["count"] == 0
    assert "backend 'ptx'" in str(alone["cuda"])  # named, with why it cannot run (not installed or not allowed)
    assert "one GPU per process" in str(alone["cuda:1"]) and "CUDA_VISIBLE_DEVICES" in str(alone["cuda:1"])
    assert "the CPU has no index" in str(alone["cpu:0"])
    import shutil

    if shutil.which("clang") is not None:
        try:
            import tg_clang  # noqa: F401
        except ImportError:
            return
        assert _devices("clang")["cpu"] == "clang"


def test_tensors_that_were_used_still_pickle() -> None:
    """An inner tensor remembers (weakly) the Functions that used it, for in-place updates; pickling skips that."""
    import pickle

    w = tg.tensor([1.0, 2.0], requires_grad=True)
    h = w * 2
    y = h * 3
    back = pickle.loads(pickle.dumps(h))
    assert back.numpy().tolist() == [2.0, 4.0] and back._uses is None
    assert h._uses and y.numpy().tolist() == [6.0, 12.0]
