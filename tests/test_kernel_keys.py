"""Compiled-kernel keys: equal for graphs of one structure, different whenever the code would differ.

A wrong cache hit runs another kernel's code on the inputs: a silent wrong answer.  The key is the structure the
scheduler records (ops by name, views as plain tuples, constants by exact value), so each way two kernels can
differ is pinned here, beside the equal keys that let a training step compile its kernels once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tg import Tensor
from tg.engine.realize import kernel_key
from tg.graph.shapetracker import ShapeTracker, View
from tg.schedule.scheduler import Kernel, create_schedule


def key_of(t: Tensor) -> tuple[object, ...]:
    (kernel,) = [k for k in create_schedule([t.lazydata]) if isinstance(k, Kernel)]
    return kernel_key(kernel)


def realized(*shape: int, dtype: str = "float32") -> Tensor:
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(dtype)).realize()


def test_same_structure_same_key() -> None:
    def graph() -> Tensor:
        a, b = realized(4, 6), realized(4, 6)
        return ((a * 2 + b).relu() * a).sum(1)

    assert key_of(graph()) == key_of(graph())
    a, b = realized(4, 6), realized(4, 6)
    assert key_of(a - b) == key_of(b - a)  # inputs are slots: the same code runs on them in the other order


PAIRS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "op": (lambda a: a + a, lambda a: a * a),
    "constant -0.0 vs 0.0": (lambda a: a * 0.0, lambda a: a * -0.0),
    "constant value": (lambda a: a + 1.0, lambda a: a + 1.0000001),
    "int constant vs float parameter": (lambda a: a.cast("int32") * 2, lambda a: a.cast("int32") * 2.0),
    "a float parameter's place": (lambda a: a * 2.0 + 3.0, lambda a: a * 2.0 + (a * 3.0)),
    "view: flip": (lambda a: a + 1, lambda a: a.flip(0) + 1),
    "view: permute": (lambda a: a.reshape(4, 4) + 1, lambda a: a.reshape(4, 4).permute(1, 0) + 1),
    "view: pad mask": (lambda a: a.pad(((1, 0),))[:16] + 1, lambda a: a.pad(((0, 1),))[:16] + 1),
    "reduce op": (lambda a: a.reshape(4, 4).sum(1), lambda a: a.reshape(4, 4).amax(1)),
    "reduce axis": (lambda a: a.reshape(4, 4).sum(0), lambda a: a.reshape(4, 4).sum(1)),
    "cast vs bitcast": (lambda a: a.cast("int32"), lambda a: a.bitcast("int32")),
    "source order": (lambda a: a - (a + 1), lambda a: (a + 1) - a),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_different_code_different_key(name: str) -> None:
    first, second = PAIRS[name]
    assert key_of(first(realized(16))) != key_of(second(realized(16)))


def test_a_float_parameter_keys_by_value_only_where_the_backend_compiles_it_in() -> None:
    """A Python float of tensor arithmetic is a parameter slot in the structure: with the values in the key (a backend
    without float launch variables), -0.0 and 0.0 and 1.0 and 1.0000001 key different kernels; without them (the value
    passed at launch) they key one, and an int or a ``**`` exponent still keys by value."""
    def key(t: Tensor, with_values: bool) -> tuple[object, ...]:
        (kernel,) = [k for k in create_schedule([t.lazydata]) if isinstance(k, Kernel)]
        return kernel_key(kernel, with_values)

    a = realized(16)
    for x, y in ((0.0, -0.0), (1.0, 1.0000001)):
        assert key(a * x, True) != key(a * y, True)
        assert key(a * x, False) == key(a * y, False)
    ints = a.cast("int32")
    assert key(ints * 2, False) != key(ints * 3, False)
    assert key(a ** 2.0, False) != key(a ** 3.0, False)


def test_view_key_is_exact() -> None:
    a = ShapeTracker((View.create((4, 4)),))
    b = ShapeTracker((View.create((4, 4)),))
    c = ShapeTracker((View.create((4, 4), (1, 4)),))
    assert a.key == b.key and hash(a.key) == hash(b.key)
    assert a.key != c.key
    assert (a == c) == (a.key == c.key)
