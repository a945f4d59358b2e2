"""Reading ``stats.db``: the queries the daemon's writer and the CLI's read-only view share.

``read_day()`` is the CLI's view: it never creates or changes a file in ``state_dir`` (a CLI run
as root must not leave root-owned ``-wal``/``-shm`` files the daemon then cannot open). The
writer (``services/stats.py``) builds its answers from the same queries, so both agree on how
open duty is added to a day that is not yet closed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import EventLogError
from safehouse.services.localday import date_of as _date_of
from safehouse.services.localday import day_bounds as _day_bounds
from safehouse.services.localday import local_zone
from safehouse.services.stats_counters import COUNTERS, DayCounts, check_date

__all__ = ["FILENAME", "DayReport", "counts_of_day", "is_closed", "read_day", "volunteers_on_duty"]

FILENAME = "stats.db"


@dataclass(frozen=True)
class DayReport:
    """What ``read_day()`` shows: the counts, whether the day was summarised, who is on duty now."""

    counts: DayCounts
    summarised: bool
    on_duty: tuple[str, ...]


def is_closed(conn: sqlite3.Connection, day: str) -> bool:
    return conn.execute("SELECT 1 FROM closed WHERE day = ?", (day,)).fetchone() is not None


def volunteers_on_duty(conn: sqlite3.Connection) -> list[str]:
    return [v for (v,) in conn.execute("SELECT volunteer FROM duty ORDER BY since, volunteer")]


def counts_of_day(conn: sqlite3.Connection, day: str, now: float, tz: tzinfo) -> DayCounts:
    """The stored counts of ``day``; unless it is closed, plus open duty not yet credited, up to now."""
    values: dict[str, float] = dict(conn.execute("SELECT name, value FROM counts WHERE day = ?", (day,)))
    if not is_closed(conn, day):
        start, end = _day_bounds(day, tz)
        open_s = sum(max(0.0, min(end, now) - max(start, counted_to))
                     for (counted_to,) in conn.execute("SELECT counted_to FROM duty"))
        values["duty_seconds"] = values.get("duty_seconds", 0.0) + open_s
    counts: dict[str, Any] = {name: int(values.get(name, 0)) for name in COUNTERS}
    counts["duty_seconds"] = float(values.get("duty_seconds", 0.0))
    return DayCounts(day, **counts)


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
            return DayReport(counts_of_day(conn, day, now, zone), is_closed(conn, day),
                             tuple(volunteers_on_duty(conn)))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise EventLogError(f"cannot read the daily stats {path}: {exc}; check the file is readable "
                            "by this user (try sudo)") from exc
