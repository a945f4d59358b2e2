"""The outbox's lifecycle: open (checked), fault, quarantine, recover, salvage, close.

Kept apart from ``outbox.py`` (the queue operations) because this is the part that decides
what a failing SD card means: see ``outbox.py``'s module doc for the whole story. One class,
``OutboxBase``, that ``Outbox`` extends; nothing else should use it directly. Which connection a
read or write uses, and how a failed one faults the outbox, is ``services/outbox_connection.py``.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from safehouse.device.core.errors import EventLogError
from safehouse.services.outbox_connection import OutboxConnection
from safehouse.services.outbox_damage import (
    Damage,
    load_reports,
    save_reports,
)
from safehouse.services.outbox_legacy import import_legacy_log, retire_legacy_log
from safehouse.services.outbox_mark import MARK_AHEAD, checkpoint, plausible, read_mark, write_mark
from safehouse.services.outbox_open import connect_checked, preflight, wal_of
from safehouse.services.outbox_salvage import (
    ID_GAP,
    max_id_of_damaged,
    seq_of_damaged,
)
from safehouse.services.outbox_schema import (
    FILENAME,
    NEAR_FULL_RATIO,
    db_path,
    meta_get,
    pending_events,
)
from safehouse.services.outbox_seq import unvouched
from safehouse.services.outbox_sql import raise_id_floor
from safehouse.services.quarantine import mark_salvaged, quarantine, unsalvaged
from safehouse.services.sqlite_tx import immediate
from safehouse.services.storage_errors import (
    DAMAGED,
    FULL,
    LOW_SPACE,
    UNAVAILABLE,
    StorageError,
    classify,
    free_bytes,
    storage_error,
)
from safehouse.services.wal_check import torn_tail

_LOG = logging.getLogger(__name__)
OWED = "quarantined by a run stopped before its salvage (the disk was full); salvaged now"


class OutboxBase(OutboxConnection):
    """The kiosk's durable, prioritised message queue; safe to share between two threads.

    ``recover=False`` (tools, tests): an unusable file raises at once. ``recover=True`` (the
    daemon): a damaged file is quarantined and a fresh one opened; storage out of reach leaves
    the outbox faulted (``fault``) until ``recover()`` succeeds. ``lease_dirs``: more places
    for the seq lease (the runtime directory), used when ``state_dir`` is read-only.
    """

    def __init__(self, state_dir: Path, *, telemetry_keep: int = 1000, events_cap: int = 100_000,
                 delivered_retention_h: float = 72.0, clock: Callable[[], float] = time.time,
                 recover: bool = False, lease_dirs: Sequence[Path] = ()) -> None:
        if telemetry_keep < 1 or events_cap < 1 or delivered_retention_h < 0:
            raise ValueError("telemetry_keep and events_cap must be >= 1, delivered_retention_h >= 0")
        super().__init__(db_path(state_dir), state_dir, lease_dirs)
        self._telemetry_keep = telemetry_keep
        self._events_cap = events_cap
        self._near_threshold = math.ceil(events_cap * NEAR_FULL_RATIO)
        self._retention_s = delivered_retention_h * 3600.0
        self._clock = clock
        self._identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self.near_full = False
        self.generation = 0
        self.damage: list[Damage] = []  # found, not yet reported (salvage pending or done)
        self._taken: list[Damage] = []  # reported, not yet stored with their storage_damaged event
        # seqs issued from memory by the last run may be on no disk: start above its lease
        self._last_seq = self.lease.high if self.lease.was_memory else 0
        self._stored_high = 0  # the highest seq the open outbox holds (a store beyond +1 is a gap)
        self._mark = 0  # the seq mark known to be in the database file itself
        self._pending_events = 0
        self._last_purge = clock()
        self._id_floor = 0
        self._first_open = True
        try:
            self._open(quarantine_damage=recover)
        except StorageError as exc:
            if not recover:
                raise
            # the stored last seq is out of reach: issue above every seq the lease covers
            self._last_seq = max(self._last_seq, self.lease.high)
            self._set_fault(exc)

    # -- opening and recovery ------------------------------------------------------------

    def _open(self, *, quarantine_damage: bool) -> None:
        """Check, (quarantine,) open; the lock is not held: the caller makes it exclusive."""
        unclean = self._unclean
        owed: list[Path] = []
        if self._first_open:  # what the files say about the last run, once (not after a fault)
            self._first_open = False
            file_mark = read_mark(self.path)
            unclean = unclean or (file_mark is not None and file_mark.open)
            owed = self._salvage_owed()
            for copy in owed:  # quarantined by a run killed before its salvage: new ids above its rows
                self._id_floor = max(self._id_floor, max_id_of_damaged(copy) + ID_GAP)
            lost = unvouched(self.lease, self.path, self._clock())
            if lost is not None:
                self.damage.append(lost)
                if lost.lo is not None:  # nothing vouches: above every seq that may have been issued
                    self._last_seq = max(self._last_seq, lost.high)
        problem = preflight(self.path, unclean=unclean)
        torn = unclean and torn_tail(wal_of(self.path))
        lease_high = self.lease.high if self.lease.found else 0
        reported = any(d.file == FILENAME for d in self.damage)
        if problem is None and not self.path.exists() and lease_high > 0 and not reported:
            problem = f"{self.path.name} is missing; seq {lease_high} was already issued"
        if problem is not None:
            if not quarantine_damage:
                raise storage_error(DAMAGED, f"the outbox {self.path} is damaged: {problem}")
            self._quarantine(problem)
        conn = self._connect(quarantine_damage)
        try:
            with immediate(conn, lambda e: self._error("write", e), f"outbox {self.path}") as tx:
                imported = import_legacy_log(tx, self._state_dir, self._clock())
                if self._id_floor:  # after a quarantine: new rows above every salvaged row's id
                    raise_id_floor(tx, self._id_floor)
            if imported:
                retire_legacy_log(self._state_dir)  # only once the import is committed
            stored_last = int(meta_get(conn, "last_seq"))
            pending = pending_events(conn)
            self._stored_high = stored_last
            known = {d.key() for d in self.damage + self._taken}  # reports a killed run still owed
            self.damage += [d for d in load_reports(conn) if d.key() not in known]
            self._owe_salvage(owed)
            if torn and stored_last < self.lease.high:
                _LOG.warning("outbox.db-wal ends inside a frame (a write cut short): seq continues above "
                             "the lease (%d), not after the last stored seq (%d)", self.lease.high,
                             stored_last)
                stored_last = self.lease.high
            if stored_last == 0 and self.lease.found:  # an empty outbox (a file cut to 0 bytes, lost,
                stored_last = self.lease.high  # or new during a fault): above every seq ever issued
            # above every seq a damage report says may have been issued (a lease rebuilt from its
            # other copy says nothing about that: its mark is that copy's)
            self._last_seq = max(self._last_seq, stored_last,
                                 *(d.high for d in self.damage if d.file == FILENAME or d.lo is not None))
            if self.lease.high < self._last_seq:  # a lost or garbled lease: rebuilt from the outbox
                self.lease.cover(self._last_seq)
            self._keep_marks(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error("open", exc) from exc
            raise
        self.lease.mark(True)
        self._unclean = True  # from now on the lease says open until close()
        identity = _identity(self.path)
        with self._lock:
            self._close_ro()
            self._conn, self._pending_events = conn, pending
            self.fault = self.fault_kind = None
            if identity != self._identity or identity is None:
                self.generation += 1  # another file: row ids in flight name other rows now
            self._identity = identity
        self._update_near_full()

    def _connect(self, quarantine_damage: bool) -> sqlite3.Connection:
        try:
            return _plausible(connect_checked(self.path))
        except StorageError as exc:
            if exc.kind != DAMAGED or not quarantine_damage:
                raise
            self._quarantine(str(exc))
            return _plausible(connect_checked(self.path))

    def _keep_marks(self, conn: sqlite3.Connection) -> None:
        """The file's own mark (open, MARK_AHEAD above the lease) and every report still owed,
        written into the database file itself before anything of this run is issued."""
        mark = max(self.lease.high, self._last_seq) + MARK_AHEAD
        with immediate(conn, lambda e: self._error("write", e), f"outbox {self.path}") as tx:
            write_mark(tx, is_open=True, mark=mark)
            save_reports(tx, self.damage + self._taken)
        self._mark = plausible(meta_get(conn, "seq_mark")) if checkpoint(conn) else 0

    def _salvage_owed(self) -> list[Path]:
        """Quarantined copies not marked salvaged that a previous run may have left unsalvaged:
        all of them when the lease says a salvage was owed or cannot say (lost, garbled; a copy
        salvaged twice only re-sends what the precinct de-duplicates). With a lease that says
        none was owed, they are older firmware's copies, salvaged then: marked so now."""
        copies = unsalvaged(self.path)
        if self.lease.was_salvage or not self.lease.found or self.lease.problems:
            return copies
        for copy in copies:
            mark_salvaged(copy)
        return []

    def _owe_salvage(self, copies: list[Path]) -> None:
        """Salvage the quarantined copies a killed run left unsalvaged (its report was kept only
        in memory, on a disk too full for a fresh outbox), unless a kept report names them."""
        named = {d.quarantined for d in self.damage + self._taken if d.quarantined is not None}
        for copy in copies:
            if copy not in named:
                _LOG.critical("outbox: %s was quarantined by a run stopped before its salvage: "
                              "salvaging it now", copy)
                self.damage.append(Damage(file=FILENAME, reason=OWED, quarantined=copy,
                                          high=max(self.lease.high, seq_of_damaged(copy))))

    def _quarantine(self, problem: str) -> None:
        high = max(self._last_seq, self.lease.high, seq_of_damaged(self.path))
        self._id_floor = max(self._id_floor, max_id_of_damaged(self.path) + ID_GAP)
        try:
            moved = quarantine(self.path, wall=self._clock())
        except OSError as exc:  # read-only or vanished: run from memory, quarantine when writable
            kind = classify(exc, self._state_dir if self._state_dir.exists() else Path("/"))
            raise storage_error(DAMAGED if kind == DAMAGED else kind,
                                f"the outbox {self.path} is damaged ({problem}) and cannot be moved "
                                f"aside: {exc}") from exc
        self.damage.append(Damage(file=FILENAME, reason=problem, quarantined=moved, high=high))
        if moved is not None:  # in place, on a full disk too: a kill before the salvage forgets nothing
            self.lease.mark_salvage(True)
        _LOG.critical("outbox damaged (%s): a fresh outbox is opened, seq continues above %d", problem, high)

    def recover(self) -> bool:
        """Try to bring a faulted outbox back (off the core loop); True when it is usable."""
        with self._lock:
            if self.fault is None or self._recovering:
                return self.fault is None
            if self._conn is not None and self.fault_kind == FULL:
                free = free_bytes(self._state_dir)
                if free is None or free >= LOW_SPACE:
                    self.fault = self.fault_kind = None  # room again: the next write will tell
                return self.fault is None
            if self.fault_kind == UNAVAILABLE and self._ro is not None and not _writable(self._state_dir):
                # Still a read-only card: a read-write open attempt would only fail, and its
                # closing connection leaves the read-only view blind to the rows in the -wal
                # (the queued events then never went out). Keep sending from that view.
                return False
            # Writable again: the read-only view goes first. Left open after a crash (its -wal and
            # -shm there), it keeps SQLite's shared index read-only for this whole process, and
            # the read-write open fails ("attempt to write a readonly database") until a restart.
            self._close_ro()
            self._recovering = True
            damaged = self.fault_kind == DAMAGED and self.fault
        try:
            if damaged:
                self._quarantine(damaged)
            self._open(quarantine_damage=True)
            _LOG.warning("outbox %s usable again", self.path)
            return True
        except StorageError as exc:
            self._set_fault(exc, quiet=True)
            return False
        finally:
            self._recovering = False

    def close(self) -> None:
        """A clean close: the database file itself says so (its WAL may then go). Tried on a
        full disk too (the connection is kept then): a WAL SQLite deletes at the close must not
        read as one lost at the next start."""
        with self._lock:
            if self._conn is not None:
                try:
                    with self._write() as conn:
                        write_mark(conn, is_open=False, mark=self._mark)
                    checkpoint(conn)
                except EventLogError as exc:
                    _LOG.warning("outbox: could not mark %s closed: %s", self.path, exc)
        super().close()

    def _update_near_full(self) -> None:
        """Raise the loud fault once per crossing of 90 % of the cap, clear it below."""
        near = self._pending_events >= self._near_threshold
        if near and not self.near_full:
            _LOG.critical("outbox %s is nearly full: %d undelivered events (cap %d); non-alarm events "
                          "will be refused at the cap; check the uplink", self.path,
                          self._pending_events, self._events_cap)
        elif self.near_full and not near:
            _LOG.warning("outbox %s is draining: %d undelivered events (cap %d)", self.path,
                         self._pending_events, self._events_cap)
        self.near_full = near

def _plausible(conn: sqlite3.Connection) -> sqlite3.Connection:
    """A file whose last seq no kiosk could reach (forged, a flipped bit) is damage, not a counter."""
    try:
        value = meta_get(conn, "last_seq")
        if not isinstance(value, int) or value < 0 or value != plausible(value):
            raise storage_error(DAMAGED, f"the outbox holds an implausible last seq ({value!r})")
    except BaseException:
        conn.close()
        raise
    return conn


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _writable(folder: Path) -> bool:
    """False on a read-only mount (access() says EROFS even to root), or a folder that is gone."""
    return os.access(folder, os.W_OK)
