"""A test plugin that declares a hook-spec version no tg-core implements; it must never be imported."""

raise AssertionError("tg imported a plugin whose hook-spec version it should have refused")
