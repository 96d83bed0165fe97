"""Builds memory instructions: SMEM (``s_load_*``), global/flat loads and stores, and LDS (``ds_*``).

Every access is bounds-checked: a global address outside every allocation, or an LDS address beyond
the group segment the kernel descriptor declares, is an error naming the address.  Only the lanes
EXEC enables access memory.  Loads register their destinations with the tracker (vmcnt for global,
lgkmcnt for SMEM and LDS); the executor checks the waits.
"""

from __future__ import annotations

import re

import numpy as np

from tg_rdna.emulator.errors import EmulatorError
from tg_rdna.emulator.operands import NULL, Operand
from tg_rdna.emulator.state import U32, U64, Ctx
from tg_rdna.emulator.step import Built, modifier_values, regs_of
from tg_rdna.emulator.tracking import KIND_LDS, KIND_SMEM, KIND_VM

_SMEM = {"s_load_b32": 1, "s_load_b64": 2, "s_load_b128": 4, "s_load_b256": 8, "s_load_b512": 16}
# suffix -> (bytes, how the loaded bytes land in the register: 'w' words, 'u'/'i' extend, 'lo'/'hi' d16)
_LOAD = {"u8": (1, "u"), "i8": (1, "i"), "u16": (2, "u"), "i16": (2, "i"), "b32": (4, "w"), "b64": (8, "w"),
         "b96": (12, "w"), "b128": (16, "w"), "d16_b16": (2, "lo"), "d16_hi_b16": (2, "hi"),
         "d16_u8": (1, "lo"), "d16_i8": (1, "lo_i"), "d16_hi_u8": (1, "hi"), "d16_hi_i8": (1, "hi_i")}
_STORE = {"b8": (1, "lo"), "b16": (2, "lo"), "b32": (4, "w"), "b64": (8, "w"), "b96": (12, "w"),
          "b128": (16, "w"), "d16_hi_b8": (1, "hi"), "d16_hi_b16": (2, "hi")}
_GLOBAL = re.compile(r"^(global|flat)_(load|store)_(\w+)$")
_DS = re.compile(r"^ds_(load|store)_(\w+)$")
_DS2 = re.compile(r"^ds_(load|store)_2addr_(stride64_)?b(32|64)$")
_DS_SUFFIX = {"load": {"b32": "b32", "b64": "b64", "b96": "b96", "b128": "b128", "u8": "u8", "i8": "i8",
                       "u16": "u16", "i16": "i16", "u8_d16": "d16_u8", "u16_d16": "d16_b16",
                       "u8_d16_hi": "d16_hi_u8", "u16_d16_hi": "d16_hi_b16", "i8_d16": "d16_i8",
                       "i8_d16_hi": "d16_hi_i8"},
              "store": {"b8": "b8", "b16": "b16", "b32": "b32", "b64": "b64", "b96": "b96", "b128": "b128",
                        "b8_d16_hi": "d16_hi_b8", "b16_d16_hi": "d16_hi_b16"}}


def _offset(md: dict[str, str]) -> int:
    return int(md.get("offset", "0"), 0)


