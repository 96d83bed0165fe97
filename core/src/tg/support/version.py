"""The version of tg-core (pyproject.toml carries the same number; a test keeps them in step)."""

__version__ = "0.1.0"
