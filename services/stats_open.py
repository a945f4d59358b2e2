"""Opening the daily counts so that a damaged or unreachable ``stats.db`` never stops the kiosk.

The counts matter to the programme, not to an alarm: a ``stats.db`` that fails its integrity
check (or whose WAL would silently lose commits) is quarantined like the outbox and the day's
counts start again from zero — reported with a ``storage_damaged`` event; one that cannot be
opened at all (read-only, full, missing partition) is replaced by counts kept in memory, and
the kiosk shows a storage fault.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from safehouse.device.core.errors import EventLogError
from safehouse.services.outbox_open import short_file
from safehouse.services.outbox_salvage import Damage
from safehouse.services.quarantine import quarantine
from safehouse.services.stats import FILENAME, DailyStats
from safehouse.services.wal_check import wal_problem

_LOG = logging.getLogger(__name__)


def stats_problem(path: Path) -> str | None:
    """Why ``path`` cannot be trusted (a WAL that would drop commits, a failed quick_check)."""
    if not path.exists():
        return None
    problem = short_file(path) or wal_problem(path.with_name(path.name + "-wal"))
    if problem is not None:
        return problem
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            found = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        text = str(exc).lower()
        if "malformed" in text or "not a database" in text or "corrupt" in text:
            return f"{path.name}: {exc}"
        return None  # unreadable for another reason (permissions, I/O): opening will say
    return None if found == ["ok"] else f"{path.name} fails its integrity check: {'; '.join(found)[:300]}"


def open_stats(state_dir: Path, *, clock: Callable[[], float] = time.time
               ) -> tuple[DailyStats, Damage | None, str | None]:
    """The daily counts, any damage found (quarantined), and a storage fault if kept in memory."""
    path = state_dir / FILENAME
    damage = None
    problem = stats_problem(path)
    if problem is not None:
        try:
            moved = quarantine(path, wall=clock())
        except OSError as exc:
            _LOG.critical("daily stats %s are damaged (%s) and cannot be moved aside: %s", path, problem, exc)
            return DailyStats(state_dir, clock=clock, memory=True), None, f"damaged: {problem}"
        damage = Damage(file=FILENAME, reason=problem, quarantined=moved, high=0, salvaged_done=True)
        _LOG.critical("daily stats were damaged (%s): the day's counts start again from zero", problem)
    try:
        return DailyStats(state_dir, clock=clock), damage, None
    except EventLogError as exc:
        _LOG.critical("daily stats kept in memory only: %s", exc)
        return DailyStats(state_dir, clock=clock, memory=True), damage, f"unavailable: {exc}"
