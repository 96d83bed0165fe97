"""Warp-wide matrix instructions: ``mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32``, and the ``mov.b32``
that packs two ``.f16`` values into one register for it.

``mma.sync`` is one instruction for a whole warp: each of its 32 threads holds a few elements of A (16x16),
B (16x8) and C/D (16x8) in registers, placed as the PTX ISA manual's "Matrix Fragments for mma.m16n8k16
with floating point type" section says (with ``groupID = laneid >> 2`` and ``threadID_in_group = laneid % 4``):

- A, four ``.b32`` registers holding a0..a7 (two ``.f16`` each, the lower half first): row ``groupID`` for
  a0, a1, a4, a5 and ``groupID + 8`` for the others; column ``threadID_in_group * 2 + (i & 1)``, plus 8 for
  a4..a7;
- B, two ``.b32`` registers holding b0..b3: row ``threadID_in_group * 2 + (i & 1)``, plus 8 for b2, b3;
  column ``groupID``;
- C and D, four ``.f32``: row ``groupID`` for c0, c1 and ``groupID + 8`` for c2, c3; column
  ``threadID_in_group * 2 + (i & 1)``.

The emulator gathers every warp's matrices from its threads' registers, computes ``D = A @ B + C`` (products
exact, the sum rounded once to float32) and scatters D back.  Every thread of each warp must take part: a
guarded or divergent ``mma`` is an error, as the ``.aligned`` qualifier requires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tg_ptx.emulator.context import Context, reader, writer
from tg_ptx.emulator.errors import EmulatorError
from tg_ptx.emulator.parser import Entry, Instruction, Vec
from tg_ptx.emulator.ptxtypes import TYPES

Run = Callable[[Context], None]
_MMA_MODS = ["sync", "aligned", "m16n8k16", "row", "col", "f32", "f16", "f16", "f32"]


def _error(ins: Instruction, what: str) -> EmulatorError:
    return EmulatorError(f"instruction {ins.opcode}{''.join('.' + m for m in ins.mods)} {what}", ins.line, ins.text)


def _vector(ins: Instruction, op: Any, count: int, what: str) -> list[Any]:
    if not isinstance(op, Vec) or len(op.items) != count:
        raise _error(ins, f"needs {what} as a {{vector}} of {count} registers")
    return list(op.items)


def mov_pack(ins: Instruction, entry: Entry) -> Run:
    """``mov.b32 d, {lo, hi}``: two 16-bit values in one 32-bit register, ``lo`` in the lower half."""
    if list(ins.mods) != ["b32"] or len(ins.operands) != 2:
        raise _error(ins, "(vector pack) is supported only as mov.b32 d, {lo, hi}")
    out = writer(ins.operands[0], TYPES["b32"], entry)
    low, high = (reader(op, TYPES["b16"], entry) for op in _vector(ins, ins.operands[1], 2, "its source"))

    def run(c: Context) -> None:
        lo = np.asarray(low(c)).astype(np.uint32)
        hi = np.asarray(high(c)).astype(np.uint32)
        out(c, lo | (hi << np.uint32(16)))
    return run


def _halves(words: list[np.ndarray]) -> np.ndarray:
    """Registers of two packed .f16 each -> (threads, 2 * registers) float16, each register's lower half first."""
    packed = np.stack([np.asarray(w).astype(np.uint32) for w in words], axis=-1)
    pairs = np.stack([packed & np.uint32(0xFFFF), packed >> np.uint32(16)], axis=-1).astype(np.uint16)
    return pairs.reshape(packed.shape[0], -1).view(np.float16)


def mma(ins: Instruction, entry: Entry) -> Run:
    if list(ins.mods) != _MMA_MODS:
        raise _error(ins, "is supported only as mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32")
    if len(ins.operands) != 4:
        raise _error(ins, f"takes 4 operands, not {len(ins.operands)}")
    d_op, a_op, b_op, c_op = ins.operands
    outs = [writer(op, TYPES["f32"], entry) for op in _vector(ins, d_op, 4, "D")]
    a_in = [reader(op, TYPES["b32"], entry) for op in _vector(ins, a_op, 4, "A")]
    b_in = [reader(op, TYPES["b32"], entry) for op in _vector(ins, b_op, 2, "B")]
    c_in = [reader(op, TYPES["f32"], entry) for op in _vector(ins, c_op, 4, "C")]
    lane = np.arange(32)
    group, in_group = lane >> 2, lane % 4
    a_rows = [group + 8 * ((i >> 1) & 1) for i in range(8)]
    a_cols = [in_group * 2 + (i & 1) + 8 * (i >> 2) for i in range(8)]
    b_rows = [in_group * 2 + (i & 1) + 8 * (i >> 1) for i in range(4)]
    c_rows = [group + 8 * (i >> 1) for i in range(4)]
    c_cols = [in_group * 2 + (i & 1) for i in range(4)]

    def run(c: Context) -> None:
        if c.n % 32 or (c.mask is not None and not c.mask.all()):
            raise EmulatorError("mma.sync.aligned needs all 32 threads of every warp (a whole-warp block, no guard "
                                "or divergence)")
        warps = c.n // 32
        a = _halves([r(c) for r in a_in]).reshape(warps, 32, 8).astype(np.float64)
        b = _halves([r(c) for r in b_in]).reshape(warps, 32, 4).astype(np.float64)
        acc = np.stack([np.broadcast_to(r(c), (c.n,)) for r in c_in], axis=-1).reshape(warps, 32, 4)
        ma, mb = np.zeros((warps, 16, 16)), np.zeros((warps, 16, 8))
        mc = np.zeros((warps, 16, 8))
        for i in range(8):
            ma[:, a_rows[i], a_cols[i]] = a[:, :, i]
        for i in range(4):
            mb[:, b_rows[i], group] = b[:, :, i]
            mc[:, c_rows[i], c_cols[i]] = acc[:, :, i]
        d = (ma @ mb + mc).astype(np.float32)
        for i, out in enumerate(outs):
            out(c, d[:, c_rows[i], c_cols[i]].reshape(c.n))
    return run
