"""The house rules: layered packages, no import cycles, one job per module.

Floors, top to bottom: cli; pipeline, reporting and ollama_admin; backends, data, task
and results; errors, hosts, settings and files at the ground. A module may import its own
floor or below, never above; and no chain of imports (top-level or inside functions)
leads back to where it started.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emoprobe"

FLOORS = {
    "errors": 0,
    "hosts": 0,
    "settings": 0,
    "files": 0,
    "_version": 0,
    "task": 1,
    "data": 1,
    "backends": 1,
    "results": 1,
    "pipeline": 2,
    "reporting": 2,
    "ollama_admin": 2,
    "cli": 3,
}
TOP = {"__init__", "__main__", "api"}  # the public API sits above everything


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every emoprobe module `path` imports, at the top or inside a function."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("emoprobe"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("emoprobe"):
                continue
            for alias in node.names:  # `from emoprobe.data import images` names a module
                candidate = f"{target}.{alias.name}"
                if _exists(candidate):
                    found.add(candidate)
                else:
                    found.add(target)
    found.discard(name)
    return found


def _exists(module: str) -> bool:
    relative = Path(*module.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").exists() or (
        PACKAGE.parent / relative / "__init__.py"
    ).exists()


def _graph() -> dict[str, set[str]]:
    return {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _floor(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in TOP:
        return 99
    if parts[1] not in FLOORS:
        pytest.fail(f"{module}: a module outside the floors; add its package to FLOORS")
    return FLOORS[parts[1]]


def test_every_package_has_a_floor() -> None:
    for path in PACKAGE.iterdir():
        if path.name.startswith("_") or path.name == "py.typed":
            continue
        name = path.stem if path.suffix == ".py" else path.name
        if path.is_dir() and not (path / "__init__.py").exists():
            continue
        assert name in FLOORS or name in TOP, f"emoprobe/{path.name} has no floor"


def test_no_module_imports_a_floor_above_its_own() -> None:
    upward = [
        f"{module} (floor {_floor(module)}) imports {target} (floor {_floor(target)})"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if _floor(target) > _floor(module)
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    graph = _graph()
    # a package's __init__ re-exports its modules: edges into it stand for those modules
    cycles: list[str] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target == node or node.startswith(target + "."):
                continue  # a module importing its own package's __init__
            if state.get(target) == 1:
                cycles.append(" → ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    assert cycles == []
