"""The outbox's SQLite connection: which one a read or write uses, and what a failed one means.

Kept apart from the lifecycle (``services/outbox_base.py``: open, quarantine, recover, salvage)
and the queue operations (``services/outbox.py``) because every one of them goes through here,
and this is where a failing SD card turns into a state the kiosk runs on: a write that fails
faults the outbox (later writes fail fast, the lease says seqs come from memory, the storage
thread is told to retry); a full disk keeps the connection for reads; a read-only partition
keeps a read-only view, so what is durable there is still sent in order.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import EventLogError
from safehouse.services.seq_lease import SeqLease
from safehouse.services.sqlite_tx import immediate
from safehouse.services.storage_errors import (
    DAMAGED,
    FULL,
    UNAVAILABLE,
    StorageError,
    classify,
    storage_error,
)

__all__ = ["OutboxConnection"]

_LOG = logging.getLogger(__name__)


class OutboxConnection(Closing):
    """The connection (or read-only view) of one outbox file, its fault, and its transactions.

    ``OutboxBase`` extends it. ``_reading``/``_write`` expect the caller to hold ``_lock``;
    ``_set_fault()`` and ``close()`` take it themselves.
    """

    def __init__(self, path: Path, state_dir: Path, lease_dirs: Sequence[Path]) -> None:
        self.path = path
        self._state_dir = state_dir
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._ro: sqlite3.Connection | None = None  # read-only view while the partition is read-only
        self.fault: str | None = None
        self.fault_kind: str | None = None
        self.on_fault: Callable[[], object] | None = None  # told (any thread) when storage fails
        self.lease = SeqLease([state_dir, *lease_dirs])
        self._unclean = self.lease.was_open
        self._recovering = False

    def _set_fault(self, exc: BaseException, *, quiet: bool = False) -> None:
        kind = classify(exc, self._state_dir if self._state_dir.exists() else Path("/"))
        with self._lock:
            if kind != FULL and self._conn is not None:
                self._conn.close()  # a clean close: a WAL missing later is not a lost one
                self._conn = None
                self._unclean = False
            self.fault_kind, self.fault = kind, f"{kind}: {exc}"
            if kind == UNAVAILABLE and self._ro is None:
                self._ro = _open_read_only(self.path)
            elif kind == DAMAGED:
                self._close_ro()
        self.lease.mark_memory()
        if not quiet:
            _LOG.critical("outbox storage fault (%s): %s; running from memory, retrying", kind, exc)
        if self.on_fault is not None:
            self.on_fault()  # the storage thread retries only while something is faulted

    def _error(self, action: str, exc: sqlite3.Error) -> StorageError:
        kind = classify(exc, self._state_dir if self._state_dir.exists() else Path("/"))
        return storage_error(kind, f"cannot {action} the outbox {self.path}: {exc} ({kind}); check "
                             "free space on the state partition (df) and `safehouse outbox --check`")

    def _close_ro(self) -> None:
        if self._ro is not None:
            self._ro.close()
            self._ro = None

    @contextmanager
    def _reading_any(self) -> Iterator[sqlite3.Connection]:
        """Like ``_reading`` but, while the partition is read-only, from the read-only view: what
        is durable there is still sent (in order), only its delivery cannot be recorded yet."""
        if self._conn is None and self._ro is not None:
            try:
                yield self._ro
            except sqlite3.Error as exc:
                raise self._error("read", exc) from exc
        else:
            with self._reading() as conn:
                yield conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.fault is not None:
                raise storage_error(self.fault_kind or DAMAGED, f"the outbox is not usable: {self.fault}")
            raise EventLogError(f"the outbox {self.path} is closed")
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Reads outside a transaction (each statement sees the latest commit); caller holds the lock."""
        try:
            yield self._connection()
        except sqlite3.Error as exc:
            raise self._error("read", exc) from exc

    @contextmanager
    def _write(self, *, fsync: bool = True) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction committed on exit (durable then); the caller holds the lock.

        ``fsync=False`` commits without waiting for the disk: only for delivery marks, whose loss
        in a power cut merely re-sends rows the receivers de-duplicate by event_id.
        """
        conn = self._connection()
        if not fsync:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            with immediate(conn, lambda e: self._error("write", e), f"outbox {self.path}"):
                yield conn
        finally:
            if not fsync and self._conn is not None:
                try:
                    conn.execute("PRAGMA synchronous=FULL")
                except sqlite3.Error:
                    _LOG.exception("outbox: could not restore synchronous=FULL")

    def _fail(self, exc: StorageError) -> StorageError:
        """A write failed: fault the outbox (writes then fail fast) and hand the error back.

        A constraint one row broke is that row's problem, not the storage's: no fault."""
        if isinstance(exc.__cause__, sqlite3.IntegrityError):
            _LOG.error("outbox: one write refused, the outbox stays usable: %s", exc)
        elif exc.kind != FULL or self.fault is None:
            self._set_fault(exc)
        return exc

    def _check_usable(self) -> None:
        if self._recovering or (self.fault is not None and self.fault_kind != FULL):
            raise storage_error(self.fault_kind or DAMAGED, f"the outbox is not usable: {self.fault}")

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._close_ro()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self.lease.mark(False)


def _open_read_only(path: Path) -> sqlite3.Connection | None:
    """A read-only view of an outbox on a read-only partition (None if even that fails).

    SQLite reads a WAL database read-only when its -wal and -shm already exist (left by the
    previous run); without a -wal the file is complete on its own and is opened immutable."""
    if not path.exists():
        return None
    wal = path.with_name(path.name + "-wal").exists()
    uri = f"{path.absolute().as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("SELECT COUNT(*) FROM messages").fetchone()
    except sqlite3.Error as exc:
        _LOG.warning("outbox %s: not even readable (%s): its pending messages wait for storage", path, exc)
        return None
    _LOG.warning("outbox %s: read-only for now: its pending messages are still sent", path)
    return conn
