"""One description of a kernel, from which both the kernel descriptor and the HSA metadata are written.

``llvm-mc`` checks neither against the other nor against the code, so both come from one
:class:`KernelDescription`: the ``.amdhsa_kernel`` block (the hardware's view: register counts, which SGPRs and
VGPRs the dispatch initialises, wave32, LDS, float modes, kernarg size) and the ``.amdgpu_metadata`` YAML (the
runtime's view: code object v5, arguments with offsets and kinds, segment sizes, register counts).

The ABI (the emulator in :mod:`tg_rdna.emulator` implements the same):

- kernarg segment: buffer i's 64-bit device address at offset 8*i, in ``Program.buffers`` order; then each
  ``Program.variables`` value in 4 bytes (an int32, or a float32's bits), in order; rounded up to 8
  (``explicit_size``, what the launch packs).
  Then code object v5's block of hidden arguments (256 bytes), with the ones an OpenCL kernel of LLVM lists
  (:data:`HIDDEN_ARGUMENTS`: work-group counts and sizes, remainders, global offsets, grid dimensions) declared in
  the metadata: the runtime fills them at launch (ROCm's, or the emulator playing its part); tg's kernels read
  none of them (their sizes are constants of the code);
- user SGPRs: the kernarg segment pointer in s[0:1]; then the work-group ids x (y, z when the launch has them)
  in s2 (s3, s4); the work-item ids packed in v0 (x: bits 0-9, y: 10-19, z: 20-29); wave32; EXEC holds the
  lanes that exist;
- float modes: denormals kept for f32 and f16/f64 (llvm-mc's default flushes f32), IEEE mode and DX10 clamp on.

Argument names are ``buf<i>`` and ``var_<name>``: names YAML reads as booleans or numbers (``n``, ``y``, ``on``,
``1``) make ROCm reject the metadata even when quoted, so :func:`safe_name` never produces one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TARGET = "amdgcn-amd-amdhsa--gfx1100"
TRIPLE = "amdgcn-amd-amdhsa"
MCPU = "gfx1100"
WAVE = 32
#: The registers gfx1100 gives one wave32 wave at most.
MAX_VGPRS = 256
MAX_SGPRS = 106
#: LDS one work group may use (bytes).
MAX_LDS = 64 * 1024

#: Code object v5's hidden arguments as LLVM lists them for an OpenCL kernel: (value kind, offset in the hidden block,
#: size).  The block follows the explicit arguments at an 8-byte boundary and is HIDDEN_SIZE bytes long.
HIDDEN_ARGUMENTS = (("hidden_block_count_x", 0, 4), ("hidden_block_count_y", 4, 4), ("hidden_block_count_z", 8, 4),
                    ("hidden_group_size_x", 12, 2), ("hidden_group_size_y", 14, 2), ("hidden_group_size_z", 16, 2),
                    ("hidden_remainder_x", 18, 2), ("hidden_remainder_y", 20, 2), ("hidden_remainder_z", 22, 2),
                    ("hidden_global_offset_x", 40, 8), ("hidden_global_offset_y", 48, 8),
                    ("hidden_global_offset_z", 56, 8), ("hidden_grid_dims", 64, 2))
HIDDEN_SIZE = 256

_YAML_SPECIAL = re.compile(r"^(y|n|yes|no|on|off|true|false|null|~|[-+]?[0-9][0-9_.eExXoObB+-]*|\.inf|\.nan)$",
                           re.IGNORECASE)


def safe_name(name: str, prefix: str) -> str:
    """An argument or kernel name the metadata may carry: ``[A-Za-z0-9_]``, never one YAML reads as a bool or
    number (``prefix`` is put in front of those and of names that start with a digit)."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name) or prefix
    if _YAML_SPECIAL.match(clean) or clean[0].isdigit():
        clean = f"{prefix}{clean}"
    return clean


@dataclass(frozen=True)
class Argument:
    name: str
    offset: int
    size: int
    kind: str  # "global_buffer", "by_value", or a hidden argument's kind ("hidden_block_count_x"...)


