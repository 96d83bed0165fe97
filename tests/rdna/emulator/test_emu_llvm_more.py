"""More kernels compiled by LLVM: bit tricks and vectors, float64, barriers in loops, divergent control flow, and
LLVM's own waits removed from its code object (the emulator must catch it)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from rdna_emu_asm import LLC, compile_ir, requires_llvm
from rdna_emu_ir import HEADER, INDEX, Device
from test_emu_llvm_compiled import MATH
from tg_rdna.emulator import CodeObject

pytestmark = [requires_llvm, pytest.mark.skipif(LLC is None, reason="llc is missing: apt-get install llvm-19")]


BITS = HEADER + """
declare i32 @llvm.bitreverse.i32(i32)
declare i32 @llvm.cttz.i32(i32, i1)
declare i32 @llvm.fshr.i32(i32, i32, i32)
declare i64 @llvm.umin.i64(i64, i64)
declare i16 @llvm.smax.i16(i16, i16)
declare i64 @llvm.abs.i64(i64, i1)
declare half @llvm.fabs.f16(half)
@lds4 = internal addrspace(3) global [64 x <4 x float>] undef, align 16

define amdgpu_kernel void @bits(ptr addrspace(1) %out, ptr addrspace(1) %v4, ptr addrspace(1) %b4,
                                ptr addrspace(1) %l, ptr addrspace(1) %s, ptr addrspace(1) %h) #0 {
  %i = call i32 @llvm.amdgcn.workitem.id.x()
  %pv = getelementptr <4 x float>, ptr addrspace(1) %v4, i32 %i
  %vv = load <4 x float>, ptr addrspace(1) %pv
  %pb = getelementptr <4 x i8>, ptr addrspace(1) %b4, i32 %i
  %bv = load <4 x i8>, ptr addrspace(1) %pb
  %pl = getelementptr i64, ptr addrspace(1) %l, i32 %i
  %lv = load i64, ptr addrspace(1) %pl
  %ps = getelementptr i16, ptr addrspace(1) %s, i32 %i
  %sv = load i16, ptr addrspace(1) %ps
  %ph = getelementptr half, ptr addrspace(1) %h, i32 %i
  %hv = load half, ptr addrspace(1) %ph
  %ld = getelementptr [64 x <4 x float>], ptr addrspace(3) @lds4, i32 0, i32 %i
  store <4 x float> %vv, ptr addrspace(3) %ld
  %w = load <4 x float>, ptr addrspace(3) %ld
  %w0 = extractelement <4 x float> %w, i32 0
  %w3 = extractelement <4 x float> %w, i32 3
  %cmp = fcmp ult float %w0, %w3
  %b0 = extractelement <4 x i8> %bv, i32 1
  %b1 = extractelement <4 x i8> %bv, i32 3
  %b0z = zext i8 %b0 to i32
  %b1s = sext i8 %b1 to i32
  %br = call i32 @llvm.bitreverse.i32(i32 %b0z)
  %tz = call i32 @llvm.cttz.i32(i32 %br, i1 false)
  %fs = call i32 @llvm.fshr.i32(i32 %b1s, i32 %br, i32 %tz)
  %um = call i64 @llvm.umin.i64(i64 %lv, i64 1099511627776)
  %ab = call i64 @llvm.abs.i64(i64 %lv, i1 false)
  %s2 = mul i16 %sv, %sv
  %s3 = call i16 @llvm.smax.i16(i16 %s2, i16 -5)
  %s3e = sext i16 %s3 to i32
  %ha = call half @llvm.fabs.f16(half %hv)
  %hc = fcmp olt half %ha, 0xH3C00
  %sel1 = select i1 %cmp, i32 %fs, i32 %s3e
  %sel2 = select i1 %hc, i64 %um, i64 %ab
  %c64 = icmp ugt i64 %sel2, 1000
  %z = zext i1 %c64 to i32
  %sum = add i32 %sel1, %z
  %o = mul i32 %i, 4
  %po = getelementptr i32, ptr addrspace(1) %out, i32 %o
  store i32 %sum, ptr addrspace(1) %po
  %p1 = getelementptr i64, ptr addrspace(1) %po, i32 1
  store i64 %sel2, ptr addrspace(1) %p1
  %p2 = getelementptr <4 x i8>, ptr addrspace(1) %po, i32 1
  %bv2 = add <4 x i8> %bv, <i8 1, i8 2, i8 3, i8 4>
  store <4 x i8> %bv2, ptr addrspace(1) %p2
  ret void
}
"""


def test_llvm_bit_tricks_vectors_lds_b128_and_64bit_selects() -> None:
    co = CodeObject(compile_ir(BITS))
    rng = np.random.default_rng(5)
    n = 64
    v4 = rng.standard_normal((n, 4)).astype(np.float32)
    v4[:3, 0] = np.nan
    b4 = rng.integers(0, 256, (n, 4)).astype(np.uint8)
    b4[:2, 1] = 0
    lv = rng.integers(-(2 ** 62), 2 ** 62, n).astype(np.int64)
    lv[0] = -(2 ** 63)
    sv = rng.integers(-300, 300, n).astype(np.int16)
    hv = rng.uniform(-2, 2, n).astype(np.float16)
    dev = Device()
    out = np.zeros((n, 4), np.uint32)
    ptrs = [dev.put(a) for a in (out, v4, b4, lv, sv, hv)]
    co.launch("bits", struct.pack("<6Q", *ptrs), (1,), (64,), dev.mem)
    got = dev.get(ptrs[0], out)
    want = np.zeros(n, np.int64)
    sel2 = np.zeros(n, np.uint64)
    for k in range(n):
        cmp = np.isnan(v4[k, 0]) or np.isnan(v4[k, 3]) or v4[k, 0] < v4[k, 3]
        br = int(f"{int(b4[k, 1]):032b}"[::-1], 2)
        tz = 32 if br == 0 else (br & -br).bit_length() - 1
        hi = int(b4[k, 3].view(np.int8)) & 0xFFFFFFFF
        fs = (((hi << 32) | br) >> (tz % 32)) & 0xFFFFFFFF
        s2 = ((int(sv[k]) * int(sv[k]) + 2 ** 15) % 2 ** 16) - 2 ** 15  # i16 multiply wraps
        s3 = max(s2, -5) & 0xFFFFFFFF
        um = min(int(lv[k]) & (2 ** 64 - 1), 2 ** 40)
        ab = abs(int(lv[k])) & (2 ** 64 - 1)
        sel2[k] = um if abs(float(hv[k])) < 1 else ab
        want[k] = ((fs if cmp else s3) + (int(sel2[k]) > 1000)) & 0xFFFFFFFF
    np.testing.assert_array_equal(got[:, 0], want.astype(np.uint32))
    np.testing.assert_array_equal(got[:, 2:4].copy().view(np.uint64)[:, 0], sel2)
    np.testing.assert_array_equal(got[:, 1].copy().view(np.uint8).reshape(n, 4), b4 + np.array([1, 2, 3, 4], np.uint8))


F64 = HEADER + """
declare double @llvm.sqrt.f64(double)
declare double @llvm.fma.f64(double, double, double)

