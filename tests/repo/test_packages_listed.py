"""Every code package is shipped: pyproject lists each folder that holds an ``__init__.py``.

Why: setuptools' explicit ``packages`` list (needed for the ``safehouse`` namespace mapping)
silently leaves out a subpackage nobody listed; the editable install used by the tests would
still import it, and the kiosk installed by install.sh would die at start with ImportError.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_in_pyproject() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    mapping = setuptools["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join([package, *rel]))
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "pyproject lists packages that have no folder"
    assert {"safehouse.device.core", "safehouse.device.runtime", "safehouse.device.cli"} <= found
