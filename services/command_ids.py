"""Executed precinct command ids, on disk: a command id, once executed, never executes again.

Kept in memory only, a ``cmd/test`` recorded off the wire and sent again after a restart raised
a second test alarm. Here each id is committed (SQLite, WAL, ``synchronous=FULL``) with the
sender's ``ts`` before the command acts, and the daemon loads the ids into the core at start
(``load()``). The file follows the core's rule (device/core/executed_commands.py): beyond
``max_ids`` the smallest ``ts`` goes and the watermark (the largest ``ts`` evicted, in
``meta``) rises past it, so an evicted id is still refused. The kiosk's clock is never read:
ids used to expire by it, and a clock stepped forward, then back after a restart, let a
command run twice. A file from before (``ids(id, until)``) is taken over with ``until`` as
the ts: later than the command's own, so every id it held stays refused.

The file is private to the kiosk (0600), and never reached through a link: a planted
``command_ids.db`` symlink once had its target chmodded to 0600. A link, or anything but a
regular file, as the database or its ``-wal``/``-shm``/``-journal`` is refused and reported
(the daemon then keeps the ids beside its control socket, with a storage fault). Rows read
back are checked; one that is not an id and a time is dropped and logged, and the watermark
rises to the newest ts kept, since the lost id may have been any command up to it.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import stat
import threading
from pathlib import Path

from safehouse.device.core import text
from safehouse.device.core.boundedjson import MAX_ID
from safehouse.device.core.errors import EventLogError
from safehouse.device.core.executed_commands import CAP, ExecutedCommands, evict
from safehouse.device.core.files import make_folders
from safehouse.services.sqlite_tx import immediate

_LOG = logging.getLogger(__name__)
FILE = "command_ids.db"
MAX_IDS = CAP  # as many as the core keeps: the two agree after every command
_SIDE_FILES = ("-wal", "-shm", "-journal")
_SCHEMA = ("CREATE TABLE IF NOT EXISTS executed (id TEXT PRIMARY KEY, ts REAL NOT NULL)",
           "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL)")


class CommandIdError(EventLogError):
    """The command id store could not be read or written; the message names the file."""


class CommandIds:
    """``remember(id, ts)`` before a command acts; ``load()`` at start."""

    def __init__(self, state_dir: Path, *, max_ids: int = MAX_IDS) -> None:
        self.path = state_dir / FILE
        self._max = max(1, max_ids)
        self._lock = threading.Lock()
        try:
            make_folders(state_dir, 0o750)  # every missing level 0750, whatever the umask
            self._conn = _connect(self.path)
        except CommandIdError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise CommandIdError(f"cannot open the command id store {self.path}: {exc} "
                                 "(check that device.state_dir is writable)") from exc
        try:
            for statement in _SCHEMA:
                self._conn.execute(statement)
            self._take_over_old_table()
        except (sqlite3.Error, CommandIdError) as exc:
            self._conn.close()
            raise CommandIdError(f"cannot open the command id store {self.path}: {exc}") from exc

    def _error(self, exc: sqlite3.Error) -> CommandIdError:
        return CommandIdError(f"command id store {self.path}: {exc}")

    def _take_over_old_table(self) -> None:
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "ids" not in tables:
            return
        with immediate(self._conn, self._error, str(self.path)) as conn:
            conn.execute("INSERT OR IGNORE INTO executed(id, ts) SELECT id, until FROM ids")
            conn.execute("DROP TABLE ids")
            self._trim(conn)
        _LOG.info("command id store %s: ids kept by expiry time taken over, keyed by it now", self.path)

    def load(self) -> ExecutedCommands:
        """The executed ids (at most ``max_ids``) and the watermark, for the core."""
        with self._lock:
            try:
                rows = self._conn.execute("SELECT id, ts FROM executed").fetchall()
                mark = self._conn.execute("SELECT value FROM meta WHERE key = 'watermark'").fetchone()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        kept = sorted((float(ts), cid) for cid, ts in rows if _valid(cid, ts))
        watermark = float(mark[0]) if mark is not None and _number(mark[0]) else None
        if len(kept) < len(rows) or (mark is not None and watermark is None):
            known = [x for x in (watermark, kept[-1][0] if kept else None) if x is not None]
            watermark = max(known) if known else None
            _LOG.error("command id store %s: %d unreadable row(s) dropped; commands up to the newest "
                       "kept ts are refused as too_old", self.path, len(rows) - len(kept))
        return evict(kept, watermark, self._max)

    def remember(self, command_id: str, ts: float) -> None:
        """Commit ``command_id`` with the sender's ``ts`` (on the disk when this returns); evict
        the smallest ts beyond ``max_ids`` and raise the watermark past it."""
        refused = text.problem(command_id, limit=MAX_ID)
        if refused is not None or not math.isfinite(ts):
            raise CommandIdError(f"command id {ascii(command_id)[:80]} not stored: "
                                 f"{refused or 'its ts is not a finite time'}")
        with self._lock, immediate(self._conn, self._error, str(self.path)) as conn:
            conn.execute("INSERT OR IGNORE INTO executed(id, ts) VALUES (?, ?)", (command_id, ts))
            self._trim(conn)

    def _trim(self, conn: sqlite3.Connection) -> None:
        """The core's rule (``executed_commands.evict``), inside the caller's transaction."""
        over = conn.execute("SELECT COUNT(*) FROM executed").fetchone()[0] - self._max
        if over <= 0:
            return
        dropped = conn.execute("SELECT ts, id FROM executed ORDER BY ts, id LIMIT ?", (over,)).fetchall()
        conn.executemany("DELETE FROM executed WHERE id = ?", [(cid,) for _ts, cid in dropped])
        conn.execute("INSERT INTO meta(key, value) VALUES ('watermark', ?) ON CONFLICT(key) "
                     "DO UPDATE SET value = MAX(value, excluded.value)", (dropped[-1][0],))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _valid(command_id: object, ts: object) -> bool:
    return isinstance(command_id, str) and text.problem(command_id, limit=MAX_ID) is None and _number(ts)


def _connect(path: Path) -> sqlite3.Connection:
    """SQLite on ``path``, which is a regular file reached without following a link (the file
    and its side files), made 0600 through its own descriptor."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if path.is_symlink():
            raise CommandIdError(f"{path} is a symbolic link: refused, never followed (remove it; the "
                                 "store is created afresh)") from exc
        raise
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise CommandIdError(f"{path} is not a regular file: refused (remove it)")
        os.fchmod(fd, 0o600)
        for suffix in _SIDE_FILES:
            side = Path(f"{path}{suffix}")
            try:
                mode = os.lstat(side).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(mode):
                raise CommandIdError(f"{side} is a symbolic link or not a regular file: refused, never "
                                     "followed (remove it)")
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    finally:
        os.close(fd)
    try:
        now = os.stat(path, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):  # swapped while we looked
            raise CommandIdError(f"{path} was replaced while it was being opened: refused")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    except BaseException:
        conn.close()
        raise
    return conn
