"""The shape of the code: core's folders follow the pipeline, imports flow one way, no module is too long.

Every ``import`` of core and of the plugins is read with :mod:`ast` (function-local imports included, imports
under ``if TYPE_CHECKING:`` excluded: they never run).  Core's sub-packages are layers, lowest first; a module
may import its own layer and the layers below it, never one above.  No package has an import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"tg": ROOT / "core" / "src" / "tg", "tg_clang": ROOT / "plugins" / "tg-clang" / "src" / "tg_clang",
            "tg_ptx": ROOT / "plugins" / "tg-ptx" / "src" / "tg_ptx",
            "tg_rdna": ROOT / "plugins" / "tg-rdna" / "src" / "tg_rdna"}
#: Core's layers, lowest first: the data flow tensor -> graph -> schedule -> codegen -> backends -> run.
LAYERS = [["tg.support"], ["tg.graph"], ["tg.schedule"], ["tg.codegen"], ["tg.backends", "tg.hooks"], ["tg.engine"],
          ["tg.frontend"], ["tg.nn", "tg.optim", "tg.checkpoint", "tg.utils"], ["tg.distributed"],
          ["tg.testing", "tg.cli", "tg.__main__", "tg.cuda", "tg"]]
MAX_LINES = 600


def _modules(package: str) -> dict[str, Path]:
    root = PACKAGES[package]
    out = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every module ``module`` imports at run time: ``from a import b`` counts as ``a.b`` where that is a module,
    else as ``a`` (it reads an attribute of ``a``, which must be initialised by then)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_block(node):
            stack.extend(node.orelse)  # type: ignore[attr-defined]
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _graph(package: str) -> dict[str, set[str]]:
    modules = _modules(package)
    graph = {}
    for name, path in modules.items():
        found = _imports(path, name, path.name == "__init__.py", set(modules))
        deps = {d for d in found if d in modules and d != name}
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or None."""
    color: dict[str, int] = {}
    for start in sorted(graph):
        if color.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        color[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                color[path.pop()] = 2
                stack.pop()
            elif color.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not color.get(nxt):
                color[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def _layer(module: str) -> int:
    best = None
    for level, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (level, p)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS in {__file__}"
    return best[0]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycles(package: str) -> None:
    cycle = _cycle(_graph(package))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_core_layers_import_only_downwards() -> None:
    wrong = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
             for m, deps in _graph("tg").items() if m != "tg" for d in sorted(deps)
             if d != "tg" and _layer(d) > _layer(m)]
    assert not wrong, "\n".join(wrong)


def test_top_level_tells_the_pipeline() -> None:
    names = sorted(p.name for p in PACKAGES["tg"].iterdir() if not p.name.startswith((".", "_")) and
                   p.name != "py.typed" and (p.is_dir() or p.suffix == ".py"))
    stages = ["frontend", "graph", "schedule", "codegen", "backends", "engine", "support"]
    assert all((PACKAGES["tg"] / s).is_dir() for s in stages)
    loose = [n for n in names if n.endswith(".py")]
    assert set(loose) <= {"hooks.py", "optim.py", "checkpoint.py", "cli.py", "cuda.py"}, loose  # public namespaces


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_module_is_too_long(package: str) -> None:
    lengths = {name: len(path.read_text().splitlines()) for name, path in _modules(package).items()}
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checks_see_a_cycle_and_a_wrong_layer() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert _layer("tg.codegen.lower") < _layer("tg.engine.realize")


def test_version_matches_pyproject() -> None:
    import tomllib
    from tg import __version__

    project = tomllib.loads((ROOT / "core" / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__
