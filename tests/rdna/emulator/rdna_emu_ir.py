"""LLVM IR pieces and a device wrapper for the tests that run kernels compiled by LLVM itself."""

from __future__ import annotations

import numpy as np
from tg_rdna.emulator import Memory

HEADER = """
declare i32 @llvm.amdgcn.workitem.id.x()
declare i32 @llvm.amdgcn.workgroup.id.x()
declare void @llvm.amdgcn.s.barrier()
declare float @llvm.exp2.f32(float)
declare float @llvm.log2.f32(float)
declare float @llvm.sin.f32(float)
declare float @llvm.sqrt.f32(float)
attributes #0 = { "amdgpu-flat-work-group-size"="64,64" }
"""
INDEX = """
  %tid = call i32 @llvm.amdgcn.workitem.id.x()
  %gid = call i32 @llvm.amdgcn.workgroup.id.x()
  %base = mul i32 %gid, 64
  %i = add i32 %base, %tid
"""


class Device:
    """Buffers in an emulator Memory."""

    def __init__(self) -> None:
        self.mem = Memory()

    def put(self, a: np.ndarray) -> int:
        p = self.mem.allocate(a.nbytes)
        self.mem.write(p, np.ascontiguousarray(a).tobytes())
        return p

    def get(self, p: int, like: np.ndarray) -> np.ndarray:
        return np.frombuffer(self.mem.read(p, like.nbytes), like.dtype).reshape(like.shape)


def _ulp_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ia, ib = a.view(np.int32).astype(np.int64), b.view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)
