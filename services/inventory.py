"""The fleet inventory (the Ansible YAML inventory ``deploy/ansible/site.yml`` runs on), read as data.

Why here and not in Ansible: the precinct broker's ACL must list exactly the kiosks the
playbook provisions, so ``safehouse acl render`` reads the very same file. This module takes
the already-parsed tree (the CLI loads the YAML) and resolves it the way Ansible does for the
variables we need: ``all`` < parent group < child group < host. A host is a kiosk when it
resolves a ``device_id``; each kiosk needs a ``precinct`` and may have an ``alliance``. The
group variable ``consoles`` (a list of certificate CNs) names the precinct console users of
the precinct that group's kiosks are in.

Every problem is collected with its path in the file and raised together as one
``ConfigError``: a half-read inventory must never become a half-written ACL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from safehouse.device.core.errors import ConfigError
from safehouse.device.core.settings import ID_TEXT as ID_TEXT  # re-exported for the ACL
from safehouse.device.core.settings import IDENT

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


def read_fleet(tree: Any, source: str) -> Fleet:
    """Resolve ``tree`` (a parsed Ansible YAML inventory) into a ``Fleet``.

    Raises ``ConfigError`` listing every problem: structure, bad or missing ids, a device id
    or console name used twice, a host whose groups disagree on its precinct.
    """
    problems: list[str] = []
    hosts: dict[str, _Seen] = {}
    if not isinstance(tree, Mapping) or not tree:
        raise ConfigError(source, ["the inventory must be a YAML mapping of groups (e.g. 'all:')"])
    budget = _Budget()
    for name, group in tree.items():
        _walk(group, {}, {}, str(name), hosts, problems, budget)
    kiosks, consoles = _kiosks(hosts, problems)
    if problems:
        raise ConfigError(source, problems)
    return Fleet(tuple(kiosks), {p: tuple(sorted(users)) for p, users in sorted(consoles.items()) if users})


@dataclass
class _Budget:
    """The groups on the current path (by identity) and the visits so far: loops and alias bombs."""

    path: list[int] = field(default_factory=list)
    visits: int = 0


def _walk(group: Any, inherited: dict[str, Any], origin: dict[str, str], path: str,
          hosts: dict[str, _Seen], problems: list[str], budget: _Budget) -> None:
    """Depth-first through one group: merge its vars over the inherited ones, visit hosts and children."""
    if group is None:
        return
    if id(group) in budget.path:
        problems.append(f"{path}: the group contains itself (a YAML alias loop)")
        return
    if len(budget.path) >= MAX_NESTING:
        problems.append(f"{path}: groups nested more than {MAX_NESTING} levels deep")
        return
    budget.visits += 1
    if budget.visits > MAX_GROUP_VISITS:
        if budget.visits == MAX_GROUP_VISITS + 1:
            problems.append(f"{path}: the inventory expands to more than {MAX_GROUP_VISITS} groups "
                            "(YAML aliases repeating groups?); list each group once")
        return
    budget.path.append(id(group))
    try:
        _walk_group(group, inherited, origin, path, hosts, problems, budget)
    finally:
        budget.path.pop()


def _walk_group(group: Any, inherited: dict[str, Any], origin: dict[str, str], path: str,
                hosts: dict[str, _Seen], problems: list[str], budget: _Budget) -> None:
    if not isinstance(group, Mapping):
        problems.append(f"{path}: a group must be a mapping of hosts/vars/children, got {_kind(group)}")
        return
    for key in group:
        if key not in _GROUP_KEYS:
            problems.append(f"{path}.{key}: unknown group key (expected hosts, vars, children)")
    values, where = dict(inherited), dict(origin)
    own = group.get("vars")
    if own is not None and not isinstance(own, Mapping):
        problems.append(f"{path}.vars: must be a mapping, got {_kind(own)}")
    elif own:
        _check_vars(own, f"{path}.vars", problems)
        values.update(own)
        where.update({str(k): f"{path}.vars" for k in own})
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
        merged, merged_where = dict(values), dict(where)
        merged.update(host_vars or {})
        merged_where.update({str(k): here for k in host_vars or {}})
        _add_host(str(host), merged, merged_where, set(host_vars or {}), hosts, problems)
    for child, sub in _mapping(group.get("children")).items():
        _walk(sub, values, where, f"{path}.children.{child}", hosts, problems, budget)


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
            problems.append(f"host {host}: {key} is {seen.values[key]!r} in {seen.where[key]} but "
                            f"{values[key]!r} in {where[key]}: give it one value")
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
            problems.append(f"host {host}: device_id {v['device_id']!r} has no precinct")
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
        problems.append(f"{what} is a Jinja template ({value!r}): write the value itself")
    else:
        problems.append(f"{what} must be {ID_TEXT}, got {value!r}")
    return None


def _mapping(value: Any) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _kind(value: Any) -> str:
    return type(value).__name__
