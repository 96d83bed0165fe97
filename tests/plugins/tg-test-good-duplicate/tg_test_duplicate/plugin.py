"""A test plugin that takes a backend name tg-test-good already has; it must never be imported."""

raise AssertionError("tg imported a plugin whose backend name was already taken")
