"""exp2, log2 and sin give the same bits wherever an element is computed: in a full gang of SIMD lanes, in a
narrower gang, or in scalar code (a thread of the scalar renderer).  With libmvec, all of them call its vector
functions (scalar code through a one-lane helper); without it, all call libm.  Kernels for every size
(tg_clang.dynamic) rely on it: they are rendered one thread at a time and must give the exact kernels' bits."""

from __future__ import annotations

import numpy as np
import pytest
from tg.backends.contract import Capabilities
from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.uops import Ops
from tg.support.dtype import DType, dtypes

OPS = {"exp2": Ops.EXP2, "log2": Ops.LOG2, "sin": Ops.SIN}
BITS = {"float32": np.uint32, "float64": np.uint64}


def _inputs(op: str, dtype: str) -> np.ndarray:
    """Random values over many magnitudes of both signs, and each function's special and threshold inputs, in an
    order that puts special inputs beside ordinary ones in a gang."""
    ftype = np.dtype(dtype).type
    info = np.finfo(ftype)
    rng = np.random.default_rng(len(op) * 7 + len(dtype))
    mags = rng.uniform(-1, 1, 6000) * 10.0 ** rng.uniform(-40 if dtype == "float32" else -300, 8, 6000)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, float(info.tiny), float(info.smallest_subnormal),
                float(-info.smallest_subnormal), float(info.tiny) / 3, float(info.max), float(-info.max), 1.0, -1.0,
                0.5, 2.0]
    if op == "exp2":  # around overflow (2**128 / 2**1024) and underflow to denormals and to zero
        top = 128.0 if dtype == "float32" else 1024.0
        low = 126.0 if dtype == "float32" else 1022.0
        bits = 23 if dtype == "float32" else 52
        edges = [top, -low, -(low + bits), -(low + bits + 1)]
        specials += [float(np.nextafter(ftype(e), ftype(d))) for e in edges for d in (-np.inf, np.inf)] + edges
        specials += list(rng.uniform(-low - bits - 3, top + 3, 2000))
    elif op == "log2":
        specials += list(-np.abs(mags[:500])) + [float(np.nextafter(ftype(1), ftype(0))),
                                                  float(np.nextafter(ftype(1), ftype(2)))]
        specials += list(rng.uniform(0.5, 2.0, 1000))
    else:  # sin: huge arguments (a different range reduction) and multiples of pi
        specials += list(10.0 ** rng.uniform(4, 38 if dtype == "float32" else 300, 1000))
        specials += list(np.pi * np.arange(-200, 200) / 2)
    x = np.concatenate([mags, np.array(specials, dtype=np.float64)]).astype(ftype)
    order = rng.permutation(len(x))
    return np.concatenate([x[order], x])  # each value twice: at two positions in a gang


def _kernel(op: Ops, dtype: DType, n: int) -> LoweredKernel:
    b = KernelBuilder()
    out, inp = b.define_global(0, dtype, True), b.define_global(1, dtype, False)
    gid = b.special("gidx0", n)
    b.store(out, gid, b.alu(op, b.load(inp, gid, dtype)))
    return LoweredKernel(f"math_{op.name.lower()}_{dtype.name}_{n}", b.uops, (n,), (1,))


def _run(program: Program, x: np.ndarray) -> np.ndarray:
    from tg_clang.runtime import ClangRuntime

    runtime = ClangRuntime()
    binary = runtime.compile(program)
    out, inp = runtime.alloc(x.nbytes), runtime.alloc(x.nbytes)
    runtime.copyin(inp, memoryview(x).cast("B"))
    runtime.launch(program, binary, [out, inp], {})
    got = np.empty_like(x)
    runtime.copyout(memoryview(got).cast("B"), out)
    return got


def _renderings(op: Ops, dtype: DType, n: int) -> dict[str, Program]:
    """The kernel over ``n`` elements in lanes (a gang of 16 and one of 4) and in scalar code."""
    from tg_clang.emitter import ClangEmitter, clang_capabilities, render_scalar

    kernel = _kernel(op, dtype, n)
    caps = clang_capabilities()
    narrow = Capabilities(dtypes=caps.dtypes, vector_width=1, group_size=1, launch_dims=caps.launch_dims,
                          local_memory=0, renders=caps.renders, variables=caps.variables,
                          extra={**caps.extra, "lanes": 4})
    scalar = render_scalar(kernel)
    return {"lanes": ClangEmitter(caps).render(kernel), "narrow lanes": ClangEmitter(narrow).render(kernel),
            "scalar": Program.of(kernel, scalar.source, cost=scalar.cost, strategy=scalar.strategy)
            .launched_as((scalar.units,), (1,))}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPS))
def test_lanes_and_scalar_code_give_the_same_bits(name: str, dtype: str, cache_dir: object) -> None:
    x = _inputs(name, dtype)
    programs = _renderings(OPS[name], getattr(dtypes, dtype), len(x))
    assert programs["lanes"].attributes["strategy"] != "scalar", programs["lanes"].source[:300]
    assert programs["narrow lanes"].attributes["strategy"] != "scalar"
    assert "tg_v" + name in programs["lanes"].source and "tg_v" + name in programs["narrow lanes"].source
    results = {where: _run(program, x) for where, program in programs.items()}
    want = results.pop("lanes")
    with np.errstate(all="ignore"):
        reference = getattr(np, name)(x.astype(np.float64)).astype(dtype)
    close = np.isclose(want, reference, rtol=1e-6 if dtype == "float32" else 1e-15,
                       atol=4 * np.finfo(dtype).smallest_subnormal, equal_nan=True)
    if name == "sin":  # huge arguments: libm and numpy may reduce them differently; compare the moderate ones
        close |= np.abs(x) > 1e4
    assert close.all(), (x[~close][:5], want[~close][:5], reference[~close][:5])
    bits = BITS[dtype]
    for where, got in results.items():
        differ = got.view(bits) != want.view(bits)
        assert not differ.any(), (f"{where}: {int(differ.sum())} of {len(x)} elements differ from the gang's bits",
                                  x[differ][:5], got[differ][:5], want[differ][:5])

