"""Assembles hand-written gfx1100 kernels into linked code objects for the emulator's tests.

``kernel(body, ...)`` wraps the instructions in a minimal ``.amdhsa_kernel`` descriptor and
``.amdgpu_metadata`` block, assembles with ``llvm-mc`` and links with ``ld.lld`` (code object v5).
Tests skip with the install line when LLVM's tools are missing.  Results are cached per source.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tg_rdna.emulator import CodeObject, Memory

MC = next((t for t in ("llvm-mc-19", "llvm-mc-20", "llvm-mc-18", "llvm-mc") if shutil.which(t)), None)
LLD = next((t for t in ("ld.lld-19", "ld.lld-20", "ld.lld-18", "ld.lld") if shutil.which(t)), None)
OBJDUMP = next((t for t in ("llvm-objdump-19", "llvm-objdump-20", "llvm-objdump-18", "llvm-objdump")
                if shutil.which(t)), None)
LLC = next((t for t in ("llc-19", "llc-20", "llc-18", "llc") if shutil.which(t)), None)
requires_llvm = pytest.mark.skipif(MC is None or LLD is None or OBJDUMP is None,
                                   reason="LLVM's AMDGPU tools are missing: apt-get install llvm-19 lld-19")
_CACHE: dict[str, bytes] = {}


def source(body: str, name: str = "k", *, kernarg_size: int = 64, lds: int = 0, wg_ids: str = "x",
           workitem_id: int = 2, vgprs: int = 64, sgprs: int = 64, denorm32: int = 3, wave32: int = 1,
           extra: str = "") -> str:
    ids = "".join(f"  .amdhsa_system_sgpr_workgroup_id_{d} {int(d in wg_ids)}\n" for d in "xyz")
    return f""".amdgcn_target "amdgcn-amd-amdhsa--gfx1100"
.amdhsa_code_object_version 5
.text
.globl {name}
.p2align 8
.type {name},@function
{name}:
{body}
.rodata
.p2align 6
.amdhsa_kernel {name}
  .amdhsa_user_sgpr_kernarg_segment_ptr 1
  .amdhsa_next_free_vgpr {vgprs}
  .amdhsa_next_free_sgpr {sgprs}
{ids}  .amdhsa_system_vgpr_workitem_id {workitem_id}
  .amdhsa_kernarg_size {kernarg_size}
  .amdhsa_group_segment_fixed_size {lds}
  .amdhsa_float_denorm_mode_32 {denorm32}
  .amdhsa_float_denorm_mode_16_64 3
  .amdhsa_wavefront_size32 {wave32}
{extra}.end_amdhsa_kernel
.amdgpu_metadata
---
amdhsa.version: [1, 2]
amdhsa.kernels:
  - .name: {name}
    .symbol: {name}.kd
    .kernarg_segment_size: {kernarg_size}
    .group_segment_fixed_size: {lds}
    .private_segment_fixed_size: 0
    .kernarg_segment_align: 8
    .wavefront_size: {64 - 32 * wave32}
    .sgpr_count: {sgprs}
    .vgpr_count: {vgprs}
    .max_flat_workgroup_size: 1024
    .args: []
