"""A pytest plugin for runs with TG_PTX_VERIFY: checks the kernels still pending at the end, and says how many
ptxas accepted.

Load it explicitly (``pytest -p tg_ptx.pytest_plugin ...``); it is not registered to load by itself.  A
kernel ptxas rejects at the end of the run makes the run fail, with ptxas's message.
"""

from __future__ import annotations

from typing import Any

import pytest
from tg.support.errors import BackendError

from tg_ptx import ptxas

_failure: list[str] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        ptxas.verifier.flush()
    except BackendError as exc:
        _failure.append(str(exc))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not ptxas.verify_targets():
        return
    for message in _failure:
        terminalreporter.write_line(f"TG_PTX_VERIFY: {message}", red=True)
    terminalreporter.write_line(f"tg-ptx: {ptxas.verifier.summary()}")
