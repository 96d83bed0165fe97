"""The ``tg`` command line: ``tg backends`` lists the backends this machine has and whether they run; ``tg env``
lists the environment variables of core and of every installed plugin; ``tg cache`` shows the kernel cache and
``tg cache clear`` empties it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

from tg import HOOKSPEC_VERSION, __version__
from tg.backends.discovery import PluginInfo, PluginRegistry
from tg.support.errors import TgError


def _plugin_row(info: PluginInfo) -> dict[str, Any]:
    return {"backend": info.name, "distribution": info.distribution, "version": info.version,
            "hookspec": info.hookspec_version, "state": info.state, "problem": info.problem,
            "remedy": info.remedy}


def _metadata_rows(reg: PluginRegistry) -> list[dict[str, Any]]:
    return [_plugin_row(i) for i in [*reg.plugins.values(), *reg.shadowed]]


def _checked_rows(reg: PluginRegistry) -> list[dict[str, Any]]:
    """One row per runnable emitter:runtime pair, plus one per plugin that could not be loaded."""
    from tg.backends.selection import candidates  # noqa: PLC0415 - only the --check path needs selection

    reg.load_all()
    rows = []
    pairs = candidates(reg, include_negative=True)
    for backend in pairs:
        info = reg.plugins[reg.provider[id(backend.runtime)]]
        status = reg.available(backend.runtime)
        row = _plugin_row(info) | {"backend": backend.name, "priority": backend.runtime.priority,
                                   "available": status.ok, "problem": status.reason, "remedy": status.remedy,
                                   "detail": status.detail}
        rows.append(row)
    shown = {reg.provider[id(b.runtime)] for b in pairs} | {reg.provider[id(b.emitter)] for b in pairs}
    for info in [*reg.plugins.values(), *reg.shadowed]:
        if info.name not in shown or info in reg.shadowed:
            rows.append(_plugin_row(info) | {"available": False,
                                             "problem": info.problem or "provides no runnable backend"})
    return rows


def _table(rows: list[dict[str, Any]], check: bool) -> str:
    head = ["BACKEND", "DISTRIBUTION", "VERSION", "HOOKSPEC"] + (["AVAILABLE"] if check else ["STATE"]) + ["NOTE"]
    body = []
    for r in rows:
        note = r["problem"] + (f" (fix: {r['remedy']})" if r["problem"] and r["remedy"] else "") or r.get("detail", "")
        flag = ("yes" if r["available"] else "no") if check else r["state"]
        body.append([r["backend"], r["distribution"], r["version"], f"v{r['hookspec']}" if r["hookspec"] else "?",
                     flag, note])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line[:-1], widths)) + "  " + str(line[-1])
             for line in [head, *body]]
    return "\n".join(line.rstrip() for line in lines)


def cmd_backends(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every problem a warning would repeat is in the table
        reg = PluginRegistry()
        rows = _checked_rows(reg) if args.check else _metadata_rows(reg)
    if args.json:
        if not args.check:  # metadata only: nothing was loaded, so whether a backend can run here is unknown
            rows = [r | {"available": None} for r in rows]
        print(json.dumps({"tg_core": __version__, "hookspec": HOOKSPEC_VERSION, "checked": bool(args.check),
                          "backends": rows}, indent=2))
    else:
        print(f"tg-core {__version__}, hook-spec v{HOOKSPEC_VERSION}")
        print(_table(rows, args.check) if rows else "no backends found")
        if not args.check:
            print("\n(`tg backends --check` loads each plugin and says whether it can run here)")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """Every environment variable: core's, then each installed plugin's (which loads the plugins)."""
    from tg.support.helpers import ENVIRONMENT  # noqa: PLC0415 - only this command needs the table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # `tg backends --check` is the place for plugin problems
        reg = PluginRegistry()
        reg.load_all()
    groups = {"tg-core": dict(ENVIRONMENT)}
    for info in reg.plugins.values():
        if info.environment:
            groups.setdefault(info.distribution, {}).update(info.environment)
    if args.json:
        print(json.dumps(groups, indent=2))
        return 0
    for owner, variables in groups.items():
        print(f"{owner}:")
        width = max(len(name) for name in variables)
        for name, text in variables.items():
            current = os.environ.get(name)
            print(f"  {name.ljust(width)}  {text}" + (f"  [set: {current!r}]" if current is not None else ""))
    return 0


def _size(n: int) -> str:
    return f"{n / 1024:.1f} kB" if n < 1024 * 1024 else f"{n / (1024 * 1024):.1f} MB"


def cmd_cache(args: argparse.Namespace) -> int:
    """Show the kernel cache (location, bound, files and size per plugin), or clear it."""
    from tg.support import kernel_cache  # noqa: PLC0415 - only this command needs the cache

    if args.action == "clear":
        files, size = kernel_cache.clear(args.plugin)
        where = f"{args.plugin}'s folder of " if args.plugin else ""
        print(f"removed {files} file(s) ({_size(size)}) from {where}{kernel_cache.cache_root()}")
        return 0
    found = kernel_cache.usage()
    if args.json:
        print(json.dumps({"root": str(found.root), "exists": found.exists, "max_bytes": found.max_bytes,
                          "plugins": {name: {"files": n, "bytes": size} for name, (n, size) in found.folders.items()}},
                         indent=2))
        return 0
    print(f"kernel cache: {found.root} (bound {_size(found.max_bytes)}, TG_CACHE_MAX_MB)")
    if not found.exists:
        print("empty: not created yet")
        return 0
    rows = [(name, str(n), _size(size)) for name, (n, size) in found.folders.items()]
    total = sum(n for n, _ in found.folders.values()), sum(size for _, size in found.folders.values())
    rows.append(("total", str(total[0]), _size(total[1])))
    widths = [max(len(r[i]) for r in [("PLUGIN", "FILES", "SIZE"), *rows]) for i in range(3)]
    for row in [("PLUGIN", "FILES", "SIZE"), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tg", description="tg: a small deep-learning framework.")
    parser.add_argument("--version", action="version", version=f"tg-core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    backends = sub.add_parser("backends", help="list the installed backends",
                              description="List every discovered backend (reads package metadata only, "
                                          "unless --check).")
    backends.add_argument("--check", action="store_true",
                          help="load each plugin and say whether its backends can run here, and why not")
    backends.add_argument("--json", action="store_true", help="print JSON instead of a table")
    backends.set_defaults(func=cmd_backends)
    env = sub.add_parser("env", help="list the environment variables of tg and its plugins",
                         description="List every TG_ environment variable core and the installed plugins read, "
                                     "with what it does and its value here when set.")
    env.add_argument("--json", action="store_true", help="print JSON instead of a list")
    env.set_defaults(func=cmd_env)
    cache = sub.add_parser("cache", help="show or clear the kernel cache",
                           description="Show where compiled kernels are cached (TG_CACHE_DIR), its bound "
                                       "(TG_CACHE_MAX_MB) and its files and size per plugin; `tg cache clear` "
                                       "removes them.")
    cache.add_argument("action", nargs="?", choices=["show", "clear"], default="show",
                       help="show (the default) or clear")
    cache.add_argument("--plugin", metavar="NAME", help="clear only this plugin's folder (e.g. clang)")
    cache.add_argument("--json", action="store_true", help="show as JSON")
    cache.set_defaults(func=cmd_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except TgError as exc:
        print(f"tg: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
