"""A linked code object, ready to launch its kernels on the emulator.

The kernel descriptor ``<name>.kd`` sets each wave's initial state, per LLVM AMDGPUUsage ("Initial
Kernel Execution State"): the enabled user SGPRs in order from s0 (private segment buffer, dispatch
pointer, queue pointer, kernarg segment pointer, dispatch id, flat scratch init, private segment
size), then from SGPR ``USER_SGPR_COUNT`` the enabled work-group ids x, y, z; v0 holds the packed
work-item ids (x in bits 0-9, y in 10-19, z in 20-29, as far as ENABLE_VGPR_WORKITEM_ID enables them);
EXEC holds the lanes of the wave that exist.  A group of N work-items is ceil(N/32) waves (wave32
only).  Of the user SGPRs, the kernarg segment pointer, the dispatch pointer (an AQL dispatch packet with the
sizes) and the dispatch id are provided; the others (private segment buffer, queue pointer, flat scratch)
and scratch memory are refused.  The kernarg bytes are copied into an allocation of the launch's
:class:`Memory`, and the hidden arguments the code object's metadata lists for the kernel (:mod:`.metadata`) are
written after them from the grid, as ROCm's runtime does: work-group counts and sizes, remainders (0: tg launches
whole groups), global offsets (0) and the grid's dimensions; runtime services it lacks (hostcall, heap, queue) are
null pointers.  Large grids
run in chunks of whole work-groups (``TG_RDNA_EMU_CHUNK_WAVES`` waves at a time, default 4096).
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from tg_rdna.emulator.elf import ElfFile, KernelDescriptor, parse_elf
from tg_rdna.emulator.errors import EmulatorError
from tg_rdna.emulator.executor import Step, compile_program, run
from tg_rdna.emulator.memory import Memory
from tg_rdna.emulator.metadata import KernelArgument, kernel_arguments
from tg_rdna.emulator.operands import EXEC_LO
from tg_rdna.emulator.program import disassemble
from tg_rdna.emulator.state import U32, Waves


@dataclass(frozen=True)
class Decoded:
    """A code object's .text, decoded once per process (by its sha256): its steps, each step's index by instruction
    address, and each step's instruction text (to name one in an error)."""

    steps: list[Step]
    index: dict[int, int]
    texts: list[str]


_DECODED: dict[str, Decoded] = {}
# kernel_code_properties bit -> (name, SGPR count) for the user SGPRs, in their order
_USER_SGPRS = [(0, "private segment buffer", 4), (1, "dispatch ptr", 2), (2, "queue ptr", 2),
               (3, "kernarg segment ptr", 2), (4, "dispatch id", 2), (5, "flat scratch init", 2),
               (6, "private segment size", 1)]
MAX_WORKGROUP_SIZE = 1024
DEFAULT_CHUNK_WAVES = 4096
KERNARG_PAD = 256


def chunk_waves() -> int:
    """Waves run together; a larger grid runs in chunks of whole work-groups (they are independent)."""
    return int(os.environ.get("TG_RDNA_EMU_CHUNK_WAVES", DEFAULT_CHUNK_WAVES))


