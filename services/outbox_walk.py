"""Which of the records found on an outbox's pages are its messages, and what its marks said.

services/outbox_pages.py reads every table leaf record of a file whose page 1 may be gone, so
the schema that would say which table a page belongs to may be gone with it. An outbox record
is recognised by its shape instead, column by column as ``outbox_schema`` declares it: a
``messages`` row has 13 columns, the first NULL (the INTEGER PRIMARY KEY lives in the rowid), a
lane of 0-2, TEXT where text is kept, a BLOB payload or a TEXT path (one of the two), and an
event's seq and event_id. ``meta`` rows are (known TEXT key, number); the schema's own rows
(5 columns) and ``sqlite_sequence`` ('messages', id) are told apart the same way. Old copies of
a page (free pages, WAL frames) may hold older values: for the marks, which only ever grow,
the largest wins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safehouse.services.outbox_pages import Pages, Record, leaf_records
from safehouse.services.seq_lease import HIGH_LIMIT

_LOG = logging.getLogger(__name__)
# id, lane, topic, payload, path, retain, key, created, event_id, seq, type, delivered, error
SalvagedRow = tuple[Any, ...]
MARK_KEYS = ("last_seq", "seq_mark", "purged_below")


def _text(record: Record, column: int, *, optional: bool = True) -> str | None:
    value = record.values[column]
    if value is None and optional:
        return None
    if column not in record.texts or not isinstance(value, bytes):
        raise ValueError("not text")
    return value.decode("utf-8")  # UnicodeDecodeError is a ValueError


def _number(value: object, *, optional: bool = False) -> float | int | None:
    if value is None and optional:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise ValueError("not a number")


def valid_row(row: SalvagedRow) -> bool:
    """Does a row SQLite read from a damaged file hold what the schema declares (a garbled
    page can still parse as a row with a text where the lane should be)?"""
    rid, lane, topic, payload, path, retain, key, created, event_id, seq, type_, delivered, error = row
    texts = all(v is None or isinstance(v, str) for v in (path, key, event_id, type_, error))
    numbers = all(isinstance(v, (int, float)) for v in (created, delivered if delivered is not None else 0))
    return (isinstance(rid, int) and lane in (0, 1, 2) and isinstance(lane, int) and isinstance(topic, str)
            and bool(topic) and texts and numbers and retain in (0, 1) and (payload is None) != (path is None)
            and (payload is None or isinstance(payload, bytes))
            and (seq is None or (isinstance(seq, int) and 0 < seq <= HIGH_LIMIT))
            and (lane != 0 or (event_id is not None and seq is not None)))


def as_message(record: Record) -> SalvagedRow | None:
    """The record as a salvaged ``messages`` row (salvage column order), or None if it is not one."""
    v = record.values
    if len(v) != 13 or v[0] is not None or record.rowid < 1:
        return None
    try:
        lane, retain, seq = v[1], v[5], v[8]
        if lane not in (0, 1, 2) or retain not in (0, 1) or not isinstance(lane, int):
            return None
        topic = _text(record, 2, optional=False)
        payload = v[3]
        if payload is not None and (3 in record.texts or not isinstance(payload, bytes)):
            return None
        path = _text(record, 4)
        key, event_id, type_, error = (_text(record, c) for c in (6, 7, 9, 12))
        created, delivered = _number(v[10]), _number(v[11], optional=True)
        if seq is not None and (not isinstance(seq, int) or not 0 < seq <= HIGH_LIMIT):
            return None
    except ValueError:
        return None
    if not topic or (payload is None) == (path is None):
        return None
    if lane == 0 and (event_id is None or seq is None or payload is None):
        return None
    return (record.rowid, lane, topic, payload, path, retain, key, created, event_id, seq, type_,
            delivered, error)


class Walk:
    """One pass over a damaged outbox's pages: its messages rows, its marks, what was unreadable.

    ``marks`` (filled as ``rows()`` goes): the largest ``last_seq`` and ``seq_mark`` found in
    ``meta`` rows, and ``max_id`` (sqlite_sequence, and the largest rowid seen).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.marks: dict[str, int] = {}
        self.bad = 0

    def rows(self) -> Iterator[SalvagedRow]:
        try:
            pages = Pages(self.path)
        except OSError as exc:
            _LOG.error("salvage: cannot read the pages of %s: %s", self.path, exc)
            return
        with pages:
            _LOG.warning("salvage: reading %s page by page (%d-byte pages%s)", self.path, pages.page_size,
                         "" if pages.has_header else ", size guessed: its header is gone")
            for number, data in pages.sources():
                try:
                    records, bad = leaf_records(pages, number, data)
                except OSError as exc:
                    _LOG.error("salvage: page %d of %s unreadable: %s", number, self.path, exc)
                    self.bad += 1
                    continue
                self.bad += bad
                for record in records:
                    row = as_message(record)
                    if row is not None:
                        self._mark("max_id", record.rowid)
                        yield row
                    elif len(record.values) == 2:
                        self._meta(record)

    def _meta(self, record: Record) -> None:
        try:
            name = _text(record, 0, optional=False)
        except ValueError:
            return
        value = record.values[1]
        if not isinstance(value, int) or not 0 <= value <= HIGH_LIMIT:
            return
        if name in MARK_KEYS:
            self._mark(str(name), value)
        elif name == "messages":  # sqlite_sequence: AUTOINCREMENT's highest id
            self._mark("max_id", value)

    def _mark(self, name: str, value: int) -> None:
        self.marks[name] = max(self.marks.get(name, 0), value)


def messages_rows(path: Path) -> Iterator[SalvagedRow]:
    """Every recognisable ``messages`` row on the pages of ``path`` (and its WAL), page order."""
    yield from Walk(path).rows()


def walk_marks(path: Path) -> dict[str, int]:
    """The marks a full walk of ``path`` finds (see ``Walk``); empty when none survive."""
    walk = Walk(path)
    for _row in walk.rows():
        pass
    return walk.marks
