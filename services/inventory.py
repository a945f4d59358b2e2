"""The fleet inventory (the Ansible YAML inventory ``deploy/ansible/site.yml`` runs on), read as data.

Why here and not in Ansible: the precinct broker's ACL must list exactly the kiosks the
playbook provisions, so ``safehouse acl render`` reads the very same file. This module takes
the already-parsed tree (the CLI loads the YAML) and resolves it the way Ansible does for the
variables we need, with the files of ``host_vars/`` and ``group_vars/`` when they are given
(``services/inventory_files.py``). Ansible's precedence, lowest first: the inventory's group
vars (``all`` < parent < child), ``group_vars/all``, ``group_vars/GROUP`` (parent < child),
the inventory's host vars, ``host_vars/HOST``; each folder beside the playbook after the same
one beside the inventory. Top-level groups other than ``all`` are ``all``'s children. A host
is a kiosk when it resolves a ``device_id``; each kiosk needs a ``precinct`` and may have an
``alliance``. The group variable ``consoles`` (a list of certificate CNs) names the precinct
console users of the precinct that group's kiosks are in.

Every problem is collected with its path in the file and raised together as one
``ConfigError``: a half-read inventory must never become a half-written ACL.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from safehouse.device.core.errors import ConfigError
from safehouse.device.core.settings import ID_TEXT as ID_TEXT  # re-exported for the ACL
from safehouse.device.core.settings import IDENT
from safehouse.services.inventory_files import VarsFile, VarsFolders

# The kiosk config's rule for ids (device.core.settings.IDENT, declared once). It also keeps
# every ACL line literal: no '+', '#', '/' or space can turn a grant into a wildcard.
ID_PATTERN = IDENT
# Variables that only make sense on a kiosk: a host with one of them but no device_id is a typo.
_KIOSK_HINTS = ("precinct", "alliance", "broker_url", "safehouse_cert", "safehouse_key")
_GROUP_KEYS = frozenset({"hosts", "vars", "children"})
# YAML anchors can make a group its own child (an endless walk) or double the groups at each
# level (2^40 visits from 40 lines): both are reported, never walked. Real fleets nest a few
# levels and list at most thousands of groups.
MAX_NESTING = 64
MAX_GROUP_VISITS = 100_000
# Where a variable was set, lowest precedence first; a folder beside the playbook is one above
# the same folder beside the inventory (VarsFolders gives them in that order).
GROUP_INLINE, ALL_FILES, GROUP_FILES, HOST_INLINE, HOST_FILES = 0, 1, 3, 5, 6
Source = tuple[int, str, Mapping[Any, Any]]  # (precedence, where, variables)


class Kiosk(NamedTuple):
    """One kiosk as the inventory names it; ``alliance`` is ``""`` for none."""

    device_id: str
    precinct: str
    alliance: str


@dataclass(frozen=True)
class Fleet:
    """The kiosks (in inventory order) and, per precinct, its console users (sorted)."""

    kiosks: tuple[Kiosk, ...]
    consoles: Mapping[str, tuple[str, ...]]

    @property
    def precincts(self) -> list[str]:
        return sorted({k.precinct for k in self.kiosks} | set(self.consoles))


@dataclass
class _Seen:
    """Resolved variables of one host, and where each came from (for conflict messages)."""

    values: dict[str, Any]
    where: dict[str, str]
    own: set[str]  # keys set on the host itself (not inherited from a group)


def read_fleet(tree: Any, source: str, folders: VarsFolders | None = None) -> Fleet:
    """Resolve ``tree`` (a parsed Ansible YAML inventory) into a ``Fleet``, with the variable
    files of ``folders`` (host_vars/ and group_vars/) when given.

    Raises ``ConfigError`` listing every problem: structure, bad or missing ids, a device id
    or console name used twice, a host whose groups disagree on its precinct.
    """
    problems: list[str] = []
    hosts: dict[str, _Seen] = {}
    if not isinstance(tree, Mapping) or not tree:
        raise ConfigError(source, ["the inventory must be a YAML mapping of groups (e.g. 'all:')"])
    walk = _Walk(hosts, problems, folders)
    everyone = tree.get("all")
    inline = everyone.get("vars") if isinstance(everyone, Mapping) else None
    under_all = ((GROUP_INLINE, "all.vars", inline),) if isinstance(inline, Mapping) else ()
    for name, group in tree.items():  # any other top-level group is a child of all
        if name == "all":
            walk.group(group, (), "all", "all")
        else:
            walk.group(group, under_all + walk.files("all", ALL_FILES), str(name), str(name))
    kiosks, consoles = _kiosks(hosts, problems)
    if problems:
        raise ConfigError(source, problems)
    return Fleet(tuple(kiosks), {p: tuple(sorted(users)) for p, users in sorted(consoles.items()) if users})


@dataclass
class _Walk:
    """One walk through the inventory: the hosts seen, the problems, the vars files read.

    ``path`` holds the groups on the current path (by identity) and ``visits`` counts them:
    loops and alias bombs."""

    hosts: dict[str, _Seen]
    problems: list[str]
    folders: VarsFolders | None
    path: list[int] = field(default_factory=list)
    visits: int = 0
    checked: set[str] = field(default_factory=set)  # vars files whose values were checked

    def group(self, group: Any, sources: tuple[Source, ...], name: str, path: str) -> None:
        """Depth-first through one group: its vars over the inherited ones, its hosts and children."""
        if group is None:
            return
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
            self._group(group, sources, name, path)
        finally:
            self.path.pop()

    def _group(self, group: Any, sources: tuple[Source, ...], name: str, path: str) -> None:
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
            _check_vars(own, f"{path}.vars", problems)
            sources += ((GROUP_INLINE, f"{path}.vars", own),)
        sources += self.files(name, ALL_FILES if name == "all" else GROUP_FILES)
        for section in ("hosts", "children"):
            content = group.get(section)
            if content is not None and not isinstance(content, Mapping):
                problems.append(f"{path}.{section}: must be a mapping, got {_kind(content)}")
        for host, host_vars in _mapping(group.get("hosts")).items():
            here = f"{path}.hosts.{host}"
            if host_vars is not None and not isinstance(host_vars, Mapping):
                problems.append(f"{here}: host variables must be a mapping, got {_kind(host_vars)}")
                continue
            _check_vars(host_vars or {}, here, problems)
            mine = ((HOST_INLINE, here, host_vars or {}), *self.files(str(host), HOST_FILES, host=True))
            values, where = _resolve(sources + mine)
            _add_host(str(host), values, where, {k for _, _, v in mine for k in v}, self.hosts, problems)
        for child, sub in _mapping(group.get("children")).items():
            self.group(sub, sources, str(child), f"{path}.children.{child}")

    def files(self, name: str, precedence: int, *, host: bool = False) -> tuple[Source, ...]:
        """The vars files of a group (or a host) as sources: the inventory's folder, then the playbook's."""
        if self.folders is None:
            return ()
        per_base = (self.folders.host if host else self.folders.group)(name, self.problems)
        sources: list[Source] = []
        for i, files in enumerate(per_base):
            for vars_file in files:
                self._check_file(vars_file)
                sources.append((precedence + i, vars_file.label, vars_file.variables))
        return tuple(sources)

    def _check_file(self, vars_file: VarsFile) -> None:
        if vars_file.label not in self.checked:
            self.checked.add(vars_file.label)
            _check_vars(vars_file.variables, vars_file.label, self.problems)


def _resolve(sources: tuple[Source, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values a host ends up with, and where each was set: by precedence, then in the order
    found (a child group after its parent, a later file after an earlier one)."""
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for _precedence, label, variables in sorted(sources, key=lambda s: s[0]):
        values.update(variables)
        where.update({str(k): label for k in variables})
    return values, where


