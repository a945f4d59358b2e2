"""Salvage: what can still be read of a quarantined outbox goes into the fresh one.

First through SQLite: rows are read by id range; a range that fails (a garbled or missing page)
is halved until the bad ids are isolated, so one bad page costs only the rows on it. When SQLite
cannot open the file at all (page 1 gone) or left rows unread, the file's pages are read
directly (services/outbox_walk.py): every intact table leaf page still gives its rows, without
a copy of the file (a salvage never works on a copy of its own output, and its space is the
quarantined file's). Events keep their seq and event_id, so the precinct de-duplicates a re-sent
one; what was delivered stays delivered. Runs on the storage thread after READY, in batches, so
a large outbox never delays the kiosk's start or its alarms. Nothing here follows a link.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from safehouse.device.core.events import Event
from safehouse.services.outbox_damage import Damage, missing_range
from safehouse.services.outbox_schema import Lane
from safehouse.services.outbox_walk import SalvagedRow, Walk, valid_row
from safehouse.services.seq_lease import HIGH_LIMIT

__all__ = ["BATCH", "ID_GAP", "Adopter", "Damage", "SalvagedRow", "adopt_row", "max_id_of_damaged",
           "missing_range", "read_rows", "salvage_into", "seq_of_damaged"]

_LOG = logging.getLogger(__name__)

COLUMNS = "id, lane, topic, payload, path, retain, key, created, event_id, seq, type, delivered, error"
BATCH = 500
ID_GAP = 1 << 32  # a fresh outbox's row ids start this far above the damaged one's
MAX_QUERIES = 200_000  # a file damaged everywhere is given up on, not bisected forever


class Adopter(Protocol):
    def adopt(self, rows: Sequence[SalvagedRow]) -> int: ...


def max_id_of_damaged(path: Path) -> int:
    """The damaged file's highest row id if it can still be read (0 if not)."""
    try:
        conn = _connect_ro(path)
    except sqlite3.Error:
        return 0
    try:
        return _upper_id(conn) if conn.execute("SELECT 1 FROM messages LIMIT 1").fetchall() else 0
    except sqlite3.Error:
        return 1 << 40  # unreadable: far above anything a kiosk writes in its life
    finally:
        conn.close()


def seq_of_damaged(path: Path) -> int:
    """The damaged file's own ``last_seq`` if it can still be read (0 if not): a floor for seq."""
    try:
        conn = _connect_ro(path)
    except sqlite3.Error:
        return 0
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        value = int(row[0]) if row else 0
        return value if 0 <= value <= HIGH_LIMIT else 0
    except (sqlite3.Error, ValueError, TypeError, OverflowError):
        return 0
    finally:
        conn.close()


