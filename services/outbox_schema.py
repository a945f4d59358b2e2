"""The outbox's on-disk shape and the read-only queries the daemon and the CLI share.

Kept apart from ``outbox.py`` so the CLI can read a stopped daemon's outbox with the very
same queries the daemon uses, and so the table layout is written down in one place.

Layout: ``messages`` holds every queued MQTT message (one row, one publish); ``meta`` holds the
counters that must outlive the rows they counted — above all ``last_seq``, so seq stays
gap-free even after every delivered event was purged.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.events import Event

FILENAME = "outbox.db"
SCHEMA_VERSION = 1
NEAR_FULL_RATIO = 0.9  # pending events / events_cap at which the outbox raises its loud fault


class Lane(IntEnum):
    """Drain priority: every pending row of a lower lane is sent before any of a higher one."""

    EVENTS = 0
    EVIDENCE = 1
    TELEMETRY = 2


@dataclass(frozen=True)
class Row:
    """One message ready to publish; ``id`` is what the uplink hands back to ``mark_delivered``."""

    id: int
    lane: Lane
    topic: str
    payload: bytes
    retain: bool
    key: str | None
    created: float
    event_id: str | None
    seq: int | None


@dataclass(frozen=True)
class OutboxStats:
    """What telemetry, ``safehouse status`` and the precinct see of the queue."""

    depth: dict[str, int]
    oldest_pending_age_s: float | None
    last_delivery: float | None
    last_seq: int
    near_full: bool
    dropped: dict[str, int]
    fault: str | None = None  # the storage fault while the outbox cannot be written

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_DDL = """-- statements are split on semicolons: none inside a comment

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: an id in flight stays unambiguous
    lane      INTEGER NOT NULL,
    topic     TEXT NOT NULL,
    payload   BLOB,                                -- NULL for file rows
    path      TEXT,                                -- evidence stored as a file reference
    retain    INTEGER NOT NULL DEFAULT 0,
    key       TEXT UNIQUE,
    event_id  TEXT UNIQUE,
    seq       INTEGER UNIQUE,
    type      TEXT,
    created   REAL NOT NULL,                       -- wall clock
    delivered REAL,                                -- wall clock, NULL while pending
    error     TEXT,                                -- why a row was given up (missing file)
    CHECK ((payload IS NULL) <> (path IS NULL))
);
CREATE INDEX IF NOT EXISTS messages_pending ON messages(lane, id) WHERE delivered IS NULL;
CREATE INDEX IF NOT EXISTS messages_delivered ON messages(delivered) WHERE delivered IS NOT NULL;
"""

_META_DEFAULTS: dict[str, int] = {
    "schema_version": SCHEMA_VERSION,
    "last_seq": 0,
    "dropped_events": 0,
    "dropped_telemetry": 0,
}

ROW_COLUMNS = "id, lane, topic, payload, path, retain, key, created, event_id, seq"


def db_path(state_dir: Path) -> Path:
    return state_dir / FILENAME


def ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables on a new file; refuse a file written by a newer firmware."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", _META_DEFAULTS.items())
        version = meta_get(conn, "schema_version")
        if version != SCHEMA_VERSION:
            raise EventLogError(
                f"the outbox {path} has schema version {version}, this firmware reads version "
                f"{SCHEMA_VERSION}; install the firmware that wrote it, or move the file aside "
                "(its pending messages are then not sent)"
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def meta_get(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def meta_set(conn: sqlite3.Connection, key: str, value: float) -> None:
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))


def pending_events(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COUNT(*) FROM messages WHERE lane = 0 AND delivered IS NULL").fetchone()
    return int(row[0])


def read_stats(conn: sqlite3.Connection, *, now: float, near_full: bool) -> OutboxStats:
    depth = {lane.name.lower(): 0 for lane in Lane}
    for lane, count in conn.execute(
        "SELECT lane, COUNT(*) FROM messages WHERE delivered IS NULL GROUP BY lane"
    ):
        depth[Lane(lane).name.lower()] = int(count)
    oldest = conn.execute("SELECT MIN(created) FROM messages WHERE delivered IS NULL").fetchone()[0]
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    last_delivery = meta.get("last_delivery")
    return OutboxStats(
        depth=depth,
        # wall clock: a Pi without RTC may jump forward at NTP sync; never report a negative age
        oldest_pending_age_s=None if oldest is None else max(0.0, now - float(oldest)),
        last_delivery=None if last_delivery is None else float(last_delivery),
        last_seq=int(meta.get("last_seq", 0)),
        near_full=near_full,
        dropped={"events": int(meta.get("dropped_events", 0)),
                 "telemetry": int(meta.get("dropped_telemetry", 0))},
    )


def insert_event(conn: sqlite3.Connection, event: Event, topic: str, created: float,
                 delivered: float | None = None) -> None:
    """Store one event and advance ``last_seq`` (never back); part of the caller's transaction.

    ``delivered``: the event already reached the precinct (published from memory while the
    disk was unusable, or salvaged as delivered): stored for the record, not sent again.
    """
    conn.execute("INSERT INTO messages(lane, topic, payload, event_id, seq, type, created, delivered) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (Lane.EVENTS, topic, event.to_json().encode("utf-8"), event.event_id, event.seq,
                  event.type, created, delivered))
    conn.execute("UPDATE meta SET value = MAX(value, ?) WHERE key = 'last_seq'", (event.seq,))
