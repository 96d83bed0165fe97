"""What tg-clang's two renderers (:mod:`.scalar` for one thread, :mod:`.spmd` for a SIMD gang) write alike:
buffer names, constants as C literals, and loops."""

from __future__ import annotations

from tg.codegen.render import TextRenderer
from tg.codegen.uops import UOp
from tg.support.dtype import DType

from tg_clang.cprelude import literal


class CRenderer(TextRenderer):
    """A :class:`TextRenderer` writing C; a subclass says how it names a fresh variable (:meth:`fresh`)."""

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
        self.emit(f"for (int32_t {var} = {start}; {var} < {end}; {var}++) {{")
        self.depth += 1

    def render_endrange(self, u: UOp) -> None:
        self.depth -= 1
        self.emit("}")