def _check_vars(variables: Mapping[Any, Any], path: str, problems: list[str]) -> None:
    """Report a bad value where it is written, even if every host overrides it."""
    for key in ("device_id", "precinct", "alliance"):
        if key in variables and not (key == "alliance" and variables[key] in (None, "")):
            _ident(variables[key], f"{path}: {key}", problems)
    if "consoles" in variables:
        users = variables["consoles"]
        if not isinstance(users, list):
            problems.append(f"{path}: consoles must be a list of certificate names, got {_kind(users)}")
        else:
            for i, user in enumerate(users):
                _ident(user, f"{path}: consoles[{i}]", problems)


def _add_host(host: str, values: dict[str, Any], where: dict[str, str], own: set[Any],
              hosts: dict[str, _Seen], problems: list[str]) -> None:
    """A host listed in several groups must resolve the same kiosk identity in each."""
    seen = hosts.get(host)
    if seen is None:
        hosts[host] = _Seen(values, where, {str(k) for k in own})
        return
    seen.own.update(str(k) for k in own)
    for key in ("device_id", "precinct", "alliance", "consoles"):
        if key in values and key in seen.values and values[key] != seen.values[key]:
            problems.append(f"host {host}: {key} is {_shown(seen.values[key])} in {seen.where[key]} but "
                            f"{_shown(values[key])} in {where[key]}: give it one value")
    for key, value in values.items():
        seen.values.setdefault(key, value)
        seen.where.setdefault(key, where.get(key, "?"))


