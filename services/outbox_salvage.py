"""Salvage: what can still be read of a quarantined outbox goes into the fresh one.

Rows are read by id range; a range that fails (a garbled or missing page) is halved until the
bad ids are isolated, so one bad page costs only the rows on it. A file whose 100-byte header
is garbled is read through a copy with a rebuilt header (the pages behind it are usually
intact). Events keep their seq and event_id, so the precinct de-duplicates a re-sent one;
what was delivered stays delivered. Runs on the storage thread after READY, in batches, so a
large outbox never delays the kiosk's start or its alarms.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from safehouse.services.outbox_schema import Lane

_LOG = logging.getLogger(__name__)

COLUMNS = "id, lane, topic, payload, path, retain, key, created, event_id, seq, type, delivered, error"
BATCH = 500
ID_GAP = 1 << 32  # a fresh outbox's row ids start this far above the damaged one's
MAX_QUERIES = 200_000  # a file damaged everywhere is given up on, not bisected forever
SalvagedRow = tuple[Any, ...]


@dataclass
class Damage:
    """One damaged state file: what the ``storage_damaged`` event tells the precinct."""

    file: str
    reason: str
    quarantined: Path | None
    high: int  # every seq up to this may have been issued before the damage
    salvaged: int = 0
    salvaged_events: int = 0
    unreadable_ids: int = 0
    missing: tuple[int, int] | None = None
    salvaged_done: bool = False
    seqs: set[int] = field(default_factory=set, repr=False)

    def as_data(self) -> dict[str, Any]:
        return {"file": self.file, "reason": self.reason[:300],
                "quarantined": None if self.quarantined is None else str(self.quarantined),
                "salvaged": self.salvaged, "salvaged_events": self.salvaged_events,
                "unreadable_rows": self.unreadable_ids,
                "missing_seq": None if self.missing is None else list(self.missing),
                "seq_high_water": self.high}


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
        return int(row[0]) if row else 0
    except (sqlite3.Error, ValueError, TypeError):
        return 0
    finally:
        conn.close()


def _connect_ro(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise sqlite3.OperationalError(f"{path} does not exist")
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)


def read_rows(path: Path, on_bad: Callable[[int], None] = lambda _n: None) -> Iterator[SalvagedRow]:
    """Every readable row of the outbox at ``path``, by id; ``on_bad(n)`` counts skipped ids."""
    try:
        conn = _connect_ro(path)
        conn.execute("SELECT 1 FROM messages LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        repaired = _with_rebuilt_header(path)
        if repaired is None:
            _LOG.error("salvage: nothing readable in %s: %s", path, exc)
            return
        try:
            yield from read_rows(repaired, on_bad)
        finally:
            for suffix in ("", "-wal", "-shm"):
                repaired.with_name(repaired.name + suffix).unlink(missing_ok=True)
        return
    try:
        yield from _bisect(conn, _upper_id(conn), on_bad)
    finally:
        conn.close()


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


def _with_rebuilt_header(path: Path) -> Path | None:
    """A copy of ``path`` with a standard 100-byte header (4 KiB pages), or None if no use."""
    try:
        size = path.stat().st_size
        if size < 2 * 4096:
            return None
        copy = path.with_name(path.name + ".rebuilt")
        with path.open("rb") as src, copy.open("wb") as dst:
            os.fchmod(dst.fileno(), 0o600)
            src.seek(100)
            dst.write(_header(size // 4096))
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    except OSError as exc:
        _LOG.error("salvage: could not rebuild the header of %s: %s", path, exc)
        return None
    return copy


def _header(pages: int) -> bytes:
    head = bytearray(100)
    head[0:16] = b"SQLite format 3\x00"
    struct.pack_into(">HBBBBBB", head, 16, 4096, 1, 1, 0, 64, 32, 32)
    struct.pack_into(">IIIIIIIIIIII", head, 24, 1, pages, 0, 0, 1, 4, 0, 0, 1, 0, 0, 0)
    struct.pack_into(">II", head, 92, 1, 3_040_000)
    return bytes(head)


def salvage_into(box: Adopter, damage: Damage) -> None:
    """Copy every readable row of ``damage.quarantined`` into ``box``; fill in the report."""
    if damage.quarantined is not None:
        def bad(n: int) -> None:
            damage.unreadable_ids += n
        batch: list[SalvagedRow] = []
        for row in read_rows(damage.quarantined, bad):
            batch.append(row)
            if row[1] == Lane.EVENTS and row[9] is not None:
                damage.seqs.add(int(row[9]))
            if len(batch) >= BATCH:
                damage.salvaged += box.adopt(batch)
                batch = []
        if batch:
            damage.salvaged += box.adopt(batch)
    damage.salvaged_events = len(damage.seqs)
    damage.missing = missing_range(damage.seqs, damage.high)
    damage.salvaged_done = True
    _LOG.warning("salvage of %s: %d row(s) recovered (%d event(s)), %d unreadable; seq range that "
                 "may be missing: %s", damage.file, damage.salvaged, damage.salvaged_events,
                 damage.unreadable_ids, damage.missing)


def missing_range(seqs: set[int], high: int) -> tuple[int, int] | None:
    """From the end of the first unbroken run of salvaged seqs up to ``high``: what may be lost."""
    if high <= 0:
        return None
    start = min(seqs) if seqs else 1
    while start in seqs:
        start += 1
    return (start, high) if start <= high else None


def adopt_row(conn: sqlite3.Connection, row: SalvagedRow) -> int:
    """Insert one salvaged row unless its event_id, seq or key is already there; 1 if inserted."""
    rid, lane, topic, payload, path, retain, key, created, event_id, seq, type_, delivered, error = row
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
    except sqlite3.IntegrityError as exc:  # a malformed row (e.g. both payload and path NULL)
        _LOG.warning("salvage: row %s not taken: %s", rid, exc)
        return 0
    if cur.rowcount and seq is not None:
        conn.execute("UPDATE meta SET value = MAX(value, ?) WHERE key = 'last_seq'", (seq,))
    return int(cur.rowcount > 0)
