"""Daily counts of the kiosk's work — alarms, people helped, duty hours — kept in ``stats.db``.

The safe-house programme is judged by these numbers, so they are kept the way the outbox keeps
events: SQLite, WAL, ``synchronous=FULL``, every write committed before it returns, so a count
survives a power cut, ``kill -9`` and a restart. The daemon hands every event it records to
``DailyStats.record()``; which event moves which counter is decided in one table,
``EVENT_COUNTERS``, and nowhere else.

Days are local calendar days (the kiosk's zone, default the system's), keyed ``YYYY-MM-DD``.
Volunteer duty is kept as open sessions (volunteer -> start) in the database, so who is on duty
survives a restart. Duty time is credited to days when it is known — at ``duty_off``, or when
``close_day()`` finalises a day — split at local midnight; until then views add the open
sessions' time up to now. ``close_day()`` also marks the day summarised, once.

``read_day()`` is the CLI's read-only view: it never creates or changes a file in ``state_dir``.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Any

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import EventLogError
from safehouse.services.fsync import fsync_dir
from safehouse.services.localday import date_of as _date_of
from safehouse.services.localday import day_bounds as _day_bounds
from safehouse.services.localday import local_zone, zone_name
from safehouse.services.localday import next_midnight as _next_midnight
from safehouse.services.localday import split_at_midnights as _split
from safehouse.services.outbox_open import create_private
from safehouse.services.sqlite_tx import immediate

__all__ = ["COUNTERS", "EVENT_COUNTERS", "FILENAME", "DailyStats", "DayCounts", "DayReport", "check_date",
           "counters_for", "local_zone", "read_day", "zone_name"]

_LOG = logging.getLogger(__name__)

FILENAME = "stats.db"
SCHEMA_VERSION = 1
DUTY_ON, DUTY_OFF = "duty_on", "duty_off"
_EARLY_S = 60.0  # close_day() accepts a day this close to its end (a timer firing a little early)

#: Event -> the counters it adds one to. ``resolved`` is keyed by its ``data["outcome"]``; a
#: ``duress`` PIN used on an active alarm (``data["alarm_id"]`` set) is ``duress:on_alarm``, not a
#: second alarm; a test event is looked up as ``test:<key>``, so test events count only where
#: listed (as test alarms). Unlisted events and outcomes (``cancelled``, ``superseded``) count
#: nothing. ``duty_on``/``duty_off`` (data ``volunteer``) move ``duty_seconds`` via open sessions.
EVENT_COUNTERS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "panic": ("alarms",),
    "duress": ("alarms",),  # a silent alarm raised with no alarm active
    "test:panic": ("test_alarms",),
    "resolved:assistance": ("people_helped",),
    "resolved:police": ("police",),
    "resolved:false_alarm": ("false_alarms",),
    "walk_in": ("walk_ins", "people_helped"),
    "clue": ("clues",),
    "rollcall_answered": ("rollcalls_answered",),
    "rollcall_missed": ("rollcalls_missed",),
    "keypad_lockout": ("wrong_pin_lockouts",),
})

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counts (day TEXT NOT NULL, name TEXT NOT NULL, value NOT NULL, "
    "PRIMARY KEY (day, name)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS duty (volunteer TEXT PRIMARY KEY, since REAL NOT NULL, "
    "counted_to REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS closed (day TEXT PRIMARY KEY, at REAL NOT NULL)",
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class DayCounts:
    """One local day's counts; ``duty_seconds`` includes open duty up to now until the day is closed."""

    date: str
    alarms: int = 0
    test_alarms: int = 0
    people_helped: int = 0
    walk_ins: int = 0
    clues: int = 0
    police: int = 0
    false_alarms: int = 0
    duty_seconds: float = 0.0
    rollcalls_answered: int = 0
    rollcalls_missed: int = 0
    wrong_pin_lockouts: int = 0

    @property
    def duty_hours(self) -> float:
        return self.duty_seconds / 3600.0

    def counters(self) -> dict[str, Any]:
        """The counters without ``date`` (the ``daily_summary`` data), duty also in hours."""
        return {**{k: v for k, v in asdict(self).items() if k != "date"},
                "duty_seconds": round(self.duty_seconds, 3), "duty_hours": round(self.duty_hours, 3)}

    def as_dict(self) -> dict[str, Any]:
        return {"date": self.date, **self.counters()}


COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(DayCounts) if f.name != "date")


@dataclass(frozen=True)
class DayReport:
    """What ``read_day()`` shows: the counts, whether the day was summarised, who is on duty now."""

    counts: DayCounts
    summarised: bool
    on_duty: tuple[str, ...]