@dataclass(frozen=True)
class KernelDescription:
    """What the descriptor and the metadata both say about one kernel.

    ``buffers`` counts the pointer arguments, ``variables`` names the 4-byte ones (int32 or float32) after them;
    ``vgprs``/``sgprs`` are the registers the code uses (next free index); ``dims`` the launch dimensions (work-group
    ids x.. enabled, work-item ids up to that dimension packed in v0); ``lds`` the bytes of LDS per group; ``group``
    the largest work group the kernel is launched with.
    """

    name: str
    buffers: int
    variables: tuple[str, ...] = ()
    vgprs: int = 1
    sgprs: int = 8
    dims: int = 1
    lds: int = 0
    group: int = 256

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise ValueError(f"tg-rdna: kernel name {self.name!r} is not a plain symbol")
        if not 1 <= self.dims <= 3:
            raise ValueError(f"tg-rdna: {self.dims} launch dimensions (1 to 3)")
        if self.vgprs > MAX_VGPRS:
            raise ValueError(f"tg-rdna: kernel {self.name} needs {self.vgprs} VGPRs, more than a wave32 wave has "
                             f"({MAX_VGPRS}); tg-rdna does not spill registers")
        if self.sgprs > MAX_SGPRS:
            raise ValueError(f"tg-rdna: kernel {self.name} needs {self.sgprs} SGPRs (at most {MAX_SGPRS})")
        if self.lds > MAX_LDS:
            raise ValueError(f"tg-rdna: kernel {self.name} needs {self.lds} bytes of LDS (at most {MAX_LDS})")

    @property
    def arguments(self) -> tuple[Argument, ...]:
        args = [Argument(f"buf{i}", 8 * i, 8, "global_buffer") for i in range(self.buffers)]
        base = 8 * self.buffers
        args += [Argument(safe_name(f"var_{v}", "var_"), base + 4 * i, 4, "by_value")
                 for i, v in enumerate(self.variables)]
        args += [Argument("", self.explicit_size + offset, size, kind) for kind, offset, size in HIDDEN_ARGUMENTS]
        return tuple(args)

    @property
    def explicit_size(self) -> int:
        """Bytes of the arguments the launch packs (buffers, then variables), rounded up to 8."""
        size = 8 * self.buffers + 4 * len(self.variables)
        return (size + 7) // 8 * 8

    @property
    def kernarg_size(self) -> int:
        """The whole kernarg segment: the explicit arguments and the hidden block."""
        return self.explicit_size + HIDDEN_SIZE

    @property
    def first_free_sgpr(self) -> int:
        """The first SGPR the kernel may use freely: after the kernarg pointer and the work-group ids."""
        return 2 + self.dims

    def descriptor(self) -> str:
        """The ``.amdhsa_kernel`` block."""
        # VGPRs are allocated in granules; llvm-mc rounds, but a granule of at least one register is required
        fields = [
            ("amdhsa_user_sgpr_kernarg_segment_ptr", 1),
            ("amdhsa_system_sgpr_workgroup_id_x", 1),
            ("amdhsa_system_sgpr_workgroup_id_y", int(self.dims >= 2)),
            ("amdhsa_system_sgpr_workgroup_id_z", int(self.dims >= 3)),
            ("amdhsa_system_vgpr_workitem_id", self.dims - 1),
            ("amdhsa_next_free_vgpr", max(self.vgprs, 1)),
            ("amdhsa_next_free_sgpr", max(self.sgprs, self.first_free_sgpr)),
            ("amdhsa_reserve_vcc", 1),
            ("amdhsa_wavefront_size32", 1),
            ("amdhsa_kernarg_size", self.kernarg_size),
            ("amdhsa_group_segment_fixed_size", self.lds),
            ("amdhsa_private_segment_fixed_size", 0),
            ("amdhsa_float_denorm_mode_32", 3),
            ("amdhsa_float_denorm_mode_16_64", 3),
            ("amdhsa_ieee_mode", 1),
            ("amdhsa_dx10_clamp", 1),
        ]
        body = [f"  .{k} {v}" for k, v in fields]
        return "\n".join([f".amdhsa_kernel {self.name}", *body, ".end_amdhsa_kernel"])

    def metadata_entry(self) -> list[str]:
        """This kernel's item of ``amdhsa.kernels`` (YAML lines)."""
        lines = [f"  - .name: {self.name}", f"    .symbol: {self.name}.kd",
                 f"    .kernarg_segment_size: {self.kernarg_size}", "    .kernarg_segment_align: 8",
                 f"    .group_segment_fixed_size: {self.lds}", "    .private_segment_fixed_size: 0",
                 f"    .wavefront_size: {WAVE}", f"    .sgpr_count: {max(self.sgprs, self.first_free_sgpr) + 2}",
                 f"    .vgpr_count: {max(self.vgprs, 1)}", f"    .max_flat_workgroup_size: {self.group}",
                 "    .args:"]
        for a in self.arguments:
            space = ", .address_space: global" if a.kind == "global_buffer" else ""
            name = f".name: {a.name}, " if a.name else ""
            lines.append(f"      - {{{name}.offset: {a.offset}, .size: {a.size}, .value_kind: {a.kind}{space}}}")
        return lines


