"""The house's rules, held on every import the code really makes (parsed, not grepped).

`device.core` leans on nothing of the project; drivers and services lean on `device.core` only
(never on each other, never upward); the runtime never reaches into the CLI; and no module
imports another in a circle, not even under TYPE_CHECKING. A violation names the file and the
import, so the fix is obvious.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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


_IMPORTERS = {"import_module", "__import__"}  # importlib.import_module(name), __import__(name)


def _imports(file: Path) -> set[str]:
    """Every project module a file imports, resolving `from pkg import module` to the module.

    Relative imports are refused (``from . import x`` names no module to check), and so is an
    ``importlib.import_module``/``__import__`` of a computed name; one of a literal name counts
    as an import like any other.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{file}:{node.lineno}: relative import; use the full safehouse.* name"
            assert node.module is not None
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Call) and _called(node.func) in _IMPORTERS:
            arg = node.args[0] if node.args else None
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
                f"{file}:{node.lineno}: {_called(node.func)}() of a computed name; import it by name")
            found.add(arg.value)
    return {name for name in found if name.startswith("safehouse.")}


def _called(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


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


def test_the_device_package_itself_imports_nothing_of_the_project() -> None:
    """Every layer may import `safehouse.device` (for __version__); so it must lean on nothing."""
    assert GRAPH["safehouse.device"] == set()


@pytest.mark.parametrize(("source", "seen"), [
    ("import safehouse.drivers.keypad as k\n", {"safehouse.drivers.keypad"}),
    ("from safehouse import drivers\n", {"safehouse.drivers"}),
    ("from safehouse.device import runtime\n", {"safehouse.device.runtime"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from safehouse.drivers.keypad import Keypad\n",
     {"safehouse.drivers.keypad"}),
    ("def f():\n    import safehouse.services.outbox\n", {"safehouse.services.outbox"}),
    ("import importlib\nm = importlib.import_module('safehouse.drivers.keypad')\n",
     {"safehouse.drivers.keypad"}),
    ("x = __import__('safehouse.services.acl')\n", {"safehouse.services.acl"}),
    ("import importlib\ny = importlib.import_module('yaml')\n", set()),
])
def test_the_parser_sees_every_way_to_import(tmp_path: Path, source: str, seen: set[str]) -> None:
    file = tmp_path / "m.py"
    file.write_text(source)
    assert _imports(file) == seen


@pytest.mark.parametrize("source", [
    "from . import keypad\n",
    "from .. import drivers\n",
    "from .keypad import Keypad\n",
    "from importlib import import_module\nimport_module('safehouse.drivers.' + 'keypad')\n",
    "import importlib\nname = 'safehouse.drivers.keypad'\nimportlib.import_module(name)\n",
])
def test_an_import_the_parser_cannot_name_is_refused(tmp_path: Path, source: str) -> None:
    file = tmp_path / "m.py"
    file.write_text(source)
    with pytest.raises(AssertionError, match=r"relative import|computed name"):
        _imports(file)


def test_the_rules_see_every_layer() -> None:
    """A rule that matches no file would pass for ever: each layer must hold real modules."""
    for layer in ("safehouse.device.core", "safehouse.device.runtime", "safehouse.device.cli",
                  "safehouse.drivers", "safehouse.services"):
        assert sum(_within(n, layer) for n in MODULES) >= 3, layer
