"""The fleet inventory (the Ansible YAML inventory ``deploy/ansible/site.yml`` runs on), read as data.

Why here and not in Ansible: the precinct broker's ACL must list exactly the kiosks the
playbook provisions, so ``safehouse acl render`` reads the very same file. This module takes
the already-parsed tree (the CLI loads the YAML), its shape as Ansible sees it (groups by name,
``services/inventory_tree.py``) and the files of ``host_vars/`` and ``group_vars/`` when given
(``services/inventory_files.py``), and resolves each host's variables as Ansible does, lowest
first: the inventory's group vars, ``group_vars/all``, ``group_vars/GROUP``, the inventory's
host vars, ``host_vars/HOST``; within each, a host's groups by depth (``all``, parents,
children), and a folder beside the playbook after the same one beside the inventory. Where
Ansible would quietly rank two places that give one kiosk two identities (two unrelated groups,
one group named twice, two listings of the host), they are refused instead.

A host is a kiosk when it resolves a ``device_id``; each kiosk needs a ``precinct`` and may have
an ``alliance``. The group variable ``consoles`` (a list of certificate CNs) names the precinct
console users of the precinct that group's kiosks are in. Every problem is collected with its
place in the file and raised together as one ``ConfigError``: a half-read inventory must never
become a half-written ACL.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from safehouse.device.core.errors import ConfigError
from safehouse.device.core.settings import ID_TEXT as ID_TEXT  # re-exported for the ACL
from safehouse.device.core.settings import IDENT
from safehouse.services.inventory_files import VarsFolders
from safehouse.services.inventory_tree import Shape, read_shape

# The kiosk config's rule for ids (device.core.settings.IDENT, declared once). It also keeps
# every ACL line literal: no '+', '#', '/' or space can turn a grant into a wildcard.
ID_PATTERN = IDENT
# Variables that only make sense on a kiosk: a host with one of them but no device_id is a typo.
_KIOSK_HINTS = ("precinct", "alliance", "broker_url", "safehouse_cert", "safehouse_key")
# What makes a kiosk what it is: places that disagree on one of these are refused, not ranked.
_IDENTITY = ("device_id", "precinct", "alliance", "consoles")
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
    if not isinstance(tree, Mapping) or not tree:
        raise ConfigError(source, ["the inventory must be a YAML mapping of groups (e.g. 'all:')"])
    shape = read_shape(tree, problems)
    resolver = _Resolver(shape, folders, problems)
    kiosks, consoles = _kiosks({host: resolver.host(host) for host in shape.hosts}, problems)
    if problems:
        raise ConfigError(source, problems)
    return Fleet(tuple(kiosks), {p: tuple(sorted(users)) for p, users in sorted(consoles.items()) if users})


class _Resolver:
    """A host's variables in Ansible's precedence, from the inventory's shape and the vars files."""

    def __init__(self, shape: Shape, folders: VarsFolders | None, problems: list[str]) -> None:
        self._shape, self._folders, self._problems = shape, folders, problems
        self._checked: set[str] = set()  # vars files whose values were checked
        for group in shape.groups.values():  # a bad value is reported where it is written
            for where, variables in group.vars:
                _check_vars(variables, where, problems)
        for listings in shape.hosts.values():
            for where, variables in listings:
                _check_vars(variables, where, problems)

    def host(self, host: str) -> _Seen:
        shape = self._shape
        groups = shape.groups_of(host)  # all first
        placed = [(g, (GROUP_INLINE, where, v)) for g in groups for where, v in shape.groups[g].vars]
        placed += [(g, s) for g in groups for s in self._files(g, ALL_FILES if g == "all" else GROUP_FILES)]
        mine = [(HOST_INLINE, where, v) for where, v in shape.hosts[host]]
        mine += self._files(host, HOST_FILES, host=True)
        self._disagreements(host, placed, mine)
        values, where = _resolve([s for _, s in placed] + mine)
        return _Seen(values, where, {str(k) for _, _, v in mine for k in v})

    def _files(self, name: str, precedence: int, *, host: bool = False) -> list[Source]:
        """The vars files of a group (or a host): the inventory's folder, then the playbook's."""
        if self._folders is None:
            return []
        per_base = (self._folders.host if host else self._folders.group)(name, self._problems)
        sources: list[Source] = []
        for i, files in enumerate(per_base):
            for vars_file in files:
                if vars_file.label not in self._checked:
                    self._checked.add(vars_file.label)
                    _check_vars(vars_file.variables, vars_file.label, self._problems)
                sources.append((precedence + i, vars_file.label, vars_file.variables))
        return sources

    def _disagreements(self, host: str, placed: list[tuple[str, Source]], mine: list[Source]) -> None:
        """Places that give a kiosk two identities are refused, where Ansible would quietly rank
        them: two unrelated groups of the host, two places naming one group, two listings of
        the host. A group below another, or a file over the inventory, is precedence, not this."""
        for key in _IDENTITY:
            setters = [(g, s) for g, s in placed if key in s[2]]
            pairs = [(a, b) for i, a in enumerate(setters) for b in setters[i + 1:] if self._rival(a, b)]
            listings = [s for s in mine if s[0] == HOST_INLINE and key in s[2]]
            pairs += [(("", a), ("", b)) for i, a in enumerate(listings) for b in listings[i + 1:]]
            for (_, (_, where_a, vars_a)), (_, (_, where_b, vars_b)) in pairs:
                if vars_a[key] != vars_b[key]:
                    problem = (f"host {host}: {key} is {_shown(vars_a[key])} in {where_a} but "
                               f"{_shown(vars_b[key])} in {where_b}: give it one value")
                    if problem not in self._problems:
                        self._problems.append(problem)
                    break

    def _rival(self, a: tuple[str, Source], b: tuple[str, Source]) -> bool:
        (group_a, (layer_a, _, _)), (group_b, (layer_b, _, _)) = a, b
        if group_a == group_b:
            return layer_a == layer_b == GROUP_INLINE  # the group named twice, with two values
        return group_a not in self._shape.ancestors(group_b) and group_b not in self._shape.ancestors(group_a)


def _resolve(sources: list[Source]) -> tuple[dict[str, Any], dict[str, str]]:
    """The values a host ends up with, and where each was set: by precedence, then in Ansible's
    order within it (a deeper group after its parents, a later file after an earlier one)."""
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


def _kind(value: Any) -> str:
    return type(value).__name__
