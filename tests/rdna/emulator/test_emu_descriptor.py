"""The kernel descriptor sets the initial wave state: kernarg pointer, work-group ids, packed v0, EXEC."""

from __future__ import annotations

import numpy as np
import pytest
from rdna_emu_asm import Buffers, kernel, requires_llvm
from tg_rdna.emulator import CodeObject, EmulatorError, Memory

pytestmark = requires_llvm

# record (gid.x, gid.y, gid.z, v0, exec) per work-item at out[linear id * 5]
IDS = """
  s_load_b64 s[8:9], s[0:1], 0x0
  s_load_b32 s10, s[0:1], 0x8
  v_and_b32 v1, 0x3ff, v0
  v_bfe_u32 v2, v0, 10, 10
  v_bfe_u32 v3, v0, 20, 10
  s_waitcnt lgkmcnt(0)
  s_mul_i32 s11, s4, 3
  s_add_u32 s11, s11, s3
  s_mul_i32 s11, s11, 2
  s_add_u32 s11, s11, s2
  v_mad_u32_u24 v4, v3, 2, v2
  v_mad_u32_u24 v4, v4, 4, v1
  v_mad_u32_u24 v4, s11, 16, v4
  v_mul_u32_u24 v4, v4, 20
  v_mov_b32 v5, s2
  v_mov_b32 v6, s3
  v_mov_b32 v7, s4
  v_mov_b32 v8, v0
  v_mov_b32 v9, exec_lo
  global_store_b128 v4, v[5:8], s[8:9]
  global_store_b32 v4, v9, s[8:9] offset:16
  s_endpgm
"""