define amdgpu_kernel void @f64(ptr addrspace(1) %out, ptr addrspace(1) %a, ptr addrspace(1) %b) #0 {""" + INDEX + """
  %pa = getelementptr double, ptr addrspace(1) %a, i32 %i
  %pb = getelementptr double, ptr addrspace(1) %b, i32 %i
  %x = load double, ptr addrspace(1) %pa
  %y = load double, ptr addrspace(1) %pb
  %q = fdiv double %x, %y
  %r = call double @llvm.sqrt.f64(double %y)
  %f = call double @llvm.fma.f64(double %x, double %y, double %q)
  %i3 = mul i32 %i, 3
  %po = getelementptr double, ptr addrspace(1) %out, i32 %i3
  store double %q, ptr addrspace(1) %po
  %p1 = getelementptr double, ptr addrspace(1) %po, i32 1
  store double %r, ptr addrspace(1) %p1
  %p2 = getelementptr double, ptr addrspace(1) %po, i32 2
  store double %f, ptr addrspace(1) %p2
  ret void
}
"""


def test_llvm_float64_division_sqrt_fma() -> None:
    from fractions import Fraction

    co = CodeObject(compile_ir(F64))
    rng = np.random.default_rng(6)
    n = 128
    a = rng.standard_normal(n) * 10.0 ** rng.integers(-100, 100, n)
    b = np.abs(rng.standard_normal(n)) * 10.0 ** rng.integers(-100, 100, n)
    a[:4] = [1.0, 0.0, np.inf, 1e-300]
    b[:4] = [3.0, 0.0, 2.0, 1e300]
    dev = Device()
    out = np.zeros((n, 3), np.float64)
    ptrs = [dev.put(x) for x in (out, a, b)]
    co.launch("f64", struct.pack("<3Q", *ptrs), (2,), (64,), dev.mem)
    got = dev.get(ptrs[0], out)
    with np.errstate(all="ignore"):
        q = a / b
        np.testing.assert_array_equal(got[:, 0], q)
        np.testing.assert_array_equal(got[:, 1], np.sqrt(b))
    fin = np.isfinite(q)
    want = [float(Fraction(x) * Fraction(y) + Fraction(z)) for x, y, z in zip(a[fin], b[fin], q[fin])]
    np.testing.assert_array_equal(got[fin, 2], want)


TREE = HEADER + """
declare i32 @llvm.amdgcn.workgroup.id.y()
@tree_lds = internal addrspace(3) global [256 x i32] undef, align 4

