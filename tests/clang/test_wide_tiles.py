"""The clang backend's matmul tiles on CPUs with AVX-512: two vectors per row (6x32 float32) where the packed
panel is past L1 anyway, twelve rows of them where the launch has the rows (12x32), and tall work units for tiles
that pack (the copy of a panel is paid once per unit).

The CPU is read from /proc/cpuinfo; the tests pin the register width (``tg_clang.cpu_shapes.register_bytes``) so they
run the same on any x86 machine (32 lanes of 4 bytes are plain vector-extension C, whatever the CPU).  Each test
uses shapes of its own: a process renders a kernel of a given structure once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from clang_helpers import matches_numpy, new_kernels
from tg.codegen.tiles import UNITS_TARGET, Tiling
from tg_clang import cpu_shapes

rng = np.random.default_rng(11)


def _new_strategies(fn: Callable[[], None]) -> dict[str, str]:
    """The strategies of the kernels ``fn`` compiles."""
    return {name: strategy for name, strategy, _ in new_kernels(fn)}


@pytest.mark.parametrize(("register_bytes", "strategy"), [(64, "tiled6x32"), (32, "tiled6x16")])
def test_matmul_gang_doubles_only_with_avx512_registers(monkeypatch: pytest.MonkeyPatch, register_bytes: int,
                                                        strategy: str) -> None:
    """K=700 float32: a 16-lane panel is 44.8 KB, past L1, so AVX-512 (64-byte registers) takes 6x32; AVX2 keeps
    6x16 (twelve accumulators of 32 bytes would not leave room in its sixteen registers)."""
    monkeypatch.setattr(cpu_shapes, "register_bytes", lambda: register_bytes)
    m = 60 + register_bytes // 32  # a shape of its own per case
    a, b = rng.standard_normal((m, 700)).astype("float32"), rng.standard_normal((700, 96)).astype("float32")
    new = _new_strategies(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b]))
    assert strategy in new.values(), new


@pytest.mark.parametrize(("panel", "strategy"), [(cpu_shapes.L1_PANEL, "tiled6x16"), (0, "tiled6x32")])
def test_small_panel_keeps_the_narrow_gang_on_zen4(monkeypatch: pytest.MonkeyPatch, panel: int, strategy: str
                                                   ) -> None:
    """K=256 float32: the 16-lane panel (16 KB) fits L1; on Zen 4 (double-pumped 512-bit FMAs) doubling the gang would
    push it out and lose; on Intel's AVX-512 cores (whole 512-bit FMA units) the wider gang wins anyway."""
    monkeypatch.setattr(cpu_shapes, "register_bytes", lambda: 64)
    monkeypatch.setattr(cpu_shapes, "wide_gang_panel", lambda: panel)
    m = 66 + panel // 4096  # a shape of its own per case
    a, b = rng.standard_normal((m, 256)).astype("float32"), rng.standard_normal((256, 64)).astype("float32")
    new = _new_strategies(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b]))
    assert strategy in new.values(), new


