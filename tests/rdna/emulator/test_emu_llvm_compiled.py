"""Kernels compiled by LLVM itself (llc -mcpu=gfx1100): real instruction selection, LLVM's own s_waitcnt and
hazard waits, its exp2/log2/division expansions, VOPD pairs.  They must run without a single false alarm from
the wait/hazard checks and give the right numbers."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from rdna_emu_asm import LLC, compile_ir, requires_llvm
from rdna_emu_ir import HEADER, INDEX, Device, _ulp_diff
from tg_rdna.emulator import CodeObject

pytestmark = [requires_llvm, pytest.mark.skipif(LLC is None, reason="llc is missing: apt-get install llvm-19")]

MATH = HEADER + """
define amdgpu_kernel void @math(ptr addrspace(1) %out, ptr addrspace(1) %a, ptr addrspace(1) %b, i32 %n) #0 {
entry:""" + INDEX + """
  %inb = icmp ult i32 %i, %n
  br i1 %inb, label %body, label %exit
body:
  %pa = getelementptr float, ptr addrspace(1) %a, i32 %i
  %pb = getelementptr float, ptr addrspace(1) %b, i32 %i
  %x = load float, ptr addrspace(1) %pa
  %y = load float, ptr addrspace(1) %pb
  %q = fdiv float %x, %y
  %e = call float @llvm.exp2.f32(float %x)
  %l = call float @llvm.log2.f32(float %y)
  %s = call float @llvm.sin.f32(float %x)
  %r = call float @llvm.sqrt.f32(float %y)
  %i5 = mul i32 %i, 5
  %o0 = getelementptr float, ptr addrspace(1) %out, i32 %i5
  store float %q, ptr addrspace(1) %o0
  %o1 = getelementptr float, ptr addrspace(1) %o0, i32 1
  store float %e, ptr addrspace(1) %o1
  %o2 = getelementptr float, ptr addrspace(1) %o0, i32 2
  store float %l, ptr addrspace(1) %o2
  %o3 = getelementptr float, ptr addrspace(1) %o0, i32 3
  store float %s, ptr addrspace(1) %o3
  %o4 = getelementptr float, ptr addrspace(1) %o0, i32 4
  store float %r, ptr addrspace(1) %o4
  br label %exit
exit:
  ret void
}
"""
REDUCE = HEADER + """
@lds = internal addrspace(3) global [64 x float] undef, align 4
define amdgpu_kernel void @red(ptr addrspace(1) %out, ptr addrspace(1) %in) #0 {
entry:""" + INDEX + """
  %p = getelementptr float, ptr addrspace(1) %in, i32 %i
  %x = load float, ptr addrspace(1) %p
  %l = getelementptr [64 x float], ptr addrspace(3) @lds, i32 0, i32 %tid
  store float %x, ptr addrspace(3) %l
  fence syncscope("workgroup") release
  call void @llvm.amdgcn.s.barrier()
  fence syncscope("workgroup") acquire
  %first = icmp eq i32 %tid, 0
  br i1 %first, label %loop, label %done
loop:
  %j = phi i32 [ 0, %entry ], [ %jn, %loop ]
  %acc = phi double [ 0.0, %entry ], [ %accn, %loop ]
  %lj = getelementptr [64 x float], ptr addrspace(3) @lds, i32 0, i32 %j
  %v = load float, ptr addrspace(3) %lj
  %vd = fpext float %v to double
  %accn = fadd double %acc, %vd
  %jn = add i32 %j, 1
  %c = icmp ult i32 %jn, 64
  br i1 %c, label %loop, label %write
write:
  %res = fptrunc double %accn to float
  %po = getelementptr float, ptr addrspace(1) %out, i32 %gid
  store float %res, ptr addrspace(1) %po
  br label %done
