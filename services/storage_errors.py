"""What a failed SQLite call means for the kiosk: a full disk, damage, or storage out of reach.

The three need different answers. Only a full disk may spend the alarm reserve (giving it back
for a corrupt file would waste it and leave the alarm unwritten anyway); damage is quarantined
and salvaged; storage out of reach (read-only, missing, unplugged) is retried. SQLite reports
a write that hit ``ENOSPC`` as ``SQLITE_FULL``, but a full partition can also surface as an
I/O error (growing ``-shm``, truncating the WAL): an I/O error on a partition with almost no
room left is therefore counted as full, never as damage.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from safehouse.device.core.errors import EventLogError

SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_FULL = 10, 11, 14, 13
SQLITE_READONLY, SQLITE_NOTADB, SQLITE_PERM = 8, 26, 3
LOW_SPACE = 256 * 1024  # an I/O error with less than this free is a full disk

FULL, DAMAGED, UNAVAILABLE = "full", "damaged", "unavailable"


class StorageError(EventLogError):
    """A storage failure with its kind (``FULL``, ``DAMAGED`` or ``UNAVAILABLE``)."""

    kind = UNAVAILABLE


class StorageFull(StorageError):
    kind = FULL


class StorageDamaged(StorageError):
    kind = DAMAGED


class StorageUnavailable(StorageError):
    kind = UNAVAILABLE


_KINDS: dict[str, type[StorageError]] = {FULL: StorageFull, DAMAGED: StorageDamaged,
                                         UNAVAILABLE: StorageUnavailable}


def free_bytes(directory: Path) -> int | None:
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def classify(exc: BaseException, directory: Path) -> str:
    """``FULL``, ``DAMAGED`` or ``UNAVAILABLE`` for an error from SQLite or the file system.

    An I/O error on a read-only file system (the kernel remounts a failing card read-only) is
    storage out of reach, not damage: the file itself may be fine once it is writable again.
    """
    if isinstance(exc, StorageError):
        return exc.kind
    if read_only(directory):
        return UNAVAILABLE
    if isinstance(exc, sqlite3.Error):
        code = int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == SQLITE_FULL:
            return FULL
        if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
            return DAMAGED
        if code == SQLITE_IOERR:
            free = free_bytes(directory)
            return FULL if free is not None and free < LOW_SPACE else DAMAGED
        text = str(exc).lower()
        if "malformed" in text or "not a database" in text:
            return DAMAGED
        if "disk is full" in text:
            return FULL
        return UNAVAILABLE
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return FULL
        if exc.errno == errno.EIO:
            return DAMAGED
    return UNAVAILABLE


def storage_error(kind: str, message: str) -> StorageError:
    return _KINDS[kind](message)
