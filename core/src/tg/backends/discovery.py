"""Finds backend plugins in package metadata, loads one only when needed, and reports broken ones.

Discovery reads the ``tg.backends`` and ``tg.hookspec`` entry point groups and imports nothing.  A
plugin's module is imported when its backend is asked for (or when automatic selection probes it);
whatever goes wrong then (an import error, an unknown hook, a hook that raises, a name another plugin
already took) is reported as a :class:`~tg.support.errors.PluginWarning` naming the plugin, its distribution
and the cause, and the plugin is skipped.  ``TG_STRICT_PLUGINS=1`` raises :class:`~tg.support.errors.PluginError`
instead.  ``TG_PLUGINS`` restricts which plugins may load.  Loading is thread-safe: threads that ask for a
plugin at once wait for the one that loads it.
"""

from __future__ import annotations

import importlib
import os
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import importlib_metadata
import pluggy

from tg import hooks
from tg.backends.contract import Availability, Emitter, Runtime
from tg.support.errors import PluginError, PluginWarning
from tg.support.helpers import getenv
from tg.support.version import __version__

ENTRY_GROUP = "tg.backends"
HOOKSPEC_GROUP = "tg.hookspec"

#: Backends that ship inside tg-core: registered through the same plugin manager as third parties.
BUILTIN_PLUGINS: dict[str, str] = {"numpy": "tg.backends.numpy_backend"}

#: How to get the project's own plugins, for messages about a backend that is not installed.
INSTALL_HINTS = {
    "clang": "pip install ./plugins/tg-clang (and apt-get install clang)",
    "ptx": "pip install ./plugins/tg-ptx",
    "rdna": "pip install ./plugins/tg-rdna",
}


@dataclass
class PluginInfo:
    """One plugin as discovered: where it comes from and what became of it."""

    name: str
    module: str
    distribution: str
    version: str
    hookspec_version: int | None
    builtin: bool = False
    state: str = "not loaded"  # "not loaded", "loaded", "failed", "disabled"
    problem: str = ""
    remedy: str = ""
    environment: dict[str, str] = field(default_factory=dict)  # what tg_environment declared, once loaded

    def describe(self) -> str:
        return f"plugin '{self.name}' (distribution {self.distribution} {self.version})"


