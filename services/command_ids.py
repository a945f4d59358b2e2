"""Executed precinct command ids, kept on disk for their freshness window.

Kept in memory only, a ``cmd/test`` recorded off the wire and sent again after a restart raised
a second test alarm: the restarted kiosk had forgotten the id, and the command was still
fresh. Here each id is committed (SQLite, WAL, ``synchronous=FULL``) before the command acts,
with the wall time ``until`` after which the command is stale anyway; the daemon loads the
live ids into the core at start. The file is bounded twice: ids past ``until`` are deleted,
and at most ``MAX_IDS`` are kept (the newest), whatever the clock does.

The file is private to the kiosk (0600): nothing in it is secret, but nobody else needs it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from safehouse.device.core.errors import EventLogError
from safehouse.services.sqlite_tx import immediate

_LOG = logging.getLogger(__name__)
FILE = "command_ids.db"
MAX_IDS = 1024  # the core remembers as many (device/core/precinct.py SEEN_IDS)


class CommandIdError(EventLogError):
    """The command id store could not be read or written; the message names the file."""


class CommandIds:
    """``remember(id, until)`` before a command acts; ``live()`` at start."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time,
                 max_ids: int = MAX_IDS) -> None:
        self.path = state_dir / FILE
        self._clock, self._max = clock, max_ids
        self._lock = threading.Lock()
        try:
            state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)  # umask 000 must not make it 0777
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                         timeout=10.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, until REAL NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise CommandIdError(f"cannot open the command id store {self.path}: {exc} "
                                 "(check that device.state_dir is writable)") from exc

    def _error(self, exc: sqlite3.Error) -> CommandIdError:
        return CommandIdError(f"command id store {self.path}: {exc}")

    def live(self) -> list[str]:
        """Ids whose window is still open, oldest first (at most ``max_ids``)."""
        with self._lock:
            try:
                rows = self._conn.execute("SELECT id FROM ids WHERE until >= ? ORDER BY until DESC LIMIT ?",
                                          (self._clock(), self._max)).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        return [str(r[0]) for r in reversed(rows)]

    def remember(self, command_id: str, until: float) -> None:
        """Commit ``command_id`` (on the disk when this returns); drop what has expired."""
        with self._lock, immediate(self._conn, self._error, str(self.path)) as conn:
            conn.execute("DELETE FROM ids WHERE until < ?", (self._clock(),))
            conn.execute("INSERT OR REPLACE INTO ids(id, until) VALUES (?, ?)", (command_id, until))
            conn.execute("DELETE FROM ids WHERE id NOT IN (SELECT id FROM ids ORDER BY until DESC "
                         "LIMIT ?)", (self._max,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