def counters_for(event_type: str, data: Mapping[str, Any], *, test: bool) -> tuple[str, ...]:
    """The counters one event adds one to, per ``EVENT_COUNTERS`` (duty is not among them)."""
    key = event_type
    if event_type == "resolved":
        key = f"resolved:{data.get('outcome')}"
    elif event_type == "duress" and data.get("alarm_id") is not None:
        key = "duress:on_alarm"
    return EVENT_COUNTERS.get(f"test:{key}" if test else key, ())


def check_date(text: str) -> str:
    """``text`` if it is a real ``YYYY-MM-DD`` date, else ValueError saying so."""
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date {text!r} is not a calendar date written YYYY-MM-DD "
                         "(e.g. 2025-03-31)") from None
    return text


# -- queries shared by the writer and the read-only view -----------------------------------

def _is_closed(conn: sqlite3.Connection, day: str) -> bool:
    return conn.execute("SELECT 1 FROM closed WHERE day = ?", (day,)).fetchone() is not None


def _on_duty(conn: sqlite3.Connection) -> list[str]:
    return [v for (v,) in conn.execute("SELECT volunteer FROM duty ORDER BY since, volunteer")]


def _view(conn: sqlite3.Connection, day: str, now: float, tz: tzinfo) -> DayCounts:
    """The stored counts of ``day``; unless it is closed, plus open duty not yet credited, up to now."""
    values: dict[str, float] = dict(conn.execute("SELECT name, value FROM counts WHERE day = ?", (day,)))
    if not _is_closed(conn, day):
        start, end = _day_bounds(day, tz)
        open_s = sum(max(0.0, min(end, now) - max(start, counted_to))
                     for (counted_to,) in conn.execute("SELECT counted_to FROM duty"))
        values["duty_seconds"] = values.get("duty_seconds", 0.0) + open_s
    counts: dict[str, Any] = {name: int(values.get(name, 0)) for name in COUNTERS}
    counts["duty_seconds"] = float(values.get("duty_seconds", 0.0))
    return DayCounts(day, **counts)


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
                state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)  # umask 000 must not make it 0777
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
            if not _is_closed(conn, day):
                for who, counted_to in conn.execute("SELECT volunteer, counted_to FROM duty").fetchall():
                    if counted_to < end:
                        for d, seconds in _split(float(counted_to), end, self.tz):
                            _add(conn, d, "duty_seconds", seconds)
                        conn.execute("UPDATE duty SET counted_to = ? WHERE volunteer = ?", (end, who))
                conn.execute("INSERT INTO closed(day, at) VALUES (?, ?)", (day, now))
            return _view(conn, day, now, self.tz)

    # -- reading -----------------------------------------------------------------------

    def day(self, date: str | None = None) -> DayCounts:
        """The counts of ``date`` (default today); open duty counts up to now until it is closed."""
        now = self._clock()
        day = self.date_of(now) if date is None else check_date(date)
        with self._reading() as conn:
            return _view(conn, day, now, self.tz)

    def on_duty(self) -> list[str]:
        """Volunteers with an open duty session, longest on duty first."""
        with self._reading() as conn:
            return _on_duty(conn)

    def summarised(self, date: str) -> bool:
        with self._reading() as conn:
            return _is_closed(conn, check_date(date))

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
            return sorted(d for d in days if not _is_closed(conn, d))

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


def read_day(state_dir: Path, date: str | None = None, *, clock: Callable[[], float] = time.time,
             tz: tzinfo | None = None) -> DayReport | None:
    """One day's counts read-only (daemon running or stopped); None if there is no stats.db yet.

    Never creates a file next to the database: without a ``-wal`` (daemon stopped) the file is
    opened ``immutable``, so a CLI run as root cannot leave root-owned ``-wal``/``-shm`` behind.
    """
    path = state_dir / FILENAME
    if not path.exists():
        return None
    zone = tz if tz is not None else local_zone()
    now = clock()
    day = _date_of(now, zone).isoformat() if date is None else check_date(date)
    snapshot = not path.with_name(path.name + "-wal").exists()
    uri = f"{path.absolute().as_uri()}?mode=ro" + ("&immutable=1" if snapshot else "")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
        try:
            return DayReport(_view(conn, day, now, zone), _is_closed(conn, day), tuple(_on_duty(conn)))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise EventLogError(f"cannot read the daily stats {path}: {exc}; check the file is readable "
                            "by this user (try sudo)") from exc