class PluginRegistry:
    """All discovered plugins, and the emitters and runtimes of those loaded so far.

    Build one with :func:`registry`; a new instance re-reads the environment and the metadata.
    """

    def __init__(self) -> None:
        self.strict = getenv("TG_STRICT_PLUGINS", False)
        allowed = os.environ.get("TG_PLUGINS")  # set but empty means "built-ins only", so not getenv
        self.allowed = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
        self.manager = pluggy.PluginManager(hooks.PROJECT)
        self.manager.add_hookspecs(hooks)
        self.plugins: dict[str, PluginInfo] = {}
        self.shadowed: list[PluginInfo] = []  # entries whose backend name another entry holds
        self.emitters: dict[str, Emitter] = {}
        self.provider: dict[int, str] = {}  # id(emitter or runtime) -> name of the plugin that gave it
        self.runtimes: dict[tuple[str, str], Runtime] = {}
        self._availability: dict[tuple[str, str], Availability] = {}
        self._loading: set[str] = set()  # plugins whose load is under way (guards owners loading each other)
        # Held while a plugin loads or registers (re-entered when an owner loads first), so another thread never
        # sees one half loaded; plugins load once per process, so the waiting is rare and short.
        self._lock = threading.RLock()
        self._discover()

    # -- discovery (metadata only) -------------------------------------------------------------------

    def _discover(self) -> None:
        for name, module in BUILTIN_PLUGINS.items():
            self.plugins[name] = PluginInfo(name, module, "tg-core", __version__, hooks.HOOKSPEC_VERSION,
                                            builtin=True)
        every = importlib_metadata.entry_points()  # one scan of the installed distributions for both groups
        declared = {(_dist_headers(ep)[0], ep.name): hooks.declared_version(ep.value)
                    for ep in every.select(group=HOOKSPEC_GROUP)}
        entries = sorted(((ep, *_dist_headers(ep)) for ep in every.select(group=ENTRY_GROUP)),
                         key=lambda entry: (entry[1], entry[0].name))
        infos = [PluginInfo(ep.name, ep.value, dist, version, declared.get((dist, ep.name)))
                 for ep, dist, version in entries]
        allowed = [i for i in infos if self.allowed is None or {i.name, i.distribution} & self.allowed]
        for info in allowed:
            first = self.plugins.get(info.name)
            if first is not None:
                self.shadowed.append(info)
                self._fail(info, f"duplicates the backend name '{info.name}' already provided by "
                                 f"{first.distribution} {first.version}",
                           None, f"uninstall one of them (pip uninstall {info.distribution})")
                continue
            self.plugins[info.name] = info
            if info.hookspec_version is None:
                self._fail(info, "declares no hook-spec version", None,
                           f'add [project.entry-points."{HOOKSPEC_GROUP}"] {info.name} = '
                           f'"tg.hooks:v{hooks.HOOKSPEC_VERSION}" to its pyproject.toml')
            elif info.hookspec_version != hooks.HOOKSPEC_VERSION:
                self._fail(info, f"implements hook-spec v{info.hookspec_version} but this tg-core "
                                 f"{__version__} implements hook-spec v{hooks.HOOKSPEC_VERSION}",
                           None, _version_remedy(info))
        if self.allowed:
            known = {*BUILTIN_PLUGINS, *(i.name for i in infos), *(i.distribution for i in infos)}
            unknown = sorted(self.allowed - known)
            if unknown:
                message = (f"tg: TG_PLUGINS names {', '.join(map(repr, unknown))}, which no installed plugin is "
                           f"called (installed: {', '.join(sorted({*BUILTIN_PLUGINS, *(i.name for i in infos)}))})."
                           f" Fix: check the spelling, or install the plugin")
                if self.strict:
                    raise PluginError(message + ".")
                warnings.warn(message + " (TG_STRICT_PLUGINS=1 makes this an error).", PluginWarning, stacklevel=3)
        for info in infos:
            if info not in allowed:
                info.state, info.problem = "disabled", "not listed in TG_PLUGINS"
                info.remedy = f"add {info.name} to TG_PLUGINS or unset TG_PLUGINS"
                if info.name in self.plugins:
                    self.shadowed.append(info)
                else:
                    self.plugins[info.name] = info

    # -- loading (imports the plugin's module) -------------------------------------------------------

    def load(self, name: str) -> bool:
        """Import and register plugin ``name`` if not done yet; True when it is loaded and usable."""
        info = self.plugins[name]
        if info.state != "not loaded":
            return info.state == "loaded"
        with self._lock:
            if info.state != "not loaded" or name in self._loading:  # another thread loaded it meanwhile
                return info.state == "loaded"
            self._loading.add(name)
            try:
                try:
                    module = importlib.import_module(info.module)
                except Exception as exc:  # any failure inside a plugin's import is the plugin's problem
                    self._fail(info, f"failed to import {info.module}: {_cause(exc)}", exc,
                               f"reinstall or fix {info.distribution}, or exclude it with TG_PLUGINS")
                    return False
                return self.register(info, module)
            finally:
                self._loading.discard(name)

    def load_all(self) -> None:
        with self._lock:
            names = list(self.plugins)
        for name in names:
            self.load(name)

    def register(self, info: PluginInfo, module: ModuleType | object) -> bool:
        """Register an imported plugin object with the plugin manager and collect what it provides.

        All or nothing: a refused plugin leaves the plugin manager, :attr:`emitters`, :attr:`runtimes` and
        :attr:`provider` exactly as they were.  A name the plugin provides (emitter target or runtime name)
        that is another discovered plugin's name belongs to that plugin, which is loaded first: the name goes
        to its owner whichever of the two is asked for first.
        """
        with self._lock:
            return self._register(info, module)

    def _register(self, info: PluginInfo, module: ModuleType | object) -> bool:
        hooks_before = set(vars(self.manager.hook))
        try:
            self.manager.register(module, name=info.name)
        except pluggy.PluginValidationError as exc:
            self._forget(info, module, hooks_before)
            self._fail(info, f"has an invalid hook implementation: {exc}", exc, "match the hook signatures in tg.hooks")
            return False
        except ValueError as exc:  # pluggy changed nothing: the name or the module object is registered already
            holder = self.manager.get_name(module)
            problem = (f"uses module {info.module}, which plugin '{holder}' already registered" if holder else
                       f"could not be registered: the name '{info.name}' is registered already")
            self._fail(info, problem, exc, f"give each entry point of {info.distribution} its own module and name")
            return False
        try:
            emitters, runtimes, problem, cause, remedy = self._provided(info, module)
        except BaseException:  # an owner refused under TG_STRICT_PLUGINS=1, or an interrupt: leave no trace
            self._forget(info, module, hooks_before)
            raise
        if problem:
            self._forget(info, module, hooks_before)
            self._fail(info, problem, cause, remedy)
            return False
        for e in emitters:
            self.emitters[e.target] = e
            self.provider[id(e)] = info.name
        for r in runtimes:
            self.runtimes[(r.language, r.name)] = r
            self.provider[id(r)] = info.name
        self.plugins.setdefault(info.name, info)  # registered directly (not discovered): its holder can be named
        info.state = "loaded"
        return True

    def _provided(self, info: PluginInfo,
                  module: object) -> tuple[list[Any], list[Any], str, BaseException | None, str]:
        """What a just-registered plugin provides, and why it must be refused ("" when it may stay); its
        environment variables go to ``info.environment``."""
        unknown = [c.name for c in self.manager.get_hookcallers(module) or [] if not c.has_spec()]
        if unknown:
            hints = [_did_you_mean(n) for n in unknown]
            return ([], [], "implements unknown hook(s) " + ", ".join(f"'{n}'{h}" for n, h in zip(unknown, hints)),
                    None, "implement only hooks declared in tg.hooks: " + ", ".join(hooks.HOOK_NAMES))
        remedy = f"fix {info.distribution} or exclude it with TG_PLUGINS"
        try:
            emitters = self._call_own(module, "tg_emitters")
            runtimes = self._call_own(module, "tg_runtimes")
            problem = self._check_types(emitters, runtimes)
            environment = self._environment_of(module)
        except Exception as exc:
            return [], [], f"raised in a registration hook: {_cause(exc)}", exc, remedy
        if problem or isinstance(environment, str):
            return [], [], problem or str(environment), None, remedy
        info.environment = environment
        for owner in sorted({e.target for e in emitters} | {r.name for r in runtimes}):
            if owner != info.name and owner in self.plugins:
                self.load(owner)  # may warn about the owner; the name is then free
        return emitters, runtimes, self._check_provided(emitters, runtimes), None, remedy

    def _forget(self, info: PluginInfo, module: object, hooks_before: set[str]) -> None:
        """Undo a registration with the plugin manager, including hook callers it created for unknown hooks."""
        if self.manager.get_name(module) == info.name:
            self.manager.unregister(module)
        for name in set(vars(self.manager.hook)) - hooks_before:
            caller = getattr(self.manager.hook, name)
            if not caller.has_spec() and not caller.get_hookimpls():
                delattr(self.manager.hook, name)

    def _environment_of(self, module: object) -> dict[str, str] | str:
        """The variables ``tg_environment`` declares (name -> description), or why they are not valid."""
        env: dict[str, str] = {}
        for result in self._own_results(module, "tg_environment"):
            if not isinstance(result, dict) or not all(isinstance(k, str) and k.startswith("TG_") and
                                                       isinstance(v, str) for k, v in result.items()):
                return f"tg_environment returned {result!r}, not a dict of TG_ variable names to descriptions"
            env.update(result)
        return env

    def _own_results(self, module: object, hook: str) -> list[Any]:
        """What ``module``'s own implementation of ``hook`` returns (no other plugin is called)."""
        others = [p for p in self.manager.get_plugins() if p is not module]
        return list(self.manager.subset_hook_caller(hook, remove_plugins=others)())

    def _call_own(self, module: object, hook: str) -> list[Any]:
        return [item for result in self._own_results(module, hook) if result for item in result]

    def _check_provided(self, emitters: list[Emitter], runtimes: list[Runtime]) -> str:
        """Why these names cannot be registered (taken by a loaded plugin, or provided twice), or ""."""
        targets = [e.target for e in emitters]
        pairs = [(r.language, r.name) for r in runtimes]
        for target in targets:
            if target in self.emitters:
                return f"provides emitter '{target}', which {self._holder(self.emitters[target])} already provides"
            if targets.count(target) > 1:
                return f"provides emitter '{target}' more than once"
        for language, name in pairs:
            if (language, name) in self.runtimes:
                return (f"provides runtime '{name}' for {language}, which "
                        f"{self._holder(self.runtimes[(language, name)])} already provides")
            if pairs.count((language, name)) > 1:
                return f"provides runtime '{name}' for {language} more than once"
        return ""

    @staticmethod
    def _check_types(emitters: list[Any], runtimes: list[Any]) -> str:
        """Why what the registration hooks returned is not emitters and runtimes, or ""."""
        for e in emitters:
            if not isinstance(e, Emitter):
                return f"tg_emitters returned {e!r}, which is not a tg.backends.contract.Emitter"
            if not (isinstance(getattr(e, "target", None), str) and isinstance(getattr(e, "language", None), str)):
                return f"tg_emitters returned {e!r}, whose target and language are not both strings"
        for r in runtimes:
            if not isinstance(r, Runtime):
                return f"tg_runtimes returned {r!r}, which is not a tg.backends.contract.Runtime"
            if not (isinstance(getattr(r, "name", None), str) and isinstance(getattr(r, "language", None), str)):
                return f"tg_runtimes returned {r!r}, whose name and language are not both strings"
        return ""

    def _holder(self, provided: Emitter | Runtime) -> str:
        """``tg-core 0.1.0 (plugin 'numpy')``: who provides a registered emitter or runtime."""
        name = self.provider[id(provided)]
        info = self.plugins.get(name)
        return f"{info.distribution} {info.version} (plugin '{name}')" if info else f"plugin '{name}'"

    def available(self, runtime: Runtime) -> Availability:
        """``runtime.available()``, asked once per registry; a probe that raises means unavailable."""
        key = (runtime.language, runtime.name)
        if key in self._availability:
            return self._availability[key]
        with self._lock:  # a probe may be slow (it may start a driver): one thread runs it, the others wait
            if key in self._availability:
                return self._availability[key]
            try:
                result = runtime.available()
                if not isinstance(result, Availability):
                    result = Availability.no(f"available() returned {result!r} instead of an Availability",
                                             "report this to the plugin's authors")
            except Exception as exc:
                result = Availability.no(f"its available() raised {_cause(exc)}", "report this to the plugin's authors")
            self._availability[key] = result
        return self._availability[key]

    # -- reporting -------------------------------------------------------------------------------------

    def _fail(self, info: PluginInfo, problem: str, cause: BaseException | None, remedy: str) -> None:
        info.state, info.problem, info.remedy = "failed", problem, remedy
        message = f"tg: {info.describe()} {problem}. Fix: {remedy}."
        if self.strict:
            raise PluginError(message) from cause
        warnings.warn(message + " It was skipped (TG_STRICT_PLUGINS=1 makes this an error).",
                      PluginWarning, stacklevel=4)


