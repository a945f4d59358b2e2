"""The volunteer registry: who may acknowledge on the keypad, checked by PIN against scrypt hashes.

The file is ``volunteers.toml`` beside the config file (``/etc/safehouse/volunteers.toml`` on a
Pi; ``[keypad] volunteers`` may point elsewhere), root-owned, mode 0640::

    [[volunteer]]
    id = "v042"                 # [A-Za-z0-9_-]{1,32}, unique
    name = "Chan Tai Man"       # display name, 1-64 characters
    pin = "scrypt$n=1024,r=8,p=1$<salt b64>$<hash b64>"
    duress = "scrypt$...$...$..."   # optional: a second PIN that acknowledges AND raises a silent alarm

Hashes are ``hashlib.scrypt`` of the PIN's ASCII digits with a random 16-byte salt per hash and a
32-byte result, in standard base64; the cost parameters travel inside each string, so entries
written with other parameters keep verifying after ``DEFAULT_PARAMS`` changes. Nothing but
``safehouse volunteer add|remove`` should write the file: it rewrites the whole file atomically
(temp file, fsync, rename, fsync of the folder) under a lock on the folder, so a hand-written
comment survives only until the next write. A missing file is an empty registry, not an error.

PINs are 4-8 digits 0-9. A PIN never reaches a log line, an exception message or a repr: the
hash fields are ``repr=False`` and every refusal describes the problem without the value.
``verify()`` hashes the entry against every stored PIN and duress hash, always all of them, and
compares each with ``hmac.compare_digest``, so its duration says neither who matched nor whether
anyone did. It costs (volunteers + duress PINs) scrypt runs, spread over up to four threads
(hashlib.scrypt releases the GIL); ``bench/scrypt_cost.py`` measures what that means here. The
hashes themselves (format, cost, constant-time check) are ``services/pin_hashes.py``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import ConfigError, SafehouseError
from safehouse.services.pin_hashes import (
    DEFAULT_PARAMS,
    HASH_BYTES,
    MAX_HASH_MEMORY,
    MAX_WORKERS,
    SALT_BYTES,
    PinHash,
    ScryptParams,
    hash_problem,
    map_on_workers,
    parse_hash,
)

__all__ = ["DEFAULT_PARAMS", "FILE_MODE", "HASH_BYTES", "ID_PATTERN", "MAX_HASH_MEMORY", "MAX_WORKERS",
           "NAME_MAX", "PIN_PATTERN", "SALT_BYTES", "DuplicateVolunteer", "InvalidPin", "InvalidVolunteer",
           "Match", "PinCollision", "ScryptParams", "UnknownVolunteer", "Volunteer", "VolunteerFileError",
           "VolunteerRefused", "VolunteerRegistry"]

_LOG = logging.getLogger(__name__)

FILE_MODE = 0o640
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
PIN_PATTERN = re.compile(r"[0-9]{4,8}")
NAME_MAX = 64
_KEYS = ("id", "name", "pin", "duress")
_HEADER = ("# Safe House volunteers: the keypad PINs of this kiosk, as scrypt hashes.\n"
           "# Written by `safehouse volunteer add|remove`, which rewrites the whole file:\n"
           "# comments added by hand are lost on the next write.\n")


class VolunteerRefused(SafehouseError, ValueError):
    """``add``/``remove`` refused the request; the message says why and never contains a PIN."""


class InvalidPin(VolunteerRefused):
    """A PIN is not 4-8 digits, the two entries differ, or the duress PIN equals the PIN."""


class PinCollision(VolunteerRefused):
    """The PIN or duress PIN is already some volunteer's PIN or duress PIN."""


class DuplicateVolunteer(VolunteerRefused):
    """The id is already enrolled."""


class UnknownVolunteer(VolunteerRefused):
    """No volunteer has this id."""


class InvalidVolunteer(VolunteerRefused):
    """The id or name is not acceptable."""


class VolunteerFileError(SafehouseError, OSError):
    """The volunteers file could not be written (permissions, missing folder, full disk)."""


@dataclass(frozen=True)
class Volunteer:
    id: str
    name: str
    pin_hash: str = field(repr=False)
    duress_hash: str | None = field(default=None, repr=False)

    @property
    def has_duress(self) -> bool:
        return self.duress_hash is not None


@dataclass(frozen=True)
class Match:
    """Whose PIN was typed; ``duress`` when it was their duress PIN (acknowledge + silent alarm)."""

    volunteer: Volunteer
    duress: bool


@dataclass(frozen=True)
class _Check:
    volunteer: Volunteer
    duress: bool
    hash: PinHash


_Stamp = tuple[int, int, int, int, int] | None


