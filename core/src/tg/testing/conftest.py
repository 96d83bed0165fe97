"""Shared fixtures of the conformance kit: the backend under test, a seeded numpy generator, clean state.

This file is loaded only when pytest collects ``tg.testing`` itself (``pytest --pyargs tg.testing``);
it registers no plugin and changes nothing for other test suites.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import tg
from tg import Tensor
from tg.testing import DTYPE_NAMES


def _describe_backend() -> str:
    try:
        name = tg.default_backend_name()
        caps = tg.backend_capabilities()
    except Exception as exc:  # pytest_collection_modifyitems stops the run; say why here too
        return f"tg conformance kit: no backend ({type(exc).__name__}: {exc})"
    dts = ", ".join(d for d in DTYPE_NAMES if d in caps.dtypes)
    return f"tg conformance kit: backend {name!r} (TG_BACKEND={os.environ.get('TG_BACKEND')!r}), dtypes: {dts}"


def pytest_report_header(config: pytest.Config) -> str:
    """Name the backend under test at the top of the run (shown when the kit is given as a path)."""
    return _describe_backend()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop before running anything when the backend under test cannot be selected (say why, once)."""
    try:
        tg.default_backend_name()
    except Exception as exc:
        raise pytest.UsageError(f"tg conformance kit: cannot select the backend under test "
                                f"(TG_BACKEND={os.environ.get('TG_BACKEND')!r}): {type(exc).__name__}: {exc}") from exc


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Name the backend under test at the end of the run (``--pyargs`` runs show no conftest header)."""
    terminalreporter.write_line(_describe_backend())


@pytest.fixture(scope="session")
def backend_name() -> str:
    """The name of the backend under test; selecting it must work (an unusable TG_BACKEND fails here)."""
    return str(tg.default_backend_name())


@pytest.fixture(scope="session")
def capabilities() -> Any:
    """The backend's :class:`tg.backends.contract.Capabilities`."""
    return tg.backend_capabilities()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A numpy generator seeded from the test's module and name (with its parameters), so each test sees the
    same data on every run, whatever directory pytest runs from."""
    return np.random.default_rng(zlib.crc32(f"{request.node.module.__name__}::{request.node.name}".encode()))


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    """Each test starts with training off and a fixed tg seed; the training flag is restored afterwards."""
    training = Tensor.training
    Tensor.training = False
    Tensor.manual_seed(1234)
    yield
    Tensor.training = training


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The programs the backend under test compiles from here on (its runtime's ``compile``)."""
    from tg.engine.device import device_state

    runtime = device_state().backend.runtime
    original, programs = runtime.compile, []

    def counting(program: Any) -> Any:
        programs.append(program)
        return original(program)

    monkeypatch.setattr(runtime, "compile", counting)
    yield programs
