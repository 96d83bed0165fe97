"""Fixtures shared by the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tg.engine.device import device_state, reset_devices


@pytest.fixture
def interpreter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The numpy backend on its interpreter (symbolic launches and dynamic shapes), fresh, its compiles listed."""
    monkeypatch.setenv("TG_BACKEND", "numpy")
    monkeypatch.setenv("TG_NUMPY_CAPS", "interpret")
    reset_devices()
    state = device_state()
    # (the registry may have made the emitter and the runtime before the setting)
    monkeypatch.setattr(state.backend.emitter, "fast", False)
    monkeypatch.setattr(state, "dynamic_shapes", True)
    compiled: list[Any] = []
    original = state.backend.runtime.compile
    monkeypatch.setattr(state.backend.runtime, "compile", lambda p: compiled.append(p) or original(p))
    state.compiled = compiled
    yield state
    reset_devices()
