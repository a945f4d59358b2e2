"""What the ``storage_damaged`` event tells the precinct, and how a report outlives ``kill -9``.

A report is due for every damaged state file and for every seq that was skipped (a gap): the
precinct orders a kiosk's events by seq and must be told which numbers may never arrive. A
report lives in memory only until the kiosk can write it down: from then on it is a record in
the outbox's ``meta`` (key ``reports``, JSON), in the same transaction as what revealed it, and it
stays there until the ``storage_damaged`` event carrying it is itself stored. A kiosk killed
before that reports it again at its next start: twice rather than never.

Two kinds: a quarantined file, whose missing seqs are known once its salvage has read what it
could (``missing_range``); and a range (``lo`` set: a seq gap, a lease that nothing vouched
for), whose missing seqs are those from ``lo`` to ``high`` that the outbox does not hold when
the report leaves (``range_missing``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)
KEY = "reports"
MAX_REPORTS = 64  # a card failing for weeks must not grow meta without end


@dataclass
class Damage:
    """One damaged state file or seq gap: what the ``storage_damaged`` event tells the precinct."""

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
    lo: int | None = None  # a range report: seqs lo..high not stored when it leaves are missing

    def as_data(self) -> dict[str, Any]:
        return {"file": self.file, "reason": self.reason[:300],
                "quarantined": None if self.quarantined is None else str(self.quarantined),
                "salvaged": self.salvaged, "salvaged_events": self.salvaged_events,
                "unreadable_rows": self.unreadable_ids,
                "missing_seq": None if self.missing is None else list(self.missing),
                "seq_high_water": self.high}

    def key(self) -> tuple[str, str | None, int, str]:
        """What identifies the report in the event that carries it (see ``drop_reported``)."""
        where = None if self.quarantined is None else str(self.quarantined)
        return self.file, where, self.high, self.reason[:300]

    def record(self) -> dict[str, Any]:
        return {**self.as_data(), "reason": self.reason[:300], "lo": self.lo, "done": self.salvaged_done}

    @classmethod
    def from_record(cls, data: Any) -> Damage | None:
        """A report read back from ``meta`` (None, logged, if it does not check out)."""
        try:
            missing, where, lo = data["missing_seq"], data["quarantined"], data["lo"]
            damage = cls(file=str(data["file"]), reason=str(data["reason"]),
                         quarantined=None if where is None else Path(str(where)),
                         high=_int(data["seq_high_water"]), salvaged=_int(data["salvaged"]),
                         salvaged_events=_int(data["salvaged_events"]),
                         unreadable_ids=_int(data["unreadable_rows"]),
                         missing=None if missing is None else (_int(missing[0]), _int(missing[1])),
                         salvaged_done=data["done"] is True, lo=None if lo is None else _int(lo))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            _LOG.error("outbox: a damage report kept in meta is unreadable (%s): dropped", exc)
            return None
        return damage


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"not a seq: {value!r}")
    return value


def event_key(data: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    return data.get("file"), data.get("quarantined"), data.get("seq_high_water"), data.get("reason")


def missing_range(seqs: set[int], high: int, floor: int = 1) -> tuple[int, int] | None:
    """From the first seq at or above ``floor`` (below it all was delivered and purged: the
    damaged file's ``purged_below``) that was not salvaged, up to ``high``: what may be lost."""
    if high <= 0:
        return None
    start = max(1, floor)
    while start in seqs:
        start += 1
    return (start, high) if start <= high else None


def range_missing(stored: set[int], lo: int, high: int) -> tuple[int, int] | None:
    """The first and last seq from ``lo`` to ``high`` that are not in ``stored``, or None."""
    first, last = lo, high
    while first <= last and first in stored:
        first += 1
    while last >= first and last in stored:
        last -= 1
    return (first, last) if first <= last else None


# -- the records in meta (each call is part of the caller's transaction) ----------------------

def load_reports(conn: sqlite3.Connection) -> list[Damage]:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (KEY,)).fetchone()
    if row is None:
        return []
    try:
        found = json.loads(str(row[0]))
    except ValueError:
        _LOG.error("outbox: the damage reports kept in meta are unreadable: dropped")
        return []
    damages = [Damage.from_record(r) for r in found] if isinstance(found, list) else []
    return [d for d in damages if d is not None]


def save_reports(conn: sqlite3.Connection, damages: list[Damage]) -> None:
    kept = {d.key(): d.record() for d in damages}
    if len(kept) > MAX_REPORTS:
        _LOG.error("outbox: %d damage reports unsent; only the newest %d are kept", len(kept), MAX_REPORTS)
    records = list(kept.values())[-MAX_REPORTS:]
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (KEY, json.dumps(records)))


def drop_reported(conn: sqlite3.Connection, data: Mapping[str, Any]) -> None:
    """The ``storage_damaged`` event with ``data`` is being stored: its report is no longer owed."""
    damages = load_reports(conn)
    kept = [d for d in damages if event_key(d.as_data()) != event_key(data)]
    if len(kept) != len(damages):
        save_reports(conn, kept)


def stored_between(conn: sqlite3.Connection, lo: int, high: int) -> set[int]:
    """The seqs from ``lo`` to ``high`` the outbox holds as events (one given up garbled does not count)."""
    return {int(s) for (s,) in conn.execute("SELECT seq FROM messages WHERE lane = 0 AND error IS NULL AND "
                                            "seq BETWEEN ? AND ?", (lo, high))}
