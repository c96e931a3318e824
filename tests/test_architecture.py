"""The package's folders are layers: a module imports only from its own layer or the ones
below it, and no import circle exists between modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rbee_infra"
# bottom to top: see docs/architecture.md
LAYERS = ("base", "config", "decide", "host", "install", "stack", "status", "cli")
# module paths stored in old stacks' state (see rbee_infra/providers.py)
STATE_COMPAT = {"rbee_infra.providers", "rbee_infra.kickoff"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def imports_of(path: Path) -> set[str]:
    """Every rbee_infra module `path` imports, at any depth (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("rbee_infra"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                              else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rbee_infra")}
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_sits_in_a_layer_folder() -> None:
    loose = sorted(
        m for m in graph()
        if layer_of(m) is None and m not in ("rbee_infra", *STATE_COMPAT)
    )
    assert loose == [], "modules outside the layer folders"


def test_imports_only_go_down() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module not in STATE_COMPAT and (mine := layer_of(module)) is not None
        for target in targets
        if (theirs := layer_of(target)) is not None and theirs > mine
    )
    assert upward == []


def test_no_import_circle() -> None:
    deps = graph()
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module):], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(deps.get(module, ())):
            if target in deps and (cycle := visit(target)):
                return cycle
        path.pop()
        done.add(module)
        return None

    cycles = [c for m in sorted(deps) if (c := visit(m))]
    assert cycles == []
