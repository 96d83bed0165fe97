"""The rendering base of text emitters: one walk, table lines and render_<op> methods, unknown ops refused."""

from __future__ import annotations

from typing import ClassVar

import pytest
from tg.codegen.builder import KernelBuilder
from tg.codegen.render import TextRenderer
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import dtypes


class TinyC(TextRenderer):
    """A toy target: ALU ops from a table, definitions and memory by method."""

    ops: ClassVar[dict[Ops, str]] = {Ops.ADD: "{0} + {1}", Ops.MUL: "{0} * {1}"}

    def define(self, u: UOp, expr: str) -> None:
        self.names[id(u)] = f"t{self.position}"
        self.emit(f"let t{self.position} = {expr};")

    def render_define_global(self, u: UOp) -> None:
        self.names[id(u)] = u.arg[1]

    def render_special(self, u: UOp) -> None:
        self.names[id(u)] = "tid"

    def render_const(self, u: UOp) -> None:
        self.names[id(u)] = repr(u.arg)

    def render_load(self, u: UOp) -> None:
        buf, idx = self.operands(u)
        self.define(u, f"{buf}[{idx}]")

    def render_store(self, u: UOp) -> None:
        buf, idx, value = self.operands(u)
        self.emit(f"{buf}[{idx}] = {value};")

    def render_range(self, u: UOp) -> None:
        self.names[id(u)] = "i"
        self.emit(f"for i in {self.operands(u)[0]}..{self.operands(u)[1]} {{")
        self.depth += 1

    def render_endrange(self, u: UOp) -> None:
        self.depth -= 1
        self.emit("}")


def _kernel(op: Ops) -> list[UOp]:
    b = KernelBuilder()
    out, inp = b.define_global(0, dtypes.float32, True), b.define_global(1, dtypes.float32, False)
    g = b.special("gidx0", 8)
    loop = b.range(0, 2)
    x = b.load(inp, b.alu(Ops.ADD, g, loop), dtypes.float32)
    b.store(out, g, b.alu(op, x, b.const(2.0, dtypes.float32)))
    b.end_range(loop)
    return b.uops


def test_one_walk_uses_the_table_and_the_methods_in_order() -> None:
    lines = TinyC(_kernel(Ops.MUL), margin=1).render_uops()
    assert lines == ["  for i in 0..2 {", "    let t6 = tid + i;", "    let t7 = data1[t6];",
                     "    let t9 = t7 * 2.0;", "    data0[tid] = t9;", "  }"]  # t<i>: i is the op's position


def test_an_op_with_neither_a_table_line_nor_a_method_is_refused_by_name() -> None:
    with pytest.raises(NotImplementedError, match=r"TinyC cannot render micro-op MAX .*render_max"):
        TinyC(_kernel(Ops.MAX)).render_uops()
