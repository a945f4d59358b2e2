"""Enrolling and removing volunteers: the writing half of volunteers.toml.

Writes are atomic (temp file, fsync, rename, fsync of the folder) under an flock on the
folder, so two `safehouse volunteer add` runs cannot lose each other's entry, and the daemon
(which reloads on change) never reads half a file. No PIN ever appears in a message.
"""

from __future__ import annotations

import base64
import fcntl
import hmac
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from safehouse.services.fsync import fsync_dir
from safehouse.services.pin_hashes import map_on_workers, scrypt_digest
from safehouse.services.volunteers import (
    _HEADER,
    DEFAULT_PARAMS,
    FILE_MODE,
    HASH_BYTES,
    ID_PATTERN,
    NAME_MAX,
    SALT_BYTES,
    DuplicateVolunteer,
    InvalidPin,
    InvalidVolunteer,
    PinCollision,
    ScryptParams,
    UnknownVolunteer,
    Volunteer,
    VolunteerFileError,
    VolunteerRefused,
    _check_pin,
    _checks,
    _name_problem,
    _read,
)

_LOG = logging.getLogger(__name__)


def hash_pin(pin: str, params: ScryptParams = DEFAULT_PARAMS) -> str:
    """``scrypt$n=..,r=..,p=..$salt$hash`` of a 4-8 digit PIN, with a fresh random salt."""
    _check_pin(pin, "PIN")
    salt = os.urandom(SALT_BYTES)
    digest = scrypt_digest(pin.encode("ascii"), salt, params, HASH_BYTES)
    return (f"scrypt$n={params.n},r={params.r},p={params.p}$"
            f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")


def add(path: str | os.PathLike[str], volunteer_id: str, name: str, pin: str,
        duress_pin: str | None = None, *, params: ScryptParams = DEFAULT_PARAMS) -> Volunteer:
    """Enrol a volunteer; refuses a taken id, a malformed or already used PIN. Returns the entry."""
    if not isinstance(volunteer_id, str) or not ID_PATTERN.fullmatch(volunteer_id):
        raise InvalidVolunteer(f"volunteer id {volunteer_id!r} must be 1-32 of A-Z a-z 0-9 _ -")
    name = _check_name(name)
    _check_pin(pin, "PIN")
    if duress_pin is not None:
        _check_pin(duress_pin, "duress PIN")
        if hmac.compare_digest(pin.encode("ascii"), duress_pin.encode("ascii")):
            raise InvalidPin("the duress PIN must differ from the volunteer's own PIN; nothing written")
    if (problem := params.problem()) is not None:
        raise VolunteerRefused(f"cannot hash with these parameters: {problem}")
    file = Path(path)
    with _locked(file.parent):
        volunteers, _, _ = _read(file)
        if any(v.id == volunteer_id for v in volunteers):
            raise DuplicateVolunteer(f"volunteer {volunteer_id} is already enrolled in {file}; "
                                     f"remove it first to change its PIN or name")
        candidates = [(pin, "PIN")] + ([] if duress_pin is None else [(duress_pin, "duress PIN")])
        existing = [c.hash for c in _checks(volunteers)]
        jobs = [(secret, label, h) for secret, label in candidates for h in existing]
        taken = map_on_workers(lambda job: job[2].matches(job[0].encode("ascii")), jobs, None)
        for (_, label, _), hit in zip(jobs, taken, strict=True):
            if hit:
                raise PinCollision(f"the {label} for {volunteer_id} is already in use by a volunteer (as "
                                   f"a PIN or duress PIN); choose another; nothing written")
        entry = Volunteer(volunteer_id, name, hash_pin(pin, params),
                          None if duress_pin is None else hash_pin(duress_pin, params))
        _write(file, [*volunteers, entry])
    _LOG.info("volunteer %s enrolled in %s%s", volunteer_id, file, " with a duress PIN" if duress_pin else "")
    return entry


def remove(path: str | os.PathLike[str], volunteer_id: str) -> Volunteer:
    """Remove one volunteer, keeping every other entry; returns the removed entry."""
    file = Path(path)
    with _locked(file.parent):
        volunteers, _, _ = _read(file)
        gone = [v for v in volunteers if v.id == volunteer_id]
        if not gone:
            raise UnknownVolunteer(f"no volunteer {volunteer_id!r} in {file} "
                                   f"(see `safehouse volunteer list`)")
        _write(file, [v for v in volunteers if v.id != volunteer_id])
    _LOG.info("volunteer %s removed from %s", volunteer_id, file)
    return gone[0]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or _name_problem(name):
        raise InvalidVolunteer(f"the name must be 1-{NAME_MAX} printable characters, got {name!r}")
    return name.strip()


def _render(volunteers: Iterable[Volunteer]) -> str:
    parts = [_HEADER]
    for v in volunteers:
        # json.dumps of a str without control characters is a valid TOML basic string.
        lines = [f"id = {json.dumps(v.id)}", f"name = {json.dumps(v.name, ensure_ascii=False)}",
                 f'pin = "{v.pin_hash}"'] + ([f'duress = "{v.duress_hash}"'] if v.duress_hash else [])
        parts.append("\n[[volunteer]]\n" + "\n".join(lines) + "\n")
    return "".join(parts)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive flock on the folder: two `volunteer add` runs cannot lose each other's entry."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise VolunteerFileError(f"cannot open the folder {folder}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write(file: Path, volunteers: Sequence[Volunteer]) -> None:
    text = _render(volunteers).encode("utf-8")
    try:
        previous = os.stat(file)
    except FileNotFoundError:
        previous = None
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            # Keep the owner and group the daemon reads it as; a first file takes the group of
            # its directory (/etc/safehouse is root:safehouse 0750), not root's own group, which
            # the daemon is not in: `sudo safehouse volunteer add` must enrol for the daemon.
            owner = ((previous.st_uid, previous.st_gid) if previous is not None
                     else (os.getuid(), os.stat(file.parent).st_gid))
            if owner != (os.getuid(), os.getgid()):
                try:
                    os.fchown(fh.fileno(), *owner)
                except PermissionError:
                    _LOG.warning("%s: could not set owner %d:%d (not root); the new file is owned "
                                 "by %d:%d", file, *owner, os.getuid(), os.getgid())
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, file)
        tmp = ""
        fsync_dir(file.parent)
    except OSError as exc:
        hint = " (run it as root: sudo)" if isinstance(exc, PermissionError) else ""
        raise VolunteerFileError(f"cannot write {file}: {exc.strerror or exc}{hint}; "
                                 f"nothing changed") from None
    finally:
        if tmp:
            with suppress(OSError):
                os.unlink(tmp)
