"""Damage to the state files the daemon reads back, as issue 18's property test puts it there.

Each mutation takes the state folder, a seeded ``random.Random`` and a victim file (what a
planted link points at) and damages one file the way a failing card or a hostile hand does:
garbled, truncated, extended, replaced by a link or a FIFO, forged with numbers no kiosk reaches. The
mutations themselves never write through a link (that would test the test). ``unreported``
says which seq gaps no ``storage_damaged`` report covers.
"""

from __future__ import annotations

import os
import random
import sqlite3
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

Mutation = Callable[[Path, random.Random, Path], None]


def _real(path: Path) -> bool:
    """A file to damage in place (the mutations never write through a planted link or FIFO)."""
    return path.is_file() and not path.is_symlink()


def _write(path: Path, data: bytes, *, append: bool = False) -> None:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        path.unlink()
    with path.open("ab" if append else "wb") as f:
        f.write(data)


def _bytes_at(path: Path, rng: random.Random, *, start: int = 0) -> None:
    if _real(path) and path.stat().st_size > start:
        with path.open("r+b") as f:
            f.seek(rng.randrange(start, path.stat().st_size))
            f.write(rng.randbytes(rng.choice([1, 8, 100, 4096])))


def _head(path: Path, rng: random.Random) -> None:
    if _real(path):
        with path.open("r+b") as f:
            f.write(rng.randbytes(rng.choice([100, 4096, 8192])))


def _truncate(path: Path, rng: random.Random) -> None:
    if _real(path):
        os.truncate(path, rng.randrange(0, path.stat().st_size + 1))


def _link(path: Path, victim: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(victim)


def _fifo(path: Path) -> None:
    """A FIFO where a file should be: reading it would block the start for ever."""
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _forged(path: Path, rng: random.Random) -> None:
    generation, high = rng.choice([1, 2**62, 2**64 - 1]), rng.choice([2**53, 2**63 - 10, 2**64 - 5])
    flags = rng.choice([0, 1, 2, 3, 0xFF])
    head = struct.pack("<QQI", generation, high, flags)
    slot = struct.pack("<QQII8x", generation, high, flags, zlib.crc32(head))
    _write(path, slot + slot)


def _huge_stored_seq(state: Path, rng: random.Random) -> None:
    if not _real(state / "outbox.db"):
        return
    try:
        conn = sqlite3.connect(state / "outbox.db", timeout=1)
        with conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", (rng.choice([2**62, 2**63 - 1]),
                                                                     rng.choice(["last_seq", "seq_mark"])))
        conn.close()
    except sqlite3.Error:
        pass  # another mutation already made it unreadable


MUTATIONS: dict[str, Mutation] = {
    "lease garbled": lambda s, r, v: _write(s / "seq.lease", r.randbytes(64)),
    "lease truncated": lambda s, r, v: _truncate(s / "seq.lease", r),
    "lease extended": lambda s, r, v: _write(s / "seq.lease", r.randbytes(r.randrange(1, 5000)), append=True),
    "lease forged": lambda s, r, v: _forged(s / "seq.lease", r),
    "lease linked": lambda s, r, v: _link(s / "seq.lease", v),
    "lease fifo": lambda s, r, v: _fifo(s / "seq.lease"),
    "lease deleted": lambda s, r, v: (s / "seq.lease").unlink(missing_ok=True),
    "wal deleted": lambda s, r, v: (s / "outbox.db-wal").unlink(missing_ok=True),
    "wal garbled": lambda s, r, v: _bytes_at(s / "outbox.db-wal", r),
    "wal truncated": lambda s, r, v: _truncate(s / "outbox.db-wal", r),
    "wal linked": lambda s, r, v: _link(s / "outbox.db-wal", v),
    "wal fifo": lambda s, r, v: _fifo(s / "outbox.db-wal"),
    "db header": lambda s, r, v: _head(s / "outbox.db", r),
    "db garbled": lambda s, r, v: _bytes_at(s / "outbox.db", r, start=4096),
    "db truncated": lambda s, r, v: _truncate(s / "outbox.db", r),
    "db linked": lambda s, r, v: _link(s / "outbox.db", v),
    "db huge numbers": lambda s, r, v: _huge_stored_seq(s, r),
}


def gaps(seqs: set[int]) -> list[tuple[int, int]]:
    found, expected = [], 1
    for seq in sorted(seqs):
        if seq > expected:
            found.append((expected, seq - 1))
        expected = seq + 1
    return found


def unreported(stored: set[int], ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    left = []
    for first, last in gaps(stored):
        at = first
        for lo, hi in sorted(ranges):
            if lo <= at <= hi:
                at = hi + 1
        if at <= last:
            left.append((at, last))
    return left