class CodeObject:
    """``CodeObject(elf_bytes).launch(name, kernarg, global_size, local_size, memory)``."""

    def __init__(self, elf_bytes: bytes | bytearray | memoryview) -> None:
        self.data = bytes(elf_bytes)
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.elf: ElfFile = parse_elf(self.data)
        if ".text" not in self.elf.sections:
            raise EmulatorError("the code object has no .text section")
        self.kernels = sorted(n[:-3] for n in self.elf.symbols if n.endswith(".kd"))
        self.last_steps = 0  # steps of the last launch (one instruction for every wave at its address)
        self.last_issued = 0  # instructions the waves of the last launch issued, one per wave per step
        self.dispatches = 0
        self._arguments: dict[str, tuple[KernelArgument, ...]] | None = None
        self._ranges: dict[str, tuple[int, int]] = {}

    def arguments(self, name: str) -> tuple[KernelArgument, ...]:
        """The kernel's arguments as the metadata note lists them (explicit and hidden)."""
        if self._arguments is None:
            self._arguments = kernel_arguments(self.elf)
        return self._arguments.get(name, ())

    def descriptor(self, name: str) -> tuple[int, KernelDescriptor]:
        if name + ".kd" not in self.elf.symbols:
            raise EmulatorError(f"no kernel descriptor {name}.kd in the code object (kernels: "
                                f"{', '.join(self.kernels) or 'none'})")
        addr, _ = self.elf.symbols[name + ".kd"]
        return addr, KernelDescriptor.parse(self.elf.bytes_at(addr, 64))

    def disassembly(self) -> str:
        """LLVM's disassembly of .text as the emulator reads it (address and instruction per line)."""
        return "\n".join(f"{s.ins.address:#08x}  {s.ins.text}" for s in self.steps())

    def decoded(self) -> Decoded:
        found = _DECODED.get(self.sha256)
        if found is None:
            steps = compile_program(disassemble(self.data))
            found = _DECODED[self.sha256] = Decoded(steps, {s.ins.address: i for i, s in enumerate(steps)},
                                                     [s.ins.text for s in steps])
        return found

    def steps(self) -> list[Step]:
        return self.decoded().steps

    def code_range(self, name: str) -> tuple[int, int]:
        """The steps of kernel ``name``'s own code, [first, end): its symbol's address range (a code object may hold
        kernels built together; one that runs past its own end must not run into the next), else all of .text."""
        if name not in self._ranges:
            steps, index = self.steps(), self.decoded().index
            addr, size = self.elf.symbols.get(name, (0, 0))
            if size <= 0 or addr not in index:
                self._ranges[name] = 0, len(steps)
            else:
                end = next((i for i in range(index[addr], len(steps)) if steps[i].ins.address >= addr + size),
                           len(steps))
                self._ranges[name] = index[addr], end
        return self._ranges[name]

    def launch(self, name: str, kernarg: bytes | bytearray | memoryview, global_size: tuple[int, ...],
               local_size: tuple[int, ...], memory: Memory) -> None:
        kd_addr, kd = self.descriptor(name)
        if not kd.wavefront_size32:
            raise EmulatorError("the kernel descriptor asks for wave64 (ENABLE_WAVEFRONT_SIZE32 is 0); the "
                                "emulator runs gfx11 wave32 kernels only", name)
        if kd.private_segment_fixed_size:
            raise EmulatorError("kernels that use scratch (private segment) are not supported", name)
        gs, ls = _dims(global_size, "global_size", name), _dims(local_size, "local_size", name)
        items = math.prod(ls)
        if items > MAX_WORKGROUP_SIZE:
            raise EmulatorError(f"a work-group of {items} work-items exceeds {MAX_WORKGROUP_SIZE}", name)
        program = self.decoded()
        entry = kd_addr + kd.entry_offset
        index = program.index
        if entry not in index:
            raise EmulatorError(f"the kernel entry 0x{entry:x} is not an instruction of .text", name)
        code = self.code_range(name)
        n_groups = math.prod(gs)
        if n_groups == 0 or items == 0:
            return
        wpg = -(-items // 32)
        n_vgpr = ((kd.rsrc1 & 0x3F) + 1) * 8
        kernarg = bytes(kernarg)
        # the segment is padded (scalar loads may read a few dwords past the last argument) and whatever the
        # caller did not provide, hidden arguments included, is garbage (0xff bytes), as on the hardware
        size = -(-max(len(kernarg), kd.kernarg_size) // 64) * 64 + KERNARG_PAD
        segment = bytearray(kernarg + b"\xff" * (size - len(kernarg)))
        for arg in self.arguments(name):
            if not arg.kind.startswith("hidden_"):
                if arg.offset + arg.size > len(kernarg):
                    raise EmulatorError(f"the launch passed {len(kernarg)} kernarg bytes, but the metadata places a "
                                        f"{arg.kind} argument at {arg.offset}", name)
                continue
            if arg.offset < len(kernarg):
                raise EmulatorError(f"the metadata places {arg.kind} at {arg.offset}, inside the {len(kernarg)} "
                                    "explicit kernarg bytes the launch passed", name)
            value = _hidden_value(arg.kind, gs, ls)
            segment[arg.offset:arg.offset + arg.size] = value.to_bytes(arg.size, "little")
        kernarg_addr = memory.allocate(size)
        memory.write(kernarg_addr, segment)
        extra: list[int] = []
        per_chunk = max(1, chunk_waves() // wpg)
        self.dispatches += 1
        self.last_steps = self.last_issued = 0
        try:
            for first in range(0, n_groups, per_chunk):
                count = min(per_chunk, n_groups - first)
                st = Waves(count * wpg, n_vgpr, count, wpg, kd.group_segment_fixed_size, kd.float_denorm_mode_32,
                           kd.float_denorm_mode_16_64)
                extra += self._initial_state(st, kd, name, gs, ls, wpg, kernarg_addr, memory, first, extra)
                st.pc[:] = index[entry]
                self.last_steps += run(program.steps, st, name, memory, code, program.texts)
                self.last_issued += st.issued
        finally:
            memory.free(kernarg_addr)
            for a in extra:
                memory.free(a)

    def _initial_state(self, st: Waves, kd: KernelDescriptor, name: str, gs: tuple[int, int, int],
                       ls: tuple[int, int, int], wpg: int, kernarg_addr: int, memory: Memory, first_group: int,
                       already: list[int]) -> list[int]:
        allocated: list[int] = []
        sgpr = 0
        for bit, what, count in _USER_SGPRS:
            if not kd.user_sgpr(bit):
                continue
            if bit == 3:
                value = kernarg_addr
            elif bit == 4:
                value = self.dispatches  # the dispatch id: a per-code-object launch counter
            elif bit == 1:
                if already:
                    value = already[0]
                else:
                    value = memory.allocate(64)
                    allocated.append(value)
                    memory.write(value, _dispatch_packet(gs, ls, kd, kernarg_addr))
            else:
                raise EmulatorError(f"the user SGPR {what!r} is not supported", name)
            for i in range(count):
                st.s[sgpr + i, :] = (value >> (32 * i)) & 0xFFFFFFFF
            sgpr += count
        if sgpr > kd.user_sgpr_count:
            raise EmulatorError(f"the descriptor enables {sgpr} user SGPRs but USER_SGPR_COUNT is "
                                f"{kd.user_sgpr_count}", name)
        if kd.workgroup_info:
            raise EmulatorError("ENABLE_SGPR_WORKGROUP_INFO is not supported", name)
        group = first_group + np.arange(st.n) // wpg
        ids = (group % gs[0], (group // gs[0]) % gs[1], group // (gs[0] * gs[1]))
        sgpr = kd.user_sgpr_count
        for enabled, gid in zip(kd.workgroup_id_enabled, ids):
            if enabled:
                st.s[sgpr, :] = gid.astype(U32)
                sgpr += 1
        if kd.private_segment:
            st.s[sgpr, :] = 0  # scratch wave offset (no scratch is used: checked above)
        local = (np.arange(st.n) % wpg)[:, None] * 32 + np.arange(32)[None, :]
        x, y, z = local % ls[0], (local // ls[0]) % ls[1], local // (ls[0] * ls[1])
        v0 = x.astype(U32)
        if kd.vgpr_workitem_id >= 1:
            v0 |= (y.astype(U32) << U32(10))
        if kd.vgpr_workitem_id >= 2:
            v0 |= (z.astype(U32) << U32(20))
        exists = local < math.prod(ls)
        st.v[0] = np.where(exists, v0, 0)
        st.s[EXEC_LO, :] = (exists.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=1).astype(U32)
        return allocated


def _dims(size: tuple[int, ...], what: str, name: str) -> tuple[int, int, int]:
    dims = tuple(int(d) for d in size)
    if not 1 <= len(dims) <= 3 or any(d < 0 for d in dims):
        raise EmulatorError(f"{what} must be 1 to 3 non-negative sizes, got {size!r}", name)
    return (*dims, *(1,) * (3 - len(dims)))  # type: ignore[return-value]


def _grid_dims(gs: tuple[int, int, int], ls: tuple[int, int, int]) -> int:
    return 3 if gs[2] * ls[2] > 1 else 2 if gs[1] * ls[1] > 1 else 1


def _hidden_value(kind: str, gs: tuple[int, int, int], ls: tuple[int, int, int]) -> int:
    """What ROCm writes for a hidden argument of code object v5.  The runtime services the emulator does not provide
    (hostcall and printf buffers, heap, queue, multigrid sync, apertures...) get 0, a null pointer: a kernel that
    uses one fails on its first access, outside every allocation."""
    axis = "xyz".find(kind[-1]) if kind[-2] == "_" else -1
    if kind.startswith("hidden_block_count_") and axis >= 0:
        return gs[axis]
    if kind.startswith("hidden_group_size_") and axis >= 0:
        return ls[axis]
    if kind == "hidden_grid_dims":
        return _grid_dims(gs, ls)
    return 0  # remainders (tg launches whole work-groups), global offsets, dynamic LDS size, services


def _dispatch_packet(gs: tuple[int, int, int], ls: tuple[int, int, int], kd: KernelDescriptor,
                     kernarg_addr: int) -> bytes:
    """An hsa_kernel_dispatch_packet_t: work-group sizes and grid sizes (in work-items)."""
    dims = _grid_dims(gs, ls)
    grid = [g * s for g, s in zip(gs, ls)]
    return struct.pack("<HHHHHHIIIIIQQQQ", 2, dims, ls[0], ls[1], ls[2], 0, grid[0], grid[1], grid[2], 0,
                       kd.group_segment_fixed_size, 0, kernarg_addr, 0, 0)
