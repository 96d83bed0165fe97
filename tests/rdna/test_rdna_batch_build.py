"""Kernels built together: the new kernels of a schedule go through one llvm-mc and one ld.lld run into one code
object (tg_rdna.build.build_many), each cached under its own key, each launched by its own name; a name two of them
share, or a batch LLVM refuses, falls back to building them one by one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rdna_helpers import needs_llvm
from tg.codegen.builder import KernelBuilder
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.uops import Ops
from tg.support.dtype import dtypes
from tg_rdna import build, codeobject
from tg_rdna.emitter import RDNAEmitter

pytestmark = needs_llvm
N = 64


def _kernel(op: Ops, name: str | None = None, n: int = N) -> Program:
    """out[i] = op(x[i]) over n floats."""
    b = KernelBuilder()
    o, x = b.define_global(0, dtypes.float32, True), b.define_global(1, dtypes.float32, False)
    g = b.special("gidx0", n)
    b.store(o, g, b.alu(op, b.load(x, g, dtypes.float32)))
    return RDNAEmitter().render(LoweredKernel(name or f"{op.name.lower()}_{n}", b.uops, (n,), (1,)))


def _kd_symbols(code_object: bytes) -> set[str]:
    from tg_rdna.emulator.elf import parse_elf

    return {s for s in parse_elf(code_object).symbols if s.endswith(".kd")}


def test_merge_puts_the_kernels_in_one_file_with_one_metadata_block() -> None:
    a, b = _kernel(Ops.SQRT), _kernel(Ops.EXP2)
    merged = codeobject.merge([a.source, b.source])
    assert merged is not None
    assert merged.count(".amdgpu_metadata\n") == 1 and merged.count(".amdgcn_target") == 1
    assert "  - .name: sqrt_64" in merged and "  - .name: exp2_64" in merged
    assert codeobject.merge([a.source, _kernel(Ops.EXP2, name="sqrt_64").source]) is None  # one name twice
    assert codeobject.merge([a.source, "s_endpgm\n"]) is None  # not a file assembly() wrote


def test_a_batch_is_one_llvm_run_and_each_kernel_is_cached_under_its_key(cache_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []
    real = build.toolchain.run
    monkeypatch.setattr(build.toolchain, "run", lambda argv, **kw: runs.append(Path(argv[0]).name) or real(argv, **kw))
    programs = [_kernel(Ops.SQRT), _kernel(Ops.EXP2), _kernel(Ops.LOG2)]
    cache = build.CodeObjectCache()
    made = cache.build_many([(p.source, p.name) for p in programs])
    assert len(runs) == 2 and cache.misses == 3  # one llvm-mc and one ld.lld for the three
    assert len(set(made)) == 1 and _kd_symbols(made[0]) == {"sqrt_64.kd", "exp2_64.kd", "log2_64.kd"}
    again = build.CodeObjectCache()
    assert again.build(programs[1].source, programs[1].name) == made[0] and again.hits == 1 and len(runs) == 2


def test_kernels_built_together_run_as_when_built_alone(cache_dir: Path) -> None:
    pytest.importorskip("tg_rdna.emulator", reason="tg_rdna.emulator is not installed (tg-rdna's emulator)")
    from tg_rdna.runtime_emu import EmulatorRuntime

    programs = [_kernel(Ops.SQRT), _kernel(Ops.EXP2), _kernel(Ops.SQRT, n=N // 2)]
    rt = EmulatorRuntime()
    binaries = rt.compile_many(programs)
    assert binaries[0] is binaries[1] is binaries[2]  # one code object, decoded once
    x = np.linspace(0.5, 20, N).astype(np.float32)
    wants = (np.sqrt(x), np.exp2(x), np.sqrt(x[:N // 2]))
    for program, binary, want in zip(programs, binaries, wants):
        out, inp = rt.alloc(4 * N), rt.alloc(4 * N)
        rt.copyin(inp, memoryview(x.view(np.uint8)))
        rt.launch(program, binary, [out, inp], {})
        got = np.zeros(N, np.float32)
        rt.copyout(memoryview(got.view(np.uint8)), out)
        if program.name.startswith("sqrt"):  # correctly rounded on the hardware, and so on the emulator
            np.testing.assert_array_equal(got[:len(want)], want)
        else:
            np.testing.assert_allclose(got[:len(want)], want, rtol=3e-7)


def test_a_shared_name_and_a_refused_batch_fall_back_to_one_by_one(cache_dir: Path) -> None:
    same_name = [_kernel(Ops.SQRT), _kernel(Ops.EXP2, name="sqrt_64")]
    cache = build.CodeObjectCache()
    made = cache.build_many([(p.source, p.name) for p in same_name])
    assert made[0] != made[1] and all(_kd_symbols(m) == {"sqrt_64.kd"} for m in made)
    good = _kernel(Ops.LOG2)
    bad = _kernel(Ops.EXP2, name="exp2_bad")
    broken = bad.source.replace("s_endpgm", "v_no_such_instruction v0")
    with pytest.raises(build.AssemblerError, match="rejected kernel exp2_bad"):
        cache.build_many([(good.source, good.name), (broken, bad.name)])
    assert _kd_symbols(cache.build(good.source, good.name)) == {"log2_64.kd"}  # built alone, before the error


def test_kernels_built_together_are_stored_once_and_refer_to_it(cache_dir: Path) -> None:
    programs = [_kernel(Ops.SQRT), _kernel(Ops.EXP2), _kernel(Ops.LOG2)]
    made = build.CodeObjectCache().build_many([(p.source, p.name) for p in programs])
    sizes = sorted(f.stat().st_size for f in cache_dir.iterdir() if f.suffix == ".co")
    assert len(sizes) == 4 and sizes[2] < 1024 < len(made[0]) <= sizes[3]  # three references and one code object
    assert all(build.CodeObjectCache().build(p.source, p.name) == made[0] for p in programs)
    # the shared code object evicted: a kernel whose entry refers to it is built again, alone
    for f in cache_dir.iterdir():
        if f.suffix == ".co" and f.stat().st_size > 1024:
            f.unlink()
    again = build.CodeObjectCache()
    assert _kd_symbols(again.build(programs[1].source, programs[1].name)) == {"exp2_64.kd"} and again.misses == 1


def test_at_most_batch_max_kernels_share_a_code_object(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "BATCH_MAX", 2)
    programs = [_kernel(op, n=n) for op in (Ops.SQRT, Ops.EXP2) for n in (16, 32)] + [_kernel(Ops.LOG2)]
    made = build.CodeObjectCache().build_many([(p.source, p.name) for p in programs])
    assert [len(_kd_symbols(m)) for m in made] == [2, 2, 2, 2, 1]


def test_a_kernel_disassembles_alone_and_cannot_run_into_its_neighbour(cache_dir: Path) -> None:
    emulator = pytest.importorskip("tg_rdna.emulator", reason="tg_rdna.emulator is not installed (tg-rdna's emulator)")
    from tg_rdna.runtime_emu import EmulatorRuntime

    if build.toolchain.find("llvm-objdump") is not None:
        a, b = _kernel(Ops.SQRT), _kernel(Ops.EXP2)
        data = build.build_many([(a.source, a.name), (b.source, b.name)])[0]
        text = build.disassemble(data, b.name)
        assert "<exp2_64>:" in text and "<sqrt_64>:" not in text
    # a kernel without s_endpgm, built before another: it must not run on into the other's code
    endless = _kernel(Ops.SQRT, name="no_end")
    endless = replace(endless, source=endless.source.replace("s_endpgm", "s_nop 0"))
    rt = EmulatorRuntime()
    binary, other = rt.compile_many([endless, _kernel(Ops.EXP2, n=N // 2)])
    assert binary is other  # built together, the endless kernel first
    out, inp = rt.alloc(4 * N), rt.alloc(4 * N)
    with pytest.raises(emulator.EmulatorError, match="left the kernel's code"):
        rt.launch(endless, binary, [out, inp], {})