def _words_from_bytes(raw: np.ndarray) -> np.ndarray:
    """(n, nbytes) uint8 -> (n, ceil(nbytes/4)) uint32 (little endian)."""
    n, nb = raw.shape
    if nb % 4 == 0:
        return np.ascontiguousarray(raw).view("<u4").astype(U32, copy=False)
    padded = np.zeros((n, (nb + 3) // 4 * 4), np.uint8)
    padded[:, :nb] = raw
    return padded.view("<u4").astype(U32)


def _load_value(raw: np.ndarray, how: str, old: np.ndarray) -> np.ndarray:
    """The register words a load of kind ``how`` produces; ``old`` is the first destination word."""
    nb = raw.shape[1]
    words = _words_from_bytes(raw)
    if how == "w":
        return words
    v = words[:, 0]
    if how == "i" or how.endswith("_i"):
        bits = 8 * nb
        v = (v.astype(np.int64) ^ (1 << (bits - 1))) - (1 << (bits - 1))
        v = (v & 0xFFFF if how != "i" else v).astype(np.int64).astype(np.uint64).astype(U32)
    if how.startswith("lo"):
        return ((old & U32(0xFFFF0000)) | (v & U32(0xFFFF)))[:, None]
    if how.startswith("hi"):
        return ((old & U32(0xFFFF)) | ((v & U32(0xFFFF)) << U32(16)))[:, None]
    return v[:, None]


def _store_bytes(words: np.ndarray, how: str, nbytes: int) -> np.ndarray:
    """(n, nwords) uint32 register words -> (n, nbytes) uint8 to store."""
    if how == "hi":
        words = (words[:, :1] >> U32(16)).astype(U32)
    return np.ascontiguousarray(words.astype("<u4")).view(np.uint8)[:, :nbytes]


def build_memory(name: str, ops: list[Operand], mods: tuple[str, ...]) -> Built | None:
    md = modifier_values(mods)
    extra = set(md) - {"offset", "offset0", "offset1", "glc", "slc", "dlc"}  # cache policy: no effect here
    if extra:
        raise EmulatorError(f"unsupported memory modifier(s) {', '.join(sorted(extra))}")
    if name in _SMEM:
        return _smem(_SMEM[name], ops, md)
    m = _GLOBAL.match(name)
    if m:
        kind, suffix = m.group(2), m.group(3)
        table = _LOAD if kind == "load" else _STORE
        if suffix not in table:
            raise EmulatorError(f"unsupported instruction {name}")
        return _global(kind == "load", table[suffix], ops, md, flat=m.group(1) == "flat")
    m = _DS2.match(name)
    if m:
        return _ds2(m.group(1) == "load", int(m.group(3)) // 8, m.group(2) == "stride64_", ops, md)
    if name == "ds_bpermute_b32":
        return _bpermute(ops, md)
    m = _DS.match(name)
    if m:
        kind, suffix = m.group(1), m.group(2)
        if suffix not in _DS_SUFFIX[kind]:
            raise EmulatorError(f"unsupported instruction {name}")
        spec = (_LOAD if kind == "load" else _STORE)[_DS_SUFFIX[kind][suffix]]
        return _ds(kind == "load", spec, ops, md)
    return None


def _smem(nwords: int, ops: list[Operand], md: dict[str, str]) -> Built:
    dst, base, off = ops
    if dst.count != nwords:
        raise EmulatorError("destination size does not match the load")
    extra = _offset(md)

    def run(ctx: Ctx) -> None:
        addr = ctx.sread(base, "u64") + ctx.sread(off, "u32").astype(U64) + U64(extra)
        addr &= ~U64(3)
        raw = ctx.memory.gather(addr, 4 * nwords, "scalar load")
        words = _words_from_bytes(raw)
        for i in range(nwords):
            ctx.set_sreg(dst.index + i, words[:, i])

    return Built(run, regs_of([base, off]), regs_of([dst]), load_kind=KIND_SMEM, load_dests=dst.regs())


def _lane_addresses(ctx: Ctx, vaddr: Operand, saddr: Operand, offset: int) -> np.ndarray:
    """(k, 32) uint64 addresses of every lane."""
    if saddr.kind == "off":
        if vaddr.count != 2:
            raise ctx.error("with `off`, the address is a 64-bit VGPR pair")
        if vaddr.kind == "v" and not (vaddr.neg or vaddr.absolute):  # (vsrc refuses the modifiers on an address)
            regs = ctx.st.v
            base = (regs[vaddr.index + 1, ctx.w].astype(U64) << U64(32)) | regs[vaddr.index, ctx.w]
            return base + np.uint64(offset % (1 << 64))
        base = ctx.vsrc(vaddr, "u64")
    elif saddr.kind == "s" and saddr.count == 2 and NULL not in (saddr.index, saddr.index + 1) and \
            vaddr.kind == "v" and not (vaddr.neg or vaddr.absolute):
        sregs, w = ctx.st.s, ctx.w  # (what sread reads, without its checks: null, which reads as 0, is excluded)
        pair = (sregs[saddr.index + 1, w].astype(U64) << U64(32)) | sregs[saddr.index, w]
        return pair[:, None] + ctx.st.v[vaddr.index, w] + np.uint64(offset % (1 << 64))
    else:
        base = ctx.sread(saddr, "u64")[:, None] + ctx.vsrc(vaddr, "u32").astype(U64)
    return (np.broadcast_to(base, (ctx.k, 32)) + np.uint64(offset % (1 << 64))).astype(U64)


def _active(ctx: Ctx, lanes: np.ndarray) -> np.ndarray:
    """The values (broadcast to (k, 32)) of the lanes EXEC enables, in lane order: all of them, without a mask, in the
    usual step where every lane is enabled."""
    every = np.broadcast_to(lanes, (ctx.k, 32))
    return every.reshape(-1) if ctx.full_exec else every[ctx.exec_mask]


def _write_active(ctx: Ctx, first: int, words: np.ndarray) -> None:
    """Write ``words[:, i]`` (a row per lane of :func:`_active`) to register ``first + i``; other lanes keep theirs."""
    for i in range(words.shape[1]):
        if ctx.full_exec:
            ctx.set_vreg(first + i, words[:, i].reshape(ctx.k, 32))
        else:
            cur = ctx.vreg(first + i).copy()
            cur[ctx.exec_mask] = words[:, i]
            ctx.set_vreg(first + i, cur)


def _global(load: bool, spec: tuple[int, str], ops: list[Operand], md: dict[str, str], flat: bool) -> Built:
    nbytes, how = spec
    offset = _offset(md)
    if flat:
        ops = [*ops, Operand("off", text="off")]
    if load:
        dst, vaddr, saddr = ops
        nwords = (nbytes + 3) // 4

        def runl(ctx: Ctx) -> None:
            raw = ctx.memory.gather(_active(ctx, _lane_addresses(ctx, vaddr, saddr, offset)), nbytes, "global load")
            _write_active(ctx, dst.index, _load_value(raw, how, _active(ctx, ctx.vreg(dst.index))))

        dests = [("v", dst.index + i) for i in range(nwords)]
        return Built(runl, regs_of([vaddr, saddr]), frozenset(dests), load_kind=KIND_VM, load_dests=dests,
                     va_vdst=True)
    vaddr, data, saddr = ops

    def runs(ctx: Ctx) -> None:
        addrs = _active(ctx, _lane_addresses(ctx, vaddr, saddr, offset))
        words = np.stack([_active(ctx, ctx.vreg(data.index + i)) for i in range(max(1, (nbytes + 3) // 4))], axis=1)
        ctx.memory.scatter(addrs, _store_bytes(words, how, nbytes), "global store")

    return Built(runs, regs_of([vaddr, data, saddr]), frozenset(), store="global", va_vdst=True)


def _lds_index(ctx: Ctx, vaddr: Operand, offset: int, nbytes: int, what: str) -> np.ndarray:
    """Flat byte indices into ``st.lds`` for the active lanes (:func:`_active`): (n, nbytes)."""
    addr = _active(ctx, ctx.vsrc(vaddr, "u32").astype(np.int64) + offset)
    size = ctx.st.lds.shape[1]
    bad = addr + nbytes > size
    if np.any(bad):
        raise ctx.error(f"{what} of {nbytes} bytes at LDS address 0x{int(addr[bad][0]):x} is beyond the "
                        f"{size} bytes of the group segment")
    group = _active(ctx, ctx.st.group[ctx.w][:, None])
    return (group * size + addr)[:, None] + np.arange(nbytes)


def _ds(load: bool, spec: tuple[int, str], ops: list[Operand], md: dict[str, str]) -> Built:
    nbytes, how = spec
    offset = _offset(md)
    if load:
        dst, vaddr = ops
        nwords = (nbytes + 3) // 4

        def runl(ctx: Ctx) -> None:
            raw = ctx.st.lds.reshape(-1)[_lds_index(ctx, vaddr, offset, nbytes, "LDS load")]
            _write_active(ctx, dst.index, _load_value(raw, how, _active(ctx, ctx.vreg(dst.index))))

        dests = [("v", dst.index + i) for i in range(nwords)]
        return Built(runl, regs_of([vaddr]), frozenset(dests), load_kind=KIND_LDS, load_dests=dests, va_vdst=True)
    vaddr, data = ops

    def runs(ctx: Ctx) -> None:
        flat = _lds_index(ctx, vaddr, offset, nbytes, "LDS store")
        words = np.stack([_active(ctx, ctx.vreg(data.index + i)) for i in range(max(1, (nbytes + 3) // 4))], axis=1)
        ctx.st.lds.reshape(-1)[flat] = _store_bytes(words, how, nbytes)

    return Built(runs, regs_of([vaddr, data]), frozenset(), store="lds", va_vdst=True)



def _ds2(load: bool, size: int, stride64: bool, ops: list[Operand], md: dict[str, str]) -> Built:
    """ds_load_2addr / ds_store_2addr: two accesses at offset0 and offset1 (in units of the element size,
    times 64 for the stride64 forms)."""
    unit = size * (64 if stride64 else 1)
    offsets = (int(md.get("offset0", "0"), 0) * unit, int(md.get("offset1", "0"), 0) * unit)
    nwords = size // 4
    if load:
        dst, vaddr = ops

        def runl(ctx: Ctx) -> None:
            for half, off in enumerate(offsets):
                raw = ctx.st.lds.reshape(-1)[_lds_index(ctx, vaddr, off, size, "LDS load")]
                _write_active(ctx, dst.index + half * nwords, _words_from_bytes(raw))

        dests = [("v", dst.index + i) for i in range(2 * nwords)]
        return Built(runl, regs_of([vaddr]), frozenset(dests), load_kind=KIND_LDS, load_dests=dests, va_vdst=True)
    vaddr, data0, data1 = ops

    def runs(ctx: Ctx) -> None:
        for data, off in zip((data0, data1), offsets):
            flat = _lds_index(ctx, vaddr, off, size, "LDS store")
            words = np.stack([_active(ctx, ctx.vreg(data.index + i)) for i in range(nwords)], axis=1)
            ctx.st.lds.reshape(-1)[flat] = _store_bytes(words, "w", size)

    return Built(runs, regs_of([vaddr, data0, data1]), frozenset(), store="lds", va_vdst=True)


def _bpermute(ops: list[Operand], md: dict[str, str]) -> Built:
    """ds_bpermute_b32: each active lane reads ``data`` of lane ((addr + offset) / 4) mod 32 (0 from an
    inactive lane), through the LDS hardware without touching LDS memory."""
    dst, vaddr, data = ops
    offset = _offset(md)

    def run(ctx: Ctx) -> None:
        mask = ctx.exec_mask
        src = ((np.broadcast_to(ctx.vsrc(vaddr, "u32"), (ctx.k, 32)).astype(np.int64) + offset) >> 2) & 31
        rows = np.arange(ctx.k)[:, None]
        values = np.where(mask, ctx.vreg(data.index), U32(0))[rows, src]
        ctx.set_vreg(dst.index, values)

    return Built(run, regs_of([vaddr, data]), regs_of([dst]), load_kind=KIND_LDS, load_dests=dst.regs(),
                 va_vdst=True)
