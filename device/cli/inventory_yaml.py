"""Reading an Ansible inventory (or a host_vars/group_vars file) bounded, and strict about keys.

Why bounded: PyYAML shares an aliased node instead of copying it, so nine lines of aliases nine
deep ("billion laughs") load in milliseconds as 9**9 strings, which the first thing to walk or
print them (a problem message) expands: 21 s of CPU and a MemoryError at 1.7 GB (issue 18). So
the file's size, its aliases, its depth and the number of values its aliases expand to are
capped while it is composed, before anything is built, and a loop of aliases is refused.

Why strict: YAML keeps the last of two equal keys in one mapping, and so does ``json.loads``:
a host or a group written twice left the first one out of the ACL with exit 0. A duplicate key
is refused, with its line and the line of the first.

PyYAML is imported here only, off the kiosk (the Ansible control machine has it); without it
a JSON inventory still reads. Every failure is a ``ConfigError`` naming the file.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import ConfigError
from safehouse.device.core.ratelimit import clip

__all__ = ["MAX_ALIASES", "MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "load"]

MAX_BYTES = 4 << 20  # a 2,100-kiosk inventory is about 300 KB
MAX_DEPTH = 200  # levels, aliases included (a group nests two levels; the walk stops at 64 groups)
MAX_ALIASES = 10_000  # a `<<: *defaults` per host of a whole city's fleet fits
MAX_VALUES = 1_000_000  # every scalar, list and mapping once each alias is expanded
_VAULT = b"$ANSIBLE_VAULT;"
_MERGE = "tag:yaml.org,2002:merge"
_TOO_DEEP = f"nested too deeply to read (more than {MAX_DEPTH} levels, aliases included): an inventory " \
    "nests a few groups deep"


class _Refused(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load(path: Path) -> Any:
    """Parse ``path`` (YAML, or JSON which is YAML too); any failure is a ``ConfigError``."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the inventory: {exc.strerror or exc}"]) from exc
    if len(data) > MAX_BYTES:
        raise ConfigError(str(path), [f"more than {MAX_BYTES} bytes: more than any fleet's inventory "
                                      "needs; is this the right file?"])
    if data.lstrip().startswith(_VAULT):
        raise ConfigError(str(path), ["vault-encrypted: `safehouse acl render` cannot see whether it sets "
                                      "device_id, precinct, alliance or consoles; keep those in plain text "
                                      "(encrypt single secrets with `ansible-vault encrypt_string`)"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"cannot read the inventory: not UTF-8 ({exc})"]) from exc
    try:
        return _parse(text)
    except _Refused as exc:
        raise ConfigError(str(path), exc.problems) from exc
    except RecursionError as exc:  # the JSON parser recurses per level
        raise ConfigError(str(path), [_TOO_DEEP]) from exc


def _parse(text: str) -> Any:
    try:
        yaml = importlib.import_module("yaml")  # untyped here, and only needed off the kiosk
    except ImportError:  # the control machine has PyYAML with Ansible; a JSON inventory needs nothing
        try:
            return _shallow(json.loads(text, object_pairs_hook=_unique_pairs))
        except ValueError as exc:
            raise _Refused([f"not JSON ({exc}), and PyYAML is not installed to read YAML "
                            "(pip install pyyaml)"]) from exc
    try:
        return yaml.load(text, Loader=_loader(yaml))  # a SafeLoader subclass: no object tags
    except yaml.YAMLError as exc:
        raise _Refused([f"not valid YAML: {exc}"]) from exc


def _shallow(value: Any) -> Any:
    """``value`` if it nests at most ``MAX_DEPTH`` levels, as the YAML reader allows; walked
    without recursion (JSON has no aliases, so its size is the file's)."""
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise _Refused([_TOO_DEEP])
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        todo += [(child, depth + 1) for child in children]
    return value


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Refused([f"duplicate key {clip(key, 64)} in one object: only the last would be read"])
        seen.add(key)
    return dict(pairs)


def _loader(yaml: Any) -> Any:
    """SafeLoader, bounded and strict (above); Ansible's ``!unsafe`` reads as text and ``!vault``
    as an unusable marker."""

    class InventoryLoader(yaml.SafeLoader):  # type: ignore[misc]
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self._depth = self._aliases = 0
            self._duplicates: list[str] = []
            self._anchors: dict[int, str] = {}  # node id -> its anchor's name, for messages

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    raise _Refused([f"{_line(self.peek_event())}: more than {MAX_ALIASES} aliases"])
                return super().compose_node(parent, index)
            self._depth += 1
            event = self.peek_event()
            if self._depth > MAX_DEPTH:
                raise _Refused([f"{_line(event)}: {_TOO_DEEP}"])
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            if event.anchor is not None:
                self._anchors[id(node)] = event.anchor
            return node

        def compose_mapping_node(self, anchor: Any) -> Any:
            node = super().compose_mapping_node(anchor)
            first: dict[tuple[str, str], Any] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE:
                    earlier = first.setdefault((key.tag, key.value), key)
                    if earlier is not key:
                        self._duplicates.append(
                            f"{_line(key)}: duplicate key {clip(key.value, 64)} (first on "
                            f"{_line(earlier)}): YAML keeps only the last, so the first would vanish")
            return node

        def compose_document(self) -> Any:
            node = super().compose_document()
            if self._duplicates:
                raise _Refused(self._duplicates)
            _Expansion(yaml, self._anchors).count(node, 1)
            return node

    InventoryLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    InventoryLoader.add_constructor("!vault", lambda _loader, _node: "<vault-encrypted value>")
    return InventoryLoader


class _Expansion:
    """What the composed document would be with every alias copied out: values and depth.

    Each node is counted once (a shared node's size is remembered), so this costs the size of
    the file, not of the expansion; recursion stops at ``MAX_DEPTH``."""

    def __init__(self, yaml: Any, anchors: dict[int, str]) -> None:
        self._yaml, self._anchors = yaml, anchors
        self._sizes: dict[int, tuple[int, int]] = {}  # node id -> (values, height)
        self._open: set[int] = set()

    def count(self, node: Any, depth: int) -> tuple[int, int]:
        key = id(node)
        known = self._sizes.get(key)
        if known is None:
            if key in self._open:
                alias = f"*{self._anchors[key]}" if key in self._anchors else "an alias"
                raise _Refused([f"{_line(node)}: {alias} refers to a value that contains it (a loop)"])
            self._open.add(key)
            known = self._measure(node, depth)
            self._open.discard(key)
            self._sizes[key] = known
        values, height = known
        if values > MAX_VALUES:
            raise _Refused([f"{_line(node)}: aliases expand to more than {MAX_VALUES} values (a YAML alias "
                            "bomb?); write the values out"])
        if depth + height - 1 > MAX_DEPTH:
            raise _Refused([f"{_line(node)}: {_TOO_DEEP}"])
        return known

    def _measure(self, node: Any, depth: int) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            raise _Refused([f"{_line(node)}: {_TOO_DEEP}"])
        if isinstance(node, self._yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, self._yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            return 1, 1
        values, height = 1, 1
        for child in children:
            v, h = self.count(child, depth + 1)
            values, height = values + v, max(height, h + 1)
            if values > MAX_VALUES:
                break  # count() reports it with this node's line
        return values, height


def _line(mark_of: Any) -> str:
    """"line N" of a node or an event (PyYAML counts from 0)."""
    return f"line {mark_of.start_mark.line + 1}"
