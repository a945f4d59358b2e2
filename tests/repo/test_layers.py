"""The house's rules, held on every import the code really makes (parsed, not grepped).

`device.core` leans on nothing of the project; drivers and services lean on `device.core` only
(never on each other, never upward); the runtime never reaches into the CLI; and no module
imports another in a circle, not even under TYPE_CHECKING. A violation names the file and the
import, so the fix is obvious.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"device": "safehouse.device", "drivers": "safehouse.drivers", "services": "safehouse.services"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for file in sorted((REPO / folder).rglob("*.py")):
            parts = [p for p in file.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = file
    return found


MODULES = _modules()


def _imports(file: Path) -> set[str]:
    """Every project module a file imports, resolving `from pkg import module` to the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{file}: relative import; use the full safehouse.* name"
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
    return {name for name in found if name.startswith("safehouse.")}


GRAPH = {name: _imports(file) for name, file in MODULES.items()}


def _within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(source: str, allowed: tuple[str, ...]) -> list[str]:
    return [f"{MODULES[name].relative_to(REPO)} imports {target}"
            for name, targets in sorted(GRAPH.items()) if _within(name, source)
            for target in sorted(targets) if not _within(target, *allowed) and target != "safehouse.device"]


def test_the_core_imports_nothing_of_the_project_outside_itself() -> None:
    assert _violations("safehouse.device.core", ("safehouse.device.core",)) == []


def test_the_core_uses_the_standard_library_only() -> None:
    import sys

    outside = []
    for name, file in MODULES.items():
        if not _within(name, "safehouse.device.core"):
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            roots = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            outside += [f"{file.relative_to(REPO)}: {r}" for r in roots
                        if r.split(".")[0] not in sys.stdlib_module_names and not r.startswith("safehouse.")]
    assert outside == []


def test_drivers_lean_on_the_core_only() -> None:
    assert _violations("safehouse.drivers", ("safehouse.device.core", "safehouse.drivers")) == []


def test_services_lean_on_the_core_only() -> None:
    assert _violations("safehouse.services", ("safehouse.device.core", "safehouse.services")) == []


def test_the_runtime_never_reaches_into_the_cli() -> None:
    allowed = ("safehouse.device.core", "safehouse.device.runtime", "safehouse.drivers", "safehouse.services")
    assert _violations("safehouse.device.runtime", allowed) == []


def test_no_module_imports_another_in_a_circle() -> None:
    circles: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            circles.append([*path[path.index(name):], name])
            return
        if name in done:
            return
        for target in sorted(GRAPH.get(name, ())):
            if target in GRAPH and target != name:
                visit(target, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])
    assert circles == []


def test_the_rules_see_every_layer() -> None:
    """A rule that matches no file would pass for ever: each layer must hold real modules."""
    for layer in ("safehouse.device.core", "safehouse.device.runtime", "safehouse.device.cli",
                  "safehouse.drivers", "safehouse.services"):
        assert sum(_within(n, layer) for n in MODULES) >= 3, layer
