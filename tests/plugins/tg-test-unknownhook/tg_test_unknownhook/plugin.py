"""A test plugin that implements a misspelt hook."""

from tg.hooks import hookimpl


@hookimpl
def tg_emiters() -> list[object]:
    return []
