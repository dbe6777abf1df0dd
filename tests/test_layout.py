"""The package's layers: every import goes down, never up, and no modules import each other in a circle.

docs/ARCHITECTURE.md draws the same layers. A module may import its own part of the package and any
lower layer, at the top of the file or inside a function alike; imports only for type checking count
for neither rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "passion_tasks"

#: Lowest first. The parts of one layer do not import each other.
LAYERS = [
    {"errors"},
    {"config", "defaults"},
    {"lake"},
    {"synthetic", "ingest", "corpora", "figures"},
    {"features"},
    {"detectors"},
    {"models"},
    {"evaluation", "incidents"},
    {"reporting"},
    {"alerting"},
    {"live"},
    {"steps"},
    {"demo"},
    {"cli"},
]
LAYER = {part: depth for depth, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def part(module: str) -> str:
    return module.split(".")[1]


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The package's modules ``path`` imports, leaving out those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    checking = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if id(node) in checking:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("passion_tasks"):
            # ``from package import module`` imports that module; ``from module import name``, the module.
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name for name in submodules if name in MODULES] or [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != "passion_tasks" and name != module_name(path):
                found.add(name)
    return found


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {part(module) for module in MODULES if module != "passion_tasks"}
    assert parts == set(LAYER)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "passion_tasks"))
def test_imports_go_down(module: str) -> None:
    upward = {
        imported
        for imported in imports(MODULES[module], top_level_only=False)
        if part(imported) != part(module) and LAYER[part(imported)] >= LAYER[part(module)]
    }
    assert not upward, f"{module} imports from its own layer or above: {sorted(upward)}"


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph = {module: imports(path, top_level_only=True) for module, path in MODULES.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in visiting:
            pytest.fail("import circle: " + " -> ".join([*visiting[visiting.index(module) :], module]))
        if module in done:
            return
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
