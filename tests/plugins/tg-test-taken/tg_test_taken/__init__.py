"""Test plugin package for tg's plugin-discovery tests."""