...
.end_amdgpu_metadata
"""


def assemble(text: str) -> bytes:
    """Assembly -> a linked gfx1100 code object (llvm-mc + ld.lld)."""
    assert MC is not None
    return _link(text, ".s", [MC, "-triple=amdgcn-amd-amdhsa", "-mcpu=gfx1100", "-filetype=obj"])


def compile_ir(ir: str) -> bytes:
    """LLVM IR -> a linked gfx1100 code object, compiled by LLVM itself (llc + ld.lld)."""
    assert LLC is not None
    return _link(ir, ".ll", [LLC, "-mtriple=amdgcn-amd-amdhsa", "-mcpu=gfx1100", "-filetype=obj"])


def _link(text: str, suffix: str, to_object: list[str]) -> bytes:
    """``text`` made an object by ``to_object`` (a command taking the source and ``-o``), linked by ld.lld; cached."""
    key = hashlib.sha256(text.encode()).hexdigest()
    if key not in _CACHE:
        assert LLD is not None
        with tempfile.TemporaryDirectory() as tmp:
            src, obj, so = Path(tmp) / f"k{suffix}", Path(tmp) / "k.o", Path(tmp) / "k.so"
            src.write_text(text)
            for command in ([*to_object, str(src), "-o", str(obj)], [LLD, "-shared", str(obj), "-o", str(so)]):
                run = subprocess.run(command, capture_output=True, text=True)
                if run.returncode:
                    raise AssertionError(f"{Path(command[0]).name} failed:\n{run.stderr}")
            _CACHE[key] = so.read_bytes()
    return _CACHE[key]


def kernel(body: str, **kw: object) -> CodeObject:
    return CodeObject(assemble(source(body, **kw)))  # type: ignore[arg-type]


class Buffers:
    """Device buffers for a launch, and the kernarg bytes holding their addresses."""

    def __init__(self) -> None:
        self.mem = Memory()
        self.addrs: list[int] = []

    def add(self, array: np.ndarray) -> int:
        a = np.ascontiguousarray(array)
        addr = self.mem.allocate(a.nbytes)
        self.mem.write(addr, a.tobytes())
        self.addrs.append(addr)
        return addr

    def get(self, addr: int, like: np.ndarray) -> np.ndarray:
        return np.frombuffer(self.mem.read(addr, like.nbytes), like.dtype).reshape(like.shape)

    def kernarg(self, *scalars: bytes) -> bytes:
        return b"".join(a.to_bytes(8, "little") for a in self.addrs) + b"".join(scalars)


def run1(body: str, inputs: list[np.ndarray], out: np.ndarray, n: int = 32, local: int | None = None,
         **kw: object) -> np.ndarray:
    """Launch with buffers [out, *inputs] (addresses at kernarg 0, 8, 16...) over n work-items."""
    co = kernel(body, **kw)
    bufs = Buffers()
    o = bufs.add(out)
    for a in inputs:
        bufs.add(a)
    loc = local or min(n, 256)
    co.launch("k", bufs.kernarg(), (-(-n // loc),), (loc,), bufs.mem)
    return bufs.get(o, out)


def elementwise(ops: str, n_inputs: int = 1) -> str:
    """A kernel body: v[2+j] = in_j[i] for each input j, then ``ops``, then out[i] = v2 (32-bit words).

    The global id i = group * local_size.x + tid.x (local size from s[2] and a 64-wide group)."""
    loads = "\n".join(f"  global_load_b32 v{2 + j}, v1, s[{8 + 2 * j}:{9 + 2 * j}]" for j in range(n_inputs))
    return f"""
  s_load_b64 s[6:7], s[0:1], 0x0
  s_load_b256 s[8:15], s[0:1], 0x8
  v_and_b32 v1, 0x3ff, v0
  s_lshl_b32 s3, s2, 6
  v_add_nc_u32 v1, s3, v1
  v_lshlrev_b32 v1, 2, v1
  s_waitcnt lgkmcnt(0)
{loads}
  s_waitcnt vmcnt(0)
{ops}
  global_store_b32 v1, v2, s[6:7]
  s_endpgm
"""


def run_elementwise(ops: str, *inputs: np.ndarray, out_dtype: type | None = None, **kw: object) -> np.ndarray:
    """Run ``elementwise(ops)`` over the inputs' elements (32-bit each), 64 work-items per group."""
    n = inputs[0].size
    dtype: Any = out_dtype or inputs[0].dtype
    out = np.zeros(n, dtype)
    padded = [np.concatenate([a, np.zeros((-n) % 64, a.dtype)]) for a in inputs]
    res = run1(elementwise(ops, len(inputs)), padded, np.zeros(len(padded[0]), out.dtype), n=len(padded[0]),
               local=64, **kw)
    return res[:n]