@pytest.mark.parametrize("n", [60, 80, 784, 790])
def test_wide_gang_with_a_masked_column_tail(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """A weight gradient's product ``g.T @ x`` (the B panel packed) doubles its gang on AVX-512 although its columns
    are no whole number of 32-lane gangs where the masked 32-lane gang that takes the tail is small
    (cpu_shapes.WIDE_TAIL): 784 = 24 * 32 + 16 (an MLP's first layer) does, 60 = 32 + 28 does not; every case
    matches numpy."""
    monkeypatch.setattr(cpu_shapes, "register_bytes", lambda: 64)
    monkeypatch.setattr(cpu_shapes, "wide_gang_panel", lambda: 0)
    g = rng.standard_normal((250 + n % 7, 66)).astype("float32")  # (a shape of its own per case)
    x = rng.standard_normal((g.shape[0], n)).astype("float32")
    new = _new_strategies(lambda: matches_numpy(lambda t: t[0].T @ t[1], [g, x], rtol=1e-4))
    if n in (784, 60):
        assert ("tiled6x32" if n == 784 else "tiled6x16") in new.values(), new


@pytest.mark.parametrize("threads", [1, 2, 16])
def test_tall_units_keep_enough_units(monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    """Packed tiles get units of about PACKED_BLOCK_ROWS rows, but never fewer than UNITS_TARGET units (or
    UNITS_PER_THREAD per thread, where that is fewer), and never shorter units than core chose."""
    monkeypatch.setenv("TG_CLANG_THREADS", str(threads))
    wanted = min(UNITS_TARGET, cpu_shapes.UNITS_PER_THREAD * threads)
    big = Tiling(lanes=32, rows=6, row_len=2048, n_rows=2048, full_cols=2048, block_rows=132, block_cols=32)
    assert cpu_shapes.taller_units(big).block_rows == 516
    small = Tiling(lanes=32, rows=6, row_len=64, n_rows=600, full_cols=64, block_rows=24, block_cols=32)
    tall = cpu_shapes.taller_units(small)
    assert tall.block_rows % 6 == 0 and tall.block_rows >= 24 and wanted // 2 <= tall.units <= wanted
    # a (256, 784) x (784, 256) matmul (an MLP's first layer): its units each pack their panel
    mlp = Tiling(lanes=32, rows=6, row_len=256, n_rows=256, full_cols=256, block_rows=66, block_cols=32)
    assert cpu_shapes.taller_units(mlp).units == max(8, wanted)
    already = Tiling(lanes=16, rows=6, row_len=512, n_rows=4096, full_cols=512, block_rows=600, block_cols=16)
    assert cpu_shapes.taller_units(already).block_rows == 600
    transposed = Tiling(lanes=16, rows=6, row_len=512, n_rows=512, full_cols=512, block_rows=16, block_cols=132,
                        transposed=True)
    assert cpu_shapes.taller_units(transposed) == transposed


SHAPES = [
    ((61, 600), (600, 97)),  # rows and columns past whole tiles and gangs
    ((1, 700), (700, 64)),  # one row
    ((70, 600), (600, 1)),  # one column
    ((3, 20, 530), (3, 530, 70)),  # batched
]


@pytest.mark.parametrize(("a_shape", "b_shape"), SHAPES)
def test_wide_tiles_at_awkward_sizes(monkeypatch: pytest.MonkeyPatch, a_shape: tuple[int, ...],
                                     b_shape: tuple[int, ...]) -> None:
    monkeypatch.setattr(cpu_shapes, "register_bytes", lambda: 64)
    a, b = rng.standard_normal(a_shape).astype("float32"), rng.standard_normal(b_shape).astype("float32")
    matches_numpy(lambda t: t[0] @ t[1], [a, b], rtol=1e-4)


def test_wide_tiles_transposed_operands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_shapes, "register_bytes", lambda: 64)
    a, b = rng.standard_normal((610, 67)).astype("float32"), rng.standard_normal((99, 610)).astype("float32")
    matches_numpy(lambda t: t[0].T @ t[1].T, [a, b], rtol=1e-4)
    matches_numpy(lambda t: (t[1] @ t[0]).T, [a, b], rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32"])
def test_wide_tiles_other_dtypes(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    monkeypatch.setattr(cpu_shapes, "register_bytes", lambda: 64)
    if dtype == "int32":
        a, b = rng.integers(-50, 50, (45, 620)).astype(dtype), rng.integers(-50, 50, (620, 70)).astype(dtype)
    else:
        a, b = rng.standard_normal((45, 620)).astype(dtype), rng.standard_normal((620, 70)).astype(dtype)
    matches_numpy(lambda t: t[0] @ t[1], [a, b], rtol={"float64": 1e-10, "float16": 5e-2}.get(dtype, 0.0))


def test_gang_stays_narrow_where_the_wide_panel_would_not_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    """K=2500 float32: the 16-lane panel (160 KB) packs, a 32-lane one (320 KB) would be past PACK_LIMIT and read
    B down its stride in every tile; the gang stays 16 lanes."""
    monkeypatch.setattr(cpu_shapes, "register_bytes", lambda: 64)
    a, b = rng.standard_normal((48, 2500)).astype("float32"), rng.standard_normal((2500, 64)).astype("float32")
    new = _new_strategies(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b], rtol=2e-4))
    assert "tiled6x16" in new.values(), new


def test_rows_of_25_keep_the_full_gang_with_a_masked_tail() -> None:
    """N=25 columns: one gang of 16, then the 9 columns left run as a masked gang of 16 lanes in tiles as tall as
    the full ones (2x faster than gangs of 8 with one scalar column, which were 4.5x faster than a scalar tail of
    9).  The results match numpy's."""
    a, b = rng.standard_normal((902, 125)).astype("float32"), rng.standard_normal((125, 25)).astype("float32")
    new = _new_strategies(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b]))
    assert "tiled6x16" in new.values(), new


