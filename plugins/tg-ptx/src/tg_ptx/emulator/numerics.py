"""Numeric helpers of the PTX emulator: flushing subnormals, fused multiply-add, integer division, conversions.

Semantics from the PTX ISA; where it leaves freedom, the choices are listed in :mod:`.semantics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tg_ptx.emulator.ptxtypes import UNSIGNED, PType


def flush(x: Any) -> Any:
    """Subnormal float32 values to zero of the same sign (.ftz)."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        return x
    tiny = np.abs(x) < np.finfo(np.float32).tiny
    return np.where(tiny & (x != 0), np.copysign(np.float32(0), x), x)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = a * 134217729.0  # 2^27 + 1
    hi = c - (c - a)
    return hi, a - hi


def fma64(a: Any, b: Any, c: Any) -> Any:
    """a*b + c in float64 with (nearly always) a single rounding: exact product and sum errors are added back."""
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, c))
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl  # a*b == p + e exactly
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)  # p + c == s + err exactly
    fused = s + (err + e)
    return np.where(np.isfinite(fused), fused, p + c)


def fma(a: Any, b: Any, c: Any, t: PType) -> Any:
    if t.size == 8:
        return fma64(a, b, c)
    wide = np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.asarray(c, np.float64)
    return wide.astype(t.np)


def int_div(a: Any, b: Any, t: PType) -> Any:
    a, b = np.asarray(a, t.np), np.asarray(b, t.np)
    zero = b == 0
    safe = np.where(zero, np.ones_like(b), b)
    q = a // safe
    if t.signed:
        q = q + ((a % safe != 0) & ((a < 0) != (safe < 0))).astype(t.np)
    return np.where(zero, np.asarray(-1).astype(t.np) if t.signed else np.iinfo(t.np).max, q).astype(t.np)


def int_rem(a: Any, b: Any, t: PType) -> Any:
    a, b = np.asarray(a, t.np), np.asarray(b, t.np)
    q = int_div(a, b, t)
    return np.where(b == 0, a, a - q * b).astype(t.np)


def bit_type(t: PType) -> np.dtype[Any]:
    return UNSIGNED[t.size]


def _top_bit(t: PType) -> Any:
    """The value of type ``t`` with only its top bit set (the minimum of a signed type)."""
    return np.asarray(1 << (8 * t.size - 1), np.uint64).astype(UNSIGNED[t.size]).view(t.np)


def convert(x: Any, src: PType, dst: PType, irnd: str, sat: bool, ftz: bool) -> Any:
    """``cvt``: convert ``x`` of type ``src`` to ``dst``; ``irnd`` is rni/rzi/rmi/rpi or ''."""
    x = np.asarray(x, src.np)
    if ftz and src.name == "f32":
        x = flush(x)
    if src.is_float and dst.is_float:
        if irnd:
            x = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}[irnd](x)
        out = x.astype(dst.np)
        if sat:
            out = np.where(np.isnan(out), 0, np.clip(out, 0, 1)).astype(dst.np)
        return flush(out) if ftz and dst.name == "f32" else out
    if src.is_float:  # to an integer: round as asked, saturate; NaN as the hardware does it (see below)
        wide = np.asarray(x, np.float64)
        r = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}[irnd or "rzi"](wide)
        info = np.iinfo(dst.np if dst.kind != "b" else UNSIGNED[dst.size])
        nan = np.isnan(r)
        clipped = np.clip(np.where(nan, 0, r), float(info.min), float(info.max))
        result = np.where(clipped >= 2.0**63, np.uint64(0), clipped).astype(dst.np) if dst.size == 8 else \
            clipped.astype(dst.np)
        if dst.size == 8:  # float64 cannot hold the int64/uint64 maximum: saturate by hand
            result = np.where(r >= float(info.max), np.asarray(info.max).astype(dst.np), result)
        if src.size == 8 or dst.size == 8:
            result = np.where(nan, _top_bit(dst), result)
        return result
    if dst.is_float:
        return x.astype(dst.np)
    if sat:
        info = np.iinfo(dst.np if dst.kind != "b" else UNSIGNED[dst.size])
        return np.clip(x.astype(np.float64) if x.dtype == np.uint64 or dst.size == 8 else x.astype(np.int64),
                       info.min, info.max).astype(dst.np)
    return x.astype(dst.np)  # integer to integer: wraps (keeps the low bits) or extends by the source's sign
