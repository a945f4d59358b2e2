"""Opening the outbox's SQLite file: checked first, so damage is found at start, not at the alarm.

Before SQLite touches the file: would it silently drop committed frames of the WAL (garbled,
or deleted after an unclean stop)? After opening: ``PRAGMA quick_check``, the schema, the
counters. Any failure is raised as a ``StorageError`` of the right kind (full, damaged,
unavailable) so the outbox knows whether to quarantine, to free the alarm reserve, or to retry.

The database is created 0640 (the CLI's group reads it) whatever the umask; SQLite gives its
``-wal`` and ``-shm`` the database's own permissions.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.files import make_folders, not_plain
from safehouse.services.fsync import fsync_dir
from safehouse.services.outbox_schema import ensure_schema
from safehouse.services.storage_errors import (
    DAMAGED,
    StorageError,
    classify,
    storage_error,
)
from safehouse.services.wal_check import wal_problem

_LOG = logging.getLogger(__name__)
DB_MODE = 0o640
MIN_PAGE = 512  # SQLite's smallest page size


def wal_of(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def preflight(path: Path, *, unclean: bool) -> str | None:
    """Why the files at ``path`` cannot be trusted before opening them, or None."""
    planted = not_a_file(path)
    if planted is not None:
        return planted
    if not path.exists():
        return None
    short = short_file(path)
    if short is not None:
        return short
    wal = wal_of(path)
    if unclean and not wal.exists():
        return f"{wal.name} is missing after an unclean stop: its last commits are lost"
    return wal_problem(wal)


def not_a_file(path: Path) -> str | None:
    """A link or a non-file where the database or a sidecar should be: SQLite would follow it
    (and write through it), so it is damage, moved aside as the link it is, never opened."""
    refused = not_plain(path, wal_of(path), path.with_name(path.name + "-shm"))
    return None if refused is None else str(refused)


def short_file(path: Path) -> str | None:
    """A file of 1 to 511 bytes is a truncated database, never a real one.

    SQLite's smallest page is 512 bytes and it writes whole pages; but it opens a file shorter
    than its 100-byte header as an EMPTY database and starts over in it, so a card that cut
    ``outbox.db`` to a few bytes would lose every event without a word. (0 bytes is a file
    created just before its first write failed; see ``Outbox._open`` for its seq.)
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # absent, or a link: not_a_file's business
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        size, head = st.st_size, os.pread(fd, 100, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if 0 < size < MIN_PAGE:
        return f"{path.name} is {size} bytes, shorter than one database page: truncated"
    if len(head) == 100 and head[:16] == b"SQLite format 3\x00":
        raw, counter, pages, valid_for = (int.from_bytes(head[16:18], "big"), head[24:28],
                                          int.from_bytes(head[28:32], "big"), head[92:96])
        page = 65536 if raw == 1 else raw
        if counter == valid_for and pages and pages * page > size:  # its own header says how long it is
            return f"{path.name} is {size} bytes, its header says {pages * page}: truncated"
    return None


def create_private(path: Path, mode: int = DB_MODE) -> bool:
    """Create ``path`` empty with ``mode`` (umask ignored) if missing; True if it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True


def tighten(path: Path, mode: int = DB_MODE) -> None:
    """Bring an existing file (and its sidecars) to ``mode`` if it is wider; ours only, never
    through a link."""
    for p in (path, wal_of(path), path.with_name(path.name + "-shm")):
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o777 & ~mode and st.st_uid == os.geteuid():
                os.fchmod(fd, mode)
        except OSError:
            continue
        finally:
            os.close(fd)


def lenient_text(raw: bytes) -> str:
    """TEXT as stored: SQLite never checks UTF-8, and a card's garbage in one row must not make
    every read of the queue fail; bytes that are not UTF-8 come back as lone surrogates, which
    the drain refuses (services/outbox.py ``_sound``) instead of the whole read."""
    return raw.decode("utf-8", "surrogateescape")


def connect_checked(path: Path, *, check: bool = True) -> sqlite3.Connection:
    """Open, integrity-check and prepare the outbox at ``path``; StorageError on any failure."""
    state_dir = path.parent
    try:
        make_folders(state_dir, 0o750)  # every missing level 0750, whatever the umask
        created = create_private(path)
        tighten(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    except (OSError, sqlite3.Error) as exc:
        raise _error(path, exc) from exc
    conn.text_factory = lenient_text
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"journal_mode is {mode!r}, WAL is required")
        conn.execute("PRAGMA synchronous=FULL")
        if check and not created:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
            if problems != ["ok"]:
                raise storage_error(DAMAGED, f"the outbox {path} fails its integrity check: "
                                    f"{'; '.join(map(str, problems))[:300]}")
        ensure_schema(conn, path)
        if created:
            fsync_dir(state_dir)
        tighten(path)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, StorageError):
            raise
        if isinstance(exc, (OSError, sqlite3.Error)) and not isinstance(exc, EventLogError):
            raise _error(path, exc) from exc
        raise
    return conn


def _error(path: Path, exc: BaseException) -> StorageError:
    kind = classify(exc, path.parent if path.parent.exists() else Path("/"))
    return storage_error(kind, (
        f"cannot open the outbox {path}: {exc}; check device.state_dir exists, has free space and "
        "is writable by the daemon's user; a damaged file is quarantined and salvaged by the "
        "daemon (or `safehouse outbox --salvage` with the daemon stopped)"))
