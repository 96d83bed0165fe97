"""What tg-clang's two renderers (:mod:`.scalar` for one thread, :mod:`.spmd` for a SIMD gang) write alike:
buffer names, constants as C literals, and loops.

A loop may be kept rolled (``CRenderer.unroll_limit``): unrolling a long loop whose body is already a register
tile of independent multiply-adds (a matmul's) gains no speed, yet it is a third of clang's time on the kernel
(-O2 unrolls it and every later pass works on the copies), which a program's first matmul waits for."""

from __future__ import annotations

from tg.codegen.render import TextRenderer
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import DType

from tg_clang.cprelude import literal

#: Written before a loop that clang must not unroll.
NO_UNROLL = '_Pragma("clang loop unroll(disable)") '


class CRenderer(TextRenderer):
    """A :class:`TextRenderer` writing C; a subclass says how it names a fresh variable (:meth:`fresh`)."""

    #: Loops of more iterations than this, or of a count known only at run time, are not unrolled (None: clang
    #: chooses; a short loop of a known count is always left to clang, which unrolls it fully).
    unroll_limit: int | None = None

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
        self.emit(f"{NO_UNROLL if self._rolled(u) else ''}for (int32_t {var} = {start}; {var} < {end}; {var}++) {{")
        self.depth += 1

    def _rolled(self, u: UOp) -> bool:
        """Whether the loop ``u`` is kept rolled (see :attr:`unroll_limit`)."""
        if self.unroll_limit is None:
            return False
        start, end = u.src[0], u.src[1]
        if start.op is Ops.CONST and end.op is Ops.CONST:
            return int(end.arg) - int(start.arg) > self.unroll_limit
        return True

    def render_endrange(self, u: UOp) -> None:
        self.depth -= 1
        self.emit("}")
