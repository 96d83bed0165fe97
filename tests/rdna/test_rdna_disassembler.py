"""The emulator's in-process disassembler (libLLVM's C API): where its library comes from, its errors, and the
llvm-objdump fallback.  That it reads every corpus kernel as llvm-objdump does: test_rdna_corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdna_helpers import needs_llvm
from tg_rdna import build, toolchain
from tg_rdna.emulator import CodeObject, EmulatorError, llvm_disasm, program
from tg_rdna.emulator.elf import parse_elf

pytestmark = needs_llvm


@pytest.fixture
def decoder() -> llvm_disasm.Disassembler:
    found = llvm_disasm.disassembler()
    if found is None:
        pytest.skip("this LLVM has no shared libLLVM beside llvm-mc (the emulator uses llvm-objdump): Debian's "
                    "llvm-19 has one (apt-get install llvm-19)")
    return found


def test_the_library_is_llvm_mc_s_own_version(decoder: llvm_disasm.Disassembler) -> None:
    mc = toolchain.require("llvm-mc")
    candidates = llvm_disasm.library_candidates(mc)
    assert decoder.path in candidates
    assert all(str(mc.version[0]) in Path(p).name for p in candidates)
    version = llvm_disasm._version(decoder._lib)
    assert version is None or version[0] == mc.version[0]


def test_libraries_of_other_llvm_versions_are_never_candidates(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    for name in ("libLLVM-14.so.1", "libLLVM.so.15.0", "libLLVM.so.19.1", "libLLVM-19.so.1", "libLLVMCore.so.19"):
        (tmp_path / "lib" / name).write_bytes(b"")
    mc = toolchain.Tool("llvm-mc", str(tmp_path / "bin" / "llvm-mc"), (19, 1, 7))
    mine = [p for p in llvm_disasm.library_candidates(mc) if p.startswith(str(tmp_path))]
    assert [Path(p).name for p in mine] == ["libLLVM-19.so.1", "libLLVM.so.19.1"]


def test_bytes_that_are_no_instruction_are_an_error_naming_the_address(decoder: llvm_disasm.Disassembler) -> None:
    with pytest.raises(ValueError, match="no instruction decodes at 0x1004 .bytes ffffffff"):
        decoder.instructions(bytes.fromhex("000080bf") + b"\xff" * 4, 0x1000)  # s_nop 0, then nothing valid
    data = build.link(_store_one(), "store_one")
    text = parse_elf(data).sections[".text"]
    broken = bytearray(data)
    broken[text.offset:text.offset + 4] = b"\xff" * 4
    with pytest.raises(EmulatorError, match=f"no instruction decodes at 0x{text.address:x}"):
        program.disassemble(bytes(broken))


def test_objdump_is_used_when_asked_and_gives_the_same_program(monkeypatch: pytest.MonkeyPatch) -> None:
    data = build.link(_store_one(), "store_one")
    monkeypatch.setenv("TG_RDNA_DISASSEMBLER", "objdump")
    assert llvm_disasm.disassembler() is None
    monkeypatch.setattr(program, "_CACHE", {})
    with_objdump = program.disassemble(data)
    assert [i.text for i in with_objdump][-1] == "s_endpgm"
    monkeypatch.setenv("TG_RDNA_DISASSEMBLER", "auto")
    monkeypatch.setattr(program, "_CACHE", {})
    if llvm_disasm.disassembler() is not None:
        assert program.disassemble(data) == with_objdump
    assert "global_store_b32" in CodeObject(data).disassembly()


def test_an_unknown_setting_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_RDNA_DISASSEMBLER", "llvm-objdump")
    with pytest.raises(ValueError, match="TG_RDNA_DISASSEMBLER='llvm-objdump': use 'auto'"):
        llvm_disasm.disassembler()


def test_an_encoding_llvm_flags_is_an_error(decoder: llvm_disasm.Disassembler) -> None:
    """s_mov_b64 with an odd destination: LLVM prints it as s[0:1] (not what the hardware would write) and warns."""
    assert decoder.instructions((0xBE800180).to_bytes(4, "little"), 0)[0][1] == "s_mov_b64 s[0:1], 0"
    with pytest.raises(ValueError, match="LLVM flags the instruction at 0x0 .*scalar reg isn't aligned"):
        decoder.instructions((0xBE810180).to_bytes(4, "little"), 0)


def test_a_library_others_could_write_is_never_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = llvm_disasm.library_candidates(toolchain.require("llvm-mc"))
    if not real:
        pytest.skip("no shared libLLVM of llvm-mc's version here (Debian: apt-get install llvm-19)")
    writable = tmp_path / "libLLVM.so.19.1"
    writable.write_bytes(b"")
    writable.chmod(0o666)
    loaded: list[str] = []
    original = llvm_disasm.ctypes.CDLL
    monkeypatch.setattr(llvm_disasm.ctypes, "CDLL", lambda path, *a, **k: loaded.append(path) or original(path))
    monkeypatch.setattr(llvm_disasm, "library_candidates", lambda mc: [str(writable), *real])
    llvm_disasm._load.cache_clear()
    try:
        found = llvm_disasm._load()
    finally:
        llvm_disasm._load.cache_clear()
    assert str(writable) not in loaded and found is not None and found.path == real[0]


def test_a_library_others_could_have_written_is_not_loaded(tmp_path: Path) -> None:
    lib = tmp_path / "libLLVM.so.19"
    lib.write_bytes(b"")
    tmp_path.chmod(0o755)
    lib.chmod(0o644)
    assert llvm_disasm._trusted(str(lib))
    lib.chmod(0o666)
    assert not llvm_disasm._trusted(str(lib))
    lib.chmod(0o644)
    tmp_path.chmod(0o777)
    assert not llvm_disasm._trusted(str(lib))
    tmp_path.chmod(0o755)


def _store_one() -> str:
    from tg_rdna.codeobject import KernelDescription, assembly

    body = ["  s_load_b64 s[4:5], s[0:1], 0x0", "  v_mov_b32 v1, 1.0", "  v_lshlrev_b32 v2, 2, v0",
            "  s_waitcnt lgkmcnt(0)", "  global_store_b32 v2, v1, s[4:5]", "  s_endpgm"]
    return assembly(KernelDescription("store_one", 1, (), vgprs=3, sgprs=6), body)
