"""One IMMEDIATE SQLite transaction, committed on exit and rolled back on any error.

Shared by the outbox and the daily counts: both promise "a return means it is on disk", so
both need the same commit/rollback discipline and one place where a SQLite error becomes
the caller's own error (naming its file and what to do).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_LOG = logging.getLogger(__name__)


@contextmanager
def immediate(conn: sqlite3.Connection, on_error: Callable[[sqlite3.Error], Exception],
              what: str) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; on failure ROLLBACK, and raise ``on_error(exc)`` for
    SQLite errors (other exceptions pass through unchanged)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                _LOG.exception("%s: rollback failed", what)
        if isinstance(exc, sqlite3.Error):
            raise on_error(exc) from exc
        raise
