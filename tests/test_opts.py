"""The optimizations core chooses for a shaped kernel from the target's capabilities (tg.codegen.opts)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tg import Tensor, dtypes
from tg.codegen.capabilities import Capabilities
from tg.codegen.lower import lower
from tg.codegen.opts import KernelOpts, ShapedKernel, choose_opts, row_dim, unroll_amount
from tg.codegen.uops import Ops
from tg.schedule.scheduler import Kernel, create_schedule


def shaped(shape: tuple[int, ...], reduce_dims: tuple[int, ...] = (), op: Ops | None = Ops.ADD) -> ShapedKernel:
    return ShapedKernel(shape, reduce_dims, op if reduce_dims else None, dtypes.float32)


@pytest.mark.parametrize(("length", "unroll", "expected"), [(64, 4, 4), (12, 8, 4), (7, 4, 1), (64, 1, 1),
                                                            (6, 4, 2), (4, 4, 2), (96, 6, 4)])
def test_unroll_takes_the_largest_power_of_two_that_divides_the_loop(length: int, unroll: int, expected: int) -> None:
    assert unroll_amount(shaped((3, length), (1,)), Capabilities(unroll=unroll)) == expected


def test_elementwise_kernels_have_no_loop_to_unroll() -> None:
    assert choose_opts(shaped((64, 64)), Capabilities(unroll=8)) == KernelOpts()


def test_register_tiles_and_vector_lanes_come_from_the_capabilities() -> None:
    matmul = shaped((32, 64, 48), (1,))  # rows, the reduction, columns
    assert choose_opts(matmul, Capabilities()) == KernelOpts()
    opts = choose_opts(matmul, Capabilities(upcast=16, vector_width=4))
    assert opts.upcast == ((0, 4), (2, 4)) and opts.group_lanes == 1


def test_few_long_reductions_take_a_work_group_each() -> None:
    caps = Capabilities(group_size=64, local_memory=1 << 16, unroll=4)
    assert choose_opts(shaped((4, 100_000), (1,)), caps) == KernelOpts(group_lanes=64)
    assert choose_opts(shaped((4, 100_000), (1,)), Capabilities(group_size=64)).group_lanes == 1  # no local memory


def test_capabilities_refuse_a_count_below_one() -> None:
    with pytest.raises(ValueError, match="Capabilities.unroll must be at least 1"):
        Capabilities(unroll=0)


def test_an_unrolled_loop_runs_a_quarter_of_the_trips_with_four_accumulations_each() -> None:
    x = Tensor(np.ones((3, 64), np.float32)).realize().sum(axis=1)
    (kernel,) = [k for k in create_schedule([x.lazydata]) if isinstance(k, Kernel)]
    plain, unrolled = lower(kernel, Capabilities()), lower(kernel, Capabilities(unroll=4))
    (loop,) = [u for u in unrolled.uops if u.op is Ops.RANGE]
    assert loop.src[1].arg == 16 and sum(u.op is Ops.ASSIGN for u in unrolled.uops) == 4
    assert sum(u.op is Ops.ASSIGN for u in plain.uops) == 1


_SUM = """
import numpy as np, sys
from tg import Tensor
x = np.random.default_rng(3).standard_normal((5, 4096)).astype(np.float32) * 1e3
sys.stdout.write((Tensor(x).sum(axis=1).numpy().tobytes() + Tensor(x).max(axis=1).numpy().tobytes()).hex())
"""


def test_unrolling_keeps_the_order_of_accumulation_so_results_are_bit_identical() -> None:
    def run(caps: str) -> str:
        env = {"TG_BACKEND": "numpy", "TG_NUMPY_CAPS": caps, "PATH": "/usr/bin:/bin"}
        return subprocess.run([sys.executable, "-c", _SUM], capture_output=True, text=True, check=True, env=env).stdout

    assert run("unroll=8") == run("interpret")  # both on the interpreter, which adds in loop order


def test_a_convolution_folds_its_output_channels_innermost_into_the_launch_rows() -> None:
    """With two launch dimensions the rows fold batch, channels and image rows; the channel goes innermost (the
    image load does not depend on it, so a register tile of channels shares it): ``gidx1 % 6`` is the channel."""
    x = Tensor(np.ones((2, 3, 9, 9), np.float32)).realize()
    w = Tensor(np.ones((6, 3, 3, 3), np.float32)).realize()
    (kernel,) = [k for k in create_schedule([x.conv2d(w, padding=1).lazydata]) if isinstance(k, Kernel)]
    caps = Capabilities(launch_dims=2)
    lowered = lower(kernel, caps)
    assert lowered.global_size == (9, 2 * 6 * 9)
    divisors = {(u.op, u.src[1].arg) for u in lowered.uops if u.op in (Ops.IDIV, Ops.MOD)
                and u.src[0].op is Ops.SPECIAL and u.src[0].arg[0] == "gidx1"}
    assert (Ops.MOD, 6) in divisors and (Ops.IDIV, 6) in divisors, divisors


def test_row_dim_keeps_the_innermost_fold_unless_another_is_shared_by_more_loads() -> None:
    shape = (4, 8, 16, 32)  # batch, channels, image rows, columns (the launch's innermost)
    image = ((4096, 0, 32, 1), None)  # varies along the columns, not the channels
    weight = ((0, 3, 0, 0), None)  # a broadcast along the columns: shares nothing across lanes
    assert row_dim(shape, [0, 1, 2], 3, [image, weight]) == 1
    assert row_dim(shape, [0, 1, 2], 3, [weight]) == 2
    masked = ((4096, 0, 32, 1), ((0, 4), (0, 4), (0, 16), (0, 32)))  # its mask depends on the channel
    assert row_dim(shape, [0, 1, 2], 3, [masked]) == 2
