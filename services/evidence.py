"""The evidence store: camera snapshots and audio clips per alarm, kept safely and not too long.

Layout: ``root/{event_id}/{name}`` (root is normally ``state_dir/evidence``), folders 0700,
files 0600, and ``manifest.json`` per folder once capture is done. Every file is written
atomically (temp, fsync, rename, fsync the folder), so a power cut never leaves a torn
snapshot that the outbox would send with a wrong sha256.

Why eviction needs the owner: only the outbox knows which files got a PUBACK, so
``enforce()`` and ``purge()`` take a predicate ``delivered(event_id)``. Evidence that has not
reached the precinct is the last thing to go: it outlives its retention, and is sacrificed
only when the disk would otherwise fill past ``hard_limit_bytes`` (the kiosk must keep
capturing the *next* alarm) — then it is reported so the owner can raise a fault.

An event's age is the oldest mtime among its files, which the store sets from its clock;
a Pi without RTC that writes before NTP sync may date evidence wrongly, which only shifts
when delivered evidence is deleted, never whether undelivered evidence is kept.

Two threads (the capture worker's ``put`` and a timer's ``enforce``) are serialised by a
lock, and two processes (the daemon and ``safehouse evidence purge``) by ``flock`` on root.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from safehouse.device.core.clock import iso_utc
from safehouse.device.core.errors import SafehouseError
from safehouse.device.core.files import make_folders
from safehouse.services.evidence_evict import Delivered, Eviction, EvictionReport, ask
from safehouse.services.evidence_fs import (
    MANIFEST,
    Folder,
    check_name,
    make_dir,
    open_dir,
    open_locked,
    remove_temps,
    remove_tree,
    scan,
    scan_folder,
    write_atomic,
)

__all__ = ["MANIFEST", "Delivered", "EvictionReport", "EvidenceError", "EvidenceStore", "EvidenceSummary",
           "FileEntry"]

_LOG = logging.getLogger(__name__)

_DAY_S = 86400.0
_FILE_KEYS = frozenset({"name", "size", "sha256"})
_MANIFEST_KEYS = frozenset({"event_id", "created", "files", "failures"})


class EvidenceError(SafehouseError, OSError):
    """Evidence could not be written or read; the message names the path and what to check."""


@dataclass(frozen=True)
class FileEntry:
    """One stored file; ``meta`` (``content_type``, ``width``, ``duration_s``...) goes to the manifest."""

    name: str
    path: Path
    size: int
    sha256: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def manifest_item(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, **self.meta}


@dataclass(frozen=True)
class EvidenceSummary:
    """One event folder as ``safehouse evidence list`` shows it.

    ``created`` is wall time (epoch seconds); ``file_count`` and ``total_bytes`` count
    complete files only (the manifest is in the bytes, not the count); ``delivered`` is None
    when no predicate was given or it failed; ``has_manifest`` False means capture did not
    finish (crash or still running).
    """

    event_id: str
    created: float
    total_bytes: int
    file_count: int
    delivered: bool | None = None
    has_manifest: bool = False


class EvidenceStore:
    """Snapshots and clips per alarm on the Pi's disk; safe to share between threads."""

    def __init__(self, root: Path, *, quota_bytes: int, hard_limit_bytes: int,
                 retention_days: float = 30, clock: Callable[[], float] = time.time,
                 has_room: Callable[[int], bool] = lambda _size: True) -> None:
        """``has_room(size)``: whether ``size`` more bytes leave the alarm reserve's worth free."""
        if quota_bytes < 0 or hard_limit_bytes < 0:
            raise ValueError(f"evidence quota_bytes ({quota_bytes}) and hard_limit_bytes "
                             f"({hard_limit_bytes}) must be >= 0")
        if quota_bytes > hard_limit_bytes:
            raise ValueError(f"evidence quota_bytes ({quota_bytes}) must not exceed hard_limit_bytes "
                             f"({hard_limit_bytes}): past the quota delivered evidence is evicted, "
                             "past the hard limit even undelivered evidence is")
        if not retention_days >= 0:  # also refuses NaN
            raise ValueError(f"evidence retention_days ({retention_days}) must be >= 0")
        self.root = Path(root)
        self.quota_bytes = quota_bytes
        self.hard_limit_bytes = hard_limit_bytes
        self.retention_days = retention_days
        self._clock = clock
        self._has_room = has_room
        self._lock = threading.Lock()

    # -- writing -------------------------------------------------------------------------

    def path_of(self, event_id: str, name: str) -> Path:
        return self.root / check_name("event id", event_id) / check_name("file name", name)

    def put(self, event_id: str, name: str, data: bytes, **meta: Any) -> FileEntry:
        """Store one file atomically and durably; an existing file of that name is replaced."""
        path = self.path_of(event_id, name)
        if name == MANIFEST:
            raise ValueError(f"evidence file name {MANIFEST!r} is reserved: use write_manifest()")
        clash = _FILE_KEYS & meta.keys()
        if clash:
            raise ValueError(f"evidence {event_id}/{name}: meta keys {sorted(clash)} are reserved")
        _check_json(f"evidence {event_id}/{name} meta", meta)
        data = bytes(data)
        with self._locked(create=True) as root_fd:
            self._write(root_fd, event_id, name, data, path)
        return FileEntry(name, path, len(data), sha256(data).hexdigest(), dict(meta))

    def write_manifest(self, event_id: str, entries: builtins.list[FileEntry],
                       failures: Mapping[str, str], **extra: Any) -> dict[str, Any]:
        """Write ``manifest.json`` atomically and return it; marks the capture as complete.

        ``failures`` records what could not be captured (``{"camera": "timeout after 5 s"}``),
        so the precinct can tell "no snapshot" from "snapshot lost". ``created`` is the
        event's age as the store counts it (its oldest file, or now).
        """
        check_name("event id", event_id)
        clash = _MANIFEST_KEYS & extra.keys()
        if clash:
            raise ValueError(f"evidence manifest of {event_id}: keys {sorted(clash)} are reserved")
        for entry in entries:
            if entry.path != self.path_of(event_id, entry.name):
                raise ValueError(f"evidence manifest of {event_id}: {entry.path} is not in its folder")
        with self._locked(create=True) as root_fd:
            found = scan_folder(self.root / event_id, event_id)
            now = self._clock()
            created = min(now, found.created) if found and (found.file_count or found.has_manifest) else now
            doc: dict[str, Any] = {
                "event_id": event_id,
                "created": iso_utc(created),
                "files": [entry.manifest_item() for entry in entries],
                "failures": {str(k): str(v) for k, v in failures.items()},
                **extra,
            }
            data = _check_json(f"evidence manifest of {event_id}", doc).encode("utf-8")
            self._write(root_fd, event_id, MANIFEST, data, self.root / event_id / MANIFEST)
        return doc

    def _write(self, root_fd: int | None, event_id: str, name: str, data: bytes, path: Path) -> None:
        if not self._has_room(len(data)):
            raise EvidenceError(f"not storing evidence {path}: the state partition is nearly full and "
                                "its last megabytes are kept for alarm events (outbox.alarm_reserve_mb)")
        try:
            if root_fd is None:
                raise FileNotFoundError(f"{self.root} is missing")
            make_dir(root_fd, event_id)
            dir_fd = open_dir(event_id, dir_fd=root_fd)
            try:
                write_atomic(dir_fd, name, data, self._clock())
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise EvidenceError(f"cannot store evidence {path}: {exc}; check free space (df -h "
                                f"{self.root}) and that it is writable by the daemon's user") from exc

    @contextmanager
    def _locked(self, *, create: bool) -> Iterator[int | None]:
        """Thread lock + flock on root; yields None when root is absent and not to be created."""
        with self._lock:
            if not create and not self.root.is_dir():
                yield None
                return
            try:
                if create:
                    self._ensure_root()
                root_fd = open_locked(self.root)
            except OSError as exc:
                raise EvidenceError(f"cannot open the evidence store {self.root}: {exc}; check it is "
                                    "a directory writable by the daemon's user") from exc
            try:
                yield root_fd
            finally:
                os.close(root_fd)  # releases the flock

    def _ensure_root(self) -> None:
        if self.root.is_dir():
            return
        make_folders(self.root.parent, 0o750)  # every missing level 0750, whatever the umask
        parent_fd = open_dir(self.root.parent, follow=True)
        try:
            make_dir(parent_fd, self.root.name)
        finally:
            os.close(parent_fd)

    # -- reading -------------------------------------------------------------------------

    def manifest(self, event_id: str) -> dict[str, Any] | None:
        """The event's manifest, or None if capture has not written it (yet)."""
        path = self.path_of(event_id, MANIFEST)
        try:
            dir_fd = open_dir(path.parent)
            try:
                fd = os.open(MANIFEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
            with os.fdopen(fd, "rb") as fh:
                doc = json.loads(fh.read().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise EvidenceError(f"cannot read the evidence manifest {path}: {exc}; if it is corrupt, "
                                "move the folder aside (its evidence stays unlisted)") from exc
        if not isinstance(doc, dict):
            raise EvidenceError(f"the evidence manifest {path} is not a JSON object; move the folder aside")
        return doc

    def list(self, delivered: Delivered | None = None) -> builtins.list[EvidenceSummary]:
        """Every event folder, oldest first, including ones without a manifest (crash, capturing)."""
        return [EvidenceSummary(f.event_id, f.created, f.total_bytes, f.file_count,
                                None if delivered is None else ask(delivered, f.event_id, None),
                                f.has_manifest)
                for f in self._scan()]

    def total_bytes(self) -> int:
        return sum(f.total_bytes for f in self._scan())

    def _scan(self) -> builtins.list[Folder]:
        try:
            return scan(self.root)[0]
        except OSError as exc:
            raise EvidenceError(f"cannot list the evidence store {self.root}: {exc}; check it is "
                                "readable by this user (sudo?)") from exc

    # -- eviction ------------------------------------------------------------------------

    def enforce(self, delivered: Delivered) -> EvictionReport:
        """Retention, then the quota, then the hard limit (see the module doc); run it after
        each capture and periodically. Also removes leftovers of interrupted writes and deletions."""
        with self._locked(create=False) as root_fd:
            if root_fd is None:
                return EvictionReport([], [], 0, 0)
            run = Eviction(root_fd, self._clean(root_fd), delivered)
            run.retention(self._clock() - self.retention_days * _DAY_S)
            run.down_to(self.quota_bytes, delivered=True)
            for event_id in run.down_to(self.hard_limit_bytes, delivered=False):
                _LOG.critical("evidence: deleted UNDELIVERED evidence of event %s: the store %s is over "
                              "its hard limit of %d bytes; check the uplink", event_id, self.root,
                              self.hard_limit_bytes)
            return run.report()

    def purge(self, older_than_days: float, delivered: Delivered, *,
              include_undelivered: bool = False) -> EvictionReport:
        """Delete events older than ``older_than_days``; undelivered ones only if asked to."""
        if not older_than_days >= 0:
            raise ValueError(f"older_than_days ({older_than_days}) must be >= 0")
        with self._locked(create=False) as root_fd:
            if root_fd is None:
                return EvictionReport([], [], 0, 0)
            run = Eviction(root_fd, self._clean(root_fd), delivered)
            run.older_than(self._clock() - older_than_days * _DAY_S, include_undelivered=include_undelivered)
            return run.report()

    def _clean(self, root_fd: int) -> builtins.list[Folder]:
        """Remove leftovers (the caller holds the lock, so no write is in flight); return the folders."""
        folders, trash = scan(self.root)
        for name in trash:
            remove_tree(root_fd, name)
        for f in folders:
            if f.temps:
                remove_temps(f)
        return folders


def _check_json(what: str, value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from exc
