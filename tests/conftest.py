"""Fixtures shared by the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tg.engine.device import device_state, reset_devices


@pytest.fixture
def interpreter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The numpy backend on its interpreter (symbolic launches and dynamic shapes), fresh, its compiles listed.
    Its capabilities are TG_NUMPY_CAPS=interpret, or the setting a test passes with
    ``@pytest.mark.parametrize("interpreter", ["interpret,launch_dims=3"], indirect=True)``."""
    monkeypatch.setenv("TG_BACKEND", "numpy")
    monkeypatch.setenv("TG_NUMPY_CAPS", getattr(request, "param", "interpret"))
    from tg.backends.numpy_backend import capabilities_from_env

    reset_devices()
    # (the registry may have made the emitter and the runtime before the setting; a device state reads the
    # capabilities when it is made)
    emitter = device_state().backend.emitter
    monkeypatch.setattr(emitter, "fast", False)
    monkeypatch.setattr(emitter, "capabilities", capabilities_from_env())
    reset_devices()
    state = device_state()
    monkeypatch.setattr(state, "dynamic_shapes", True)
    compiled: list[Any] = []
    original = state.backend.runtime.compile
    monkeypatch.setattr(state.backend.runtime, "compile", lambda p: compiled.append(p) or original(p))
    state.compiled = compiled
    yield state
    reset_devices()
