"""Daily counts of the kiosk's work — alarms, people helped, duty hours — kept in ``stats.db``.

The safe-house programme is judged by these numbers, so they are kept the way the outbox keeps
events: SQLite, WAL, ``synchronous=FULL``, every write committed before it returns, so a count
survives a power cut, ``kill -9`` and a restart. The daemon hands every event it records to
``DailyStats.record()``; which event moves which counter is decided in one table,
``EVENT_COUNTERS`` (``services/stats_counters.py``), and nowhere else.

Days are local calendar days (the kiosk's zone, default the system's), keyed ``YYYY-MM-DD``.
Volunteer duty is kept as open sessions (volunteer -> start) in the database, so who is on duty
survives a restart. Duty time is credited to days when it is known — at ``duty_off``, or when
``close_day()`` finalises a day — split at local midnight; until then views add the open
sessions' time up to now. ``close_day()`` also marks the day summarised, once.

``read_day()`` (``services/stats_read.py``) is the CLI's read-only view: it never creates or
changes a file in ``state_dir``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import EventLogError
from safehouse.device.core.files import make_folders
from safehouse.services.fsync import fsync_dir
from safehouse.services.localday import date_of as _date_of
from safehouse.services.localday import day_bounds as _day_bounds
from safehouse.services.localday import local_zone, zone_name
from safehouse.services.localday import next_midnight as _next_midnight
from safehouse.services.localday import split_at_midnights as _split
from safehouse.services.outbox_open import create_private
from safehouse.services.sqlite_tx import immediate
from safehouse.services.stats_counters import COUNTERS, EVENT_COUNTERS, DayCounts, check_date, counters_for
from safehouse.services.stats_read import (
    FILENAME,
    DayReport,
    counts_of_day,
    is_closed,
    read_day,
    volunteers_on_duty,
)

__all__ = ["COUNTERS", "EVENT_COUNTERS", "FILENAME", "DailyStats", "DayCounts", "DayReport", "check_date",
           "counters_for", "local_zone", "read_day", "zone_name"]

_LOG = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DUTY_ON, DUTY_OFF = "duty_on", "duty_off"
_EARLY_S = 60.0  # close_day() accepts a day this close to its end (a timer firing a little early)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counts (day TEXT NOT NULL, name TEXT NOT NULL, value NOT NULL, "
    "PRIMARY KEY (day, name)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS duty (volunteer TEXT PRIMARY KEY, since REAL NOT NULL, "
    "counted_to REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS closed (day TEXT PRIMARY KEY, at REAL NOT NULL)",
)


def _add(conn: sqlite3.Connection, day: str, name: str, amount: float) -> None:
    conn.execute("INSERT INTO counts(day, name, value) VALUES (?, ?, ?) "
                 "ON CONFLICT(day, name) DO UPDATE SET value = value + excluded.value", (day, name, amount))


class DailyStats(Closing):
    """The daily counters in ``state_dir/stats.db``; one writer (the daemon), any number of readers."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time,
                 tz: tzinfo | None = None, memory: bool = False) -> None:
        """``memory``: counts kept in memory only (storage failing: see services/stats_open.py)."""
        self.path = state_dir / FILENAME
        self.memory = memory
        self.tz = tz if tz is not None else local_zone()
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            if memory:
                created = False
                conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            else:
                make_folders(state_dir, 0o750)  # every missing level 0750, whatever the umask
                created = create_private(self.path)
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise self._error("open", exc) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal" and not memory:
                raise sqlite3.OperationalError(f"journal_mode is {mode!r}, WAL is required")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version} is newer than this firmware's "
                                            f"{SCHEMA_VERSION}; upgrade the firmware or move the file aside")
            if version != SCHEMA_VERSION:
                for statement in _SCHEMA:
                    conn.execute(statement)
                # Written only when it changes: an unchanged open writes nothing, so a kiosk
                # whose disk is full still starts (its light box and alarms don't need counts).
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
            if created:
                fsync_dir(state_dir)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, (OSError, sqlite3.Error)):
                raise self._error("open", exc) from exc
            raise
        self._conn = conn

    def _error(self, action: str, exc: BaseException) -> EventLogError:
        return EventLogError(
            f"cannot {action} the daily stats {self.path}: {exc}; check free space on the state "
            "partition and that the file is writable by the daemon's user; if it is corrupt, move "
            "it aside (the counts start again from zero) and restart"
        )

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise EventLogError(f"the daily stats {self.path} are closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise self._error("read", exc) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction, committed (on the disk: synchronous=FULL) before it returns."""
        with self._reading() as conn, immediate(conn, lambda exc: self._error("write", exc),
                                                f"stats {self.path}"):
            yield conn

    # -- counting ----------------------------------------------------------------------

    def record(self, event_type: str, data: Mapping[str, Any], *, test: bool,
               ts: float | None = None) -> None:
        """Count one recorded event (wall time ``ts``, default now); see ``EVENT_COUNTERS``."""
        at = self._clock() if ts is None else float(ts)
        if event_type in (DUTY_ON, DUTY_OFF):
            if not test:
                self._duty(event_type, data, at)
            return
        names = counters_for(event_type, data, test=test)
        if names:
            day = self.date_of(at)
            with self._write() as conn:
                for name in names:
                    _add(conn, day, name, 1)

    def _duty(self, event_type: str, data: Mapping[str, Any], at: float) -> None:
        volunteer = data.get("volunteer")
        if volunteer is None or volunteer == "":
            _LOG.warning("stats: %s without a volunteer; duty time not counted", event_type)
            return
        who = str(volunteer)
        with self._write() as conn:
            row = conn.execute("SELECT counted_to FROM duty WHERE volunteer = ?", (who,)).fetchone()
            if event_type == DUTY_ON:
                if row is not None:
                    _LOG.warning("stats: duty_on for %s, already on duty; the first start is kept", who)
                    return
                conn.execute("INSERT INTO duty(volunteer, since, counted_to) VALUES (?, ?, ?)", (who, at, at))
            elif row is None:
                _LOG.warning("stats: duty_off for %s, who is not on duty; ignored", who)
            else:
                for day, seconds in _split(float(row[0]), at, self.tz):
                    _add(conn, day, "duty_seconds", seconds)
                conn.execute("DELETE FROM duty WHERE volunteer = ?", (who,))

    def close_day(self, date: str) -> DayCounts:
        """Finalise ``date`` and mark it summarised; its counts. Closing it again changes nothing.

        Open duty is credited up to that day's midnight and carried on into the next day. Call
        at or after ``next_midnight()``: a day that has not ended (allowing a minute) is refused.
        """
        day = check_date(date)
        now = self._clock()
        end = _day_bounds(day, self.tz)[1]
        if end > now + _EARLY_S:
            raise ValueError(f"day {day} has not ended yet "
                             f"(it ends at {datetime.fromtimestamp(end, self.tz).isoformat()})")
        with self._write() as conn:
            if not is_closed(conn, day):
                for who, counted_to in conn.execute("SELECT volunteer, counted_to FROM duty").fetchall():
                    if counted_to < end:
                        for d, seconds in _split(float(counted_to), end, self.tz):
                            _add(conn, d, "duty_seconds", seconds)
                        conn.execute("UPDATE duty SET counted_to = ? WHERE volunteer = ?", (end, who))
                conn.execute("INSERT INTO closed(day, at) VALUES (?, ?)", (day, now))
            return counts_of_day(conn, day, now, self.tz)

    # -- reading -----------------------------------------------------------------------

    def day(self, date: str | None = None) -> DayCounts:
        """The counts of ``date`` (default today); open duty counts up to now until it is closed."""
        now = self._clock()
        day = self.date_of(now) if date is None else check_date(date)
        with self._reading() as conn:
            return counts_of_day(conn, day, now, self.tz)

    def on_duty(self) -> list[str]:
        """Volunteers with an open duty session, longest on duty first."""
        with self._reading() as conn:
            return volunteers_on_duty(conn)

    def summarised(self, date: str) -> bool:
        with self._reading() as conn:
            return is_closed(conn, check_date(date))

    def unsummarised(self) -> list[str]:
        """Days before today with counts or duty time that are not yet summarised, oldest first.

        After a restart (a power cut over midnight) the daemon closes these to catch up.
        """
        now = self._clock()
        today = self.date_of(now)
        start = _day_bounds(today, self.tz)[0]
        with self._reading() as conn:
            days = {d for (d,) in conn.execute("SELECT DISTINCT day FROM counts WHERE day < ?", (today,))}
            for (counted_to,) in conn.execute("SELECT counted_to FROM duty").fetchall():
                days.update(d for d, _ in _split(float(counted_to), start, self.tz))
            return sorted(d for d in days if not is_closed(conn, d))

    def date_of(self, ts: float) -> str:
        """The local day (``YYYY-MM-DD``) wall time ``ts`` falls on."""
        return _date_of(ts, self.tz).isoformat()

    def next_midnight(self, now: float) -> float:
        """Wall time of the first local midnight after ``now`` (a DST day is 23 or 25 hours long)."""
        return _next_midnight(now, self.tz)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
