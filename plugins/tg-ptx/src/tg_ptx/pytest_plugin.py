"""A pytest plugin for runs with TG_PTX_VERIFY: checks the kernels still pending at the end, and says how many
ptxas accepted.

Load it explicitly (``pytest -p tg_ptx.pytest_plugin ...``); it is not registered to load by itself.  A
kernel ptxas rejects at the end of the run makes the run fail, with ptxas's message.

Under pytest-xdist every worker compiles, and so verifies, its own kernels: each checks those still pending at the
end of its session and hands its tally and any rejection to the controller (xdist's ``workeroutput``), which
prints the run's total and fails the run for a rejection, or for a worker that ended without a verdict.
"""

from __future__ import annotations

from typing import Any

import pytest
from tg.support.errors import BackendError

from tg_ptx import ptxas

_KEY = "tg_ptx_verify"
_failure: list[str] = []
_accepted: dict[str, int] = {}  # kernels ptxas accepted per target, over this process and its xdist workers


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        ptxas.verifier.flush()
    except BackendError as exc:
        _failure.append(str(exc))
    for arch, n in ptxas.verifier.counts.items():
        _accepted[arch] = _accepted.get(arch, 0) + n
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: xdist sends this to the controller after this hook
        workeroutput[_KEY] = {"accepted": dict(ptxas.verifier.counts), "failures": list(_failure)}
    if _failure:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """(The controller of an xdist run; before its own pytest_sessionfinish.)  A worker's tally and rejections."""
    if not ptxas.verify_targets():
        return
    name = getattr(getattr(node, "gateway", None), "id", "an xdist worker")
    verdict = getattr(node, "workeroutput", {}).get(_KEY)
    if verdict is None:
        if error is None:  # a crashed worker (error set) already fails the run, and xdist names it
            _failure.append(f"{name} ended without ptxas's verdict on its kernels")
        return
    for arch, n in verdict["accepted"].items():
        _accepted[arch] = _accepted.get(arch, 0) + n
    _failure.extend(f"{name}: {message}" for message in verdict["failures"])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not ptxas.verify_targets():
        return
    for message in _failure:
        terminalreporter.write_line(f"TG_PTX_VERIFY: {message}", red=True)
    terminalreporter.write_line(f"tg-ptx: {ptxas.summary(_accepted)}")
