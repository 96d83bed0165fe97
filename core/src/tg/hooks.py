"""The hook specification: everything a backend plugin implements, and when core calls it.

Writing a backend
-----------------
A backend is a distribution (say ``tg-mychip``) whose ``pyproject.toml`` declares two entry points::

    [project.entry-points."tg.backends"]
    mychip = "tg_mychip.plugin"          # the module that holds the hook implementations

    [project.entry-points."tg.hookspec"]
    mychip = "tg.hooks:v1"               # the version of this spec the plugin implements

The entry's name (``mychip``) is the plugin's name, and by convention the target of its emitter.
Both entries are read from metadata alone: ``import tg`` and ``tg backends`` never import a plugin.
The module is imported only when its backend is selected (``TG_BACKEND=mychip``, ``device="mychip"``)
or probed by automatic selection, so it must import nothing heavy at module level.

In that module, decorate plain functions with :data:`hookimpl`; their names must be hooks declared
below (an unknown name is refused, naming the plugin) and their parameters a subset of the spec's::

    from tg.hooks import hookimpl

    @hookimpl
    def tg_emitters():
        return [MyChipEmitter()]

    @hookimpl
    def tg_runtimes():
        return [MyChipRuntime()]

Then prove it with the conformance kit: ``TG_BACKEND=mychip pytest --pyargs tg.testing``.

Versions
--------
:data:`HOOKSPEC_VERSION` changes whenever a hook below changes incompatibly.  A plugin that declares
another version is refused with a message naming both versions and the pin that fixes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from tg.backends.contract import Capabilities, Emitter, KernelCompiled, KernelLaunched, Runtime

#: The pluggy project name: hook implementations are marked for ``tg``.
PROJECT = "tg"

#: The version of this specification.  A plugin declares the one it implements as ``tg.hooks:v<N>``.
HOOKSPEC_VERSION = 1
v1 = 1  # what the declaration ``tg.hooks:v1`` names; removed when the spec moves on

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: A lowering pass: takes a kernel's micro-op list and returns a rewritten one (or the same list).
LoweringPass = Callable[[Any], Any]


@hookspec
def tg_emitters() -> list[Emitter]:
    """Return the emitters this plugin provides.

    Called once, right after the plugin is loaded.  Each :class:`~tg.backends.contract.Emitter` renders
    micro-ops to source text for one ``target`` and declares that target's ``capabilities``; core's
    lowering fits the micro-ops to those capabilities before calling ``render``.  A target name that
    another plugin already provides is refused.  Return ``[]`` if the plugin only adds runtimes.
    """
    raise NotImplementedError  # pragma: no cover - documentation only


@hookspec
def tg_runtimes() -> list[Runtime]:
    """Return the runtimes this plugin provides.

    Called once, right after the plugin is loaded.  Each :class:`~tg.backends.contract.Runtime` runs the
    text of every emitter of its ``language`` (which may come from another plugin) and is addressed as
    ``target:name``, e.g. ``ptx:emu``.  A ``(language, name)`` pair that is already taken is refused.
    ``available()`` must be cheap and must not raise: core calls it to choose a backend, and
    ``tg backends --check`` prints its reason and remedy.  Return ``[]`` if the plugin only adds
    emitters or passes.
    """
    raise NotImplementedError  # pragma: no cover - documentation only


@hookspec
def tg_lowering_passes(target: str, capabilities: Capabilities) -> list[LoweringPass] | None:
    """Return extra rewrites to apply to every kernel lowered for ``target``, or None.

    Called each time a backend for ``target`` is first used, in every loaded plugin, so a plugin may
    add passes to another plugin's target.  The passes run in the order returned, after core's own
    capability-driven rewrites and before the emitter renders.
    """
    raise NotImplementedError  # pragma: no cover - documentation only


@hookspec
def tg_kernel_compiled(event: KernelCompiled) -> None:
    """Observe a kernel that was compiled (or loaded from the cache); for profilers and loggers.

    Called in every loaded plugin after each compile.  The return value is ignored; an observer must
    not raise.
    """


@hookspec
def tg_kernel_launched(event: KernelLaunched) -> None:
    """Observe a kernel that ran, with its launch size, time (when measured) and bytes moved.

    Called in every loaded plugin after each launch.  The return value is ignored; an observer must
    not raise.
    """


#: The hooks a plugin may implement, for validation and error messages.
HOOK_NAMES = ("tg_emitters", "tg_runtimes", "tg_lowering_passes", "tg_kernel_compiled", "tg_kernel_launched")


def declared_version(reference: str) -> int | None:
    """Parse a ``tg.hookspec`` entry point value (``tg.hooks:v1``) into its version, or None."""
    module, _, attr = reference.partition(":")
    if module.strip() != __name__ or not attr.strip().startswith("v") or not attr.strip()[1:].isdigit():
        return None
    return int(attr.strip()[1:])