class VolunteerRegistry:
    """An immutable snapshot of one volunteers file; ``reloaded_if_changed()`` gives the next one."""

    def __init__(self, path: Path, volunteers: Sequence[Volunteer] = (), *, version: str = "absent",
                 problems: Sequence[str] = (), stamp: _Stamp = None) -> None:
        self.path = path
        self.volunteers: tuple[Volunteer, ...] = tuple(volunteers)
        self.version = version
        # Non-empty only when a changed file was rejected and these are the previous volunteers.
        self.problems: tuple[str, ...] = tuple(problems)
        self._stamp = stamp
        self._by_id = {v.id: v for v in self.volunteers}
        self._checks = tuple(_checks(self.volunteers))

    def __repr__(self) -> str:
        return (f"VolunteerRegistry({str(self.path)!r}, {len(self.volunteers)} volunteer(s), "
                f"version={self.version!r})")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VolunteerRegistry:
        """Read the file; missing = empty; malformed = ConfigError listing every problem."""
        file = Path(path)
        volunteers, version, stamp = _read(file)
        return cls(file, volunteers, version=version, stamp=stamp)

    def get(self, volunteer_id: str) -> Volunteer | None:
        return self._by_id.get(volunteer_id)

    def verify(self, pin: str, *, workers: int | None = None) -> Match | None:
        """The volunteer whose PIN (or duress PIN) this is, else None; hashes against every entry.

        An entry that is not 4-8 digits is refused without hashing: the rule is public, so the
        shortcut reveals nothing. ``workers`` (default: up to 4, one per core) is for benchmarks.
        """
        if not self._checks or not PIN_PATTERN.fullmatch(pin):
            return None
        secret = pin.encode("ascii")
        started = time.perf_counter()
        results = map_on_workers(lambda c: c.hash.matches(secret), self._checks, workers)
        found: _Check | None = None
        for check, ok in zip(self._checks, results, strict=True):  # no early exit: all were hashed
            if ok and found is None:
                found = check
        _LOG.debug("PIN check against %d hash(es) took %.0f ms", len(self._checks),
                   (time.perf_counter() - started) * 1000)
        return None if found is None else Match(found.volunteer, found.duress)

    def reloaded_if_changed(self) -> VolunteerRegistry:
        """``self`` while the file is unchanged (one stat); else the new registry.

        A changed file that does not load keeps the previous volunteers (listed in ``problems``
        and logged once as an error), so a slip in a hand edit does not lock every volunteer out;
        a deleted file is an empty registry.
        """
        try:
            stamp = _stamp(os.stat(self.path))
        except FileNotFoundError:
            stamp = None
        except OSError:
            stamp = (-1, -1, -1, -1, -1)  # unreadable: let the load below report why
        if stamp == self._stamp:
            return self
        try:
            fresh = VolunteerRegistry.load(self.path)
        except ConfigError as exc:
            _LOG.error("%s changed but was not loaded; keeping the previous %d volunteer(s): %s",
                       self.path, len(self.volunteers), "; ".join(exc.problems))
            return VolunteerRegistry(self.path, self.volunteers, version=self.version,
                                     problems=exc.problems, stamp=stamp)
        _LOG.info("volunteers reloaded from %s: %d volunteer(s), version %s",
                  self.path, len(fresh.volunteers), fresh.version)
        return fresh


# -- reading -------------------------------------------------------------------------------------

def _read(file: Path) -> tuple[list[Volunteer], str, _Stamp]:
    try:
        with open(file, "rb") as fh:
            stamp = _stamp(os.fstat(fh.fileno()))
            data = fh.read()
    except FileNotFoundError:
        return [], "absent", None
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        tree = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(file), [f"not UTF-8 text (byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), [f"not valid TOML: {exc}"]) from None
    volunteers, problems = _parse(tree)
    if problems:
        raise ConfigError(str(file), problems)
    return volunteers, hashlib.sha256(data).hexdigest()[:16], stamp


def _parse(tree: dict[str, Any]) -> tuple[list[Volunteer], list[str]]:
    problems = [f"{key}: unknown key (the file holds only [[volunteer]] tables)"
                for key in tree if key != "volunteer"]
    entries = tree.get("volunteer", [])
    if not isinstance(entries, list):
        return [], [*problems, "volunteer: must be an array of tables ([[volunteer]])"]
    volunteers: list[Volunteer] = []
    first_of: dict[str, int] = {}
    hash_owner: dict[str, str] = {}
    for index, entry in enumerate(entries):
        at = f"volunteer[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{at}: must be a table ([[volunteer]])")
            continue
        found = len(problems)
        problems += [f"{at}.{key}: unknown key (known: {', '.join(_KEYS)})" for key in entry
                     if key not in _KEYS]
        vid, name = entry.get("id"), entry.get("name")
        if not isinstance(vid, str) or not ID_PATTERN.fullmatch(vid):
            problems.append(f"{at}.id: required, 1-32 of A-Z a-z 0-9 _ -, got {vid!r}")
        elif vid in first_of:
            problems.append(f"{at}.id: {vid!r} is already used by volunteer[{first_of[vid]}]")
        else:
            first_of[vid] = index
        if not isinstance(name, str) or _name_problem(name):
            problems.append(f"{at}.name: required, 1-{NAME_MAX} printable characters")
        hashes: dict[str, str | None] = {}
        for key in ("pin", "duress"):
            value = entry.get(key)
            if value is None and key == "duress":
                hashes[key] = None
                continue
            fault = hash_problem(value)
            if fault:
                problems.append(f"{at}.{key}: {fault}")
                continue
            assert isinstance(value, str)
            if value in hash_owner:  # a copied line: two PINs that are certainly equal
                problems.append(f"{at}.{key}: the same hash as {hash_owner[value]}; "
                                f"re-enrol one of them with `safehouse volunteer add`")
            hash_owner[value] = f"{at}.{key}"
            hashes[key] = value
        if len(problems) == found:
            volunteers.append(Volunteer(str(vid), str(name).strip(), str(hashes["pin"]), hashes["duress"]))
    return volunteers, problems


def _checks(volunteers: Iterable[Volunteer]) -> Iterable[_Check]:
    for v in volunteers:
        yield _Check(v, False, parse_hash(v.pin_hash))
        if v.duress_hash is not None:
            yield _Check(v, True, parse_hash(v.duress_hash))


def _stamp(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


# -- writing -------------------------------------------------------------------------------------

def _check_pin(pin: object, what: str) -> None:
    if not isinstance(pin, str) or not PIN_PATTERN.fullmatch(pin):
        raise InvalidPin(f"a {what} must be 4 to 8 digits 0-9; nothing written")


def _name_problem(name: str) -> bool:
    stripped = name.strip()
    return (not stripped or len(stripped) > NAME_MAX
            or any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or 0xD800 <= ord(ch) < 0xE000 for ch in name))
