"""Events and their seq: issued in memory, stored with the gaps they reveal, and the reports owed.

Kept apart from the queue (services/outbox.py) and the file's lifecycle (services/outbox_base.py)
because this is where the seq promises are kept: an event gets its seq in memory (``issue``,
above the durable lease, so it works while storage fails) and is written later (``store``). A
store never faults the outbox over one event: a seq already taken (a salvaged row holds it) is
renumbered, a seq beyond every stored one + 1 is a gap recorded in the same transaction
(services/outbox_seq.py), and the file's own mark is raised as the lease nears it
(services/outbox_mark.py). The damage reports (salvaged files, gaps, the lease) are handed out
by ``take_damage`` and stay recorded until their ``storage_damaged`` event is stored.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from safehouse.device.core.errors import EventLogError, SafehouseError
from safehouse.device.core.events import ALARM_TYPES, Event
from safehouse.services import outbox_sql as sql
from safehouse.services.outbox_base import OutboxBase
from safehouse.services.outbox_damage import (
    Damage,
    drop_reported,
    event_key,
    range_missing,
    save_reports,
    stored_between,
)
from safehouse.services.outbox_mark import MARK_AHEAD, checkpoint, write_mark
from safehouse.services.outbox_salvage import SalvagedRow, adopt_row, salvage_into
from safehouse.services.outbox_schema import insert_event, meta_get, pending_events
from safehouse.services.outbox_seq import GAP_REASON, GARBLED, RANGES, covered, gap
from safehouse.services.quarantine import mark_salvaged
from safehouse.services.seq_lease import SEQ_LIMIT
from safehouse.services.storage_errors import FULL, StorageError

_LOG = logging.getLogger(__name__)


class OutboxFull(SafehouseError, OSError):
    """A non-alarm event was refused: the events lane holds ``events_cap`` undelivered rows."""


class OutboxEvents(OutboxBase):
    """``Outbox`` extends it; construction, faults and recovery: see ``OutboxBase``."""

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def issue(self, fields: Mapping[str, Any]) -> Event:
        """Give ``fields`` the next seq, in memory, above the durable lease; never touches the
        outbox file, so it works while storage is faulted."""
        with self._lock:
            seq = self._last_seq + 1
            self.lease.cover(seq)
            self._last_seq = seq
        return Event(seq=seq, **fields)

    def store(self, event: Event, topic: str, *, delivered: bool = False) -> Event:
        """Write an issued event durably (an event_id already stored is kept as it is).

        A seq another event already holds (a salvaged one) costs this event its seq, never the
        outbox: it is stored under the next free one (logged, counted). A seq that skips ahead
        of every stored one is recorded as a gap, in the same transaction (services/outbox_seq.py).
        """
        self._check_usable()
        if isinstance(event.seq, bool) or not isinstance(event.seq, int) or not 0 < event.seq <= SEQ_LIMIT:
            raise EventLogError(f"event {event.event_id} has seq {event.seq}, out of every kiosk's reach")
        try:
            with self._lock, self._write() as conn:
                known = sql.find_event(conn, event.event_id)
                if known is not None:
                    return Event.from_json(known.decode("utf-8"))
                if sql.seq_taken(conn, event.seq):
                    event = self._renumber(conn, event)
                self._note_gap(conn, event.seq)
                insert_event(conn, event, topic, self._clock(), self._clock() if delivered else None)
                if event.type == "storage_damaged":
                    drop_reported(conn, event.data)
                    self._taken = [d for d in self._taken if event_key(d.as_data()) != event_key(event.data)]
                mark = self.lease.high + MARK_AHEAD if self.lease.high > self._mark - MARK_AHEAD // 2 else 0
                if mark:
                    write_mark(conn, is_open=True, mark=mark)
        except StorageError as exc:
            raise self._fail(exc) from exc
        with self._lock:
            self._stored(event.seq, mark)
        if self.fault_kind == FULL:
            self.fault = self.fault_kind = None
        if not delivered:
            self._pending_events += 1
        self._update_near_full()
        return event

    def _renumber(self, conn: sqlite3.Connection, event: Event) -> Event:
        seq = self._last_seq + 1  # above every salvaged seq too: adopt() raised the counter
        while sql.seq_taken(conn, seq):
            seq += 1
        self.lease.cover(seq)
        self._last_seq = seq
        conn.execute("INSERT INTO meta(key, value) VALUES ('seq_conflicts', 1) "
                     "ON CONFLICT(key) DO UPDATE SET value = value + 1")
        _LOG.critical("outbox: seq %d of event %s (%s) already names another event: stored as seq %d",
                      event.seq, event.event_id, event.type, seq)
        return replace(event, seq=seq)

    def _note_gap(self, conn: sqlite3.Connection, seq: int) -> None:
        """A seq beyond every stored one + 1: the skipped ones are reported, unless accounted for."""
        if seq <= self._stored_high + 1 or covered(self.damage + self._taken, seq - 1):
            return
        gap(self.damage, self._stored_high + 1, seq - 1, GAP_REASON)
        save_reports(conn, self.damage + self._taken)

    def _garbled(self, conn: sqlite3.Connection, ids: list[int]) -> None:
        """Rows the card garbled (given up) are lost all the same: the seqs between the sound
        events stored before and after each (its own seq column may be garbage) are reported."""
        for rid in ids:
            lo, after = sql.seqs_around(conn, rid)
            high = self._last_seq if after is None else after
            if high >= lo:
                gap(self.damage, lo, high, GARBLED)
        if ids:
            save_reports(conn, self.damage + self._taken)

    def _stored(self, seq: int, mark: int) -> None:
        """After a commit (lock held): the counters follow, the mark reaches the database file,
        and the lease forgets "issued from memory" once every seq issued is at or below a stored one."""
        self._stored_high = max(self._stored_high, seq)
        if seq > self._last_seq:  # an event issued by an earlier run (its unsent-alarm spool)
            self._last_seq = seq
            self.lease.cover(seq)
        if mark and self._conn is not None and checkpoint(self._conn):
            self._mark = mark
        if seq >= self._last_seq:
            self.lease.clear_memory()

    def checkpoint(self) -> bool:
        """Copy the WAL into the database file (after an alarm is written and on its way): an
        alarm then survives even the loss of the WAL. Best effort; never blocks a writer. False
        when the alarm may still be in the WAL only (a full disk cannot grow the file)."""
        if self._recovering or self.fault is not None:
            return False
        try:
            with self._lock, self._reading() as conn:
                busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except EventLogError as exc:
            _LOG.warning("outbox: checkpoint after an alarm failed: %s", exc)
            return False
        return not busy and done >= log

    def append_event(self, fields: Mapping[str, Any], topic: str) -> Event:
        """Assign the next seq and store the event durably; return it once committed.

        Appending an ``event_id`` that is already stored returns the stored event. Raises
        ``OutboxFull`` for a non-alarm event when the cap is reached; alarms are always stored.
        """
        self._check_usable()
        with self._lock, self._reading() as conn:
            known = sql.find_event(conn, fields.get("event_id"))
        if known is not None:
            _LOG.warning("outbox: event %s is already stored; not stored twice", fields.get("event_id"))
            return Event.from_json(known.decode("utf-8"))
        self.admit(fields)
        return self.store(self.issue(fields), topic)

    def admit(self, fields: Mapping[str, Any]) -> None:
        """Raise ``OutboxFull`` (counted) for a non-alarm event once the cap is reached."""
        if self._pending_events >= self._events_cap and fields.get("type") not in ALARM_TYPES:
            self._refuse(fields)

    def _refuse(self, fields: Mapping[str, Any]) -> None:
        try:
            self._check_usable()
            with self._lock, self._write() as conn:
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'dropped_events'")
        except EventLogError:
            _LOG.exception("outbox %s: could not count a refused event", self.path)
        _LOG.error("outbox full: event %s (%s) refused", fields.get("event_id"), fields.get("type"))
        raise OutboxFull(
            f"the outbox {self.path} holds {self._pending_events} undelivered events (cap "
            f"{self._events_cap}); event {fields.get('event_id')} ({fields.get('type')}) refused, "
            "alarms are still stored; check the uplink (broker reachable? TLS? clock?)"
        )

    # -- damage reports -------------------------------------------------------------------

    def salvage_due(self) -> bool:
        return any(not d.salvaged_done for d in self.damage)

    def salvage(self) -> list[Damage]:
        """Copy what can be read of each quarantined file into this outbox; the finished reports."""
        done = []
        for damage in [d for d in self.damage if not d.salvaged_done]:
            try:
                salvage_into(self, damage)
            except StorageError:
                raise  # the fresh outbox failed too: faulted, the storage thread retries
            except Exception:  # never hold the drain (see Outbox.pending) on a salvage that broke
                _LOG.exception("salvage of %s stopped early; what was copied is kept", damage.quarantined)
                damage.salvaged_done = True
            done.append(damage)
        if done and self._save_reports():  # the reports are on disk: the copies need no second salvage
            for damage in done:
                if damage.quarantined is not None:
                    mark_salvaged(damage.quarantined)
            if not self.salvage_due():
                self.lease.mark_salvage(False)
        return done

    def adopt(self, rows: Sequence[SalvagedRow]) -> int:
        """Insert salvaged rows (one transaction); events keep seq and event_id. How many taken.

        The counter follows: a salvaged seq above it would otherwise be issued again."""
        top = max((int(r[9]) for r in rows if r[9] is not None), default=0)
        try:
            with self._lock, self._write() as conn:
                taken = sum(adopt_row(conn, row) for row in rows)
                self._pending_events = pending_events(conn)
                self._stored_high = max(self._stored_high, int(meta_get(conn, "last_seq")))
        except StorageError as exc:
            raise self._fail(exc) from exc
        with self._lock:
            if top > self._last_seq:
                self._last_seq = top
                self.lease.cover(top)
        self._update_near_full()
        return taken

    def take_damage(self) -> list[Damage]:
        """Reports whose salvage is done, not yet handed out (for the storage_damaged event).

        A range report waits for every salvage (which may fill its range) and then names what
        the outbox still lacks; a gap the outbox has since filled is dropped."""
        with self._lock:  # the drain (uplink thread) and stores (core loop) add reports too
            due = any(not d.salvaged_done for d in self.damage)
            ready = [d for d in self.damage if d.salvaged_done and (d.lo is None or not due)]
            for damage in [d for d in ready if d.lo is not None]:
                lo = damage.lo or 1
                try:
                    with self._reading() as conn:
                        stored = stored_between(conn, lo, damage.high)
                except EventLogError:  # storage out of reach: the whole range may be missing
                    stored = set()
                damage.missing = range_missing(stored, lo, damage.high)
            dropped = [d for d in ready if d.reason in RANGES and d.missing is None]
            self.damage = [d for d in self.damage if d not in ready]
            self._taken += [d for d in ready if d not in dropped]
        if dropped:
            self._save_reports()
        return [d for d in ready if d not in dropped]

    def _save_reports(self) -> bool:
        try:
            with self._lock, self._write() as conn:
                save_reports(conn, self.damage + self._taken)
        except EventLogError as exc:
            _LOG.warning("outbox: damage reports not recorded yet (%s): recorded at the next write", exc)
            return False
        return True

