"""A corpus of real kernels for tg-rdna's tests: tensor programs covering every op and dtype the RDNA target
declares, scheduled and lowered for that target (its capabilities, core's rewrites) while the programs run on
core's numpy backend, so no emulator or GPU is needed to collect them.

:func:`capture` patches the engine's ``build_program`` for the duration: each kernel the scheduler makes is also
lowered for RDNA3 and handed to the emitter; :func:`programs` runs the tensor programs under it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
from tg import Tensor
from tg.codegen.lower import lower
from tg.codegen.program import LoweredKernel
from tg.codegen.rewrites import apply_capabilities, check_dtypes, check_rendered
from tg.engine import realize
from tg_rdna.emitter import RDNAEmitter


@contextmanager
def capture() -> Iterator[list[LoweredKernel]]:
    """Every kernel realized inside the block, lowered and fitted for the RDNA target (in order, unique)."""
    caps = RDNAEmitter.capabilities
    kernels: list[LoweredKernel] = []
    seen: set[str] = set()
    original = realize.build_program

    def build_program(kernel: Any, state: Any) -> Any:
        lowered = lower(kernel, caps)
        uops = apply_capabilities(lowered.uops, caps)
        check_dtypes(uops, caps, "rdna")
        check_rendered(uops, caps, "rdna")
        fitted = replace(lowered, uops=uops)
        key = repr(kernel_key(kernel))
        if key not in seen:
            seen.add(key)
            kernels.append(fitted)
        return original(kernel, state)

    realize.build_program = build_program
    try:
        yield kernels
    finally:
        realize.build_program = original


def kernel_key(kernel: Any) -> Any:
    return realize.kernel_key(kernel)


DTYPES = ("float32", "float16", "int32", "int64", "int8", "uint8", "bool")


def _arr(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype in ("float32", "float16"):
        return (rng.standard_normal(shape) * 3).astype(dtype)
    if dtype == "uint8":
        return rng.integers(0, 255, shape).astype(dtype)
    return rng.integers(-100, 100, shape).astype(dtype)


def _programs() -> list[tuple[str, Callable[[np.random.Generator], Any]]]:
    out: list[tuple[str, Callable[[np.random.Generator], Any]]] = []
    for dt in DTYPES:
        def elementwise(rng: np.random.Generator, dt: str = dt) -> Any:
            a, b = Tensor(_arr(rng, (37,), dt)), Tensor(_arr(rng, (37,), dt))
            res = [a + b, a * b, a.maximum(b), a < b, a == b, a != b, (a < b).where(a, b), a.sum(),
                   a.max(), (a.cast("float32") + 1).cast(dt)]
            if dt != "bool":
                res += [a - b, -a]
            if dt in ("int32", "int64", "int8", "uint8", "bool"):
                res += [a & b, a | b, a ^ b, ~a]
            if dt in ("int32", "int64", "int8", "uint8"):
                res += [a // (b + 1), a // b, a.abs(), a.sign()]
            if dt in ("float32", "float16"):
                res += [a / b, a.exp(), a.log(), a.sqrt(), a.sin(), a.cos(), a.exp2(), a.log2(), a.reciprocal(),
                        a.trunc(), a.floor(), a.pow(b), a.square(), a.relu(), a.sigmoid(), a.tanh()]
            for other in DTYPES:
                res.append(a.cast(other))
            return [r.numpy() for r in res]
        out.append((f"elementwise_{dt}", elementwise))

    def reductions(rng: np.random.Generator) -> Any:
        x = Tensor(_arr(rng, (9, 70), "float32"))
        big = Tensor(_arr(rng, (5000,), "float32"))
        return [x.sum(axis=1).numpy(), x.max(axis=0).numpy(), x.mean().numpy(), big.sum().numpy(),
                x.softmax(axis=1).numpy(), x.log_softmax(axis=-1).numpy(), big.max().numpy()]
    out.append(("reductions", reductions))

    def matmul(rng: np.random.Generator) -> Any:
        a, b = Tensor(_arr(rng, (33, 20), "float32")), Tensor(_arr(rng, (20, 17), "float32"))
        h = Tensor(_arr(rng, (16, 16), "float16"))
        return [(a @ b).numpy(), (h @ h).numpy(), (a @ b).relu().sum().numpy()]
    out.append(("matmul", matmul))

    def movement(rng: np.random.Generator) -> Any:
        x = Tensor(_arr(rng, (6, 8), "float32"))
        return [x.T.numpy(), x[1:4, ::2].numpy(), x.pad(((1, 1), (2, 0))).numpy(), x.reshape(4, 12).numpy(),
                x.flip(0).numpy(), x.cat(x, dim=0).numpy()]
    out.append(("movement", movement))

    def nn(rng: np.random.Generator) -> Any:
        x = Tensor(_arr(rng, (2, 3, 8, 8), "float32"))
        w = Tensor(_arr(rng, (4, 3, 3, 3), "float32"))
        return [x.conv2d(w, padding=1).numpy(), x.max_pool2d(2).numpy(), x.avg_pool2d(2).numpy(),
                x.layernorm().numpy()]
    out.append(("nn", nn))
    return out


PROGRAMS = _programs()


def programs() -> list[LoweredKernel]:
    """Every kernel of every corpus program (run on the numpy backend), lowered for RDNA3."""
    rng = np.random.default_rng(0)
    with capture() as kernels:
        for _, fn in PROGRAMS:
            fn(rng)
    return kernels