def _kiosks(hosts: dict[str, _Seen], problems: list[str]) -> tuple[list[Kiosk], dict[str, set[str]]]:
    """Hosts with a device_id become kiosks; bad values were reported where written (``_check_vars``)."""
    kiosks: list[Kiosk] = []
    consoles: dict[str, set[str]] = {}
    owner: dict[str, str] = {}
    for host, seen in hosts.items():
        v = seen.values
        if "device_id" not in v:
            hints = [k for k in _KIOSK_HINTS if k in seen.own]
            if hints:
                problems.append(f"host {host}: has {', '.join(hints)} but no device_id")
            continue
        device_id = _valid(v["device_id"])
        if device_id is not None and device_id in owner:
            problems.append(f"host {host}: device_id {device_id!r} is also host {owner[device_id]}'s: "
                            "two kiosks would share one certificate name")
            continue
        if device_id is not None:
            owner[device_id] = host
        if "precinct" not in v:
            problems.append(f"host {host}: device_id {_shown(v['device_id'])} has no precinct")
        precinct = _valid(v.get("precinct"))
        alliance = "" if v.get("alliance") in (None, "") else _valid(v["alliance"])
        listed = v.get("consoles")
        names: list[Any] = listed if isinstance(listed, list) else []
        if device_id is None or precinct is None or alliance is None:
            continue  # already reported
        kiosks.append(Kiosk(device_id, precinct, alliance))
        consoles.setdefault(precinct, set()).update(u for u in names if _valid(u) is not None)
    for precinct, users in consoles.items():
        for user in sorted(users & set(owner)):
            problems.append(f"console {user!r} of precinct {precinct} is also the device_id of host "
                            f"{owner[user]}: that kiosk would get the console's rights")
    return kiosks, consoles


def _valid(value: Any) -> str | None:
    return value if isinstance(value, str) and ID_PATTERN.fullmatch(value) else None


def _ident(value: Any, what: str, problems: list[str]) -> str | None:
    if isinstance(value, str) and ID_PATTERN.fullmatch(value):  # not .match: "K1\n" passed
        return value
    if isinstance(value, str) and "{{" in value:
        problems.append(f"{what} is a Jinja template ({_shown(value)}): write the value itself")
    else:
        problems.append(f"{what} must be {ID_TEXT}, got {_shown(value)}")
    return None


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 100
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict = 2, 4, 4


def _shown(value: Any) -> str:
    """A value quoted in a problem, bounded: a structure of aliases can expand to millions."""
    return _SHOWN.repr(value)


def _mapping(value: Any) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _kind(value: Any) -> str:
    return type(value).__name__
