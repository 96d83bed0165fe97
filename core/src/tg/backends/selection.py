"""Chooses the backend a tensor runs on: by name, by TG_BACKEND's preference list, or by priority.

Names are ``emitter[:runtime]``.  ``TG_BACKEND=ptx,clang`` tries ``ptx`` then ``clang``; the first
that can run here wins, and if none can, the error lists each with its reason and remedy.  With
TG_BACKEND unset, every allowed plugin is probed and the available runtime with the highest priority
wins (the built-in numpy backend, priority 0, always works).
"""

from __future__ import annotations

import warnings

from tg.backends.contract import Backend
from tg.backends.discovery import INSTALL_HINTS, PluginRegistry, registry
from tg.support.errors import BackendError, BackendWarning, UnknownBackendError


def parse_backend_list(text: str) -> list[tuple[str, str | None]]:
    """``"ptx:emu, clang"`` -> ``[("ptx", "emu"), ("clang", None)]``; a malformed item is an error."""
    items: list[tuple[str, str | None]] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        target, sep, runtime = item.partition(":")
        if not target or (sep and not runtime) or ":" in runtime:
            raise BackendError(f"malformed backend name {item!r} in {text!r}: expected name or name:runtime, "
                               "e.g. TG_BACKEND=ptx:emu,clang")
        items.append((target, runtime or None))
    return items


def known_names(reg: PluginRegistry) -> list[str]:
    """Every backend name this process could use: loaded emitter:runtime pairs, plus plugins not loaded yet.

    A plugin that failed, or that TG_PLUGINS excludes, provides no backend, so its name is not listed;
    a loaded plugin's name is listed only if it is the name of one of its backends.
    """
    names = {name for name, info in reg.plugins.items() if info.state == "not loaded"}
    for target, emitter in reg.emitters.items():
        for (language, rt_name) in reg.runtimes:
            if language == emitter.language:
                names.add(target if rt_name == target else f"{target}:{rt_name}")
    return sorted(names)


def resolve(target: str, runtime_name: str | None = None, reg: PluginRegistry | None = None) -> Backend:
    """The backend ``target[:runtime_name]``, checked to run here; otherwise a BackendError with the fix."""
    reg = reg or registry()
    label = target if runtime_name is None else f"{target}:{runtime_name}"
    if target in reg.plugins:
        reg.load(target)
    if target not in reg.emitters:
        reg.load_all()
    emitter = reg.emitters.get(target)
    if emitter is None:
        info = reg.plugins.get(target)
        if info is not None and info.problem:
            raise BackendError(f"backend '{label}' cannot be used: {info.describe()} {info.problem}. "
                               f"Fix: {info.remedy}.")
        hint = INSTALL_HINTS.get(target)
        fix = f"install it ({hint})" if hint else "check the spelling, or install the plugin that provides it"
        known = ", ".join(known_names(reg)) or "none"
        raise UnknownBackendError(f"unknown backend '{label}'. Known backends: {known}. "
                                  f"Fix: {fix}; `tg backends` lists what is installed.")
    runtimes = {name: rt for (language, name), rt in reg.runtimes.items() if language == emitter.language}
    if runtime_name is None:
        runtime = runtimes.get(target) or max(runtimes.values(), key=lambda r: r.priority, default=None)
    else:
        runtime = runtimes.get(runtime_name)
    if runtime is None:
        have = ", ".join(f"{target}:{n}" for n in sorted(runtimes)) or "none"
        raise BackendError(f"backend '{label}': no runtime {runtime_name or ''} runs {emitter.language} here "
                           f"(runtimes for {target}: {have}). Fix: install the plugin that provides it.")
    status = reg.available(runtime)
    backend = Backend(emitter, runtime)
    if not status:
        raise BackendError(f"backend '{backend.name}' is installed but cannot run here: {status.reason}."
                           + (f" Fix: {status.remedy}." if status.remedy else ""))
    return backend


def candidates(reg: PluginRegistry, include_negative: bool = False) -> list[Backend]:
    """Every emitter:runtime pair with priority >= 0 (or all), best first (loads all allowed plugins)."""
    reg.load_all()
    pairs = [Backend(e, r) for e in reg.emitters.values() for (lang, _), r in reg.runtimes.items()
             if lang == e.language and (include_negative or r.priority >= 0)]
    return sorted(pairs, key=lambda b: (-b.runtime.priority, b.name))


def select(preference: str | None = None, reg: PluginRegistry | None = None) -> Backend:
    """The backend to use: the first runnable of ``preference`` (TG_BACKEND syntax), else by priority."""
    reg = reg or registry()
    if preference is not None and preference.strip():
        wanted = parse_backend_list(preference)
        if not wanted:
            raise BackendError(f"TG_BACKEND={preference!r} names no backend: give one or more names (e.g. "
                               "TG_BACKEND=clang or TG_BACKEND=ptx,clang), or unset it to choose automatically")
        reasons = []
        for target, runtime in wanted:
            try:
                return resolve(target, runtime, reg)
            except BackendError as exc:
                if len(wanted) == 1:
                    raise
                reasons.append(str(exc))
                if isinstance(exc, UnknownBackendError):  # likely a typo: say so even if a later one runs
                    warnings.warn(f"tg: skipping in TG_BACKEND={preference!r}: {exc}", BackendWarning, stacklevel=2)
        raise BackendError(f"none of the backends in TG_BACKEND={preference!r} can run here:\n  "
                           + "\n  ".join(reasons))
    for backend in candidates(reg):
        if reg.available(backend.runtime):
            return backend
    raise BackendError("no backend can run here: " + (", ".join(known_names(reg)) or "none installed")
                       + ". Fix: reinstall tg-core, whose numpy backend always runs.")
