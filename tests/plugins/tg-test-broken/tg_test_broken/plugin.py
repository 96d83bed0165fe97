"""A test plugin that raises while being imported."""

raise ZeroDivisionError("tg-test-broken fails on import on purpose")