def test_rows_of_19_keep_the_full_gang() -> None:
    """N=19: gangs of 8 would still leave 3 columns to the tail, as one gang of 16 does; the full gang stays."""
    a, b = rng.standard_normal((903, 125)).astype("float32"), rng.standard_normal((125, 19)).astype("float32")
    new = _new_strategies(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b]))
    assert "tiled6x16" in new.values(), new


def test_tall_tiles_where_the_registers_hold_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """With AVX-512's 32 registers a wide tile doubles its rows too (12x32 float32: 24 accumulators, each packed vector
    loaded once for twelve rows), where the launch has the rows and makes as many work units; AVX2 keeps 6x16, and a
    launch that twelve-row tiles would leave fewer units keeps 6x32, and so do a short loop and a second row operand
    in the loop (twelve more row pointers than the general registers hold)."""
    monkeypatch.setenv("TG_CLANG_THREADS", "2")  # (the units the 12-row tiles must keep follow the threads)
    monkeypatch.setattr(cpu_shapes, "register_bytes", lambda: 64)
    monkeypatch.setattr(cpu_shapes, "wide_gang_panel", lambda: 0)
    a, b = rng.standard_normal((120, 300)).astype("float32"), rng.standard_normal((300, 128)).astype("float32")
    assert "tiled12x32" in _new_strategies(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b])).values()
    a, b = rng.standard_normal((47, 300)).astype("float32"), rng.standard_normal((300, 35)).astype("float32")
    assert "tiled6x32" in _new_strategies(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b])).values()
    a, b = rng.standard_normal((122, 64)).astype("float32"), rng.standard_normal((64, 128)).astype("float32")
    assert "tiled6x32" in _new_strategies(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b])).values()
    a, b = rng.standard_normal((123, 300)).astype("float32"), rng.standard_normal((300, 128)).astype("float32")
    c = rng.standard_normal((123, 300)).astype("float32")
    assert "tiled6x32" in _new_strategies(lambda: matches_numpy(lambda t: (t[0] * t[2]) @ t[1], [a, b, c])).values()
    monkeypatch.setattr(cpu_shapes, "register_bytes", lambda: 32)
    a, b = rng.standard_normal((121, 300)).astype("float32"), rng.standard_normal((300, 128)).astype("float32")
    assert "tiled6x16" in _new_strategies(lambda: matches_numpy(lambda t: t[0] @ t[1], [a, b])).values()


def test_tiles_planned_for_avx512_compile_to_512_bit_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 12x32 tiles are planned for 64-byte registers; clang's tuning for recent Xeons splits vectors into 256-bit
    halves unless told otherwise (-mprefer-vector-width=512 in tg_clang.compiler.BASE_FLAGS), which halves a
    matmul's FMA throughput.  The kernel's machine code must use the zmm registers."""
    import subprocess

    from tg_clang import compiler

    if " avx512f" not in compiler._host_cpu():
        pytest.skip("needs a CPU with AVX-512 (this machine's /proc/cpuinfo flags lack avx512f)")
    monkeypatch.setenv("TG_CLANG_THREADS", "2")  # (the units the 12-row tiles must keep follow the threads)
    a, b = rng.standard_normal((70, 700)).astype("float32"), rng.standard_normal((700, 160)).astype("float32")
    from tg.engine.device import device_state

    before = {key for key, _ in device_state("clang").binaries.items()}
    matches_numpy(lambda t: t[0] @ t[1], [a, b])
    ((source, program),) = [(key[1], p) for key, p in device_state("clang").binaries.items() if key not in before]
    assert program.strategy == "tiled12x32", program.strategy  # (see test_tall_tiles_where_the_registers_hold_them)
    flags = [f for f in compiler.default_flags() if f != "-shared" and not f.startswith("-l")]
    asm = subprocess.run([compiler.require_compiler(), *flags, "-S", "-x", "c", "-", "-o", "-"], check=True,
                         input=source.encode(), capture_output=True).stdout.decode()
    assert "vfmadd231ps\t%zmm" in asm or "vfmadd231ps %zmm" in asm, "no 512-bit FMA in the matmul kernel"
