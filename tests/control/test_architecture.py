"""The package's dependency rule, checked by walking every import with ``ast`` (those under ``TYPE_CHECKING``
and inside functions included): front ends -> the facade -> services -> foundations, nothing imports upward,
and there is no import cycle anywhere in the package. Also: no source file of the project over 700 lines.

The layers (docs/architecture.md says why each module is where it is):

- foundations: errors, paths, process, text, timeutil, redact, the catalogue, typed results, inputs, inventory,
  the direct probes, the runner, the store;
- services: the health and action operations, the recovery engine, the watch, the drills, the notifier and its
  channels and delivery, the reports;
- the facade: ``api.EmergencyToolkit``;
- front ends: the CLI, the dashboard, ``__main__``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "notification_emergency"
PACKAGE = "notification_emergency"

FOUNDATIONS = 0
SERVICES = 1
FACADE = 2
FRONT_ENDS = 3
LAYER_NAMES = {FOUNDATIONS: "foundations", SERVICES: "services", FACADE: "the facade", FRONT_ENDS: "front ends"}

# The first component after the package name decides the layer; a package (store, cli, dashboard) is one unit.
LAYERS = {
    "__init__": FOUNDATIONS,
    "errors": FOUNDATIONS,
    "paths": FOUNDATIONS,
    "process": FOUNDATIONS,
    "text": FOUNDATIONS,
    "timeutil": FOUNDATIONS,
    "redact": FOUNDATIONS,
    "catalogue": FOUNDATIONS,
    "catalogue_data": FOUNDATIONS,
    "results": FOUNDATIONS,
    "inputs": FOUNDATIONS,
    "inventory": FOUNDATIONS,
    "probes": FOUNDATIONS,
    "runner": FOUNDATIONS,
    "store": FOUNDATIONS,
    "operations": SERVICES,
    "engine": SERVICES,
    "fallback": SERVICES,
    "watch": SERVICES,
    "drills": SERVICES,
    "notifier": SERVICES,
    "channels": SERVICES,
    "delivery": SERVICES,
    "reports": SERVICES,
    "api": FACADE,
    "cli": FRONT_ENDS,
    "dashboard": FRONT_ENDS,
    "__main__": FRONT_ENDS,
}
# Modules that are shipped to managed hosts as module_utils: stdlib only, nothing else of the package.
SHIPPED = {"timeutil", "redact", "catalogue", "catalogue_data"}
MAX_LINES = 700


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module of the package, line) for every import statement in ``path``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield _closest(alias.name, known), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:  # `from notification_emergency import catalogue` imports a module
                candidate = f"{target}.{alias.name}"
                yield _closest(candidate if candidate in known else target, known), node.lineno


def _closest(name: str, known: set[str]) -> str:
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def layer(name: str) -> int:
    parts = name.split(".")
    unit = parts[1] if len(parts) > 1 else "__init__"
    assert unit in LAYERS, f"{name}: a module in no layer; add it to LAYERS in {Path(__file__).name}"
    return LAYERS[unit]


def graph() -> dict[str, dict[str, int]]:
    found = modules()
    known = set(found)
    edges: dict[str, dict[str, int]] = {}
    for name, path in found.items():
        edges[name] = {}
        for target, line in imports(name, path, known):
            if target != name:
                edges[name].setdefault(target, line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_of_the_package_is_in_a_layer() -> None:
    for name in modules():
        layer(name)


def test_nothing_imports_upward_not_even_for_typing() -> None:
    upward = [
        f"{name} ({LAYER_NAMES[layer(name)]}) imports {target} ({LAYER_NAMES[layer(target)]}) at line {line}"
        for name, targets in graph().items()
        for target, line in targets.items()
        if layer(target) > layer(name)
    ]
    assert upward == []


def test_there_is_no_import_cycle_in_the_package() -> None:
    assert cycles(graph()) == []


def test_the_modules_shipped_to_hosts_import_nothing_else_of_the_package() -> None:
    edges = graph()
    shipped = {f"{PACKAGE}.{unit}" for unit in SHIPPED}
    assert {name: sorted(set(edges[name]) - shipped) for name in sorted(shipped)} == {
        key: [] for key in sorted(shipped)
    }


def test_the_rule_finds_what_it_is_meant_to_find() -> None:
    """The checker itself: an upward import and a cycle in a made-up graph are found."""
    made_up = {
        f"{PACKAGE}.runner": {f"{PACKAGE}.api": 3},
        f"{PACKAGE}.api": {f"{PACKAGE}.runner": 5},
        f"{PACKAGE}.engine": {f"{PACKAGE}.watch": 1},
        f"{PACKAGE}.watch": {},
    }
    assert cycles(made_up) == [[f"{PACKAGE}.api", f"{PACKAGE}.runner"]]
    assert layer(f"{PACKAGE}.runner") < layer(f"{PACKAGE}.api")
    assert layer(f"{PACKAGE}.dashboard.web.api") == FRONT_ENDS and layer(f"{PACKAGE}.store.runs") == FOUNDATIONS


def test_imports_inside_type_checking_and_functions_are_seen(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from notification_emergency.api import EmergencyToolkit\n"
        "def f():\n    from notification_emergency import watch\n"
        "from . import errors\n"
    )
    known = {f"{PACKAGE}.api", f"{PACKAGE}.watch", f"{PACKAGE}.errors", PACKAGE}
    found = sorted(target for target, _line in imports(f"{PACKAGE}.sample", source, known))
    assert found == [f"{PACKAGE}.api", f"{PACKAGE}.errors", f"{PACKAGE}.watch"]


SOURCE_DIRS = (
    "src",
    "tests",
    "library",
    "action_plugins",
    "module_utils",
    "filter_plugins",
    "callback_plugins",
    "strategy_plugins",
    "reference_app",
    "rulebooks",
    "scripts",
    "bench",
)


@pytest.mark.parametrize("folder", SOURCE_DIRS)
def test_no_source_file_is_over_700_lines(folder: str) -> None:
    long = {
        str(path.relative_to(ROOT)): count
        for path in sorted((ROOT / folder).rglob("*.py"))
        if not path.is_symlink() and (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these by responsibility (at most {MAX_LINES} lines each)"
