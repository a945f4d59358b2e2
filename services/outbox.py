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
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safehouse.device.closing import Closing
from safehouse.device.errors import EventLogError, SafehouseError
from safehouse.device.events import ALARM_TYPES, Event
from safehouse.services.fsync import fsync_dir
from safehouse.services.outbox_read import open_readonly_stats, read_events
from safehouse.services.outbox_schema import (
    FILENAME,
    NEAR_FULL_RATIO,
    ROW_COLUMNS,
    Lane,
    OutboxStats,
    Row,
    db_path,
    ensure_schema,
    import_legacy_log,
    insert_event,
    meta_get,
    meta_set,
    pending_events,
    read_stats,
    retire_legacy_log,
)
from safehouse.services.sqlite_tx import immediate

__all__ = ["ALARM_TYPES", "FILENAME", "Lane", "Outbox", "OutboxFull", "OutboxStats", "Row",
           "db_path", "open_readonly_stats", "read_events"]

_LOG = logging.getLogger(__name__)

_PURGE_EVERY_S = 600.0
_CHUNK = 500  # ids per statement, well under SQLite's bound-parameter limit


class OutboxFull(SafehouseError, OSError):
    """A non-alarm event was refused: the events lane holds ``events_cap`` undelivered rows."""


class Outbox(Closing):
    """The kiosk's durable, prioritised message queue; safe to share between two threads."""

    def __init__(self, state_dir: Path, *, telemetry_keep: int = 1000, events_cap: int = 100_000,
                 delivered_retention_h: float = 72.0, clock: Callable[[], float] = time.time) -> None:
        if telemetry_keep < 1 or events_cap < 1 or delivered_retention_h < 0:
            raise ValueError("telemetry_keep and events_cap must be >= 1, delivered_retention_h >= 0")
        self.path = db_path(state_dir)
        self._state_dir = state_dir
        self._telemetry_keep = telemetry_keep
        self._events_cap = events_cap
        self._near_threshold = math.ceil(events_cap * NEAR_FULL_RATIO)
        self._retention_s = delivered_retention_h * 3600.0
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.near_full = False
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise self._open_error(exc) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode!r}, WAL is required")
            conn.execute("PRAGMA synchronous=FULL")
            ensure_schema(conn, self.path)
            if created:
                fsync_dir(state_dir)
            self._conn = conn
            with self._write() as tx:
                imported = import_legacy_log(tx, state_dir, self._clock())
            if imported:
                retire_legacy_log(state_dir)  # only once the import is committed
            self._last_seq = int(meta_get(conn, "last_seq"))
            self._pending_events = pending_events(conn)
        except BaseException as exc:
            self._conn = None
            conn.close()
            if isinstance(exc, (OSError, sqlite3.Error)) and not isinstance(exc, EventLogError):
                raise self._open_error(exc) from exc
            raise
        self._last_purge = clock()
        self._update_near_full()

    def _open_error(self, exc: BaseException) -> EventLogError:
        return EventLogError(
            f"cannot open the outbox {self.path}: {exc}; check device.state_dir exists and is "
            "writable by the daemon's user; if the file is corrupt, move it aside (its pending "
            "messages are then not sent) and restart"
        )

    # -- transactions ------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise EventLogError(f"the outbox {self.path} is closed")
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Reads outside a transaction (each statement sees the latest commit); caller holds the lock."""
        try:
            yield self._connection()
        except sqlite3.Error as exc:
            raise EventLogError(f"cannot read the outbox {self.path}: {exc}; if it is corrupt, move "
                                "it aside (its pending messages are then not sent) and restart") from exc

    @contextmanager
    def _write(self, *, fsync: bool = True) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction committed on exit (durable then); the caller holds the lock.

        ``fsync=False`` commits without waiting for the disk (WAL, synchronous=NORMAL): only for
        delivery marks, whose loss in a power cut merely re-sends rows the receivers de-duplicate
        by event_id. The next FULL commit (any append) makes them durable too, in order.
        """
        conn = self._connection()
        if not fsync:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with immediate(conn, self._write_error, f"outbox {self.path}"):
                yield conn
        finally:
            if not fsync:
                conn.execute("PRAGMA synchronous=FULL")

    def _write_error(self, exc: sqlite3.Error) -> EventLogError:
        return EventLogError(f"cannot write the outbox {self.path}: {exc}; check free space on the state "
                             "partition (df) and that the file is writable by the daemon's user")

    # -- writing -------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def append_event(self, fields: Mapping[str, Any], topic: str) -> Event:
        """Assign the next seq and store the event durably; return it once committed.

        Appending an ``event_id`` that is already stored returns the stored event (a retry
        after an error must not give one event two seqs). Raises ``OutboxFull`` for a
        non-alarm event when the cap is reached; alarms are always stored.
        """
        with self._lock:
            if self._pending_events >= self._events_cap and fields.get("type") not in ALARM_TYPES:
                self._refuse(fields)
            with self._write() as conn:
                known = conn.execute("SELECT payload FROM messages WHERE event_id = ?",
                                     (fields.get("event_id"),)).fetchone()
                if known is not None:
                    _LOG.warning("outbox: event %s is already stored; not stored twice",
                                 fields.get("event_id"))
                    return Event.from_json(bytes(known[0]).decode("utf-8"))
                event = Event(seq=int(meta_get(conn, "last_seq")) + 1, **fields)
                insert_event(conn, event, topic, self._clock())
            self._last_seq = event.seq
            self._pending_events += 1
            self._update_near_full()
            return event

    def _refuse(self, fields: Mapping[str, Any]) -> None:
        try:
            with self._write() as conn:
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

        ``key`` is an optional unique id: appending an existing key stores nothing and returns
        the existing row's id, so a capture re-run after a crash does not send twice. Telemetry
        keeps only the newest ``telemetry_keep`` pending rows (older ones are dropped and
        counted): a kiosk offline for a week sends its alarms, not a week of temperatures.
        """
        if Lane(lane) is Lane.EVENTS:
            raise ValueError("events need a seq: queue them with append_event()")
        return self._insert(Lane(lane), topic, bytes(payload), None, key, retain)

    def append_file(self, topic: str, path: Path, key: str) -> int:
        """Queue an evidence file by reference; the file is read when ``pending`` returns it.

        A file missing by then is logged and its row given up, so it never blocks the queue.
        """
        return self._insert(Lane.EVIDENCE, topic, None, str(path.absolute()), key, False)

    def _insert(self, lane: Lane, topic: str, payload: bytes | None, path: str | None,
                key: str | None, retain: bool) -> int:
        dropped = 0
        with self._lock, self._write() as conn:
            cur = conn.execute("INSERT INTO messages(lane, topic, payload, path, retain, key, created) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                               (lane, topic, payload, path, int(retain), key, self._clock()))
            if cur.rowcount == 0:
                row_id = int(conn.execute("SELECT id FROM messages WHERE key = ?", (key,)).fetchone()[0])
            else:
                row_id = int(cur.lastrowid or 0)
            if lane is Lane.TELEMETRY:
                dropped = conn.execute(
                    "DELETE FROM messages WHERE lane = ? AND delivered IS NULL AND id NOT IN "
                    "(SELECT id FROM messages WHERE lane = ? AND delivered IS NULL ORDER BY id DESC LIMIT ?)",
                    (Lane.TELEMETRY, Lane.TELEMETRY, self._telemetry_keep)).rowcount
                conn.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped_telemetry'", (dropped,))
        if dropped:
            _LOG.warning("outbox: dropped %d old undelivered telemetry message(s), keeping the newest %d",
                         dropped, self._telemetry_keep)
        return row_id

    def mark_delivered(self, ids: Iterable[int]) -> None:
        """Record PUBACKs: the rows leave ``pending``. Unknown or already delivered ids are ignored."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return
        with self._lock:
            now = self._clock()
            lanes: list[int] = []
            with self._write(fsync=False) as conn:
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start:start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    lanes += [lane for (lane,) in conn.execute(
                        f"UPDATE messages SET delivered = ? WHERE delivered IS NULL AND id IN ({marks}) "
                        "RETURNING lane", (now, *chunk)).fetchall()]
                if lanes:
                    meta_set(conn, "last_delivery", now)
            self._pending_events -= lanes.count(Lane.EVENTS)
            self._update_near_full()
            purge_due = now - self._last_purge >= _PURGE_EVERY_S
        if purge_due:
            try:
                self.purge()
            except EventLogError:
                _LOG.exception("outbox %s: periodic purge failed; will retry", self.path)

    def purge(self) -> int:
        """Delete rows delivered more than ``delivered_retention_h`` ago; return how many.

        Only delivered rows are ever purged. The age is wall-clock: a Pi's clock that jumps
        forward at NTP sync may purge delivered history early, never anything pending.
        """
        with self._lock:
            now = self._clock()
            with self._write() as conn:
                count = conn.execute("DELETE FROM messages WHERE delivered IS NOT NULL AND delivered < ?",
                                     (now - self._retention_s,)).rowcount
            self._last_purge = now
        if count:
            _LOG.info("outbox: purged %d delivered message(s)", count)
        return count

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

    # -- reading -------------------------------------------------------------------------

    def pending(self, limit: int, *, exclude: Collection[int] = ()) -> list[Row]:
        """The first ``limit`` undelivered rows in drain order whose ids are not in ``exclude``.

        Pass the ids already published and awaiting PUBACK as ``exclude``; see the module doc
        for why this is not an id cursor. File rows are read here; a missing file's row is
        given up (logged, marked delivered with an error) and the next row takes its place.
        """
        rows: list[Row] = []
        skip = set(exclude)
        while len(rows) < limit:
            # rows in flight are left out in SQL, so their payloads are not read again each refill
            excluded = sorted(skip)[:_CHUNK]
            marks = ",".join("?" * len(excluded))
            want = limit - len(rows) + len(skip) - len(excluded)
            with self._lock, self._reading() as conn:
                found = conn.execute(f"SELECT {ROW_COLUMNS} FROM messages WHERE delivered IS NULL "
                                     f"AND id NOT IN ({marks}) ORDER BY lane, id LIMIT ?",
                                     (*excluded, want)).fetchall()
            lost: list[tuple[int, str]] = []
            for rid, lane, topic, payload, path, retain, key, created, event_id, seq in found:
                if rid in skip:
                    continue
                skip.add(rid)
                if path is not None:
                    try:
                        payload = Path(path).read_bytes()
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
                self._give_up(lost)
            if not lost or len(found) < want:
                break
        return rows

    def _give_up(self, lost: list[tuple[int, str]]) -> None:
        with self._lock, self._write() as conn:
            now = self._clock()
            conn.executemany("UPDATE messages SET delivered = ?, error = ? "
                             "WHERE id = ? AND delivered IS NULL", [(now, error, rid) for rid, error in lost])

    def pending_alarms(self) -> int:
        """Undelivered alarm events (panic, duress): the uplink keeps its retries short for them."""
        with self._lock, self._reading() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM messages WHERE lane = 0 AND delivered IS NULL "
                                    f"AND type IN ({', '.join('?' * len(ALARM_TYPES))})",
                                    ALARM_TYPES).fetchone()
        return int(count)

    def pending_keys(self, prefix: str) -> int:
        """Undelivered rows whose key starts with ``prefix`` (e.g. an alarm's evidence files)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._lock, self._reading() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM messages WHERE delivered IS NULL "
                                    "AND key LIKE ? ESCAPE '\\'", (pattern,)).fetchone()
        return int(count)

    def events(self, since_seq: int = 0, limit: int | None = None) -> list[Event]:
        """Stored events with ``seq > since_seq`` by seq, delivered ones still retained included."""
        with self._lock, self._reading() as conn:
            found = conn.execute(
                "SELECT payload FROM messages WHERE lane = 0 AND seq > ? ORDER BY seq LIMIT ?",
                (since_seq, -1 if limit is None else limit)).fetchall()
        return [Event.from_json(bytes(p).decode("utf-8")) for (p,) in found]

    def stats(self) -> OutboxStats:
        """Queue depth per lane, oldest pending age, drops: for telemetry and ``safehouse status``."""
        with self._lock, self._reading() as conn:
            return read_stats(conn, now=self._clock(), near_full=self.near_full)

    @property
    def dropped(self) -> dict[str, int]:
        return self.stats().dropped

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
