"""The shape of an Ansible YAML inventory: groups by name, their parents and children, host listings.

Why a graph and not a walk down the file: Ansible makes one group of every place that names it
(its vars, hosts and parents add up) and ranks a host's groups by depth, the longest way down
from ``all``. A walk down the file gave a host only the vars on the way to where it was listed,
so a precinct set where its group is named a second time, or on a parent that adopts the group
elsewhere, was silently not the kiosk's, and the broker refused all it sent (issue 18). As in
Ansible, top-level groups other than ``all`` are its children, and every group is in ``all``.

Only the shape is read here, with every structural problem and the place it is at; what the
variables mean is ``services/inventory.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_GROUP_VISITS", "MAX_NESTING", "Group", "Shape", "read_shape"]

# YAML anchors can make a group its own child (an endless walk) or double the groups at each
# level (2^40 visits from 40 lines): both are reported, never walked. Real fleets nest a few
# levels and list at most thousands of groups.
MAX_NESTING = 64
MAX_GROUP_VISITS = 100_000
_GROUP_KEYS = frozenset({"hosts", "vars", "children"})

Vars = tuple[str, Mapping[Any, Any]]  # (where it is written, the variables)


@dataclass
class Group:
    """One group, however many places name it; ``vars`` in the order the file gives them."""

    name: str
    vars: list[Vars] = field(default_factory=list)
    parents: set[str] = field(default_factory=set)
    priority: int = 1  # ansible_group_priority: breaks ties between groups of one depth


@dataclass
class Shape:
    groups: dict[str, Group]
    hosts: dict[str, list[Vars]]  # each place a host is listed, in file order (first listing first)
    listed_in: dict[str, set[str]]  # host -> the groups it is listed in
    depth: dict[str, int] = field(default_factory=dict)

    def ancestors(self, name: str) -> set[str]:
        """``name`` and every group above it."""
        found, todo = {name}, [name]
        while todo:
            for parent in self.groups[todo.pop()].parents - found:
                found.add(parent)
                todo.append(parent)
        return found

    def groups_of(self, host: str) -> list[str]:
        """The groups ``host`` is in, ``all`` and the ones above its own included, lowest
        precedence first: Ansible's order (depth, then ansible_group_priority, then name)."""
        names = set().union(*(self.ancestors(g) for g in self.listed_in[host]))
        return sorted(names, key=lambda g: (self.depth.get(g, 0), self.groups[g].priority, g))


def read_shape(tree: Mapping[Any, Any], problems: list[str]) -> Shape:
    reader = _Reader(Shape({"all": Group("all")}, {}, {}), problems)
    for name, group in tree.items():
        if name != "all":
            reader.adopt("all", str(name))
        reader.group(group, str(name), str(name))
    reader.rank()
    return reader.shape


@dataclass
class _Reader:
    """``path`` holds the group mappings on the way down (by identity) and ``visits`` counts
    them: YAML alias loops and alias bombs."""

    shape: Shape
    problems: list[str]
    path: list[int] = field(default_factory=list)
    visits: int = 0

    def adopt(self, parent: str, child: str) -> None:
        self.shape.groups.setdefault(child, Group(child)).parents.add(parent)

    def group(self, group: Any, name: str, path: str) -> None:
        self.shape.groups.setdefault(name, Group(name))
        if group is None:
            return  # named here (under a parent), defined elsewhere or empty
        if id(group) in self.path:
            self.problems.append(f"{path}: the group contains itself (a YAML alias loop)")
            return
        if len(self.path) >= MAX_NESTING:
            self.problems.append(f"{path}: groups nested more than {MAX_NESTING} levels deep")
            return
        self.visits += 1
        if self.visits > MAX_GROUP_VISITS:
            if self.visits == MAX_GROUP_VISITS + 1:
                self.problems.append(f"{path}: the inventory expands to more than {MAX_GROUP_VISITS} groups "
                                     "(YAML aliases repeating groups?); list each group once")
            return
        self.path.append(id(group))
        try:
            self._define(group, name, path)
        finally:
            self.path.pop()

    def _define(self, group: Any, name: str, path: str) -> None:
        problems = self.problems
        if not isinstance(group, Mapping):
            problems.append(f"{path}: a group must be a mapping of hosts/vars/children, got {_kind(group)}")
            return
        for key in group:
            if key not in _GROUP_KEYS:
                problems.append(f"{path}.{key}: unknown group key (expected hosts, vars, children)")
        own = group.get("vars")
        if own is not None and not isinstance(own, Mapping):
            problems.append(f"{path}.vars: must be a mapping, got {_kind(own)}")
        elif own:
            self.shape.groups[name].vars.append((f"{path}.vars", own))
            priority = own.get("ansible_group_priority")
            if isinstance(priority, int) and not isinstance(priority, bool):
                self.shape.groups[name].priority = priority
        for section in ("hosts", "children"):
            content = group.get(section)
            if content is not None and not isinstance(content, Mapping):
                problems.append(f"{path}.{section}: must be a mapping, got {_kind(content)}")
        for host, host_vars in _mapping(group.get("hosts")).items():
            here = f"{path}.hosts.{host}"
            if host_vars is not None and not isinstance(host_vars, Mapping):
                problems.append(f"{here}: host variables must be a mapping, got {_kind(host_vars)}")
                continue
            self.shape.hosts.setdefault(str(host), []).append((here, host_vars or {}))
            self.shape.listed_in.setdefault(str(host), set()).add(name)
        for child, sub in _mapping(group.get("children")).items():
            self.adopt(name, str(child))
            self.group(sub, str(child), f"{path}.children.{child}")

    def rank(self) -> None:
        """Each group's depth, Ansible's: the longest way down from ``all`` (a group adopted by
        a deeper parent elsewhere is that deep). A loop of groups by name is reported."""
        depth, shape = self.shape.depth, self.shape
        depth["all"] = 0
        for name in shape.groups:
            self._depth(name, [])
        for name in shape.groups:
            depth.setdefault(name, 1)

    def _depth(self, name: str, below: list[str]) -> int:
        known = self.shape.depth.get(name)
        if known is not None:
            return known
        if name in below or len(below) >= MAX_NESTING:
            loop = " -> ".join([*below[below.index(name):], name]) if name in below else ""
            problem = (f"groups {loop}: a loop of groups (Ansible refuses it)" if loop else
                       f"group {name}: groups nested more than {MAX_NESTING} levels deep")
            if problem not in self.problems:
                self.problems.append(problem)
            return 1
        parents = self.shape.groups[name].parents or {"all"}
        value = max(self._depth(p, [*below, name]) for p in sorted(parents)) + 1
        self.shape.depth[name] = value
        return value


def _mapping(value: Any) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _kind(value: Any) -> str:
    return type(value).__name__
