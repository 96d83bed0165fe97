"""A corpus of real kernels (tensor programs over every declared dtype and op, scheduled and lowered for RDNA3)
rendered by the emitter and assembled + linked by LLVM, each one."""

from __future__ import annotations

import re

import pytest
from rdna_corpus import PROGRAMS, capture
from rdna_helpers import needs_llvm
from tg.codegen.program import LoweredKernel
from tg.support.ops import Ops
from tg_rdna import build
from tg_rdna.emitter import RDNAEmitter
from tg_rdna.emulator import llvm_disasm
from tg_rdna.emulator import program as disassembly

_KERNELS: dict[str, list[LoweredKernel]] = {}


def _kernels(name: str) -> list[LoweredKernel]:
    if name not in _KERNELS:
        import numpy as np

        fn = dict(PROGRAMS)[name]
        with capture() as kernels:
            fn(np.random.default_rng(0))
        _KERNELS[name] = kernels
    return _KERNELS[name]


@needs_llvm
@pytest.mark.parametrize("name", [n for n, _ in PROGRAMS])
def test_every_corpus_kernel_assembles_and_links(name: str, cache_dir: object) -> None:
    kernels = _kernels(name)
    assert kernels, f"program {name} made no kernel"
    decoder = llvm_disasm.disassembler()
    for k in kernels:
        program = RDNAEmitter().render(k)
        assert program.name == re.sub(r"[^A-Za-z0-9_]", "_", k.name)
        data = build.link(program.source, program.name)
        assert data[:4] == b"\x7fELF" and program.name.encode() + b".kd" in data
        if decoder is not None:  # the emulator's in-process disassembly is llvm-objdump's, instruction by instruction
            ours = disassembly._in_process(decoder, data)
            assert ours == disassembly._with_objdump(data), program.name
            assert ours[-1].mnemonic == "s_endpgm"


def test_the_corpus_covers_every_op_and_dtype_the_target_declares() -> None:
    caps = RDNAEmitter.capabilities
    ops, dtypes = set(), set()
    for name, _ in PROGRAMS:
        for k in _kernels(name):
            for u in k.uops:
                ops.add(u.op)
                if u.dtype is not None and hasattr(u.dtype, "itemsize"):
                    dtypes.add(u.dtype.name)
    required = {o for o in Ops if caps.rendered(o) and o not in (Ops.WMMA, Ops.VECTORIZE, Ops.GEP, Ops.BITCAST)}
    assert required - ops == set(), sorted(o.name for o in required - ops)
    assert set(caps.dtypes) <= dtypes
