"""Fixtures for tg-rdna's tests: a private kernel cache per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty kernel cache for this test (TG_CACHE_DIR); code objects go to its ``rdna/`` folder."""
    monkeypatch.setenv("TG_CACHE_DIR", str(tmp_path))
    return tmp_path / "rdna"