done:
  ret void
}
"""
INT = HEADER + """
define amdgpu_kernel void @div64(ptr addrspace(1) %out, ptr addrspace(1) %a, ptr addrspace(1) %b) #0 {""" + INDEX + """
  %pa = getelementptr i64, ptr addrspace(1) %a, i32 %i
  %pb = getelementptr i64, ptr addrspace(1) %b, i32 %i
  %x = load i64, ptr addrspace(1) %pa
  %y = load i64, ptr addrspace(1) %pb
  %q = udiv i64 %x, %y
  %r = srem i64 %x, %y
  %m = mul i64 %x, %y
  %s = add i64 %q, %r
  %t = xor i64 %s, %m
  %i2 = mul i32 %i, 2
  %po = getelementptr i64, ptr addrspace(1) %out, i32 %i2
  store i64 %q, ptr addrspace(1) %po
  %po2 = getelementptr i64, ptr addrspace(1) %po, i32 1
  store i64 %t, ptr addrspace(1) %po2
  ret void
}

define amdgpu_kernel void @loop(ptr addrspace(1) %out, ptr addrspace(1) %a) #0 {
entry:""" + INDEX + """
  %pa = getelementptr i32, ptr addrspace(1) %a, i32 %i
  %n = load i32, ptr addrspace(1) %pa
  %z = icmp eq i32 %n, 0
  br i1 %z, label %write, label %body
body:
  %j = phi i32 [ 0, %entry ], [ %jn, %body ]
  %acc = phi i32 [ 0, %entry ], [ %accn, %body ]
  %sq = mul i32 %j, %j
  %accn = add i32 %acc, %sq
  %jn = add i32 %j, 1
  %c = icmp ult i32 %jn, %n
  br i1 %c, label %body, label %write
write:
  %res = phi i32 [ 0, %entry ], [ %accn, %body ]
  %po = getelementptr i32, ptr addrspace(1) %out, i32 %i
  store i32 %res, ptr addrspace(1) %po
  ret void
}
"""


def test_llvm_math_expansions_including_denormal_ranges() -> None:
    co = CodeObject(compile_ir(MATH))
    rng = np.random.default_rng(0)
    x = rng.uniform(-20, 20, 192).astype(np.float32)
    y = rng.uniform(0.01, 50, 192).astype(np.float32)
    x[:6] = [-140, -130, -126.5, 0.5, 127.5, -149]       # exp2 with denormal and huge results
    y[:6] = [1e-40, 3e-39, 2.0 ** -126, 1, 1e38, 7e-45]   # log2 and sqrt of denormals, division by them
    n = 190  # the last two work-items are out of bounds: masked by the kernel's branch
    dev = Device()
    out = np.zeros((192, 5), np.float32)
    po, pa, pb = dev.put(out), dev.put(x), dev.put(y)
    co.launch("math", struct.pack("<QQQI", po, pa, pb, n), (3,), (64,), dev.mem)
    got = dev.get(po, out)
    x64, y64 = x.astype(np.float64)[:n], y.astype(np.float64)[:n]
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got[:n, 0], (x[:n] / y[:n]))  # IEEE division: correctly rounded
        assert _ulp_diff(got[:n, 1], np.exp2(x64).astype(np.float32)).max() <= 1
        assert _ulp_diff(got[:n, 2], np.log2(y64).astype(np.float32)).max() <= 1
        # LLVM lowers sin(x) to v_sin_f32(x * 1/(2*pi)): revolutions, with the product rounded to f32
        revolutions = (x[:n] * np.float32(0.15915494309189535)).astype(np.float64)
        np.testing.assert_allclose(got[:n, 3], np.sin(2 * np.pi * revolutions), atol=1e-7)
        assert _ulp_diff(got[:n, 4], np.sqrt(y64).astype(np.float32)).max() <= 1
    # LLVM scales around the hardware's denormal flush: a denormal result / input still works
    assert got[0, 1] == np.float32(2.0 ** -140) and abs(got[0, 2] - np.log2(y64[0])) < 1e-4
    assert (got[n:] == 0).all()


def test_llvm_lds_reduction_with_fences_and_barrier() -> None:
    co = CodeObject(compile_ir(REDUCE))
    x = np.random.default_rng(1).standard_normal(64 * 7).astype(np.float32)
    dev = Device()
    out = np.zeros(7, np.float32)
    po, pi = dev.put(out), dev.put(x)
    co.launch("red", struct.pack("<QQ", po, pi), (7,), (64,), dev.mem)
    np.testing.assert_array_equal(dev.get(po, out), x.reshape(7, 64).astype(np.float64).sum(1).astype(np.float32))


def test_llvm_int64_division_and_divergent_loops() -> None:
    co = CodeObject(compile_ir(INT))
    rng = np.random.default_rng(2)
    g = 4
    a = rng.integers(0, 2 ** 63, 64 * g, dtype=np.uint64)
    b = rng.integers(1, 2 ** 40, 64 * g, dtype=np.uint64)
    b[:10] = rng.integers(1, 2 ** 20, 10)
    b[10:20] = rng.integers(2 ** 62, 2 ** 63, 10, dtype=np.uint64)
    dev = Device()
    out = np.zeros((64 * g, 2), np.uint64)
    po, pa, pb = dev.put(out), dev.put(a), dev.put(b)
    co.launch("div64", struct.pack("<QQQ", po, pa, pb), (g,), (64,), dev.mem)
    got = dev.get(po, out)
    q = a // b
    np.testing.assert_array_equal(got[:, 0], q)
    np.testing.assert_array_equal(got[:, 1], (q + a % b) ^ (a * b))
    n = rng.integers(0, 40, 64 * g).astype(np.int32)
    out32 = np.zeros(64 * g, np.int32)
    po, pa = dev.put(out32), dev.put(n)
    co.launch("loop", struct.pack("<QQ", po, pa), (g,), (64,), dev.mem)
    np.testing.assert_array_equal(dev.get(po, out32), [sum(j * j for j in range(k)) for k in n])


MIX = HEADER + """
declare half @llvm.sqrt.f16(half)
declare float @llvm.maximum.f32(float, float)
declare float @llvm.floor.f32(float)
declare float @llvm.fabs.f32(float)
declare i32 @llvm.ctpop.i32(i32)
declare i32 @llvm.ctlz.i32(i32, i1)
declare i64 @llvm.smax.i64(i64, i64)
declare float @llvm.fma.f32(float, float, float)

