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
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.events import ALARM_TYPES, Event
from safehouse.device.core.files import read_back
from safehouse.services import outbox_sql as sql
from safehouse.services.outbox_damage import Damage
from safehouse.services.outbox_events import OutboxEvents, OutboxFull
from safehouse.services.outbox_read import open_readonly_stats, read_events
from safehouse.services.outbox_salvage import readable_event
from safehouse.services.outbox_schema import (
    FILENAME,
    Lane,
    OutboxStats,
    Row,
    db_path,
    meta_set,
    read_stats,
)
from safehouse.services.outbox_seq import GARBLED
from safehouse.services.storage_errors import (
    FULL,
    StorageError,
)

__all__ = ["ALARM_TYPES", "FILENAME", "Damage", "Lane", "Outbox", "OutboxFull", "OutboxStats", "Row",
           "db_path", "open_readonly_stats", "read_events"]

_LOG = logging.getLogger(__name__)

_PURGE_EVERY_S = 600.0
EVIDENCE_MAX = 64 * 1024 * 1024  # an evidence file read for sending (a clip is under 1 MB)


def _sound(lane: object, topic: object, payload: object, event_id: object, seq: object) -> bool:
    """A row the card did not garble where the drain reads it (SQLite checks structure only):
    a lane, a topic of UTF-8 text, and for an event the very event its columns name."""
    if not isinstance(lane, int) or lane not in (Lane.EVENTS, Lane.EVIDENCE, Lane.TELEMETRY):
        return False
    try:
        if not isinstance(topic, str) or not topic.encode("utf-8"):
            return False
    except UnicodeEncodeError:  # bytes that were not UTF-8 (see outbox_open.lenient_text)
        return False
    return lane != Lane.EVENTS or readable_event(payload, event_id, seq)


class Outbox(OutboxEvents):
    """The kiosk's durable, prioritised message queue; safe to share between two threads.

    Construction, faults and recovery: see ``OutboxBase``; events and seq: ``OutboxEvents``.
    """

    # -- writing -------------------------------------------------------------------------

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

    def give_up(self, lost: Sequence[tuple[int, str]]) -> None:
        """Rows that can never be delivered (the broker refused them: its ACL does not cover their
        topic, e.g. after a re-provision): done, with why, so they never hold back the rows
        behind them; kept for ``safehouse events`` like delivered rows. (id, why) pairs."""
        if not lost:
            return
        self._check_usable()
        try:
            with self._lock, self._write() as conn:
                lanes = sql.give_up(conn, lost, self._clock())
        except StorageError as exc:
            raise self._fail(exc) from exc
        with self._lock:
            self._pending_events -= lanes.count(Lane.EVENTS)
        self._update_near_full()
        _LOG.error("outbox: gave up %d message(s) the broker refused: %s", len(lanes),
                   "; ".join(why for _rid, why in lost)[:500])

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
                        payload = read_back(Path(str(path)), EVIDENCE_MAX)  # a planted link: refused
                    except OSError as exc:
                        _LOG.error("outbox: evidence file %s of message %d (%s) unreadable, not sent: %s",
                                   path, rid, topic, exc)
                        lost.append((rid, f"{path}: {exc.strerror or exc}"))
                        continue
                if not _sound(lane, topic, payload, event_id, seq):
                    _LOG.critical("outbox: message %d (event #%s) is garbled on disk: not sent, reported",
                                  rid, seq)
                    lost.append((rid, GARBLED))
                    continue
                rows.append(Row(rid, Lane(lane), topic, bytes(payload), bool(retain), key, created,
                                event_id, seq))
                if len(rows) == limit:
                    break
            if lost:
                try:
                    with self._lock, self._write() as conn:
                        sql.give_up(conn, lost, self._clock())
                        self._garbled(conn, [rid for rid, why in lost if why == GARBLED])
                except StorageError as exc:
                    self._fail(exc)
                    return rows
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
        events = []
        for payload in found:
            try:
                events.append(Event.from_json(payload.decode("utf-8")))
            except (ValueError, TypeError) as exc:  # a payload the card garbled: not an event any more
                _LOG.error("outbox: a stored event is unreadable (%s); skipped", exc)
        return events

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

