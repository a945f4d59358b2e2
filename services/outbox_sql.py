"""The outbox's row statements, as plain functions of a connection (the caller holds the lock
and the transaction). Kept apart from ``outbox.py`` so the class is about lifecycle and
failure handling, and the salvage can insert rows with the very same statements."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from safehouse.device.core.events import ALARM_TYPES
from safehouse.services.outbox_schema import ROW_COLUMNS, Lane

CHUNK = 500  # ids per statement, well under SQLite's bound-parameter limit


def insert_row(conn: sqlite3.Connection, lane: Lane, topic: str, payload: bytes | None, path: str | None,
               key: str | None, retain: bool, created: float, keep_telemetry: int) -> tuple[int, int]:
    """Insert one non-event row (an existing ``key`` is kept); (row id, telemetry rows dropped)."""
    cur = conn.execute("INSERT INTO messages(lane, topic, payload, path, retain, key, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                       (lane, topic, payload, path, int(retain), key, created))
    if cur.rowcount == 0:
        row_id = int(conn.execute("SELECT id FROM messages WHERE key = ?", (key,)).fetchone()[0])
    else:
        row_id = int(cur.lastrowid or 0)
    dropped = 0
    if lane is Lane.TELEMETRY:
        dropped = conn.execute(
            "DELETE FROM messages WHERE lane = ? AND delivered IS NULL AND id NOT IN "
            "(SELECT id FROM messages WHERE lane = ? AND delivered IS NULL ORDER BY id DESC LIMIT ?)",
            (Lane.TELEMETRY, Lane.TELEMETRY, keep_telemetry)).rowcount
        conn.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped_telemetry'", (dropped,))
    return row_id, dropped


def mark_rows(conn: sqlite3.Connection, ids: Sequence[int], now: float) -> list[int]:
    """Mark ``ids`` delivered; the lanes of the rows that were pending."""
    lanes: list[int] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        marks = ",".join("?" * len(chunk))
        lanes += [lane for (lane,) in conn.execute(
            f"UPDATE messages SET delivered = ? WHERE delivered IS NULL AND id IN ({marks}) "
            "RETURNING lane", (now, *chunk)).fetchall()]
    return lanes


def select_pending(conn: sqlite3.Connection, excluded: Sequence[int], want: int) -> list[tuple[Any, ...]]:
    marks = ",".join("?" * len(excluded))
    return list(conn.execute(f"SELECT {ROW_COLUMNS} FROM messages WHERE delivered IS NULL "
                             f"AND id NOT IN ({marks}) ORDER BY lane, id LIMIT ?", (*excluded, want)))


def count_alarms(conn: sqlite3.Connection) -> int:
    (count,) = conn.execute("SELECT COUNT(*) FROM messages WHERE lane = 0 AND delivered IS NULL "
                            f"AND type IN ({', '.join('?' * len(ALARM_TYPES))})", ALARM_TYPES).fetchone()
    return int(count)


def count_keys(conn: sqlite3.Connection, prefix: str) -> int:
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    (count,) = conn.execute("SELECT COUNT(*) FROM messages WHERE delivered IS NULL "
                            "AND key LIKE ? ESCAPE '\\'", (pattern,)).fetchone()
    return int(count)


def select_events(conn: sqlite3.Connection, since_seq: int, limit: int | None) -> list[bytes]:
    return [bytes(p) for (p,) in conn.execute(
        "SELECT payload FROM messages WHERE lane = 0 AND seq > ? ORDER BY seq LIMIT ?",
        (since_seq, -1 if limit is None else limit))]


def seq_taken(conn: sqlite3.Connection, seq: int) -> bool:
    return conn.execute("SELECT 1 FROM messages WHERE seq = ?", (seq,)).fetchone() is not None


def seqs_around(conn: sqlite3.Connection, rid: int) -> tuple[int, int | None]:
    """The seqs between the sound events stored before and after row ``rid`` (None: no event after)."""
    before = conn.execute("SELECT MAX(seq) FROM messages WHERE lane = 0 AND error IS NULL AND id < ?",
                          (rid,)).fetchone()[0]
    after = conn.execute("SELECT MIN(seq) FROM messages WHERE lane = 0 AND error IS NULL AND id > ?",
                         (rid,)).fetchone()[0]
    return (int(before or 0) + 1, None if after is None else int(after) - 1)


def find_event(conn: sqlite3.Connection, event_id: object) -> bytes | None:
    known = conn.execute("SELECT payload FROM messages WHERE event_id = ?", (event_id,)).fetchone()
    return None if known is None else bytes(known[0])


def purge(conn: sqlite3.Connection, before: float) -> int:
    """Delete what was delivered before ``before``; note below which seq nothing is left but what
    was delivered (``purged_below``): a salvage then knows those seqs are not missing."""
    count = int(conn.execute("DELETE FROM messages WHERE delivered IS NOT NULL AND delivered < ?",
                             (before,)).rowcount)
    if count:
        conn.execute("INSERT INTO meta(key, value) VALUES ('purged_below', COALESCE("
                     "(SELECT MIN(seq) FROM messages WHERE lane = 0), "
                     "(SELECT value + 1 FROM meta WHERE key = 'last_seq'))) "
                     "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)")
    return count


def give_up(conn: sqlite3.Connection, lost: Sequence[tuple[int, str]], now: float) -> list[int]:
    """Mark ``lost`` rows (id, why) done with their error; the lanes of those that were pending."""
    return [lane for rid, error in lost for (lane,) in conn.execute(
        "UPDATE messages SET delivered = ?, error = ? WHERE id = ? AND delivered IS NULL RETURNING lane",
        (now, error, rid)).fetchall()]


def raise_id_floor(conn: sqlite3.Connection, floor: int) -> None:
    """New rows get ids above ``floor`` (AUTOINCREMENT's counter, sqlite_sequence, raised)."""
    if not conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'messages'",
                        (floor,)).rowcount:
        conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('messages', ?)", (floor,))