define amdgpu_kernel void @mix(ptr addrspace(1) %out, ptr addrspace(1) %h, ptr addrspace(1) %f,
                               ptr addrspace(1) %c8, ptr addrspace(1) %s16, ptr addrspace(1) %l) #0 {""" + INDEX + """
  %ph = getelementptr half, ptr addrspace(1) %h, i32 %i
  %hv = load half, ptr addrspace(1) %ph
  %pf = getelementptr float, ptr addrspace(1) %f, i32 %i
  %fv = load float, ptr addrspace(1) %pf
  %p8 = getelementptr i8, ptr addrspace(1) %c8, i32 %i
  %cv = load i8, ptr addrspace(1) %p8
  %p16 = getelementptr i16, ptr addrspace(1) %s16, i32 %i
  %sv = load i16, ptr addrspace(1) %p16
  %pl = getelementptr i64, ptr addrspace(1) %l, i32 %i
  %lv = load i64, ptr addrspace(1) %pl
  %h2 = fmul half %hv, %hv
  %h3 = fadd half %h2, 0xH3C00
  %h5 = call half @llvm.sqrt.f16(half %h3)
  %h6 = fdiv half %hv, %h5
  %hf = fpext half %hv to float
  %m1 = call float @llvm.maximum.f32(float %fv, float %hf)
  %t = call float @llvm.floor.f32(float %m1)
  %ti = fptosi float %t to i32
  %ui = fptoui float %fv to i32
  %a = call float @llvm.fabs.f32(float %fv)
  %fm = call float @llvm.fma.f32(float %a, float %hf, float %fv)
  %c32 = sext i8 %cv to i32
  %s32 = zext i16 %sv to i32
  %pc = call i32 @llvm.ctpop.i32(i32 %s32)
  %lz = call i32 @llvm.ctlz.i32(i32 %s32, i1 false)
  %sh = shl i64 %lv, 7
  %sr = ashr i64 %lv, 33
  %mx = call i64 @llvm.smax.i64(i64 %sh, i64 %sr)
  %l32 = trunc i64 %mx to i32
  %s1 = add i32 %c32, %pc
  %s2 = add i32 %s1, %lz
  %s3 = xor i32 %s2, %l32
  %s4 = add i32 %s3, %ui
  %o = mul i32 %i, 4
  %po = getelementptr i32, ptr addrspace(1) %out, i32 %o
  store i32 %s4, ptr addrspace(1) %po
  %po1 = getelementptr i32, ptr addrspace(1) %po, i32 1
  store float %fm, ptr addrspace(1) %po1
  %po2 = getelementptr i32, ptr addrspace(1) %po, i32 2
  store i32 %ti, ptr addrspace(1) %po2
  %po3 = getelementptr half, ptr addrspace(1) %po, i32 6
  store half %h6, ptr addrspace(1) %po3
  %po4 = getelementptr i8, ptr addrspace(1) %po, i32 14
  %b8 = trunc i32 %s1 to i8
  store i8 %b8, ptr addrspace(1) %po4
  ret void
}
"""


def test_llvm_mixed_types_half_bytes_shorts_and_64bit() -> None:
    co = CodeObject(compile_ir(MIX))
    rng = np.random.default_rng(3)
    n = 128
    h = rng.uniform(-4, 4, n).astype(np.float16)
    f = rng.uniform(0, 300, n).astype(np.float32)
    c8 = rng.integers(-128, 128, n).astype(np.int8)
    s16 = rng.integers(0, 2 ** 16, n).astype(np.uint16)
    lv = rng.integers(-(2 ** 62), 2 ** 62, n).astype(np.int64)
    dev = Device()
    out = np.zeros((n, 4), np.uint32)
    ptrs = [dev.put(a) for a in (out, h, f, c8, s16, lv)]
    co.launch("mix", struct.pack("<6Q", *ptrs), (2,), (64,), dev.mem)
    got = dev.get(ptrs[0], out)
    s32 = s16.astype(np.int64)
    pc = np.array([bin(int(v)).count("1") for v in s16])
    lz = np.array([32 - int(v).bit_length() for v in s16])
    mx = np.maximum(lv << 7, lv >> 33)
    s1 = c8.astype(np.int64) + pc
    want = (((s1 + lz) ^ (mx & 0xFFFFFFFF)) + f.astype(np.int64)) & 0xFFFFFFFF
    del s32
    np.testing.assert_array_equal(got[:, 0], want.astype(np.uint32))
    hf = h.astype(np.float32)
    np.testing.assert_array_equal(got[:, 1].view(np.float32), np.array(
        [np.float32(abs(float(a)) * float(b) + float(a)) for a, b in zip(f, hf)]))  # exact in f64: one rounding
    np.testing.assert_array_equal(got[:, 2].view(np.int32), np.floor(np.maximum(f, hf)).astype(np.int32))
    h6 = (got[:, 3] & 0xFFFF).astype(np.uint16).view(np.float16)
    h64 = h.astype(np.float64)
    ref = (h64 / np.sqrt((h64 * h64).astype(np.float16).astype(np.float64) + 1)).astype(np.float16)
    assert _ulp16(h6, ref).max() <= 1
    np.testing.assert_array_equal((got[:, 3] >> 16) & 0xFF, (s1 & 0xFF).astype(np.uint32))


def _ulp16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ia, ib = a.view(np.int16).astype(np.int64), b.view(np.int16).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFF), ib)
    return np.abs(ia - ib)


CONVERT = HEADER + """
declare float @llvm.round.f32(float)
declare float @llvm.rint.f32(float)
declare float @llvm.copysign.f32(float, float)
declare <2 x half> @llvm.fma.v2f16(<2 x half>, <2 x half>, <2 x half>)
declare float @llvm.cos.f32(float)

