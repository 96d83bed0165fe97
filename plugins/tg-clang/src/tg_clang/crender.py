"""What tg-clang's two renderers (:mod:`.scalar` for one thread, :mod:`.spmd` for a SIMD gang) write alike:
buffer names, constants as C literals, and loops.

A loop may be kept rolled (``CRenderer.unroll_limit``): unrolling a long loop whose body is already a register
tile of independent multiply-adds (a matmul's) gains no speed, yet it is a third of clang's time on the kernel
(-O2 unrolls it and every later pass works on the copies), which a program's first matmul waits for.  Under the
same limit, a short loop nest of known counts (a convolution's window) is unrolled fully: what its iterations
compute from the counters alone (the masks of a padded window, the offsets) then becomes constant in the loops
around it, where clang's own heuristic kept such a nest rolled once its body held masked loads (a 3x3 convolution
with padding ran at half speed)."""

from __future__ import annotations

from tg.codegen.render import TextRenderer
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import DType

from tg_clang.cprelude import literal

#: Written before a loop that clang must not unroll.
NO_UNROLL = '_Pragma("clang loop unroll(disable)") '
#: Written before a loop that clang must unroll fully.
FULL_UNROLL = '_Pragma("clang loop unroll(full)") '


class CRenderer(TextRenderer):
    """A :class:`TextRenderer` writing C; a subclass says how it names a fresh variable (:meth:`fresh`)."""

    #: Loops of more iterations than this, or of a count known only at run time, are not unrolled, and a loop
    #: whose iterations, times those of the loops inside it (all of known counts), are at most this many is
    #: unrolled fully (None: clang chooses for every loop).
    unroll_limit: int | None = None

    def __init__(self, uops: list[UOp], margin: int = 0):
        super().__init__(uops, margin)
        #: how many copies of a statement written here the compiler makes where it unrolls what it is told to: the
        #: product of the iterations of the loops open here rendered with FULL_UNROLL (one entry per open loop;
        #: clang's own unrolling of the other loops is not counted)
        self.copies = [1]

    def fresh(self, prefix: str) -> str:
        raise NotImplementedError

    def render_define_global(self, u: UOp) -> None:
        self.names[id(u)] = u.arg[1]

    def render_define_var(self, u: UOp) -> None:
        self.names[id(u)] = u.arg[0]  # the kernel's parameter of that name (cfile.kernel_params)

    def render_const(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        self.names[id(u)] = literal(u.arg, u.dtype)

    def render_range(self, u: UOp) -> None:
        start, end = self.operands(u)
        var = self.fresh("r")
        self.names[id(u)] = var
        pragma = NO_UNROLL if self._rolled(u) else FULL_UNROLL if self._unrolled(self.position) else ""
        self.emit(f"{pragma}for (int32_t {var} = {start}; {var} < {end}; {var}++) {{")
        self.copies.append(self.copies[-1] * (loop_trips(u) or 1) if pragma == FULL_UNROLL else self.copies[-1])
        self.depth += 1

    def _rolled(self, u: UOp) -> bool:
        """Whether the loop ``u`` is kept rolled (see :attr:`unroll_limit`)."""
        if self.unroll_limit is None:
            return False
        trips = loop_trips(u)
        return trips is None or trips > self.unroll_limit

    def _unrolled(self, position: int) -> bool:
        """Whether the loop at ``position`` in the micro-ops is unrolled fully (see :attr:`unroll_limit`): its
        iterations, times those of every loop nested in it, are known and at most the limit."""
        if self.unroll_limit is None:
            return False
        iterations, depth = 1, 0
        for u in self.uops[position:]:
            if u.op is Ops.RANGE:
                trips = loop_trips(u)
                if trips is None:
                    return False
                iterations *= trips
                depth += 1
            elif u.op is Ops.ENDRANGE:
                depth -= 1
                if depth == 0:
                    break
        return iterations <= self.unroll_limit

    def render_endrange(self, u: UOp) -> None:
        self.depth -= 1
        self.copies.pop()
        self.emit("}")


def loop_trips(loop: UOp) -> int | None:
    """The iterations of a RANGE micro-op, or None when its bounds are not constants."""
    start, end = loop.src[0], loop.src[1]
    return int(end.arg) - int(start.arg) if start.op is Ops.CONST and end.op is Ops.CONST else None
