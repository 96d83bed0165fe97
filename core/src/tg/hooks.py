"""The hook specification, version 2: everything a backend plugin implements, what core hands it, what it must
hand back, and what every micro-op computes.  A plugin author reads this module top to bottom, imports
everything from it, and proves the result with the conformance kit.

1. Packaging
------------
A backend is a distribution (say ``tg-mychip``) whose ``pyproject.toml`` declares two entry points::

    [project.entry-points."tg.backends"]
    mychip = "tg_mychip.plugin"          # the module that holds the hook implementations

    [project.entry-points."tg.hookspec"]
    mychip = "tg.hooks:v2"               # the version of this spec the plugin implements

The entry's name (``mychip``) is the plugin's name, and by convention the target of its emitter.  Both
entries are read from metadata alone: ``import tg`` and ``tg backends`` never import a plugin.  The module is
imported only when its backend is selected (``TG_BACKEND=mychip``, ``device="mychip"``) or probed by
automatic selection, so it must import nothing heavy at module level.  A plugin that declares another
version of this spec is refused with a message naming both versions and the pin that fixes it; one that
fails to import, implements an unknown hook, or takes a name another distribution holds is skipped with a
warning naming it (``TG_STRICT_PLUGINS=1`` makes that an error) and leaves the registry as it was.

2. Hooks
--------
Decorate plain functions of the plugin module with :data:`hookimpl`; their names must be hooks below and
their parameters a subset of the spec's.  Like pytest's, the hooks come in groups:

- provide (called once, right after the plugin is loaded): :func:`tg_emitters`, :func:`tg_runtimes`,
  :func:`tg_environment`;
- rewrite (called when a backend of a target is first used): :func:`tg_lowering_passes`;
- observe (called after each event; the return value is ignored, an observer must not raise):
  :func:`tg_kernel_compiled`, :func:`tg_kernel_launched`.

A minimal plugin::

    from tg.hooks import Emitter, LoweredKernel, Program, hookimpl

    class MyChipEmitter(Emitter):
        target, language = "mychip", "mychip-asm"
        def render(self, kernel: LoweredKernel) -> Program:
            return Program.of(kernel, my_assembler_text(kernel.uops))

    @hookimpl
    def tg_emitters():
        return [MyChipEmitter()]

    @hookimpl
    def tg_runtimes():
        return [MyChipRuntime()]

A text emitter need not write its own walk: :class:`TextRenderer` walks the micro-ops once and dispatches each to a
table of op -> text or to a ``render_<op>`` method (tg's numpy, clang and PTX emitters are built on it).  Then
prove it: ``TG_BACKEND=mychip pytest --pyargs tg.testing``.

3. A kernel's life, and what core guarantees the emitter
---------------------------------------------------------
Core schedules the tensor graph into kernels, lowers each to a :class:`LoweredKernel` (a micro-op list plus
the launch core planned), fits it to the target's :class:`Capabilities` (decomposes every optional micro-op the
target does not declare in ``renders``, divides sine arguments by 2*pi for ``sin_is_sin2pi``, fuses
``MULACC`` where declared, refuses dtypes not in ``dtypes``), runs the plugins' :func:`tg_lowering_passes`,
removes dead values, and calls ``Emitter.render(kernel)``.  Core then guarantees:

- the list is in program order, SSA: every operand comes earlier in the list; values are identified by
  object; a value defined inside a ``RANGE`` is used only before its ``ENDRANGE``;
- every micro-op is one the target renders: the required ones (below) and the optional ones it declared;
  ``VECTORIZE``/``GEP`` only when ``vector_width > 1``, ``DEFINE_LOCAL``/``BARRIER`` only when ``group_size > 1``
  and ``local_memory > 0``;
- the launch keeps the output's shape where the target declares ``launch_dims`` > 1: one ``SPECIAL`` per launch
  dimension (``gidx0`` the innermost output dimension, in work groups with ``lidx0``), so an emitter never has
  to recover rows and columns from ``//`` and ``%``; with ``launch_dims`` 1 the outputs are flattened into
  ``gidx0``;
- indices are int32 expressions already simplified (constant folding, identities, range-based rules for
  ``//``, ``%`` and ``<``), and an index is within its buffer wherever its gate is true;
- ``BARRIER`` appears only at the top level of the kernel (never inside a ``RANGE`` or under a gate), after the
  stores to local memory that the loads following it read; every thread of a group reaches it;
- vector loads and stores (a ``LOAD`` whose dtype is a :class:`VecDType`, a ``STORE`` of a ``VECTORIZE``) cover
  ``count`` consecutive elements of any dtype the target declares, start at a multiple of ``count``, and are
  gated as a whole;
- no dead values remain (:func:`tg.codegen.rewrites.eliminate_dead` already ran), but for launch variables
  (``DEFINE_VAR``): each stays a parameter of the entry even where unused.

An emitter for a target without register spilling raises :class:`TooManyRegisters` from ``render`` when a kernel
keeps more values live than the registers hold; core then lowers that kernel again without register tiles, vector
lanes and unrolling (``upcast``, ``vector_width`` and ``unroll`` taken as 1) and renders it once more, so a target
can declare those optimizations for the kernels that fit them.

Core's optimizations are chosen from the capabilities (:mod:`tg.codegen.opts`): register tiles (``upcast``),
vector lanes (``vector_width``), work-group reductions in local memory (``group_size``, ``local_memory``),
unrolled reduction loops (``unroll``) and tensor cores (``tensor_cores``) happen while lowering.  A target that
runs many of tg's threads on one core (a CPU) may also call core's register-tile and cache-blocking pass from its
emitter: :mod:`tg.codegen.tiles` cuts a ``launch_dims`` = 2 grid into micro-tiles of rows by lanes and work units
of blocks of them, and replays the micro-ops as one micro-tile (tg-clang renders that SIMD across the lanes).

4. The Program record, the launch and the buffers
-------------------------------------------------
``render`` returns a :class:`Program`: the entry's ``name``, the ``source`` text, the ``buffers`` (one
:class:`KernelParam` per ``DEFINE_GLOBAL``, in launch order: index 0 is the output, then the inputs), the
launch dims ``global_size`` (work groups) and ``local_size`` (threads per group), ``variables`` and
``variable_dtypes`` (the scalar parameters after the buffers: one per ``DEFINE_VAR``, in list order) and
``attributes`` (anything else the emitter tells its runtime).  ``Program.of(kernel, source)`` keeps core's
launch; an emitter that splits the work its own way (tg-clang's work units) says so with ``Program.launched_as``.
A runtime never parses the source to learn how to launch.

Symbolic sizes: where the runtime declares ``Runtime.symbolic_launch`` (it reads ``program.global_size`` at every
launch, and its emitters render the kernels below for every size), core lowers an eligible kernel once for every
size ``N`` (at least 2) of its outermost output dimension: ``N`` is the int32 launch variable ``n0``
(``DEFINE_VAR``, bounds ``2..hi``), the ``SPECIAL`` sizes are taken at ``hi``, the thread gate compares with
``n0`` times the inner size, and ``Program.launch_vars`` says which launch dims follow ``n0``
(:class:`SymbolicSize`); core resolves them (:meth:`Program.resolved`) before each launch.  The kernel's name reads
``n`` for that dimension, so its source is the same for every ``N``.  An emitter that decomposes the work its own
way passes its own ``launch_vars`` to ``Program.launched_as`` (without them the program is not reused), or raises
:class:`NotSymbolic` when it cannot render the kernel without baking ``N`` in: core then builds the kernel for its
exact size.  ``TG_SYMBOLIC=0`` turns symbolic sizes off; ``TG_SYMBOLIC=verify`` also runs the exact kernel on each
reuse and raises if any bit differs.

Dynamic shapes: where the runtime also declares ``Runtime.dynamic_shapes``, a size may appear anywhere in a kernel
(a sequence length: attention's ``(1, H, t, t)`` scores, a softmax over ``t``, a reduction over ``t``).  Core lowers
such a kernel exactly at three sizes, fits each integer of the lowering (int32 constants, ``SPECIAL`` sizes, launch
dims) as a quadratic in ``t`` (or ``ceil`` of one over a work group), and rebuilds the micro-ops with each integer
computed from ``n0`` (bounds ``1..hi``; ``LoweredKernel.dynamic`` says so): ``n0`` may then be a stride's or a loop
end's factor (a ``RANGE``'s end is a micro-op, not always a ``CONST``), the launch is one-dimensional unless the
target has work groups, a ``SPECIAL``'s size is an upper bound, and ``launch_vars`` may be quadratic
(``SymbolicSize.square`` and ``offset``).  An emitter renders such a kernel right at every ``n0`` in its bounds, or
raises :class:`NotSymbolic`.  Core launches it at a size only when that size's own lowering has the same micro-ops
and integers equal to the formulas there (see :mod:`tg.engine.dynamic`), and, for an emitter that overrides
``Emitter.same_bits``, when the emitter says its rendering of that size's kernel gives the same bits (a renderer that
picks SIMD lanes across a float reduction by a cost estimate sums in another order at some sizes).

A :class:`Runtime` then follows this ABI:

- ``compile(program)`` returns the runtime's binary; core calls it once per distinct (name, source) in a
  process and keeps the binary.  A runtime that caches binaries on disk keeps them private to the user and
  checks them before loading: :class:`DiskCache` does both (``DiskCache("mychip").get(key)`` returns a
  verified :class:`CachedBinary` or None, ``.put(key, data)`` stores one; unsafe folders raise
  :class:`KernelCacheError`), under ``TG_CACHE_DIR`` and its size bound, shown and cleared by ``tg cache``.
  Optional: ``concurrent_compile = True`` when ``compile`` may run in several threads at once (core then compiles
  the new kernels of a schedule in parallel), or a ``compile_many(programs)`` of its own for a compiler that builds
  several kernels in one run (core then passes it those kernels together, and the runtime may split them into
  several builds: tg-clang compiles them as a few C files at once, tg-rdna as code objects of up to 16 in turn;
  ``DiskCache.put(shared, data)`` then ``.refer(keys, shared)`` store such a binary once, each kernel's key
  referring to it);
- ``alloc(nbytes)`` returns a handle to at least ``nbytes`` (>= 8) bytes aligned for any dtype;
  ``free(handle)`` releases it (core calls it when the last tensor using it goes away);
- ``copyin(handle, host)`` copies ``host`` into the start of the buffer, ``copyout(host, handle)`` fills
  ``host`` from it; ``host`` is a C-contiguous ``memoryview`` of format ``"B"`` no longer than the buffer;
  element bytes are little-endian in the dtype's layout (bool: one byte, 0 or 1; float16: IEEE binary16);
- ``launch(program, binary, buffers, values)`` runs ``global_size`` groups of ``local_size`` threads; ``buffers``
  are ``alloc`` handles, one per ``program.buffers`` in that order, ``values`` maps each of
  ``program.variables`` to its value (an int for an ``int32``, a float exact in float32 for a ``float32``; look
  them up by name: it may also hold variables the kernel dropped as unused).  A runtime passes a variable in its
  dtype bit for bit (-0.0, NaN, inf and float32 subnormals included) and declares the dtypes it can pass in
  ``Runtime.variable_dtypes``; core sends a variable only where both the emitter's ``Capabilities.variables`` and
  the runtime declare its dtype.  With ``float32`` declared, core passes the Python floats of tensor arithmetic
  (``x * lr``, ``where(c, 0.5, x)``; never ints or ``**`` exponents) as parameters, so a learning rate that
  changes every step runs the same binary; a target without them gets those values as constants, a kernel per
  value.  Buffers never alias within a launch.  The launch dims in the Program win over the ``SPECIAL`` sizes,
  which describe core's plan (an upper bound where the launch follows a variable); core never launches one with a
  0 in either (an empty tensor's kernel does no work).  It returns the kernel's time in seconds when measured
  (else None);
- ``available()`` is cheap and never raises: an :class:`Availability` with the reason and the remedy (and,
  when it can run, an optional ``detail`` such as the device and library it will use).

5. Micro-ops
------------
Required (every emitter renders them): ``DEFINE_GLOBAL`` ``SPECIAL`` ``CONST`` ``RANGE`` ``ENDRANGE``
``DEFINE_ACC`` ``ASSIGN`` ``LOAD`` ``STORE`` / ``EXP2`` ``LOG2`` ``SIN`` ``SQRT`` ``TRUNC`` / ``ADD`` ``MUL`` ``IDIV``
``MAX`` ``CMPLT`` ``CMPNE`` ``AND`` ``OR`` ``XOR`` / ``WHERE`` / ``CAST`` ``BITCAST``: 26 kinds; ``VECTORIZE`` ``GEP``
only with vector lanes, ``DEFINE_LOCAL`` ``BARRIER`` only with work groups, so an emitter sees at most 30 beside
the ones it declares below.
Optional (declared in ``Capabilities.renders``, else core decomposes them): ``NEG`` ``RECIP`` ``SUB``
``CMPEQ`` ``MOD`` ``POW`` ``DIV`` (``DIV`` or ``RECIP`` must be declared; the default declares ``DIV``, ``RECIP``
and ``NEG``), and ``MULACC`` (fused only where declared).  ``DEFINE_VAR`` only where the target declares
``Capabilities.variables`` (the launch's scalar parameter of that name and dtype, defined at the top level of the
kernel; an int32 one holds a value between its ``lo`` and ``hi``).  ``WMMA`` only where the target declares
``Capabilities.tensor_cores``: every lane of the work group runs it together, each passing its fragments of
``A``, ``B`` and ``C`` (vectors laid out as the :class:`TensorCore`'s :class:`Fragment` says) and receiving its
fragment of ``D = A @ B + C``, computed in the core's accumulator dtype (products exact, sums rounded in any
order).  Operands, args and results are listed in :mod:`tg.codegen.uops`.

Semantics every backend computes identically (the numpy backend is the reference, constant folding in
:func:`tg.codegen.builder.fold` agrees, and the conformance kit's ``test_semantics`` checks each line on every
backend, with values from memory, as constants and as parameters, in sizes that take vector and scalar paths).
Beyond the table: integer ``ADD``/``MUL``/``NEG`` wrap (two's complement) at the dtype's width; float ops are IEEE-754,
round to nearest even, denormals kept (no flush to zero); ``DIV``, ``SQRT`` and ``RECIP`` are correctly rounded;
``EXP2``, ``LOG2`` and ``SIN`` are accurate to a few ulp over the whole range; ``SIN`` takes radians unless the
target declared ``sin_is_sin2pi``; ``MULACC(a, b, c)`` is ``a*b+c`` rounded once; ``BITCAST`` reinterprets the
bits of a value of the same size; a gated ``LOAD`` whose gate is false yields its ``alt`` operand and touches
no memory, a gated ``STORE`` whose gate is false does nothing; ``SPECIAL gidx<d>`` is the work-group index and
``lidx<d>`` the thread within the group in dimension d; ``DEFINE_ACC`` is a per-thread register that
``ASSIGN`` overwrites; ``RANGE(start, end)`` loops with a step of 1.

==================================  ==============================================================================
case                                result
==================================  ==============================================================================
``IDIV``/``MOD`` by 0 (integers)    0 and 0, so Tensor ``x // 0 == 0`` (numpy's answer; nothing traps)
``IDIV``/``MOD`` of MIN by -1       MIN (wraps) and 0, so ``INT_MIN // -1 == INT_MIN``
``IDIV``/``MOD`` otherwise          truncate toward zero / sign of the dividend (C); Tensor ``//`` floors (Python)
``POW`` integers                    ``x ** y`` wrapping like repeated ``MUL``, over every bit of ``y``; ``x ** 0 = 1``;
                                    ``y < 0``: 1 for x == 1, +-1 for x == -1 (by y's parity), else 0 (``0 ** -1 == 0``)
``MAX`` float with a NaN operand    NaN, either position (``numpy.maximum``): ``maximum``, ``.max()``, ``relu``,
                                    ``clip``, ``.min()`` propagate NaN.  ``MAX(+0.0, -0.0)`` may be either zero
``CAST`` float -> any int           truncate toward zero; out of the destination's range (+-inf included)
                                    saturate to its min/max, also for int8/uint8; NaN -> 0 (PTX ``cvt.rzi``)
``CAST`` float -> bool              ``x != 0``: NaN -> True, -0.0 -> False
``CAST`` int -> narrower int        keeps the low bits (two's complement wrap); bool -> 0/1
``CAST`` -> float16                 rounded once to nearest even (float64 is not rounded through float32);
                                    beyond 65504 (from 65520 on) -> +-inf; tiny -> subnormal or a signed zero;
                                    the same for int32/int64 sources (70000 -> inf)
bool ``ADD``/``MUL``/``MAX``        OR / AND / OR; ``.max()`` of bools is ``any``; bool ``NEG`` is NOT
                                    (Tensor ``-b`` is ``logical_not``); ``CMPLT`` is ``~a & b``
``CMPLT``/``CMPEQ``/``CMPNE``, NaN  IEEE: ``<``, ``>`` and ``==`` False, ``!=`` True
``WHERE(c, a, b)``                  picks bits unchanged (NaN, -0.0, inf); Tensor ``where`` on a float
                                    condition tests ``c != 0``, so a NaN condition picks ``a``
``SQRT``/``LOG2``                   of x < 0 (and -inf): NaN; ``sqrt(-0.0) = -0.0``, ``log2(+-0.0) = -inf``,
                                    ``sqrt(inf) = log2(inf) = inf``, NaN stays NaN
``EXP2``                            overflow -> +inf, ``exp2(-inf) = +0.0``; results below the smallest normal
                                    are subnormals (no flush to zero) until they round to +0.0
``CONST``                           exact: NaN stays NaN, +-inf, -0.0 keeps its sign; a float16/float32
                                    constant is rounded to its dtype once (float16 65519 -> 65504, 65520 -> inf,
                                    2**-24 kept); int constants are exact at the int32/int64 extremes and wrap
                                    into the dtype (uint8: -1 -> 255, 256 -> 0, 300 -> 44; int8: 200 -> -56).
                                    (The front end never makes such a constant from a Python int: arithmetic
                                    with an int the tensor's dtype cannot hold raises OverflowError)
==================================  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

from tg.backends.contract import (
    Availability,
    Backend,
    Capabilities,
    Emitter,
    KernelCompiled,
    KernelLaunched,
    NotSymbolic,
    Runtime,
    TooManyRegisters,
)
from tg.support.errors import KernelCacheError
from tg.support.lazy import lazy_attributes
from tg.support.ops import OPTIONAL, Ops

if TYPE_CHECKING:
    from tg.codegen.builder import KernelBuilder
    from tg.codegen.program import KernelParam, LoweredKernel, Program, SymbolicSize, buffer_params
    from tg.codegen.render import TextRenderer
    from tg.codegen.rewrites import eliminate_dead, replay
    from tg.codegen.tensor_cores import Fragment, TensorCore
    from tg.codegen.uops import PtrDType, UOp, VecDType, format_uops
    from tg.support.dtype import DType, dtypes
    from tg.support.kernel_cache import CachedBinary, DiskCache

# Names this module hands plugin authors, imported on first use: ``import tg`` (which imports this module for
# ``hookimpl``) must stay cheap, and these pull in numpy.
_LAZY = {"KernelBuilder": "tg.codegen.builder", "KernelParam": "tg.codegen.program",
         "LoweredKernel": "tg.codegen.program", "Program": "tg.codegen.program", "buffer_params": "tg.codegen.program",
         "SymbolicSize": "tg.codegen.program",
         "eliminate_dead": "tg.codegen.rewrites", "replay": "tg.codegen.rewrites", "PtrDType": "tg.codegen.uops",
         "UOp": "tg.codegen.uops", "VecDType": "tg.codegen.uops", "format_uops": "tg.codegen.uops",
         "DType": "tg.support.dtype", "dtypes": "tg.support.dtype", "TextRenderer": "tg.codegen.render",
         "TensorCore": "tg.codegen.tensor_cores", "Fragment": "tg.codegen.tensor_cores",
         "DiskCache": "tg.support.kernel_cache", "CachedBinary": "tg.support.kernel_cache"}


__getattr__ = lazy_attributes(__name__, _LAZY)


#: The pluggy project name: hook implementations are marked for ``tg``.
PROJECT = "tg"

#: The version of this specification.  A plugin declares the one it implements as ``tg.hooks:v<N>``.
HOOKSPEC_VERSION = 2
v2 = 2  # what the declaration ``tg.hooks:v2`` names

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: A lowering pass: takes a kernel's micro-op list and returns a rewritten one (or the same list).  Build the
#: new list with :func:`replay` and a rule, or with :class:`KernelBuilder`, so values stay simplified.
LoweringPass = Callable[[list["UOp"]], list["UOp"]]


# -- provide ------------------------------------------------------------------------------------------------


@hookspec
def tg_emitters() -> list[Emitter]:
    """Return the emitters this plugin provides (``[]`` if it only adds runtimes).

    Called once, right after the plugin is loaded.  Each :class:`Emitter` renders lowered kernels for one
    ``target`` and declares that target's ``capabilities``.  A target that another distribution's plugin
    provides is refused, naming it.
    """
    raise NotImplementedError  # pragma: no cover - documentation only


@hookspec
def tg_runtimes() -> list[Runtime]:
    """Return the runtimes this plugin provides (``[]`` if it only adds emitters or passes).

    Called once, right after the plugin is loaded.  Each :class:`Runtime` runs the programs of every emitter of
    its ``language`` (which may come from another plugin) and is addressed as ``target:name``, e.g.
    ``ptx:emu``.  A ``(language, name)`` pair that is taken is refused, naming the plugin that holds it.
    """
    raise NotImplementedError  # pragma: no cover - documentation only


@hookspec
def tg_environment() -> dict[str, str]:
    """Return the environment variables this plugin reads: name -> what it does (``TG_<PLUGIN>_...``).

    Called once, right after the plugin is loaded; ``tg env`` lists them beside core's, so a user finds every
    knob in one place.
    """
    raise NotImplementedError  # pragma: no cover - documentation only


# -- rewrite ------------------------------------------------------------------------------------------------


@hookspec
def tg_lowering_passes(target: str, capabilities: Capabilities) -> list[LoweringPass] | None:
    """Return extra rewrites to apply to every kernel lowered for ``target``, or None.

    Called each time a backend for ``target`` is first used, in every loaded plugin, so a plugin may add
    passes to another plugin's target.  The passes run in the order returned, after core's capability-driven
    rewrites and before the emitter renders; what they produce must still be micro-ops the target renders.
    """
    raise NotImplementedError  # pragma: no cover - documentation only


# -- observe ------------------------------------------------------------------------------------------------


@hookspec
def tg_kernel_compiled(event: KernelCompiled) -> None:
    """Observe a kernel that was compiled (``event.cached``: this process compiled it before).

    Called in every loaded plugin after each compile."""


@hookspec
def tg_kernel_launched(event: KernelLaunched) -> None:
    """Observe a kernel that ran, with its Program, time (when the runtime measured it) and bytes moved.

    Called in every loaded plugin after each launch."""


#: The hooks a plugin may implement, for validation and error messages.
HOOK_NAMES = ("tg_emitters", "tg_runtimes", "tg_environment", "tg_lowering_passes", "tg_kernel_compiled",
              "tg_kernel_launched")


def declared_version(reference: str) -> int | None:
    """Parse a ``tg.hookspec`` entry point value (``tg.hooks:v2``) into its version, or None."""
    module, _, attr = reference.partition(":")
    if module.strip() != __name__ or not attr.strip().startswith("v") or not attr.strip()[1:].isdigit():
        return None
    return int(attr.strip()[1:])


__all__ = ["HOOKSPEC_VERSION", "HOOK_NAMES", "OPTIONAL", "PROJECT", "Availability", "Backend", "CachedBinary",
           "Capabilities", "DType", "DiskCache", "Emitter", "Fragment", "KernelBuilder", "KernelCacheError",
           "KernelCompiled", "KernelLaunched", "KernelParam", "LoweredKernel", "LoweringPass", "NotSymbolic", "Ops",
           "Program", "PtrDType", "Runtime", "SymbolicSize", "TensorCore", "TextRenderer", "TooManyRegisters", "UOp",
           "VecDType", "buffer_params",
           "declared_version", "dtypes", "eliminate_dead", "format_uops", "hookimpl", "hookspec", "replay"]
