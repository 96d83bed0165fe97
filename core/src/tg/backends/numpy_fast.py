"""The numpy backend's fast path: a kernel's micro-ops rendered as whole-array numpy over the kernel's own axes.

Where the interpreter (:class:`~tg.backends.numpy_interpreter.NumpyRenderer`) computes every value for every thread
and runs loops in Python, this renderer gives each output dimension and each loop an array axis of its own
(:mod:`tg.backends.numpy_fast_plan`): values broadcast over the axes they depend on, a loop's body runs once for
all its iterations, and its accumulation is a reduction along its axes, a matrix product (BLAS) when the body
multiplies two float32/float64 values.  A load whose index is affine in the axes is a strided view, not a gather.
Big kernels run in chunks of threads and of loop iterations.

ALU ops and casts render as the interpreter renders them, so their dtype semantics are the interpreter's.  What
differs: the order of a reduction's additions (float16 sums still round at every addition; a BLAS product may
skip the rounding of each float32 product), and a gated load's lane that the gate lets through with an index
outside its buffer reads 0 where the interpreter raises (core never emits one; the interpreter, which the
conformance kit runs with every capability, would find it).
"""

from __future__ import annotations

import numpy as np

from tg.backends.numpy_fast_plan import Plan, affine, plan
from tg.backends.numpy_interpreter import NumpyRenderer, _const
from tg.codegen.program import LoweredKernel
from tg.codegen.uops import Ops, UOp
from tg.support.dtype import DType


def render_fast(kernel: LoweredKernel, sin_is_sin2pi: bool) -> str:
    """The Python function ``name(bufs, vals)`` of ``kernel`` on the fast path (raises ``NotFast`` when it does not
    fit)."""
    renderer = FastRenderer(kernel, plan(kernel), sin_is_sin2pi)
    return "\n".join([f"def {kernel.name}(bufs, vals):  # numpy fast path", *renderer.render_kernel()]) + "\n"