@pytest.mark.parametrize("chunk", ["4096", "3"])
def test_workgroup_ids_and_packed_workitem_ids(chunk: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_RDNA_EMU_CHUNK_WAVES", chunk)
    gs, ls = (2, 3, 2), (4, 2, 2)
    co = kernel(IDS, wg_ids="xyz", workitem_id=2)
    bufs = Buffers()
    n = 12 * 16
    out = bufs.add(np.zeros(n * 5, np.uint32))
    co.launch("k", bufs.kernarg(), gs, ls, bufs.mem)
    got = bufs.get(out, np.zeros((n, 5), np.uint32))
    for gz in range(2):
        for gy in range(3):
            for gx in range(2):
                for z in range(2):
                    for y in range(2):
                        for x in range(4):
                            lin = ((gz * 3 + gy) * 2 + gx) * 16 + (z * 2 + y) * 4 + x
                            assert list(got[lin, :4]) == [gx, gy, gz, x | (y << 10) | (z << 20)], lin
    assert (got[:, 4] == 0xFFFF).all()  # 16 work-items: the lanes 0-15 exist


def test_partial_last_wave_has_partial_exec() -> None:
    body = """
  s_load_b64 s[8:9], s[0:1], 0x0
  v_and_b32 v1, 0x3ff, v0
  v_lshlrev_b32 v1, 2, v1
  v_mov_b32 v2, exec_lo
  s_waitcnt lgkmcnt(0)
  global_store_b32 v1, v2, s[8:9]
  s_endpgm
"""
    co = kernel(body)
    bufs = Buffers()
    out = bufs.add(np.full(64, 7, np.uint32))
    co.launch("k", bufs.kernarg(), (1,), (40,), bufs.mem)  # 2 waves: 32 + 8 lanes
    got = bufs.get(out, np.zeros(64, np.uint32))
    assert (got[:32] == 0xFFFFFFFF).all() and (got[32:40] == 0xFF).all() and (got[40:] == 7).all()


def test_kernarg_bytes_reach_the_kernel() -> None:
    body = """
  s_load_b64 s[8:9], s[0:1], 0x0
  s_load_b32 s10, s[0:1], 0x8
  s_load_b32 s11, s[0:1], 0x3c
  v_mov_b32 v1, 0
  s_waitcnt lgkmcnt(0)
  v_mov_b32 v2, s10
  v_mov_b32 v3, s11
  global_store_b64 v1, v[2:3], s[8:9]
  s_endpgm
"""
    co = kernel(body, kernarg_size=64)
    bufs = Buffers()
    out = bufs.add(np.zeros(2, np.uint32))
    args = bufs.kernarg((1234567).to_bytes(4, "little")) + bytes(60 - 12) + (99).to_bytes(4, "little")
    co.launch("k", args, (1,), (1,), bufs.mem)
    assert list(bufs.get(out, np.zeros(2, np.uint32))) == [1234567, 99]


def test_wave64_descriptor_is_refused() -> None:
    co = kernel("  s_endpgm", wave32=0)
    with pytest.raises(EmulatorError, match="wave64"):
        co.launch("k", b"", (1,), (1,), Memory())


def test_unknown_kernel_name() -> None:
    co = kernel("  s_endpgm")
    with pytest.raises(EmulatorError, match=r"no kernel descriptor nope\.kd .*kernels: k"):
        co.launch("nope", b"", (1,), (1,), Memory())


def test_not_an_elf() -> None:
    with pytest.raises(EmulatorError, match="not a 64-bit"):
        CodeObject(b"hello")


def test_descriptor_fields_are_read() -> None:
    co = kernel("  s_endpgm", lds=512, kernarg_size=24, wg_ids="xy", workitem_id=1, denorm32=0)
    _, kd = co.descriptor("k")
    assert kd.group_segment_fixed_size == 512 and kd.kernarg_size == 24
    assert kd.workgroup_id_enabled == (True, True, False) and kd.vgpr_workitem_id == 1
    assert kd.wavefront_size32 and kd.float_denorm_mode_32 == 0 and kd.user_sgpr_count == 2


def test_uninitialised_registers_are_poisoned_not_zero() -> None:
    # an accumulator the kernel forgot to zero: garbage on the hardware, a NaN here (never a lucky 0)
    body = """
  s_load_b64 s[8:9], s[0:1], 0x0
  v_and_b32 v1, 0x3ff, v0
  v_lshlrev_b32 v1, 2, v1
  v_add_f32 v5, 1.0, v5
  v_mov_b32 v6, s20
  s_waitcnt lgkmcnt(0)
  global_store_b32 v1, v5, s[8:9]
  global_store_b32 v1, v6, s[8:9] offset:128
  s_endpgm
"""
    bufs = Buffers()
    out = bufs.add(np.zeros(64, np.float32))
    kernel(body).launch("k", bufs.kernarg(), (1,), (32,), bufs.mem)
    got = bufs.get(out, np.zeros(64, np.float32))
    assert np.isnan(got[:32]).all()
    assert (got[32:].view(np.uint32) != 0).all()


def test_vgprs_beyond_the_descriptor_count() -> None:
    co = kernel("  v_mov_b32 v40, 0\n  s_endpgm", vgprs=40)
    with pytest.raises(EmulatorError, match=r"v40 is beyond the 40 VGPRs the kernel descriptor allocates"):
        co.launch("k", b"", (1,), (32,), Memory())


def test_hidden_arguments_the_metadata_lists_are_filled_from_the_grid() -> None:
    """tg's kernels declare code object v5's hidden arguments after the explicit ones (tg_rdna.codeobject); the
    emulator, as ROCm's runtime does, writes them at the offsets the metadata note gives: work-group counts, group
    sizes, grid dims.  This kernel reads them back from the kernarg segment."""
    from rdna_emu_asm import assemble
    from tg_rdna.codeobject import KernelDescription, assembly

    desc = KernelDescription("hidden_args", buffers=1, dims=2, vgprs=8, sgprs=24)
    base = desc.explicit_size  # 8: one buffer address
    body = f"""
  s_load_b64 s[8:9], s[0:1], 0x0
  s_load_b32 s12, s[0:1], {base + 0:#x}
  s_load_b32 s13, s[0:1], {base + 4:#x}
  s_load_b32 s14, s[0:1], {base + 8:#x}
  s_load_b32 s15, s[0:1], {base + 12:#x}
  s_load_b32 s16, s[0:1], {base + 64:#x}
  v_mov_b32 v1, 0
  s_waitcnt lgkmcnt(0)
  s_and_b32 s16, s16, 0xffff
  v_mov_b32 v2, s12
  v_mov_b32 v3, s13
  v_mov_b32 v4, s14
  v_mov_b32 v5, s15
  v_mov_b32 v6, s16
  global_store_b128 v1, v[2:5], s[8:9]
  global_store_b32 v1, v6, s[8:9] offset:16
  s_endpgm""".strip("\n").splitlines()
    co = CodeObject(assemble(assembly(desc, body)))
    assert [a.kind for a in co.arguments("hidden_args")][:3] == ["global_buffer", "hidden_block_count_x",
                                                                 "hidden_block_count_y"]
    assert co.descriptor("hidden_args")[1].kernarg_size == base + 256
    bufs = Buffers()
    out = bufs.add(np.zeros(5, np.uint32))
    co.launch("hidden_args", bufs.kernarg(), (3, 2), (64, 1), bufs.mem)
    # block counts x, y, z; group size x | y << 16; grid dims
    assert list(bufs.get(out, np.zeros(5, np.uint32))) == [3, 2, 1, 64 | (1 << 16), 2]
    with pytest.raises(EmulatorError, match="passed 0 kernarg bytes, but the metadata places a global_buffer"):
        co.launch("hidden_args", b"", (1, 1), (32, 1), bufs.mem)
