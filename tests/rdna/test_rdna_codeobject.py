"""The kernel descriptor and the HSA metadata, written from one description, and what LLVM makes of them."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from rdna_helpers import needs_llvm
from tg_rdna import build, toolchain
from tg_rdna.codeobject import KernelDescription, assembly, safe_name

BODY = ["  s_load_b64 s[4:5], s[0:1], 0x0", "  v_mov_b32 v1, 1.0", "  v_lshlrev_b32 v2, 2, v0",
        "  s_waitcnt lgkmcnt(0)", "  global_store_b32 v2, v1, s[4:5]", "  s_endpgm"]


def _tool(name: str, *args: str, data: bytes) -> str:
    path = toolchain.find(name)
    assert path is not None
    with tempfile.TemporaryDirectory() as tmp:
        co = Path(tmp) / "k.co"
        co.write_bytes(data)
        return subprocess.run([path, *args, str(co)], capture_output=True, text=True, check=True).stdout


def test_kernarg_size_counts_buffers_then_int32_variables_rounded_to_8_then_the_hidden_block() -> None:
    assert KernelDescription("k", 3).explicit_size == 24
    assert KernelDescription("k", 2, ("n",)).explicit_size == 24
    assert KernelDescription("k", 1, ("a", "b")).explicit_size == 16
    assert KernelDescription("k", 1, ("a", "b")).kernarg_size == 16 + 256  # code object v5's hidden block
    args = KernelDescription("k", 2, ("n",)).arguments
    assert [(a.offset, a.size, a.kind) for a in args[:4]] == [(0, 8, "global_buffer"), (8, 8, "global_buffer"),
                                                              (16, 4, "by_value"), (24, 4, "hidden_block_count_x")]
    hidden = {a.kind: (a.offset, a.size) for a in args[3:]}
    assert hidden["hidden_group_size_x"] == (24 + 12, 2) and hidden["hidden_global_offset_x"] == (24 + 40, 8)
    assert hidden["hidden_grid_dims"] == (24 + 64, 2) and all(a.name == "" for a in args[3:])


@pytest.mark.parametrize("name", ["n", "y", "no", "on", "Off", "1", "true", "null", "0x10", "1e5", "1.5"])
def test_names_yaml_reads_as_bool_or_number_are_never_produced(name: str) -> None:
    safe = safe_name(name, "var_")
    assert safe != name and safe.startswith("var_")
    assert safe_name("buf0", "x") == "buf0" and safe_name("a-b", "x") == "a_b"


def test_descriptor_and_metadata_say_the_same() -> None:
    d = KernelDescription("E_4", 2, ("n",), vgprs=9, sgprs=12, dims=2, lds=512, group=128)
    text = d.descriptor()
    for line in (".amdhsa_kernarg_size 280", ".amdhsa_next_free_vgpr 9", ".amdhsa_next_free_sgpr 12",
                 ".amdhsa_group_segment_fixed_size 512", ".amdhsa_system_sgpr_workgroup_id_y 1",
                 ".amdhsa_system_sgpr_workgroup_id_z 0", ".amdhsa_system_vgpr_workitem_id 1",
                 ".amdhsa_wavefront_size32 1", ".amdhsa_float_denorm_mode_32 3", ".amdhsa_float_denorm_mode_16_64 3",
                 ".amdhsa_user_sgpr_kernarg_segment_ptr 1"):
        assert line in text, line
    meta = "\n".join(d.metadata_entry())
    for line in (".kernarg_segment_size: 280", ".group_segment_fixed_size: 512", ".vgpr_count: 9",
                 ".symbol: E_4.kd", ".wavefront_size: 32", ".max_flat_workgroup_size: 128", ".name: var_n,"):
        assert line in meta, line


def test_out_of_range_descriptions_are_refused() -> None:
    with pytest.raises(ValueError, match="VGPRs"):
        KernelDescription("k", 1, vgprs=300)
    with pytest.raises(ValueError, match="LDS"):
        KernelDescription("k", 1, lds=70000)
    with pytest.raises(ValueError, match="not a plain symbol"):
        KernelDescription("1k", 1)


@needs_llvm
def test_llvm_builds_the_code_object_the_description_says(cache_dir: Path) -> None:
    desc = KernelDescription("store_one", 1, ("n",), vgprs=3, sgprs=6, lds=256, group=64)
    data = build.link(assembly(desc, BODY), "store_one")
    assert data[:4] == b"\x7fELF"
    notes = _tool("llvm-readelf", "--notes", data=data)
    for text in ("amdhsa.version:", "- 1\n  - 2", "amdhsa.target:   amdgcn-amd-amdhsa--gfx1100",
                 ".name:           buf0", ".value_kind:     global_buffer", ".name:           var_n",
                 ".value_kind:     by_value", ".kernarg_segment_size: 272", ".group_segment_fixed_size: 256",
                 ".offset:         16\n        .size:           4\n        .value_kind:     hidden_block_count_x",
                 ".offset:         80\n        .size:           2\n        .value_kind:     hidden_grid_dims",
                 ".symbol:         store_one.kd", ".wavefront_size: 32"):
        assert text in notes, text
    symbols = _tool("llvm-readelf", "--symbols", data=data)
    assert "store_one.kd" in symbols and " store_one\n" in symbols
    listing = build.disassemble(data)
    assert "<store_one>:" in listing and "global_store_b32 v2, v1, s[4:5]" in listing


@needs_llvm
def test_the_descriptor_bytes_hold_kernarg_size_lds_and_wave32() -> None:
    """The 64-byte kernel descriptor (AMDGPUUsage: group_segment_fixed_size at 0, kernarg_size at 8,
    kernel_code_properties at 56 with bit 10 = wavefront size 32)."""
    import struct

    desc = KernelDescription("store_one", 1, (), vgprs=3, sgprs=6, lds=256)
    data = build.link(assembly(desc, BODY), "store_one")
    path = toolchain.find("llvm-objdump")
    assert path is not None
    with tempfile.TemporaryDirectory() as tmp:
        co = Path(tmp) / "k.co"
        co.write_bytes(data)
        dump = subprocess.run([path, "-s", "-j", ".rodata", str(co)], capture_output=True, text=True,
                              check=True).stdout
    words = b"".join(bytes.fromhex("".join(line.split()[1:5])) for line in dump.splitlines()
                     if line.startswith(" ") and len(line.split()) >= 5)[:64]
    group, private, kernarg = struct.unpack_from("<IIQ", words, 0)
    assert (group, private, kernarg) == (256, 0, 8 + 256)
    props = struct.unpack_from("<H", words, 56)[0]
    assert props & (1 << 10), hex(props)  # ENABLE_WAVEFRONT_SIZE32
    assert props & 1 == 0 and props & (1 << 3)  # no private segment buffer; the kernarg segment pointer


@needs_llvm
def test_an_assembler_error_shows_the_message_and_the_lines_around_it() -> None:
    desc = KernelDescription("bad", 1)
    source = assembly(desc, [*BODY[:2], "  v_bogus_f32 v1, v2", *BODY[2:]])
    with pytest.raises(build.AssemblerError) as info:
        build.link(source, "bad")
    message = str(info.value)
    assert "llvm-mc rejected kernel bad" in message and "invalid instruction" in message
    assert ">>" in message and "v_bogus_f32 v1, v2" in message and "v_mov_b32 v1, 1.0" in message


@needs_llvm
def test_code_objects_are_cached_privately_and_reused(cache_dir: Path) -> None:
    cache = build.CodeObjectCache()
    source = assembly(KernelDescription("store_one", 1, vgprs=3), BODY)
    first = cache.build(source, "store_one")
    second = cache.build(source, "store_one")
    assert first == second and (cache.hits, cache.misses) == (1, 1)
    files = list(cache_dir.iterdir())
    assert files and all(f.suffix == ".co" for f in files)
    assert oct(cache_dir.stat().st_mode & 0o777) == "0o700"
    other = cache.build(source.replace("1.0", "2.0"), "store_one")
    assert other != first and cache.misses == 2