define amdgpu_kernel void @tree(ptr addrspace(1) %out, ptr addrspace(1) %in) #1 {
entry:
  %tid = call i32 @llvm.amdgcn.workitem.id.x()
  %gx = call i32 @llvm.amdgcn.workgroup.id.x()
  %gy = call i32 @llvm.amdgcn.workgroup.id.y()
  %g3 = mul i32 %gy, 3
  %g = add i32 %g3, %gx
  %base = mul i32 %g, 256
  %i = add i32 %base, %tid
  %p = getelementptr i32, ptr addrspace(1) %in, i32 %i
  %x = load i32, ptr addrspace(1) %p
  %l = getelementptr [256 x i32], ptr addrspace(3) @tree_lds, i32 0, i32 %tid
  store i32 %x, ptr addrspace(3) %l
  br label %loop
loop:
  %s = phi i32 [ 128, %entry ], [ %sn, %next ]
  fence syncscope("workgroup") release
  call void @llvm.amdgcn.s.barrier()
  fence syncscope("workgroup") acquire
  %active = icmp ult i32 %tid, %s
  br i1 %active, label %add, label %next
add:
  %o = add i32 %tid, %s
  %lo = getelementptr [256 x i32], ptr addrspace(3) @tree_lds, i32 0, i32 %o
  %a = load i32, ptr addrspace(3) %l
  %b = load i32, ptr addrspace(3) %lo
  %c = add i32 %a, %b
  store i32 %c, ptr addrspace(3) %l
  br label %next
next:
  %sn = lshr i32 %s, 1
  %more = icmp ne i32 %sn, 0
  br i1 %more, label %loop, label %end
end:
  %first = icmp eq i32 %tid, 0
  br i1 %first, label %write, label %done
write:
  %r = load i32, ptr addrspace(3) %l
  %po = getelementptr i32, ptr addrspace(1) %out, i32 %g
  store i32 %r, ptr addrspace(1) %po
  br label %done
done:
  ret void
}
attributes #1 = { "amdgpu-flat-work-group-size"="256,256" }
"""


def test_llvm_tree_reduction_barriers_in_a_loop_2d_grid() -> None:
    co = CodeObject(compile_ir(TREE))
    x = np.random.default_rng(8).integers(-1000, 1000, 256 * 6).astype(np.int32)
    dev = Device()
    out = np.zeros(6, np.int32)
    po, pi = dev.put(out), dev.put(x)
    co.launch("tree", struct.pack("<QQ", po, pi), (3, 2), (256,), dev.mem)
    np.testing.assert_array_equal(dev.get(po, out), x.reshape(6, 256).sum(axis=1))


def _patched(data: bytes, match: object) -> bytes:
    """The code object with every .text word for which ``match(word)`` holds replaced by s_nop 0."""
    from tg_rdna.emulator.elf import parse_elf

    text = parse_elf(data).sections[".text"]
    out = bytearray(data)
    count = 0
    for off in range(text.offset, text.offset + text.size, 4):
        (word,) = struct.unpack_from("<I", out, off)
        if match(word):  # type: ignore[operator]
            struct.pack_into("<I", out, off, 0xBF800000)
            count += 1
    assert count, "nothing to patch"
    return bytes(out)


def _math_launch(data: bytes) -> None:
    co = CodeObject(data)
    dev = Device()
    x = np.linspace(-3, 3, 64).astype(np.float32)
    ptrs = [dev.put(np.zeros(64 * 5, np.float32)), dev.put(x), dev.put(x + 4)]
    co.launch("math", struct.pack("<QQQI", *ptrs, 64), (1,), (64,), dev.mem)


def test_removing_llvms_waits_is_caught() -> None:
    from tg_rdna.emulator import EmulatorError

    data = compile_ir(MATH)
    _math_launch(data)  # as LLVM emitted it: no alarm
    # s_waitcnt (SOPP 0xbf89) whose vmcnt field (bits 15:10) waits for something
    no_vmcnt = _patched(data, lambda w: w >> 16 == 0xBF89 and (w >> 10) & 0x3F < 0x3F)
    with pytest.raises(EmulatorError, match=r"reads v\d+ before an s_waitcnt vmcnt covers its load `global_load"):
        _math_launch(no_vmcnt)
    no_depctr = _patched(data, lambda w: w >> 16 == 0xBF88)  # s_waitcnt_depctr
    with pytest.raises(EmulatorError, match=r"TRANS->VALU hazard"):
        _math_launch(no_depctr)


FLOW = HEADER + """
declare i32 @llvm.amdgcn.readfirstlane(i32)

