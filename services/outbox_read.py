"""Read-only access to the outbox for the CLI: events and stats, daemon running or stopped.

Separate from ``outbox.py`` because it must never write: the CLI often runs as another user
(root over SSH) than the daemon, and any file it created in ``state_dir`` could lock the daemon
out of its own outbox.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.events import Event
from safehouse.services import outbox_legacy
from safehouse.services.outbox_schema import (
    NEAR_FULL_RATIO,
    OutboxStats,
    db_path,
    pending_events,
    read_stats,
)

_LOG = logging.getLogger(__name__)


def connect_readonly(path: Path) -> tuple[sqlite3.Connection, bool]:
    """Open ``path`` for reading without ever creating or changing a file next to it.

    A ``mode=ro`` open of a WAL database whose ``-wal`` is absent (daemon stopped, cleanly
    closed) would create ``-wal``/``-shm`` owned by whoever runs the CLI — often root — and the
    daemon could then not open its own outbox. So without a ``-wal`` the file is opened
    ``immutable`` (a consistent, fully checkpointed snapshot; reopen to see later writes).
    Returns the connection and whether it is such a snapshot.
    """
    snapshot = not path.with_name(path.name + "-wal").exists()
    uri = f"{path.absolute().as_uri()}?mode=ro" + ("&immutable=1" if snapshot else "")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
        try:
            conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        except BaseException:
            conn.close()
            raise
    except sqlite3.Error as exc:
        raise EventLogError(
            f"cannot read the outbox {path}: {exc}; check the file exists and is readable "
            "by this user (try sudo)"
        ) from exc
    return conn, snapshot


def _wait(stop: threading.Event | None, poll: float) -> bool:
    """Sleep one poll; True when asked to stop."""
    if stop is None:
        time.sleep(poll)
        return False
    return stop.wait(poll)


def read_events(state_dir: Path, *, follow: bool = False, stop: threading.Event | None = None,
                poll: float = 0.2) -> Iterator[Event]:
    """Yield stored events by seq from a read-only view; with ``follow``, keep yielding new ones.

    Safe while the daemon writes (WAL readers never block it) and never creates a file in
    ``state_dir``. Before the first start of an upgraded daemon, the old ``events.jsonl`` is read.
    """
    path = db_path(state_dir)
    if not path.exists() and not follow:
        yield from outbox_legacy.read_events(state_dir)
        return
    last = 0
    while True:
        if path.exists():
            conn, snapshot = connect_readonly(path)
            try:
                while True:
                    try:
                        found = conn.execute("SELECT payload FROM messages WHERE lane = 0 AND seq > ? "
                                             "ORDER BY seq LIMIT 500", (last,)).fetchall()
                    except sqlite3.Error as exc:
                        raise EventLogError(f"cannot read the outbox {path}: {exc}") from exc
                    for (payload,) in found:
                        event = Event.from_json(bytes(payload).decode("utf-8"))
                        last = event.seq
                        yield event
                    if found:
                        continue
                    if not follow:
                        return
                    if snapshot:
                        break  # an immutable snapshot never changes: reopen to see new events
                    if _wait(stop, poll):
                        return
            finally:
                conn.close()
        if not follow or _wait(stop, poll):
            return


def open_readonly_stats(state_dir: Path, *, events_cap: int = 100_000,
                        clock: Callable[[], float] = time.time) -> OutboxStats | None:
    """The outbox's stats read from disk (daemon stopped or running); None if there is none yet."""
    path = db_path(state_dir)
    if not path.exists():
        return None
    conn, _ = connect_readonly(path)
    try:
        near = pending_events(conn) >= math.ceil(events_cap * NEAR_FULL_RATIO)
        return read_stats(conn, now=clock(), near_full=near)
    except sqlite3.Error as exc:
        raise EventLogError(f"cannot read the outbox {path}: {exc}") from exc
    finally:
        conn.close()


def undelivered_prefixes(state_dir: Path) -> set[str]:
    """The key prefixes (up to the first '/') of every undelivered row: an alarm's evidence
    is delivered when its event id is not among them. Read-only; empty if no outbox yet."""
    path = db_path(state_dir)
    if not path.exists():
        return set()
    conn, _ = connect_readonly(path)
    try:
        rows = conn.execute("SELECT key FROM messages WHERE delivered IS NULL AND key IS NOT NULL")
        return {key.split("/", 1)[0] for (key,) in rows}
    except sqlite3.Error as exc:
        raise EventLogError(f"cannot read the outbox {path}: {exc}") from exc
    finally:
        conn.close()