class FastRenderer(NumpyRenderer):
    """The body of a fast-path kernel: the buffers, then a loop over chunks of threads (axis 0) holding the micro-ops.

    ``_d<axis>`` are the thread digits of this chunk along their axes and ``_ts`` the chunk's thread shape."""

    def __init__(self, kernel: LoweredKernel, kernel_plan: Plan, sin_is_sin2pi: bool):
        super().__init__(kernel.uops, kernel.global_size, kernel.local_size, sin_is_sin2pi)
        self.plan = kernel_plan
        memo: dict[int, tuple[int, dict[int, int]] | None] = {}
        #: loads whose index is affine in the axes: read through a strided view, no index array
        self.affine_loads = {id(u): form for u in kernel.uops if u.op is Ops.LOAD and isinstance(u.dtype, DType)
                             for form in [affine(kernel_plan, u.src[1], memo)] if form is not None}
        self.ranges = {kernel_plan.range_axis[id(u)]: u for u in kernel.uops if u.op is Ops.RANGE}
        self.live = self._live()

    def render_kernel(self) -> list[str]:
        p = self.plan
        for position, u in enumerate(self.uops):
            if u.op is Ops.DEFINE_GLOBAL:
                self.position = position
                super().render_define_global(u)
        shape = []
        if p.n_digits:
            size, chunk = p.sizes[0], p.thread_chunk
            self.emit(f"for _c in range(0, {size}, {chunk}):")
            self.depth += 1
            self.emit(f"_d0 = _axis(_c, min(_c + {chunk}, {size}), 0, {p.ndim})")
            shape.append("_d0.shape[0]")
            for axis in range(1, p.n_digits):
                self.emit(f"_d{axis} = _axis(0, {p.sizes[axis]}, {axis}, {p.ndim})")
                shape.append(str(p.sizes[axis]))
        shape += ["1"] * (p.ndim - p.n_digits)
        self.emit(f"_ts = ({', '.join(shape)}{',' if len(shape) == 1 else ''})")
        return self.render_uops()

    def render_uops(self) -> list[str]:
        frees = self._frees()
        for position, u in enumerate(self.uops):
            self.position = position
            if id(u) not in self.live or u.op is Ops.DEFINE_GLOBAL:
                continue
            method = getattr(self, f"render_{u.op.name.lower()}", None)
            if method is not None:
                method(u)
            else:
                self.from_table(u)
            dead = [self.names[id(x)] for x in frees.get(position, ())]
            if dead:
                self.emit(f"del {', '.join(dead)}")
        return self.lines

    def _reads(self, u: UOp) -> tuple[UOp, ...]:
        """The values ``u``'s rendering names (not always its operands: a contiguous store needs no index array, an
        affine load reads the axes themselves, a thread digit is built from the digit axes)."""
        p = self.plan
        if u.op is Ops.ASSIGN:
            acc = p.accumulations[id(u)]
            return (acc.acc, *(acc.factors or (acc.value,)), *acc.ranges)
        if u.op is Ops.STORE and id(u) in p.contiguous_stores:
            return (u.src[0], *u.src[2:])
        if u.op is Ops.STORE and id(u) in p.loop_stores:
            return (u.src[0], *u.src[2:], *(self.ranges[a] for a in p.loop_stores_affine[id(u)][1] if a in self.ranges))
        if id(u) in self.affine_loads:
            return (u.src[0], *u.src[2:], *(self.ranges[a] for a in self.affine_loads[id(u)][1] if a in self.ranges))
        if u.op is Ops.ENDRANGE or id(u) in p.spans:
            return ()
        return u.src

    def _live(self) -> set[int]:
        """The uops a rendering needs: stores, accumulations and loops, and what they read, transitively."""
        live: set[int] = set()
        for u in reversed(self.uops):
            if id(u) in self.plan.skipped:
                continue
            if u.op in (Ops.STORE, Ops.ASSIGN, Ops.RANGE, Ops.ENDRANGE, Ops.DEFINE_GLOBAL):
                live.add(id(u))
            if id(u) in live:
                live.update(id(s) for s in self._reads(u))
        return live

    def _frees(self) -> dict[int, list[UOp]]:
        """Where each array can be let go (a value all of a kernel's arrays kept alive to its end would need memory
        for all of them at once): after its last reader, or after the Python loop that holds its last reader when
        it was defined before that loop."""
        p, uops = self.plan, self.uops
        defined: dict[int, int] = {}
        last: dict[int, tuple[int, UOp]] = {}
        loops: list[tuple[int, int]] = []  # (RANGE position, ENDRANGE position) of the Python loops
        opened: dict[int, int] = {}
        for i, u in enumerate(uops):
            if id(u) not in self.live:
                continue
            defined.setdefault(id(u), i)
            for x in self._reads(u):
                last[id(x)] = (i, x)
            if u.op is Ops.RANGE and id(u) in p.outer_ranges:
                opened[id(u)] = i
            elif u.op is Ops.ENDRANGE and id(u.src[0]) in opened:
                loops.append((opened[id(u.src[0])], i))
        frees: dict[int, list[UOp]] = {}
        for key, (i, x) in last.items():
            if x.op in (Ops.CONST, Ops.DEFINE_GLOBAL, Ops.ASSIGN):
                continue
            at = next((end for start, end in loops if defined.get(key, -1) < start <= i <= end), i)
            frees.setdefault(at, []).append(x)
        return frees

    # -- thread digits and loops ---------------------------------------------------------------------------

    def _span(self, u: UOp) -> None:
        terms = [f"_d{axis}" + (f" * {coeff}" if coeff != 1 else "")
                 for axis, coeff in self.plan.span_terms(self.plan.spans[id(u)])]
        self.define(u, f"({' + '.join(terms)})" if terms else "np.int32(0)")

    def render_special(self, u: UOp) -> None:
        self._span(u)

    def render_idiv(self, u: UOp) -> None:
        self._div(u, "//")

    def render_mod(self, u: UOp) -> None:
        self._div(u, "%")

    def _div(self, u: UOp, python_op: str) -> None:
        a, b = u.src
        if id(u) in self.plan.spans:
            self._span(u)
        elif _floor_is_c_division(u):
            self.define(u, f"({self.names[id(a)]} {python_op} {self.names[id(b)]})")
        elif u.op is Ops.IDIV and _positive_constant(b):  # C's division toward zero is floor((a + c - 1) / c) for a < 0
            x, dtype = self.names[id(a)], u.dtype
            assert isinstance(dtype, DType)
            self.define(u, f"({x} + ({x} < 0) * {_const(b.arg - 1, dtype)}) // {self.names[id(b)]}")
        else:
            self.from_table(u)

    def render_range(self, u: UOp) -> None:
        p = self.plan
        axis, lo, hi = p.range_axis[id(u)], int(u.src[0].arg), int(u.src[1].arg)
        if id(u) in p.outer_ranges:
            chunk = p.range_chunk[id(u)]
            self.emit(f"for _k{axis} in range({lo}, {hi}, {chunk}):")
            self.depth += 1
            self.define(u, f"_axis(_k{axis}, min(_k{axis} + {chunk}, {hi}), {axis}, {p.ndim})")
        else:
            self.define(u, f"_axis({lo}, {hi}, {axis}, {p.ndim})")

    def render_endrange(self, u: UOp) -> None:
        if id(u.src[0]) in self.plan.outer_ranges:
            self.depth -= 1

    def render_define_acc(self, u: UOp) -> None:
        assert isinstance(u.dtype, DType)
        self.define(u, _const(u.arg, u.dtype))

    def render_assign(self, u: UOp) -> None:
        acc = self.plan.accumulations[id(u)]
        name = self.names[id(u)] = self.names[id(acc.acc)]
        axes = ", ".join(str(self.plan.range_axis[id(r)]) for r in acc.ranges) + ","
        ranges = ", ".join(self.names[id(r)] for r in acc.ranges) + ","
        if acc.factors is not None:
            a, b = (self.names[id(f)] for f in acc.factors)
            self.emit(f"{name} = _accumulate_product({name}, {a}, {b}, ({axes}), ({ranges}))")
        else:
            ufunc = "np.add" if acc.op is Ops.ADD else "np.maximum"
            self.emit(f"{name} = _accumulate({ufunc}, {name}, {self.names[id(acc.value)]}, ({axes}), ({ranges}))")

    def render_load(self, u: UOp) -> None:
        form = self.affine_loads.get(id(u))
        if form is None:
            super().render_load(u)
            return
        s = [self.names[id(x)] if i != 1 else "" for i, x in enumerate(u.src)]  # the index is the terms
        terms = ", ".join(f"({self._axis_name(a)}, {a}, {k})" for a, k in sorted(form[1].items()))
        gate = f", {s[2]}, {s[3]}" if len(s) > 2 else ""
        self.define(u, f"_load_affine({s[0]}, {form[0]}, ({terms}{',' if len(form[1]) == 1 else ''}), "
                       f"{self.plan.ndim}{gate})")

    def _axis_name(self, axis: int) -> str:
        return self.names[id(self.ranges[axis])] if axis in self.ranges else f"_d{axis}"

    def render_store(self, u: UOp) -> None:
        offset = self.plan.contiguous_stores.get(id(u))
        affine_index = offset is not None or id(u) in self.plan.loop_stores  # no index array
        s = [self.names[id(x)] if i != 1 or not affine_index else "" for i, x in enumerate(u.src)]
        gate = s[3] if len(s) > 3 else "True"
        if offset is not None:
            stride = self.plan.cuts[self.plan.n_digits - 1]  # threads per step of axis 0
            self.emit(f"_store_run({s[0]}, {offset} + _c * {stride}, {s[2]}, {gate}, _ts)")
        elif id(u) in self.plan.loop_stores:  # over the chunk's threads and the loops' iterations: a strided view
            const, terms = self.plan.loop_stores_affine[id(u)]
            args = ", ".join(f"({self._axis_name(a)}, {a}, {k})" for a, k in sorted(terms.items()))
            self.emit(f"_store_affine({s[0]}, {const}, ({args}{',' if len(terms) == 1 else ''}), {self.plan.ndim}, "
                      f"{s[2]}, {gate})")
        else:
            self.emit(f"_store_at({s[0]}, {s[1]}, {s[2]}, {gate}, _ts)")


def _positive_constant(u: UOp) -> bool:
    return u.is_const and isinstance(u.dtype, DType) and u.dtype.is_int and u.arg > 0


def _floor_is_c_division(u: UOp) -> bool:
    """``a // c`` (and ``a % c``) equal C's truncating division: the dividend is proven non-negative and within its
    dtype (so no wrap-around made it negative) and the divisor is a positive constant."""
    a, b = u.src
    if not (isinstance(u.dtype, DType) and u.dtype.is_int and _positive_constant(b)):
        return False
    return bool(a.vmin >= 0 and a.vmax <= np.iinfo(np.dtype(u.dtype.name)).max)