def _header() -> list[str]:
    return [".amdgcn_target \"" + TARGET + "\"", ".amdhsa_code_object_version 5"]


_METADATA_HEAD = [".amdgpu_metadata", "---", "amdhsa.version: [1, 2]", f"amdhsa.target: {TARGET}", "amdhsa.kernels:"]
_METADATA_TAIL = ["...", ".end_amdgpu_metadata", ""]


def metadata(kernels: list[KernelDescription]) -> str:
    """The ``.amdgpu_metadata`` block for ``kernels`` (code object v5: ``amdhsa.version [1, 2]``)."""
    lines = list(_METADATA_HEAD)
    for k in kernels:
        lines += k.metadata_entry()
    return "\n".join([*lines, *_METADATA_TAIL[:-1]])


def assembly(kernel: KernelDescription, body: list[str], comment: str = "") -> str:
    """The whole assembly file of one kernel: header, its code (``body``: instructions and labels), descriptor
    and metadata."""
    head = [f"// {comment}" if comment else f"// {kernel.name}", *_header(), ".text", f".globl {kernel.name}",
            ".p2align 8", f".type {kernel.name},@function", f"{kernel.name}:"]
    tail = [f".size {kernel.name}, .-{kernel.name}", "", ".rodata", ".p2align 6", kernel.descriptor(), "",
            metadata([kernel]), ""]
    return "\n".join([*head, *body, *tail])


def _parts(source: str) -> tuple[str, list[str], list[str]] | None:
    """A file :func:`assembly` wrote, split: its kernel's name, its code and descriptor lines, its metadata entry
    lines; None for any other text."""
    lines = source.split("\n")
    try:
        meta = lines.index(_METADATA_HEAD[0])
    except ValueError:
        return None
    head = len(_METADATA_HEAD)
    if lines[1:3] != _header() or lines[meta:meta + head] != _METADATA_HEAD or \
            lines[-len(_METADATA_TAIL):] != _METADATA_TAIL or not lines[4].startswith(".globl "):
        return None
    return lines[4].removeprefix(".globl "), lines[3:meta], lines[meta + head:-len(_METADATA_TAIL)]


def merge(sources: list[str]) -> str | None:
    """One assembly file holding the kernels of ``sources`` (files :func:`assembly` wrote, of different kernel
    names): their code and descriptors one after another, and one metadata block listing them all, so that LLVM
    builds them into one code object in one run.  None when they cannot share a file."""
    parts = [p for p in map(_parts, sources) if p is not None]
    if len(parts) != len(sources) or len({name for name, _, _ in parts}) != len(parts):
        return None
    lines = [f"// {len(parts)} kernels: {', '.join(name for name, _, _ in parts)}", *_header()]
    for _, code, _ in parts:
        lines += code
    lines += _METADATA_HEAD
    for _, _, entry in parts:
        lines += entry
    return "\n".join([*lines, *_METADATA_TAIL])
