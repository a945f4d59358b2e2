"""host_vars/ and group_vars/ beside the inventory (and the playbook), found as Ansible finds them.

Why: a ``device_id`` kept in ``host_vars/kiosk-12.yml`` is that kiosk's as much as one written
in the inventory, and Ansible provisions the kiosk with it; ``acl render`` read only the
inventory, so the kiosk was left out of the ACL with exit 0 and the broker refused everything
it sent (issue 18).

What Ansible reads (its ``host_group_vars`` plugin over ``DataLoader.find_vars_files``), in each
folder, the inventory's first and then the playbook's (``--playbook-dir``): for the name ``N``
the first of ``N`` (a file, or a folder), ``N.yml``, ``N.yaml``, ``N.json`` that exists; in a
folder, every file named with no extension or one of those three, sorted by name, later ones
overriding earlier ones, and each subfolder named without an extension the same way; names
starting with ``.`` or ending with ``~`` are skipped. Empty files are nothing. Two candidates
for one name (``h.yml`` and ``h.yaml``) are refused: Ansible would read only the first, so the
other's values would vanish without a word.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import ConfigError

__all__ = ["EXTENSIONS", "MAX_FOLDER_DEPTH", "VarsFile", "VarsFolders"]

EXTENSIONS = (".yml", ".yaml", ".json")  # Ansible's YAML_FILENAME_EXTENSIONS
MAX_FOLDER_DEPTH = 16  # subfolders of host_vars/NAME/


@dataclass(frozen=True)
class VarsFile:
    """One file's variables; ``label`` names it in problems (``host_vars/kiosk-12.yml``)."""

    label: str
    variables: Mapping[Any, Any]


class VarsFolders:
    """The variable files of hosts and groups in ``bases`` (lowest precedence first), each read
    once with ``load`` (which raises ``ConfigError``); problems go to the list given, once."""

    def __init__(self, bases: Sequence[Path], load: Callable[[Path], Any]) -> None:
        self._bases, self._load = list(bases), load
        self._found: dict[tuple[str, str], tuple[list[list[VarsFile]], list[str]]] = {}

    def group(self, name: str, problems: list[str]) -> list[list[VarsFile]]:
        """Per base folder, the files of group ``name`` in the order they override each other."""
        return self._files("group_vars", name, problems)

    def host(self, name: str, problems: list[str]) -> list[list[VarsFile]]:
        return self._files("host_vars", name, problems)

    def _files(self, kind: str, name: str, problems: list[str]) -> list[list[VarsFile]]:
        cached = self._found.get((kind, name))
        if cached is None:
            found: list[str] = []
            cached = ([self._read(base, kind, name, found) for base in self._bases], found)
            self._found[(kind, name)] = cached
            problems += found  # reported the first time only
        return cached[0]

    def _read(self, base: Path, kind: str, name: str, problems: list[str]) -> list[VarsFile]:
        folder = base / kind
        if not folder.is_dir():
            return []  # Ansible skips a missing folder (and warns about a file in its place)
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            problems.append(f"{kind} of {name!r}: the name cannot name a file in {folder}; rename it")
            return []
        candidates = [folder / (name + ext) for ext in ("", *EXTENSIONS)]
        present = [c for c in candidates if c.exists()]
        if not present:
            return []
        for extra in present[1:]:
            problems.append(f"{self._label(base, extra)}: Ansible reads only {self._label(base, present[0])} "
                            f"for {name}; merge the two")
        paths = _folder_files(present[0], 0, problems) if present[0].is_dir() else [present[0]]
        files = []
        for path in paths:
            label = self._label(base, path)
            try:
                variables = self._load(path)
            except ConfigError as exc:
                problems += [f"{label}: {problem}" for problem in exc.problems]
                continue
            if variables is None:
                continue  # an empty file (or only comments): Ansible reads nothing from it
            if not isinstance(variables, Mapping):
                problems.append(f"{label}: must be a mapping of variables, got {type(variables).__name__}")
                continue
            files.append(VarsFile(label, variables))
        return files

    def _label(self, base: Path, path: Path) -> str:
        """The path as the user would write it: relative to the inventory's folder, when it is
        the first base; else in full."""
        return str(path.relative_to(base)) if base == self._bases[0] else str(path)


def _folder_files(folder: Path, depth: int, problems: list[str], above: tuple[str, ...] = ()) -> list[Path]:
    """The files of ``folder`` and its subfolders in Ansible's order; a link back to a folder
    above is reported (Ansible would recurse until it failed), and so is a chain past
    ``MAX_FOLDER_DEPTH``."""
    real = os.path.realpath(folder)
    if real in above:
        problems.append(f"{folder}: a link back to a folder above it; remove the link")
        return []
    if depth > MAX_FOLDER_DEPTH:
        problems.append(f"{folder}: folders nested more than {MAX_FOLDER_DEPTH} deep")
        return []
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        problems.append(f"{folder}: cannot list it: {exc.strerror or exc}")
        return []
    found: list[Path] = []
    for entry in names:
        if entry.startswith(".") or entry.endswith("~"):
            continue  # hidden files and editors' backups
        path, ext = folder / entry, os.path.splitext(entry)[1]
        if path.is_dir() and not ext:
            found += _folder_files(path, depth + 1, problems, (*above, real))
        elif path.is_file() and (not ext or ext in EXTENSIONS):
            found.append(path)
    return found