define amdgpu_kernel void @convert(ptr addrspace(1) %out, ptr addrspace(1) %f, ptr addrspace(1) %l,
                                   ptr addrspace(1) %h2) #0 {""" + INDEX + """
  %pf = getelementptr float, ptr addrspace(1) %f, i32 %i
  %fv = load float, ptr addrspace(1) %pf
  %pl = getelementptr i64, ptr addrspace(1) %l, i32 %i
  %lv = load i64, ptr addrspace(1) %pl
  %ph = getelementptr <2 x half>, ptr addrspace(1) %h2, i32 %i
  %hv = load <2 x half>, ptr addrspace(1) %ph
  %r1 = call float @llvm.round.f32(float %fv)
  %neg = fneg float %fv
  %r3 = call float @llvm.copysign.f32(float %r1, float %neg)
  %u = uitofp i64 %lv to float
  %fi = fptosi float %fv to i64
  %ft = fptosi float %fv to i32
  %dq = sdiv i32 %ft, 7
  %dr = srem i32 %ft, 5
  %fr = frem float %fv, 3.0
  %pk = call <2 x half> @llvm.fma.v2f16(<2 x half> %hv, <2 x half> %hv, <2 x half> <half 1.0, half 2.0>)
  %o = mul i32 %i, 8
  %po = getelementptr i32, ptr addrspace(1) %out, i32 %o
  store float %r3, ptr addrspace(1) %po
  %p1 = getelementptr i32, ptr addrspace(1) %po, i32 1
  store float %u, ptr addrspace(1) %p1
  %p2 = getelementptr i64, ptr addrspace(1) %po, i32 1
  store i64 %fi, ptr addrspace(1) %p2
  %p4 = getelementptr i32, ptr addrspace(1) %po, i32 4
  store i32 %dq, ptr addrspace(1) %p4
  %p5 = getelementptr i32, ptr addrspace(1) %po, i32 5
  store i32 %dr, ptr addrspace(1) %p5
  %p6 = getelementptr float, ptr addrspace(1) %po, i32 6
  store float %fr, ptr addrspace(1) %p6
  %p7 = getelementptr <2 x half>, ptr addrspace(1) %po, i32 7
  store <2 x half> %pk, ptr addrspace(1) %p7
  ret void
}
"""


def test_llvm_conversions_int64_float_packed_half_and_integer_division() -> None:
    co = CodeObject(compile_ir(CONVERT))
    rng = np.random.default_rng(4)
    n = 128
    f = (rng.standard_normal(n) * 1e5).astype(np.float32)
    f[:4] = [2.5, -2.5, 0.49999997, -7.0]
    lv = rng.integers(0, 2 ** 63, n, dtype=np.uint64).astype(np.int64)
    lv[:3] = [0, 1, 2 ** 24 + 1]
    h2 = rng.uniform(-3, 3, 2 * n).astype(np.float16)
    dev = Device()
    out = np.zeros((n, 8), np.uint32)
    ptrs = [dev.put(a) for a in (out, f, lv, h2)]
    co.launch("convert", struct.pack("<4Q", *ptrs), (2,), (64,), dev.mem)
    got = dev.get(ptrs[0], out)
    r1 = np.where(np.abs(f) - np.floor(np.abs(f)) >= 0.5, np.floor(np.abs(f)) + 1, np.floor(np.abs(f)))  # half away
    np.testing.assert_array_equal(got[:, 0].view(np.float32), np.copysign(r1, -f).astype(np.float32))
    np.testing.assert_array_equal(got[:, 1].view(np.float32), lv.astype(np.uint64).astype(np.float32))
    np.testing.assert_array_equal(got[:, 2:4].copy().view(np.int64)[:, 0], np.trunc(f).astype(np.int64))
    t = np.trunc(f).astype(np.int64)
    np.testing.assert_array_equal(got[:, 4].view(np.int32), (np.abs(t) // 7 * np.sign(t)).astype(np.int32))
    np.testing.assert_array_equal(got[:, 5].view(np.int32), np.fmod(t, 5).astype(np.int32))
    np.testing.assert_allclose(got[:, 6].view(np.float32), np.fmod(f.astype(np.float64), 3.0), atol=2e-2)
    h = h2.reshape(n, 2).astype(np.float64)
    want = (h * h + np.array([1.0, 2.0])).astype(np.float16)
    np.testing.assert_array_equal(got[:, 7].copy().view(np.float16).reshape(n, 2), want)
