"""The outbox's own seq mark, kept in its database file: the second witness beside ``seq.lease``.

Why: seq.lease is what keeps seq from going back after the WAL is lost. Issue 18 lost both at
once (``kill -9``, the WAL deleted, the lease garbled, its runtime copy gone with the reboot):
seq 10 was issued again and nothing noticed. So the database file carries, in ``meta``:

- ``open``: 1 from the outbox's open to its clean close. Found at 1 with no WAL beside it, the
  WAL was lost after an unclean stop, whatever the lease says;
- ``seq_mark``: at or above every seq the kiosk may have issued. It is set ``MARK_AHEAD`` above
  the lease when the outbox opens and raised again whenever the lease comes within half of that
  (so about once per 500 events), while the outbox can be written.

Both are checkpointed into the database file itself when written (not left in the WAL), so they
survive the WAL's loss, and are read from that file alone (``immutable``: the WAL ignored).

When no lease vouches for the highest seq ever issued (present but garbled, forged, a link; or
gone while the outbox says it had one), seq continues above this mark: seqs issued beyond it
would need more than ``MARK_AHEAD / 2`` events issued while storage failed *and* the lease lost.
With no mark readable either (the file destroyed too), nothing left says how far seq got, so it
continues above two bounds: ``NO_MARK_JUMP`` (2^32, more than a kiosk issues in its life) above
the highest seq found, and the wall clock's seconds since 1970 times ``PER_SECOND`` (2^20): no
kiosk issued a million seqs a second, so no seq issued before now is that high, even after an
earlier jump of this kind (unless the clock went back past it). Either way the range in
between is reported as possibly missing.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from safehouse.services.seq_lease import HIGH_LIMIT

_LOG = logging.getLogger(__name__)
MARK_AHEAD = 1000
NO_MARK_JUMP = 2**32
PER_SECOND = 2**20  # more seqs than a kiosk issues in any second of its life


@dataclass(frozen=True)
class FileMark:
    """What the database file itself says (the WAL ignored)."""

    open: bool
    mark: int  # 0: none readable
    last_seq: int
    legacy: bool  # no mark at all: written by a release from before it


def read_mark(path: Path) -> FileMark | None:
    """The marks in the database file at ``path`` alone; None if it cannot be read that way."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
    except OSError:
        return None
    try:
        uri = f"{path.absolute().as_uri()}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('open', 'seq_mark', 'last_seq')"))
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return FileMark(open=meta.get("open") == 1, mark=plausible(meta.get("seq_mark")),
                    last_seq=plausible(meta.get("last_seq")), legacy="seq_mark" not in meta)


def plausible(value: object) -> int:
    """A stored seq or mark, or 0 when it is none or out of every kiosk's reach."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= HIGH_LIMIT:
        return value
    if value is not None:
        _LOG.error("outbox: an implausible seq mark (%r) is ignored", value)
    return 0


def write_mark(conn: sqlite3.Connection, *, is_open: bool, mark: int) -> None:
    """Part of the caller's transaction; ``checkpoint()`` after its commit."""
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('open', ?)", (int(is_open),))
    conn.execute("INSERT INTO meta(key, value) VALUES ('seq_mark', ?) ON CONFLICT(key) DO UPDATE SET "
                 "value = CASE WHEN typeof(value) = 'integer' AND value BETWEEN 0 AND ? "
                 "THEN MAX(value, excluded.value) ELSE excluded.value END",
                 (mark, HIGH_LIMIT))  # an implausible mark is replaced, never kept by MAX


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Copy every committed frame into the database file; True when all of it got there."""
    try:
        busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:
        _LOG.warning("outbox: the seq mark is not in the database file yet: %s", exc)
        return False
    return not busy and done >= log


def unvouched_floor(found: dict[str, int], now: float) -> int:
    """Where seq continues when no lease vouches: above the mark; with none, above both the
    last seq found + ``NO_MARK_JUMP`` and the clock's ``PER_SECOND`` seqs a second since 1970."""
    if found.get("seq_mark", 0) > 0:
        return max(found["seq_mark"], found.get("last_seq", 0))
    by_clock = int(now) * PER_SECOND if 0 < now * PER_SECOND < HIGH_LIMIT // 2 else 0
    return max(found.get("last_seq", 0) + NO_MARK_JUMP, by_clock)