def _dist_headers(ep: importlib_metadata.EntryPoint) -> tuple[str, str]:
    """(name, version) of the distribution that declares ``ep``, read from the top of its metadata file: the
    ``email`` parser behind ``Distribution.metadata`` (its import and a parse per distribution) was most of
    discovery's time, which a program's first tensor waits for."""
    dist = ep.dist
    if dist is None:
        return "?", "?"
    found: dict[str, str] = {}
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line.strip():
            break  # the end of the headers
        key, colon, value = line.partition(":")
        if colon and not line[0].isspace() and key.strip().lower() in ("name", "version"):
            found.setdefault(key.strip().lower(), value.strip())
        if len(found) == 2:
            return found["name"], found["version"]
    return dist.metadata["Name"], dist.version  # unusual headers: the full parse


def _cause(exc: BaseException) -> str:
    """``Type: message`` plus the innermost frame, so a warning points at the plugin's line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _did_you_mean(name: str) -> str:
    import difflib  # (only for this message)

    close = difflib.get_close_matches(name, hooks.HOOK_NAMES, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _version_remedy(info: PluginInfo) -> str:
    mine = hooks.HOOKSPEC_VERSION
    theirs = info.hookspec_version or 0
    if theirs > mine:
        return (f"upgrade tg-core to a release that implements hook-spec v{theirs} (pip install -U tg-core), "
                f"or pin {info.distribution} to a release built for hook-spec v{mine}")
    return (f"upgrade {info.distribution} to a release built for hook-spec v{mine} "
            f"(pip install -U {info.distribution}), or pin tg-core to a release that implements v{theirs}")


_registry: PluginRegistry | None = None
_registry_lock = threading.Lock()


def registry() -> PluginRegistry:
    """The process-wide registry, discovered on first use (never at ``import tg``)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = PluginRegistry()
        return _registry


def reset_registry() -> None:
    """Forget all discovery, so the next :func:`registry` re-reads the environment (for tests)."""
    global _registry
    _registry = None
