"""Fixtures for the clang backend's tests: skip when clang is missing, a private kernel cache per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

if shutil.which("clang") is None:  # CI installs it (see the nox session); a bare machine skips loudly
    pytest.skip("clang is not installed (apt-get install clang)", allow_module_level=True)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty kernel cache for this test (TG_CACHE_DIR).  A native pool that an earlier test's launch is still
    building in a thread is waited for first: that build makes its kernel cache when it runs, and would otherwise
    write into this test's (CI once found the pool's link record beside the one a test counted)."""
    from tg_clang import pool

    pool.wait_for_background_build()
    monkeypatch.setenv("TG_CACHE_DIR", str(tmp_path))
    yield tmp_path / "clang"


@pytest.fixture
def fresh_devices() -> Iterator[None]:
    """Devices (compiled kernels, schedule cache, capabilities) made afresh before and after the test."""
    from tg.engine.device import reset_devices

    reset_devices()
    yield
    reset_devices()
