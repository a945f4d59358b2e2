"""Opening the daily counts so that a damaged or unreachable ``stats.db`` never stops the kiosk.

The counts matter to the programme, not to an alarm: a ``stats.db`` that fails its integrity
check (or whose WAL would silently lose commits) is quarantined like the outbox and the day's
counts start again from zero — reported with a ``storage_damaged`` event; one that cannot be
opened at all (read-only, full, missing partition) is replaced by counts kept in memory, and
the kiosk shows a storage fault. SQLite follows links: a ``stats.db`` (or its ``-wal``/``-shm``)
that is a link or not a plain file is moved aside the same way (the link itself, never what it
points at), so the daemon never writes into another file through it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.files import not_plain, set_aside
from safehouse.services.outbox_open import short_file
from safehouse.services.outbox_salvage import Damage
from safehouse.services.quarantine import SIDECARS, quarantine
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


def planted(path: Path) -> str | None:
    """Why ``path`` or one of its sidecars must not be opened: a link, or not a plain file."""
    refused = not_plain(*(path.with_name(path.name + s) for s in SIDECARS))
    return None if refused is None else f"{refused.reason}: {refused}"


def _set_aside_planted(path: Path, problem: str) -> Damage:
    moved = None
    for name in (path.name, *(path.name + s for s in SIDECARS[1:])):
        with contextlib.suppress(OSError):
            (path.parent / name).lstat()
            found = set_aside(path.parent, name, problem.split(":")[0], keep=3 * len(SIDECARS),
                              family=FILENAME)
            moved = moved or found
    _LOG.critical("daily stats %s refused (%s): moved aside, the day's counts start again from zero",
                  path, problem)
    return Damage(file=FILENAME, reason=problem, quarantined=moved, high=0, salvaged_done=True)


def open_stats(state_dir: Path, *, clock: Callable[[], float] = time.time
               ) -> tuple[DailyStats, Damage | None, str | None]:
    """The daily counts, any damage found (quarantined), and a storage fault if kept in memory."""
    path = state_dir / FILENAME
    damage = None
    link = planted(path)
    if link is not None:
        damage = _set_aside_planted(path, link)
        if planted(path) is not None:  # could not be moved: never opened through it
            return DailyStats(state_dir, clock=clock, memory=True), damage, f"refused: {link}"
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
