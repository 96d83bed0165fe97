"""Dynamic shapes: one compiled kernel for every value of a size that appears anywhere in a kernel (a sequence length).

:mod:`tg.engine.symbolic` reuses a kernel across sizes of its outermost dimension only.  Attention over a growing
sequence of ``t`` tokens makes kernels where ``t`` is an inner size, a stride (``t*t``, ``t``) and a reduction's
length at once.  For a runtime that declares ``Runtime.dynamic_shapes``, core groups the kernels it builds by the
structure of their exact lowering (:func:`tg.codegen.generalize.skeleton`: the micro-ops with every int32 constant,
``SPECIAL`` size and launch dim left out).  A structure met at three sizes ``t`` (the first dimension of the
kernel's full shape that differs between them) whose integers fit polynomials of degree two in ``t``
(:func:`~tg.codegen.generalize.fit`) gets one kernel built for every ``t`` up to a bound, ``t`` being the int32
launch variable ``n0`` (:func:`~tg.codegen.generalize.generalize`); the third size already launches it.  (The
lowering for families is a second one on top of a kernel's exact build: it is made only once a second kernel of the
same *outline*, its structure without views and int32 constants, is met, and the first one's is made then.)

A later kernel reuses it only after its own exact lowering showed the same structure and integers equal to the
polynomials at its ``t``: then the generalized kernel computes exactly what that lowering would (lowering costs
milliseconds of Python; compiling is what is saved).  Anything else (another structure, a misfit, a size past the
bound, an emitter that raises ``NotSymbolic``) builds the exact kernel, as without dynamic shapes.
``TG_SYMBOLIC=0`` turns this off with the rest of symbolic sizes; ``TG_SYMBOLIC=verify`` checks every reuse against
the exact kernel's bits.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

from tg.backends.contract import Capabilities, NotSymbolic, TooManyRegisters
from tg.codegen.generalize import Poly, bound, evaluate, fit, generalize, skeleton
from tg.codegen.kernel_tree import node_shape
from tg.codegen.lower import lower
from tg.codegen.program import LoweredKernel, Program
from tg.codegen.rewrites import eliminate_dead
from tg.codegen.tiles import thread_cost
from tg.engine.device import DeviceState, ReadyKernel
from tg.schedule.scheduler import Kernel
from tg.support.dtype import DType
from tg.support.helpers import debug_level

#: Sizes a structure is met with before its generalized kernel is built (three points fix a quadratic).
SIZES_TO_FIT = 3
#: Times a family's formulas are fitted again after a size of its shape misfit them.
MAX_REFITS = 2
#: Launches of a family's kernel at one size after which that size gets its exact kernel.  (A call tg.jit compares
#: before capturing gets it at once: see ``Recorder.exact_sizes`` in :mod:`tg.engine.realize`.)
EXACT_AFTER = 16
#: Operations of a kernel (:func:`~tg.codegen.tiles.thread_cost` times its threads) from which its size is built
#: exactly: a kernel for every size spares a compile (tens to hundreds of milliseconds), and runs without the register
#: tiles, vectors and unrolling its exact kernels may take (tg-clang's one thread at a time: 10 to 100 times slower
#: than its tiles on a large matmul), so where one launch costs about a compile, the exact kernel wins at once.
EXACT_WORK = 1 << 26


@dataclass
class Family:
    """Kernels of one lowered structure whose full shapes differ only in the dims ``dims``, which hold one size
    ``t`` (attention's ``(1, H, t, t, D)``): the sizes and integers of their exact lowerings, and once fitted, the
    kernel built for every size (``ready``) with the polynomials it follows."""

    shape: tuple[int, ...]  # the first one's full shape
    name: str  # the first one's name
    ints: tuple[int, ...]  # the first one's integers
    dims: tuple[int, ...] = ()  # the dims that hold the size (empty: one kernel seen so far)
    samples: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    polys: tuple[Poly, ...] = ()
    lo: int = 0
    hi: int = -1
    ready: ReadyKernel | None = None
    failed: bool = False
    refused: bool = False  # the backend's emitter refused its kernel (NotSymbolic): its sizes are built exactly
    refits: int = 0  # times a kernel of the family's shape misfit the formulas and they were fitted again

    def size_of(self, shape: tuple[int, ...]) -> int | None:
        """The size ``t`` of a kernel of full shape ``shape`` in this family (its dims ``dims`` hold ``t``, the others
        are the first one's), or None."""
        if len(shape) != len(self.shape) or not self.dims:
            return None
        t = shape[self.dims[0]]
        ok = all(shape[d] == t if d in self.dims else shape[d] == self.shape[d] for d in range(len(shape)))
        return t if ok else None

    def second(self, shape: tuple[int, ...], ints: tuple[int, ...]) -> bool:
        """Take a second kernel of full shape ``shape`` when it differs from the first in dims that held one size
        there and hold one size here, and no other dim held that size (which dims follow the size is then plain)."""
        if len(shape) != len(self.shape):
            return False
        dims = tuple(d for d, (a, b) in enumerate(zip(self.shape, shape)) if a != b)
        if not dims or len({self.shape[d] for d in dims}) != 1 or len({shape[d] for d in dims}) != 1:
            return False
        t0 = self.shape[dims[0]]
        if any(self.shape[d] == t0 for d in range(len(shape)) if d not in dims):
            return False
        self.dims, self.samples = dims, [(t0, self.ints), (shape[dims[0]], ints)]
        return True


_lock = threading.Lock()

#: Families kept per lowered structure (kernels of one structure over other fixed sizes: 4 heads of 8, 3 of 12).
FAMILIES_PER_STRUCTURE = 4


def family_capabilities(state: DeviceState) -> Capabilities:
    """What kernels of families are lowered for (a thread computes what it would in any launch, so the exact kernels
    at each size compute the same values): the backend's capabilities without register tiles, vector lanes and
    unrolling, whose amounts follow how a size divides; and without work groups, a one-dimensional launch (the
    units of a CPU's renderer).  With work groups the launch keeps its dimensions: a flat launch would divide its
    groups' thread ids by sizes that follow ``t`` (``(128 * g + l) // t`` splits into ``128 % t``, no quadratic)."""
    caps = state.capabilities
    dims = 1 if caps.group_size <= 1 else caps.launch_dims
    return replace(caps, upcast=1, vector_width=1, unroll=1, launch_dims=dims)


def dynamic_ready(kernel: Kernel, key: tuple[object, ...], state: DeviceState, verify: bool,
                  emit: Callable[[LoweredKernel, Capabilities], Program],
                  same_bits: Callable[[Program, int], bool]) -> ReadyKernel | None:
    """The kernel built for every size of ``kernel``'s structure, at ``kernel``'s size (built now when this size is
    the third of a structure that fits), stored under ``key``; None when the exact kernel is to be built.
    ``same_bits``: whether the backend's emitter says a kernel for every size gives, at a size, that size's bits."""
    observed = _observe(kernel, state)
    if observed is None or _heavy(observed[0]):
        return None
    with _lock:  # a family's formulas and kernel change together (threads realizing at once)
        found = _reuse_or_build(kernel, state, emit, *observed)
    if found is None or not same_bits(found[0].program, found[1]):
        return None
    family_kernel, t = found
    ready = family_kernel.at(kernel.output.shape, kernel.bytes_moved, {"n0": t}, verify, dynamic=True)
    state.kernels[key] = ready
    return ready


def exact_ahead(kernel: Kernel, state: DeviceState) -> bool:
    """Whether a kernel met ahead in a schedule (compiled with the others, in parallel) may be built for its exact
    size now, recorded as a size of its family; False when at its turn it will reuse its family's kernel or build it
    (the third size of a structure), or fit it again."""
    observed = _observe(kernel, state)
    if observed is None or _heavy(observed[0]):
        return True
    _, structure, ints, shape = observed
    with _lock:
        found = _family_of(state, structure, shape)
        if found is None:
            _new_sample(state, structure, kernel, ints, shape)
            return True
        family, t = found
        if family.refused:
            return True
        if family.ready is not None or len({seen for seen, _ in family.samples} | {t}) >= SIZES_TO_FIT:
            return False
        if all(t != seen for seen, _ in family.samples):
            family.samples.append((t, ints))
        return True


def _heavy(lowered: LoweredKernel) -> bool:
    """Whether a kernel's work at its size is :data:`EXACT_WORK` or more (it is built exactly, and no family counts
    it)."""
    threads = math.prod(lowered.global_size) * math.prod(lowered.local_size)
    return thread_cost(lowered.uops) * threads >= EXACT_WORK


def _family_of(state: DeviceState, structure: tuple[object, ...], shape: tuple[int, ...]
               ) -> tuple[Family, int] | None:
    """The family of ``structure`` whose shape pattern takes ``shape``, and the size ``t`` there (a family that
    failed to fit is passed over: a later one of the same pattern may fit; one the emitter refused is not)."""
    for family in state.families.get(structure) or []:
        t = family.size_of(shape)
        if t is not None and (family.refused or not family.failed):
            return family, t
    return None


def _observe(kernel: Kernel, state: DeviceState
             ) -> tuple[LoweredKernel, tuple[object, ...], tuple[int, ...], tuple[int, ...]] | None:
    """``kernel`` lowered for families, its skeleton's structure and integers, and its full shape (None: it does not
    lower, its exact build raises that again or lowers it without register tiles; or its outline is new, see
    :func:`_first_of_outline`)."""
    earlier = _first_of_outline(kernel, state)
    if earlier is None:
        return None
    if earlier is not kernel:  # the first kernel of this outline joins the families now, as it would have then
        first = _lower_for_families(earlier, state)
        if first is not None and not _heavy(first[0]):
            with _lock:
                if _family_of(state, first[1], first[3]) is None:
                    _new_sample(state, first[1], earlier, first[2], first[3])
    return _lower_for_families(kernel, state)


def _first_of_outline(kernel: Kernel, state: DeviceState) -> Kernel | None:
    """None when ``kernel`` is the first kernel of its outline (kept, light, for later); else the first one if it has
    not joined the families yet, or ``kernel`` itself.

    A kernel's outline is its structure without views and int32 constants: two kernels a family could group (whose
    lowerings differ only in integers) have one outline.  Most kernels of a program are met at one size only, so a
    kernel is lowered for families (a second lowering, on top of its exact build) only once a second kernel of its
    outline is met; the first is lowered then, so a family still starts from the first size it met."""
    outline = (len(kernel.output.shape), tuple(
        (op, dtype, None if op == "CONST" and dtype == "int32" else arg[0] if op in ("CONST", "LOAD") else arg, srcs)
        for op, dtype, arg, srcs in kernel.structure))
    with _lock:
        earlier = state.outlines.get(outline)
        state.outlines[outline] = True if earlier is not None else _light(kernel)  # True: met twice or more
    if earlier is None:
        return None
    return kernel if earlier is True else earlier


@dataclass(frozen=True)
class _Sized:
    """What a lowering reads of a buffer: its shape and dtype."""

    shape: tuple[int, ...]
    dtype: DType


def _light(kernel: Kernel) -> Kernel:
    """``kernel`` without its buffers (which may be large, and go when the program lets them go): what lowering reads,
    its tree, its parameters' values and its output's and inputs' shapes and dtypes."""
    return Kernel(kernel.ast, cast(Any, _Sized(kernel.output.shape, kernel.output.dtype)),
                  [cast(Any, _Sized(i.shape, i.dtype)) for i in kernel.inputs], kernel.structure, list(kernel.params))


def _lower_for_families(kernel: Kernel, state: DeviceState
                        ) -> tuple[LoweredKernel, tuple[object, ...], tuple[int, ...], tuple[int, ...]] | None:
    try:
        lowered = lower(kernel, family_capabilities(state), stable=True)
    except (TooManyRegisters, ValueError):
        return None
    # index math the lowering left unused may hold integers no formula follows (128 % t, of a view simplified away)
    lowered = replace(lowered, uops=eliminate_dead(lowered.uops))
    structure, ints = skeleton(lowered)
    body = kernel.ast.src[0] if kernel.ast.op == "REDUCE" else kernel.ast
    return lowered, structure, ints, node_shape(body, kernel.output.shape)


def _new_sample(state: DeviceState, structure: tuple[object, ...], kernel: Kernel, ints: tuple[int, ...],
                shape: tuple[int, ...]) -> None:
    """A kernel that no family of its structure took: the second of a family met once, or the first of a new one."""
    families: list[Family] = state.families.get(structure) or []
    if not any(not family.dims and family.second(shape, ints) for family in families):
        state.families[structure] = [*families, Family(shape, kernel.name, ints)][-FAMILIES_PER_STRUCTURE:]


def _reuse_or_build(kernel: Kernel, state: DeviceState, emit: Callable[[LoweredKernel, Capabilities], Program],
                    lowered: LoweredKernel, structure: tuple[object, ...], ints: tuple[int, ...],
                    shape: tuple[int, ...]) -> tuple[ReadyKernel, int] | None:
    """The kernel for every size of ``kernel``'s family (built now at the family's third size) and ``kernel``'s size
    ``t`` in it; None when ``kernel`` is to be built exactly."""
    found = _family_of(state, structure, shape)
    if found is None:
        _new_sample(state, structure, kernel, ints, shape)
        return None
    family, t = found
    if family.refused:  # (not a new family every three sizes, each lowered, fitted and rendered again)
        return None
    if family.ready is None:
        if all(t != seen for seen, _ in family.samples):
            family.samples.append((t, ints))
        if len(family.samples) < SIZES_TO_FIT or not _build(family, kernel, lowered, state, emit):
            return None
    elif not (family.lo <= t <= family.hi and evaluate(family.polys, t) == ints):
        # three sizes agreed on a formula this one breaks (ceil(t / 8) looks constant from 9 to 15): fit again with
        # it, a few times at most
        if family.refits >= MAX_REFITS or any(t == seen for seen, _ in family.samples):
            return None
        family.refits += 1
        family.samples.append((t, ints))
        if not _build(family, kernel, lowered, state, emit):
            return None
    assert family.ready is not None
    if family.lo <= t <= family.hi and evaluate(family.polys, t) == ints:
        return family.ready, t
    return None


def _build(family: Family, kernel: Kernel, lowered: LoweredKernel, state: DeviceState,
           emit: Callable[[LoweredKernel, Capabilities], Program]) -> bool:
    """Fit ``family``'s samples and build its kernel for every size; False when the integers do not fit, the bound
    leaves no room, or the backend cannot render it."""
    polys = fit(family.samples, lowered.local_size)
    caps = family_capabilities(state)
    lo = 1
    launch = len(lowered.global_size)
    hi = bound(polys, lo, launch, caps.launch_limits) if polys is not None else 0
    if polys is None or hi < max(seen for seen, _ in family.samples):
        _give_up(family, kernel, "its integers do not follow one size by a quadratic")
        return False
    first, now = family.name.split("_"), kernel.name.split("_")
    name = "_".join(a if a == b else "n" for a, b in zip(first, now)) if len(first) == len(now) else f"{kernel.name}_n"
    try:
        program = emit(generalize(lowered, polys, lo, hi, name), caps)
    except (NotSymbolic, TooManyRegisters) as reason:
        _give_up(family, kernel, str(reason), refused=True)
        return False
    family.polys, family.lo, family.hi = polys, lo, hi
    binary = state.compile(program)
    family.ready = replace(ReadyKernel(program, binary, kernel.output.shape, lowered.bytes_moved), bound=hi)
    return True


def _give_up(family: Family, kernel: Kernel, reason: str, refused: bool = False) -> None:
    """No (new) kernel for every size of ``family``: one built before still serves the sizes its formulas fit
    (``refused``: the emitter would not render it)."""
    if family.ready is None:
        family.failed, family.refused = True, refused
    family.refits = MAX_REFITS
    if debug_level() >= 2:
        print(f"{kernel.name}: built for its exact size ({reason})")


def wants_exact(ready: ReadyKernel, state: DeviceState) -> bool:
    """Count a launch of ``ready`` (a family's kernel at one size); True at its :data:`EXACT_AFTER`-th.  A kernel for
    every size may run slower than the exact kernel of a size (tg-clang renders it one thread at a time, where the
    exact one takes SIMD tiles): a size launched that often (a training run at one length) gets its exact kernel,
    which computes the same bits (``TG_SYMBOLIC=verify`` checks that contract), while lengths met a few times each
    (text generation) keep sharing one."""
    launches = (state.dynamic_launches.get(id(ready)) or 0) + 1
    state.dynamic_launches[id(ready)] = launches
    return launches == EXACT_AFTER