define amdgpu_kernel void @flow(ptr addrspace(1) %out, ptr addrspace(1) %a) #0 {
entry:""" + INDEX + """
  %pa = getelementptr i32, ptr addrspace(1) %a, i32 %i
  %n = load i32, ptr addrspace(1) %pa
  %u = call i32 @llvm.amdgcn.readfirstlane(i32 %n)
  br label %loop
loop:
  %j = phi i32 [ 0, %entry ], [ %jn, %cont ]
  %acc = phi i32 [ 0, %entry ], [ %acc2, %cont ]
  %odd = and i32 %j, 1
  %isodd = icmp ne i32 %odd, 0
  br i1 %isodd, label %then, label %else
then:
  %t = mul i32 %j, 3
  br label %merge
else:
  %e = sub i32 0, %j
  br label %merge
merge:
  %v = phi i32 [ %t, %then ], [ %e, %else ]
  %acc2 = add i32 %acc, %v
  %big = icmp sgt i32 %acc2, %n
  br i1 %big, label %exit, label %cont
cont:
  %jn = add i32 %j, 1
  %more = icmp ult i32 %jn, 100
  br i1 %more, label %loop, label %exit
exit:
  %res = phi i32 [ %acc2, %merge ], [ %acc2, %cont ]
  %jj = phi i32 [ %j, %merge ], [ %jn, %cont ]
  switch i32 %u, label %d [ i32 5, label %s5
                            i32 7, label %s7 ]
s5:
  %r5 = add i32 %res, 500
  br label %w
s7:
  %r7 = add i32 %res, 700
  br label %w
d:
  br label %w
w:
  %r = phi i32 [ %r5, %s5 ], [ %r7, %s7 ], [ %res, %d ]
  %i2 = mul i32 %i, 2
  %po = getelementptr i32, ptr addrspace(1) %out, i32 %i2
  store i32 %r, ptr addrspace(1) %po
  %p1 = getelementptr i32, ptr addrspace(1) %po, i32 1
  store i32 %jj, ptr addrspace(1) %p1
  ret void
}
"""


def test_llvm_divergent_loop_with_break_if_else_and_uniform_switch() -> None:
    co = CodeObject(compile_ir(FLOW))
    rng = np.random.default_rng(9)
    n = rng.integers(-5, 3000, 64 * 3).astype(np.int32)
    n[0], n[64] = 5, 7  # the first lane of groups 0 and 1 picks the switch case for its wave
    dev = Device()
    out = np.zeros((64 * 3, 2), np.int32)
    po, pa = dev.put(out), dev.put(n)
    co.launch("flow", struct.pack("<QQ", po, pa), (3,), (64,), dev.mem)
    got = dev.get(po, out)
    for k in range(64 * 3):
        acc, j = 0, 0
        while True:
            acc += 3 * j if j & 1 else -j
            if acc > n[k]:
                break
            j += 1
            if j >= 100:
                break
        first = n[k - k % 32]  # readfirstlane: the wave's first active lane
        acc += {5: 500, 7: 700}.get(int(first), 0)
        assert (got[k, 0], got[k, 1]) == (acc, j), k
