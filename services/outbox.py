"""The durable outbox: every message for the precinct waits here (SQLite, WAL) until PUBACK.

Why SQLite: one file that survives power cuts and ``kill -9`` (WAL + ``synchronous=FULL``: a
commit is on the disk when it returns), readable by the CLI while the daemon writes, and a
queue that can be drained in priority order. Every writing method commits before it returns,
so a return means durable.

Lanes drain in order — all pending events (alarms first among everything) before evidence,
evidence before telemetry — and FIFO by row id within a lane. Events get their ``seq`` in the
same transaction as their insert, and ``last_seq`` lives in ``meta`` so it survives purges:
seq is gap-free for the life of the kiosk.

Paging while messages are in flight: ``pending(limit, exclude=in_flight)`` always returns the
*first* ``limit`` pending rows in drain order that are not in ``exclude``. There is no id
cursor on purpose: drain order is (lane, id), so a cursor would either skip older rows of a
later lane or miss an alarm appended after the cursor moved on to telemetry. With ``exclude``
an alarm queued while telemetry is in flight is simply the next row returned.

Housekeeping: delivered rows stay ``delivered_retention_h`` (for ``safehouse events``) and are
purged by ``purge()``, which ``mark_delivered`` also runs itself at most every 10 minutes — on
the uplink thread, so the core loop's appends never pay for it.

Failing storage (an SD card is what fails first on a Pi): seq is issued in memory
(``issue``) above a durable high-water lease (services/seq_lease.py) and only then written
(``store``), so an event has its seq and event_id even when it cannot be written yet. A write
that fails marks the outbox faulted: ``full`` (the alarm reserve may be given back),
``damaged`` (the file is quarantined and salvaged by ``recover``) or ``unavailable``
(read-only, missing). While faulted, writes fail at once without touching the disk — the
alarm path never waits for storage — and ``recover()`` (called every few seconds off the core
loop) brings the outbox back; ``generation`` changes when a fresh file replaced a damaged one.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import EventLogError, SafehouseError
from safehouse.device.core.events import ALARM_TYPES, Event
from safehouse.services import outbox_sql as sql
from safehouse.services.outbox_base import OutboxBase
from safehouse.services.outbox_damage import Damage, drop_reported, event_key, save_reports
from safehouse.services.outbox_mark import MARK_AHEAD, checkpoint, write_mark
from safehouse.services.outbox_read import open_readonly_stats, read_events
from safehouse.services.outbox_schema import (
    FILENAME,
    Lane,
    OutboxStats,
    Row,
    db_path,
    insert_event,
    meta_set,
    read_stats,
)
from safehouse.services.outbox_seq import covered, gap
from safehouse.services.seq_lease import SEQ_LIMIT
from safehouse.services.storage_errors import (
    FULL,
    StorageError,
)

__all__ = ["ALARM_TYPES", "FILENAME", "Damage", "Lane", "Outbox", "OutboxFull", "OutboxStats", "Row",
           "db_path", "open_readonly_stats", "read_events"]

_LOG = logging.getLogger(__name__)

_PURGE_EVERY_S = 600.0


class OutboxFull(SafehouseError, OSError):
    """A non-alarm event was refused: the events lane holds ``events_cap`` undelivered rows."""


class Outbox(OutboxBase):
    """The kiosk's durable, prioritised message queue; safe to share between two threads.

    Construction, faults and recovery: see ``OutboxBase``.
    """

    # -- writing -------------------------------------------------------------------------

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
        seq = max(self._last_seq, sql.max_seq(conn)) + 1
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
        gap(self.damage, self._stored_high + 1, seq - 1)
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

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (after an alarm is written and on its way): an
        alarm then survives even the loss of the WAL. Best effort; never blocks a writer."""
        if self._recovering or self.fault is not None:
            return
        try:
            with self._lock, self._reading() as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except EventLogError as exc:
            _LOG.warning("outbox: checkpoint after an alarm failed: %s", exc)

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

    def append(self, lane: Lane, topic: str, payload: bytes, *, key: str | None = None,
               retain: bool = False) -> int:
        """Queue an evidence or telemetry message; return its row id once committed.

        ``key``: appending an existing key stores nothing and returns the existing row's id.
        Telemetry keeps only the newest ``telemetry_keep`` pending rows (older ones are dropped
        and counted): a kiosk offline for a week sends its alarms, not a week of temperatures.
        """
        if Lane(lane) is Lane.EVENTS:
            raise ValueError("events need a seq: queue them with append_event()")
        return self._insert(Lane(lane), topic, bytes(payload), None, key, retain)

    def append_file(self, topic: str, path: Path, key: str) -> int:
        """Queue an evidence file by reference; the file is read when ``pending`` returns it."""
        return self._insert(Lane.EVIDENCE, topic, None, str(path.absolute()), key, False)

    def _insert(self, lane: Lane, topic: str, payload: bytes | None, path: str | None,
                key: str | None, retain: bool) -> int:
        self._check_usable()
        try:
            with self._lock, self._write() as conn:
                row_id, dropped = sql.insert_row(conn, lane, topic, payload, path, key, retain,
                                                 self._clock(), self._telemetry_keep)
        except StorageError as exc:
            raise self._fail(exc) from exc
        if dropped:
            _LOG.warning("outbox: dropped %d old undelivered telemetry message(s), keeping the newest %d",
                         dropped, self._telemetry_keep)
        return row_id

    def mark_delivered(self, ids: Iterable[int]) -> None:
        """Record PUBACKs: the rows leave ``pending``. Unknown or already delivered ids are ignored."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return
        self._check_usable()
        with self._lock:
            now = self._clock()
            try:
                with self._write(fsync=False) as conn:
                    lanes = sql.mark_rows(conn, wanted, now)
                    if lanes:
                        meta_set(conn, "last_delivery", now)
            except StorageError as exc:
                self._lock.release()
                try:
                    raise self._fail(exc) from exc
                finally:
                    self._lock.acquire()
            self._pending_events -= lanes.count(Lane.EVENTS)
            purge_due = now - self._last_purge >= _PURGE_EVERY_S
        self._update_near_full()
        if purge_due:
            try:
                self.purge()
            except EventLogError:
                _LOG.exception("outbox %s: periodic purge failed; will retry", self.path)

    def purge(self) -> int:
        """Delete rows delivered more than ``delivered_retention_h`` ago (wall clock); how many."""
        with self._lock:
            now = self._clock()
            with self._write() as conn:
                count = sql.purge(conn, now - self._retention_s)
            self._last_purge = now
        if count:
            _LOG.info("outbox: purged %d delivered message(s)", count)
        return count

    # -- reading -------------------------------------------------------------------------

    def pending(self, limit: int, *, exclude: Collection[int] = ()) -> list[Row]:
        """The first ``limit`` undelivered rows in drain order whose ids are not in ``exclude``.

        Pass the ids awaiting PUBACK as ``exclude`` (no id cursor: see the module doc). A
        missing evidence file's row is given up (logged, marked delivered with an error).
        Empty while storage is faulted (what is in memory is sent by other means) and while a
        salvage is due: the salvaged events, older, are sent first (alarms meanwhile go out from
        memory, see device/runtime/event_writer.py).
        """
        if self._recovering or self.salvage_due() or (
                self.fault is not None and self.fault_kind != FULL and self._ro is None):
            return []
        rows: list[Row] = []
        skip = set(exclude)
        while len(rows) < limit:
            excluded = sorted(skip)[:sql.CHUNK]
            want = limit - len(rows) + len(skip) - len(excluded)
            try:
                with self._lock, self._reading_any() as conn:
                    found = sql.select_pending(conn, excluded, want)
            except StorageError as exc:
                self._fail(exc)
                return rows
            lost: list[tuple[int, str]] = []
            for rid, lane, topic, payload, path, retain, key, created, event_id, seq in found:
                if rid in skip:
                    continue
                skip.add(rid)
                if path is not None:
                    try:
                        payload = Path(str(path)).read_bytes()
                    except OSError as exc:
                        _LOG.error("outbox: evidence file %s of message %d (%s) unreadable, not sent: %s",
                                   path, rid, topic, exc)
                        lost.append((rid, f"{path}: {exc.strerror or exc}"))
                        continue
                rows.append(Row(rid, Lane(lane), topic, bytes(payload), bool(retain), key, created,
                                event_id, seq))
                if len(rows) == limit:
                    break
            if lost:
                with self._lock, self._write() as conn:
                    sql.give_up(conn, lost, self._clock())
            if not lost or len(found) < want:
                break
        return rows

    def pending_alarms(self) -> int:
        """Undelivered alarm events (panic, duress): the uplink keeps its retries short for them."""
        with self._lock, self._reading() as conn:
            return sql.count_alarms(conn)

    def pending_keys(self, prefix: str) -> int:
        """Undelivered rows whose key starts with ``prefix`` (e.g. an alarm's evidence files)."""
        with self._lock, self._reading() as conn:
            return sql.count_keys(conn, prefix)

    def events(self, since_seq: int = 0, limit: int | None = None) -> list[Event]:
        """Stored events with ``seq > since_seq`` by seq, delivered ones still retained included."""
        with self._lock, self._reading() as conn:
            found = sql.select_events(conn, since_seq, limit)
        return [Event.from_json(p.decode("utf-8")) for p in found]

    def stats(self) -> OutboxStats:
        """Queue depth per lane, oldest pending age, drops, the storage fault: never raises."""
        try:
            with self._lock, self._reading() as conn:
                stats = read_stats(conn, now=self._clock(), near_full=self.near_full)
        except EventLogError as exc:
            return OutboxStats(depth={lane.name.lower(): 0 for lane in Lane}, oldest_pending_age_s=None,
                               last_delivery=None, last_seq=self._last_seq, near_full=self.near_full,
                               dropped={"events": 0, "telemetry": 0}, fault=self.fault or str(exc))
        return replace(stats, last_seq=max(stats.last_seq, self._last_seq), fault=self.fault)

    @property
    def dropped(self) -> dict[str, int]:
        return self.stats().dropped

