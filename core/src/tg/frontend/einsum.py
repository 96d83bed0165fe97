"""``einsum``: Einstein summation over tensors, as PyTorch's ``torch.einsum``.

The equation names every dim of every operand with a letter (``"bij,bjk->bik"``); ``...`` stands for the dims
not named (right-aligned and broadcast across operands; summed when the output has no ``...``).  Without ``->``
the output holds the ``...`` dims, then the letters that appear once, in alphabetical order.  A letter repeated
within one operand takes its diagonal.

The operands are contracted left to right: each is permuted and reshaped onto the union of the letters seen so
far, multiplied by broadcasting, and every letter needed neither later nor in the output is summed away at once
(a multiply fused into a sum reduction, the way ``matmul`` runs), so no product larger than one pairwise
contraction is formed.  Gradients come from those ops'.
"""

from __future__ import annotations

import string
from typing import Any

from tg.frontend.indexing import getitem
from tg.frontend.tensor import Tensor

LETTERS = frozenset(string.ascii_letters)


def _terms(equation: str, count: int) -> tuple[list[str], str | None]:
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise ValueError(f"einsum: equation {equation!r} has more than one '->'")
    lhs, arrow, rhs = eq.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != count:
        raise ValueError(f"einsum: equation {equation!r} names {len(inputs)} operand(s) but {count} were given")
    for term in [*inputs, rhs]:
        rest = term.replace("...", "", 1)
        bad = sorted({c for c in rest if c not in LETTERS})
        if bad:
            raise ValueError(f"einsum: equation {equation!r} has invalid character(s) {''.join(bad)!r} (subscripts "
                             "are letters a-z, A-Z, and at most one '...' per operand)")
    return inputs, (rhs if arrow else None)


def _symbols(term: str, ndim: int, ell_ndim: int | None, equation: str, which: str) -> list[str]:
    """The term's subscripts as symbols, '...' expanded into the names of the dims it stands for."""
    head, dots, tail = term.partition("...")
    named = len(head) + len(tail)
    if not dots:
        if ndim != named:
            raise ValueError(f"einsum: {which} {term!r} in {equation!r} names {named} dims but the tensor has {ndim}")
        return list(term)
    extra = ndim - named if ell_ndim is None else ell_ndim
    if extra < 0:
        raise ValueError(f"einsum: {which} {term!r} in {equation!r} names {named} dims but the tensor has {ndim}")
    return [*head, *(f"...{k}" for k in range(extra)), *tail]


def _diagonal(t: Tensor, syms: list[str], equation: str) -> tuple[Tensor, list[str]]:
    """Take the diagonal of every letter repeated within one operand."""
    while len(set(syms)) != len(syms):
        s = next(s for s in syms if syms.count(s) > 1)
        a = syms.index(s)
        b = syms.index(s, a + 1)
        n = t.shape[a]
        if t.shape[b] != n:
            raise ValueError(f"einsum: subscript {s!r} is repeated in one operand of {equation!r} over dims of "
                             f"sizes {t.shape[a]} and {t.shape[b]}; a diagonal needs equal sizes")
        rest = [i for i in range(t.ndim) if i not in (a, b)]
        flat = t.permute([*rest, a, b]).reshape(tuple(t.shape[i] for i in rest) + (n * n,))
        diag = getitem(flat, (Ellipsis, slice(None, None, n + 1)))
        t = diag.permute([*range(a), len(rest), *range(a, len(rest))])
        syms = [x for i, x in enumerate(syms) if i not in (a, b)]
        syms.insert(a, s)
    return t, syms


def _align(t: Tensor, syms: list[str], target: list[str]) -> Tensor:
    """``t`` (dims named ``syms``) permuted into ``target``'s order, with size-1 dims for names it lacks."""
    order = [syms.index(s) for s in target if s in syms]
    moved = t.permute(order) if order != list(range(t.ndim)) else t
    return moved.reshape(tuple(t.shape[syms.index(s)] if s in syms else 1 for s in target))


def _sum_out(t: Tensor, syms: list[str], keep: set[str]) -> tuple[Tensor, list[str]]:
    axes = tuple(i for i, s in enumerate(syms) if s not in keep)
    if not axes:
        return t, syms
    return t.sum(axes), [s for s in syms if s in keep]


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation, e.g. ``einsum("bij,bjk->bik", a, b)`` (batched matmul), ``einsum("ii", a)`` (trace),
    ``einsum("i,j->ij", u, v)`` (outer product), ``einsum("...ij->...ji", a)``; operands may also be one list."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum needs at least one operand")
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the first argument is the equation (a str), got {type(equation).__name__}")
    ts = [o if isinstance(o, Tensor) else Tensor(o) for o in operands]
    inputs, output = _terms(equation, len(ts))
    ell_ndim = max((t.ndim - len(term.replace("...", "")) for term, t in zip(inputs, ts) if "..." in term), default=0)
    parsed = []
    for k, (term, t) in enumerate(zip(inputs, ts)):
        syms = _symbols(term, t.ndim, None, equation, f"operand {k}")
        # right-align each operand's '...' dims with the longest one's
        ell = [s for s in syms if s.startswith("...")]
        names = {s: f"...{ell_ndim - len(ell) + i}" for i, s in enumerate(ell)}
        parsed.append(_diagonal(t, [names.get(s, s) for s in syms], equation))
    sizes: dict[str, int] = {}
    for k, (t, syms) in enumerate(parsed):
        for s, n in zip(syms, t.shape):
            if sizes.get(s, 1) not in (1, n) and n != 1:
                raise ValueError(f"einsum: subscript {s if not s.startswith('...') else '...'!r} of {equation!r} "
                                 f"has size {sizes[s]} in one operand and {n} in operand {k}")
            sizes[s] = max(sizes.get(s, 1), n)
    ellipsis = [f"...{k}" for k in range(ell_ndim)]
    every = [c for term in inputs for c in term.replace("...", "")]
    if output is None:
        out_syms = ellipsis + sorted(c for c in set(every) if every.count(c) == 1)
    else:
        if len(set(output.replace("...", ""))) != len(output.replace("...", "")):
            raise ValueError(f"einsum: the output of {equation!r} repeats a subscript")
        missing = sorted(c for c in output.replace("...", "") if c not in every)
        if missing:
            raise ValueError(f"einsum: output subscript(s) {''.join(missing)!r} of {equation!r} appear in no operand")
        # without '...' in the output, the '...' dims are summed (numpy's rule)
        out_syms = _symbols(output, len(output.replace("...", "")) + (ell_ndim if "..." in output else 0), ell_ndim,
                            equation, "output")
    acc, acc_syms = parsed[0]
    for k in range(1, len(parsed) + 1):
        keep = set(out_syms).union(*(set(syms) for _, syms in parsed[k:]))
        acc, acc_syms = _sum_out(acc, acc_syms, keep)
        if k == len(parsed):
            break
        t, syms = parsed[k]
        union = acc_syms + [s for s in syms if s not in acc_syms]
        acc, acc_syms = _align(acc, acc_syms, union) * _align(t, syms, union), union
    out = _align(acc, acc_syms, out_syms)
    return out.expand(tuple(sizes.get(s, 1) for s in out_syms)) if out_syms else out