def _connect_ro(path: Path) -> sqlite3.Connection:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = os.lstat(p).st_mode
        except FileNotFoundError:
            if p == path:
                raise sqlite3.OperationalError(f"{path} does not exist") from None
            continue
        except OSError as exc:
            raise sqlite3.OperationalError(f"{p}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(mode):  # SQLite would follow a link (and write a -shm through it)
            raise sqlite3.OperationalError(f"{p} is not a regular file (a link is never followed)")
    # without a -wal, read the file alone: a read-only open would create an empty -wal beside it,
    # and a WAL lost after an unclean stop would then look merely empty
    wal = path.with_name(path.name + "-wal").exists()
    uri = f"{path.absolute().as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
    return sqlite3.connect(uri, uri=True, isolation_level=None)


class SqlitePass:
    """Every row SQLite can still read, by id; ``complete`` turns False when some could not be."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.complete = True
        self.bad = 0
        self.marks: dict[str, int] = {}

    def rows(self) -> Iterator[SalvagedRow]:
        try:
            conn = _connect_ro(self.path)
            conn.execute("SELECT 1 FROM messages LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            _LOG.warning("salvage: SQLite cannot read %s (%s): its pages are read directly", self.path, exc)
            self.complete = False
            return
        try:
            yield from _bisect(conn, _upper_id(conn), self._on_bad)
            self.marks = {str(k): v for k, v in conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('last_seq', 'seq_mark', 'purged_below')")
                if isinstance(v, int) and 0 <= v <= HIGH_LIMIT}
        except sqlite3.Error:
            self.complete = False
        finally:
            conn.close()

    def _on_bad(self, n: int) -> None:
        self.bad += n
        self.complete = False


def read_rows(path: Path, on_bad: Callable[[int], None] = lambda _n: None,
              marks: dict[str, int] | None = None) -> Iterator[SalvagedRow]:
    """Every readable row of the outbox at ``path``, each id once; ``on_bad(n)`` counts the
    unreadable ones (the page walk's when it had to run); ``marks`` gets what its meta said
    (``last_seq``, ``seq_mark``, ``purged_below``), as far as it can still be read."""
    first = SqlitePass(path)
    seen: set[int] = set()
    for row in first.rows():
        seen.add(int(row[0]))
        yield row
    if marks is not None:
        marks.update(first.marks)
    if first.complete:
        return
    walk = Walk(path)
    for row in walk.rows():
        if int(row[0]) not in seen:
            seen.add(int(row[0]))
            yield row
    if marks is not None:
        marks.update({k: max(v, marks.get(k, 0)) for k, v in walk.marks.items()})
    on_bad(walk.bad)


def _upper_id(conn: sqlite3.Connection) -> int:
    for query in ("SELECT MAX(id) FROM messages", "SELECT seq FROM sqlite_sequence WHERE name = 'messages'"):
        try:
            row = conn.execute(query).fetchone()
            if row and row[0] is not None:
                return int(row[0])
        except sqlite3.Error:
            continue
    return 1 << 24


def _bisect(conn: sqlite3.Connection, upper: int, on_bad: Callable[[int], None]) -> Iterator[SalvagedRow]:
    stack = [(1, upper)]
    queries = 0
    while stack and queries < MAX_QUERIES:
        lo, hi = stack.pop()
        queries += 1
        last = lo - 1
        try:
            for row in conn.execute(f"SELECT {COLUMNS} FROM messages WHERE id BETWEEN ? AND ? ORDER BY id",
                                    (lo, hi)):
                last = int(row[0])
                yield row
            continue
        except sqlite3.Error:
            pass
        lo = last + 1
        if lo > hi:
            continue
        if lo == hi:
            on_bad(1)
            continue
        mid = (lo + hi) // 2
        stack += [(mid + 1, hi), (lo, mid)]
    if stack:
        _LOG.error("salvage: gave up after %d reads; %d id range(s) not tried", queries, len(stack))


def intact_event(row: SalvagedRow) -> bool:
    """Is an events row's payload the event its columns name? (``readable_event``)"""
    return readable_event(row[3], row[8], row[9])


def readable_event(payload: object, event_id: object, seq: object) -> bool:
    """Is ``payload`` the event its columns name? A page garbled inside a payload still reads as
    a row (SQLite checks structure, not content); sent on, it would be garbage at the precinct."""
    if not isinstance(payload, bytes):
        return False
    try:
        event = Event.from_json(payload.decode("utf-8"))
    except (ValueError, TypeError):
        return False
    return event.seq == seq and event.event_id == event_id


def salvage_into(box: Adopter, damage: Damage) -> None:
    """Copy every readable row of ``damage.quarantined`` into ``box``; fill in the report."""
    marks: dict[str, int] = {}
    if damage.quarantined is not None:
        def bad(n: int) -> None:
            damage.unreadable_ids += n
        batch: list[SalvagedRow] = []
        for row in read_rows(damage.quarantined, bad, marks):
            if not valid_row(row):
                bad(1)
                continue
            if row[1] == Lane.EVENTS:
                if not intact_event(row):
                    bad(1)
                    continue
                damage.seqs.add(int(row[9]))
            batch.append(row)
            if len(batch) >= BATCH:
                damage.salvaged += box.adopt(batch)
                batch = []
        if batch:
            damage.salvaged += box.adopt(batch)
    damage.salvaged_events = len(damage.seqs)
    damage.missing = missing_range(damage.seqs, damage.high, floor=marks.get("purged_below", 1))
    damage.salvaged_done = True
    _LOG.warning("salvage of %s: %d row(s) recovered (%d event(s)), %d unreadable; seq range that "
                 "may be missing: %s", damage.file, damage.salvaged, damage.salvaged_events,
                 damage.unreadable_ids, damage.missing)


def adopt_row(conn: sqlite3.Connection, row: SalvagedRow) -> int:
    """Insert one salvaged row unless its event_id, seq or key is already there; 1 if inserted.

    A row already there (an older copy of its page was read first) only passes on its delivery:
    a delivered copy makes a pending one delivered, never the other way round.
    """
    rid, lane, topic, payload, path, retain, key, created, event_id, seq, type_, delivered, error = row
    if seq is not None and not (isinstance(seq, int) and 0 < seq <= HIGH_LIMIT):
        _LOG.error("salvage: row %s not taken: seq %r is out of every kiosk's reach", rid, seq)
        return 0
    values = (lane, topic, payload, path, retain, key, created, event_id, seq, type_, delivered, error)
    columns = "lane, topic, payload, path, retain, key, created, event_id, seq, type, delivered, error"
    try:
        # its own id first: the fresh file's ids start far above (see ID_GAP), so a salvaged event
        # drains before every event written since the damage, in its original order
        cur = conn.execute(f"INSERT INTO messages(id, {columns}) VALUES (?{', ?' * len(values)}) "
                           "ON CONFLICT DO NOTHING", (rid, *values))
        if cur.rowcount == 0 and conn.execute("SELECT 1 FROM messages WHERE id = ?", (rid,)).fetchone():
            cur = conn.execute(f"INSERT INTO messages({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                               "ON CONFLICT DO NOTHING", values)
    except (sqlite3.IntegrityError, OverflowError) as exc:  # a malformed row (both payload and path NULL)
        _LOG.warning("salvage: row %s not taken: %s", rid, exc)
        return 0
    if cur.rowcount:
        if seq is not None:
            conn.execute("UPDATE meta SET value = MAX(value, ?) WHERE key = 'last_seq'", (seq,))
        return 1
    if delivered is not None and (event_id is not None or key is not None):
        conn.execute("UPDATE messages SET delivered = ?, error = ? WHERE delivered IS NULL AND "
                     "(event_id = ? OR key = ?)", (delivered, error, event_id, key))
    elif seq is not None and not conn.execute("SELECT 1 FROM messages WHERE event_id = ?",
                                              (event_id,)).fetchone():
        _LOG.critical("salvage: event %s not taken: its seq %d already names another event", event_id, seq)
    return 0
