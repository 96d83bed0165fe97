"""Exceptions and warnings that tg raises for users and plugin authors."""

from __future__ import annotations


class TgError(Exception):
    """Base class of every error tg raises on purpose."""


class PluginError(TgError):
    """A plugin could not be loaded or registered (raised instead of warning under TG_STRICT_PLUGINS=1)."""


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered and was skipped."""


class BackendError(TgError):
    """A backend was asked for that is unknown here or cannot run here; the message says why and the fix."""


class UnknownBackendError(BackendError):
    """No installed plugin provides the backend asked for."""


class BackendWarning(UserWarning):
    """A backend in a TG_BACKEND preference list was skipped because no plugin provides it."""


class JitError(TgError):
    """A jitted function does something a replay could not reproduce; the message says what and the fix."""


class KernelCacheError(BackendError):
    """The on-disk kernel cache is unsafe or unusable; the message names the folder, the problem and the fix."""


class KernelCacheWarning(UserWarning):
    """A bad kernel cache entry (damaged, foreign, not a regular file) was removed; the kernel is rebuilt."""
