"""Several kernels as one C file: how tg-clang's ``compile_many`` builds a schedule's new kernels in a few clang runs.

A clang run costs ~30 ms before it compiles a line (the driver and LLVM starting), as much as a small kernel's own
code takes.  Kernel files of one gang width share everything before :data:`tg_clang.cfile.OWN_CODE` (the prelude,
the vector types and their helpers), and everything after it is named after the kernel; so kernels whose shared
parts are the same text, and whose names differ, build as one file: the shared part once, then each kernel's own
part.  :func:`plan` splits the kernels into such batches, at most :data:`BATCH_MAX` each, and into at least as many
batches as builds run at once, balanced by the length of their code, so that every core keeps compiling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tg_clang.cfile import OWN_CODE

#: The most kernels compiled as one file (its compile is one process: one core).
BATCH_MAX = 16


def split(source: str) -> tuple[str, str] | None:
    """A kernel file's shared part (without its first line, which names the kernel) and its own part; None for a
    file without the :data:`OWN_CODE` line."""
    head, mark, own = source.partition(f"\n{OWN_CODE}\n")
    if not mark or "\n" not in head:
        return None
    return head.split("\n", 1)[1], own


def plan(kernels: Sequence[tuple[str, str]], jobs: int) -> list[list[int]]:
    """``kernels`` (source and name each) in groups to build together, as indices; a group of one is built alone.

    Kernels build together only with kernels of the same shared part and never with one of the same name (which
    would define its functions twice).  The groups are at least ``jobs`` where there are that many kernels (builds
    run at once; each kind gets batches in turn, the one whose batches are the largest first), at least as many as
    :data:`BATCH_MAX` asks, and each kernel goes, longest first, to the batch of its kind holding the least code so
    far."""
    kinds: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for i, (source, _) in enumerate(kernels):
        parts = split(source)
        if parts is None:
            groups.append([i])
        else:
            kinds.setdefault(parts[0], []).append(i)
    members_of = list(kinds.values())
    counts = [math.ceil(len(members) / BATCH_MAX) for members in members_of]
    while sum(counts) < jobs:  # one more batch for the kind whose batches are the largest
        room = [k for k, members in enumerate(members_of) if counts[k] < len(members)]
        if not room:
            break
        k = max(room, key=lambda k: len(members_of[k]) / counts[k])
        counts[k] += 1
    for members, count in zip(members_of, counts):
        batches: list[list[int]] = [[] for _ in range(count)]
        sizes = [0] * count
        names: list[set[str]] = [set() for _ in range(count)]
        for i in sorted(members, key=lambda i: -len(kernels[i][0])):
            name = kernels[i][1]
            open_ = [b for b in range(count) if name not in names[b] and len(batches[b]) < BATCH_MAX]
            if not open_:  # every batch has a kernel of this name (or is full): built alone
                groups.append([i])
                continue
            b = min(open_, key=lambda b: sizes[b])
            batches[b].append(i)
            sizes[b] += len(kernels[i][0])
            names[b].add(name)
        groups += [batch for batch in batches if batch]
    return groups


def merge(sources: Sequence[str], names: Sequence[str]) -> str:
    """One C file of kernel files whose shared parts are the same text (see :func:`plan`)."""
    shared, own = None, []
    for source in sources:
        parts = split(source)
        if parts is None or shared not in (None, parts[0]):
            raise ValueError("only kernel files with the same shared part build as one file (see tg_clang.batch.plan)")
        shared = parts[0]
        own.append(parts[1])
    joined = "\n".join(own)
    return f"/* tg-clang: {len(own)} kernels built together: {', '.join(names)} */\n{shared}\n{OWN_CODE}\n{joined}"
