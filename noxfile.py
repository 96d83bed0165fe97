"""One command for contributors: `nox` installs every package into fresh environments and runs all checks.

Sessions: lint (ruff), typecheck (mypy on core), tests (core's suite), plugins (plugin discovery against
the test distributions in tests/plugins/).  `nox -s NAME` runs one; `nox -l` lists them.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
TEST_PLUGINS = sorted(str(p) for p in (ROOT / "tests" / "plugins").iterdir() if (p / "pyproject.toml").exists())

nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".", "--exclude", "core/src/tg/testing")  # the kit is still being written


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("mypy==2.4.1", "./core")
    session.run("mypy", "core/src/tg", "--exclude", "core/src/tg/testing")


@nox.session
def tests(session: nox.Session) -> None:
    """Core's test suite, with tg-core installed from the local path (not editable) into a fresh venv."""
    session.install("./core[testing]")
    session.run("pytest", "tests", "--ignore=tests/plugin_system", "--ignore=tests/plugins", *session.posargs)


@nox.session
def plugins(session: nox.Session) -> None:
    """Plugin discovery against real distributions: a good one and broken ones, installed with entry points."""
    session.install("./core[testing]", *TEST_PLUGINS)
    session.run("pytest", "tests/plugin_system", *session.posargs)
