"""The rendering base of text emitters: one walk over a kernel's micro-ops, dispatched per op.

A target's renderer subclasses :class:`TextRenderer` and gives, for each kind of micro-op, either a line of its
:attr:`~TextRenderer.ops` table (an expression with ``{0}``, ``{1}``, ``{2}`` standing for the operands'
names, declared through :meth:`~TextRenderer.define`) or a method ``render_<op>`` (``render_load``,
``render_range``...) for what a table cannot say: declarations, control flow, memory, the target's special
cases.  A method may hand the ordinary case back to the table with :meth:`~TextRenderer.from_table`.  What no
method and no table line covers is refused with the op's name, so a new micro-op never renders silently wrong.
The dead values are gone before a renderer sees the list (:func:`tg.codegen.rewrites.eliminate_dead`).

tg's numpy, clang (its scalar and its SIMD lane renderer) and PTX emitters are built on it; so can a third party's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from tg.codegen.uops import Ops, UOp


class TextRenderer:
    """Renders one kernel's micro-ops (``uops``) as lines of text.

    ``names`` maps each value (by ``id``) to its text in the target (a variable, a literal, a register);
    ``lines`` collects the output, each indented by ``indent`` times ``margin + depth``, where ``depth`` is the
    loop nesting a renderer keeps up to date in its ``render_range``/``render_endrange``.
    """

    #: An ALU op's expression in the target's syntax, by op: ``{0}``, ``{1}``, ``{2}`` are the operands' names.
    ops: ClassVar[dict[Ops, str]] = {}
    indent: ClassVar[str] = "  "

    def __init__(self, uops: list[UOp], margin: int = 0):
        self.uops = uops
        self.names: dict[int, str] = {}
        self.lines: list[str] = []
        self.margin, self.depth = margin, 0
        self.position = 0  # where in ``uops`` the walk is
        self._methods: dict[Ops, Callable[[UOp], Any] | None] = {}

    def render_uops(self) -> list[str]:
        """Walk the micro-ops in order, rendering each; return the lines."""
        for position, u in enumerate(self.uops):
            self.position = position
            method = self._methods.get(u.op, ...)
            if method is ...:
                method = self._methods[u.op] = getattr(self, f"render_{u.op.name.lower()}", None)
            if method is not None:
                method(u)
            else:
                self.from_table(u)
        return self.lines

    def from_table(self, u: UOp) -> None:
        """Render ``u`` through :attr:`ops` (an expression of its operands' names) and :meth:`define` it."""
        text = self.ops.get(u.op)
        if text is None:
            raise NotImplementedError(f"{type(self).__name__} cannot render micro-op {u.op.name} ({u.dtype}): "
                                      "it needs a line in its ops table or a render_" + u.op.name.lower() + " method")
        self.define(u, text.format(*self.operands(u)))

    def operands(self, u: UOp) -> list[str]:
        """The names of ``u``'s operands."""
        return [self.names[id(s)] for s in u.src]

    def emit(self, line: str) -> None:
        """Append ``line`` at the current indentation."""
        self.lines.append(self.indent * (self.margin + self.depth) + line)

    def define(self, u: UOp, expr: str) -> None:
        """Give ``u`` a name holding ``expr`` (the target's declaration); every renderer that has a table says how."""
        raise NotImplementedError(f"{type(self).__name__} defines no values from expressions")
