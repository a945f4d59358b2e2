"""The seq high-water mark: a tiny fsynced file beside the outbox that outlives ``outbox.db``.

Why: seq is how the precinct orders a kiosk's events and spots gaps. If ``outbox.db`` or its
WAL is lost (a failing SD card, a WAL deleted after ``kill -9``), the outbox alone would start
seq again from whatever it still holds — going backwards, naming two events with one seq. The
lease records a number at or above every seq ever issued, so after any damage the next seq
is above all of them.

Seqs are reserved in blocks (``BLOCK``): the file is written (and fsynced) once per block, not
once per event. After an unclean stop, the outbox continues from its own ``last_seq`` when its
files check out, and from the lease's mark otherwise (the rest of that block is then skipped:
a gap, never a repeat).

The file is two fixed 32-byte slots written in place, alternately, each with a generation and
a CRC: an in-place write needs no new disk blocks (it works on a full partition) and a torn
write spoils at most the slot being written, never the other one. A second copy can live in
another directory (the runtime directory), used when ``state_dir`` is read-only or missing.

A copy is only believed when it is a regular file (opened without following a link, never a
FIFO that would block the start) whose newest slot checks out and is plausible: a mark above
``HIGH_LIMIT`` (a forged or bit-flipped one) would push seq past what SQLite and JSON can carry.
A copy that is present but not believed is damage (``problems``): the outbox then rebuilds the
mark from what else vouches and reports it (services/outbox_seq.py). A link is removed, never
written through; the MEMORY flag outlives a restart until the outbox holds every seq issued,
the SALVAGE flag until every quarantined outbox is salvaged.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from safehouse.device.core.files import make_folders
from safehouse.services.fsync import fsync_dir

_LOG = logging.getLogger(__name__)

NAME = "seq.lease"
BLOCK = 100
# generation, high, flags (bit 0: the outbox is open), crc32 of the first 20 bytes; 32 bytes
_SLOT = struct.Struct("<QQII8x")
SIZE = 2 * _SLOT.size
OPEN = 1
MEMORY = 2  # seqs were issued while the outbox could not store them: they may be nowhere on disk
SALVAGE = 4  # a quarantined outbox awaits its salvage (services/quarantine.py marks those done)
SEQ_LIMIT = 2**53 - 1  # the largest seq a JSON reader (JavaScript's numbers) holds exactly
HIGH_LIMIT = 2**52  # a plausible mark: leaves room for every jump below SEQ_LIMIT
_GENERATION_LIMIT = 2**62


def _pack(generation: int, high: int, flags: int) -> bytes:
    head = struct.pack("<QQI", generation, high, flags)
    return _SLOT.pack(generation, high, flags, zlib.crc32(head))


def read_slots(data: bytes) -> tuple[int, int, int] | None:
    """(generation, high, flags) of the newest valid slot, or None when neither checks out."""
    best: tuple[int, int, int] | None = None
    for start in (0, _SLOT.size):
        chunk = data[start:start + _SLOT.size]
        if len(chunk) < _SLOT.size:
            continue
        generation, high, flags, crc = _SLOT.unpack(chunk)
        if zlib.crc32(chunk[:20]) == crc and (best is None or generation > best[0]):
            best = (generation, high, flags)
    return best


def implausible(slot: tuple[int, int, int]) -> str | None:
    """Why a slot that checks out still cannot be believed, or None."""
    generation, high, flags = slot
    if high > HIGH_LIMIT:
        return f"holds an implausible mark ({high}, above {HIGH_LIMIT})"
    if generation > _GENERATION_LIMIT or flags & ~(OPEN | MEMORY | SALVAGE):
        return f"holds an implausible slot (generation {generation}, flags {flags:#x})"
    return None


def read_copy(path: Path) -> tuple[tuple[int, int, int] | None, str | None]:
    """(slot, None) for a copy that checks out; (None, why) for one that is present but cannot
    be believed; (None, None) when there is none. Never follows a link, never blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None, None  # no copy (its directory may be missing or a file): nothing to believe
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, f"{path} is a symbolic link (refused: never followed)"
        return None, f"{path} cannot be read: {exc.strerror or exc}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, f"{path} is not a regular file"
        data = os.pread(fd, SIZE, 0)
    except OSError as exc:
        return None, f"{path} cannot be read: {exc.strerror or exc}"
    finally:
        os.close(fd)
    slot = read_slots(data)
    if slot is None and not data.strip(b"\0"):
        return None, None  # created, never written (a crash right after): as if absent
    if slot is None:
        return None, f"{path} is unreadable (both slots fail their check)"
    why = implausible(slot)
    return (None, f"{path} {why}") if why else (slot, None)


class SeqLease:
    """``high`` >= every seq issued; ``cover(seq)`` before a seq is handed out."""

    def __init__(self, dirs: Sequence[Path], *, block: int = BLOCK) -> None:
        if not dirs or block < 1:
            raise ValueError("a seq lease needs at least one directory and block >= 1")
        self.paths = [d / NAME for d in dirs]
        self.block = block
        self.generation = 0
        self.high = 0
        self.found = False  # some copy existed and checked out
        self.was_open = False  # the last writer did not close the outbox cleanly
        self.was_memory = False  # the last writer issued seqs it may not have stored
        self.was_salvage = False  # the last writer quarantined an outbox it had not salvaged
        self.flags = 0
        self.writable = False
        self.unreadable: list[Path] = []  # copies present that cannot be believed
        self.problems: list[str] = []  # why, one line per such copy
        self._warned = False
        for path in self.paths:
            slot, why = read_copy(path)
            if slot is not None:
                self.found = True
                self.generation = max(self.generation, slot[0])
                self.high = max(self.high, slot[1])
                self.was_open = self.was_open or bool(slot[2] & OPEN)
                self.was_memory = self.was_memory or bool(slot[2] & MEMORY)
                self.was_salvage = self.was_salvage or bool(slot[2] & SALVAGE)
            elif why is not None:
                self.unreadable.append(path)
                self.problems.append(why)
                _LOG.error("seq lease: %s; not believed", why)
        # until the outbox holds every seq issued / until every quarantined copy is salvaged
        self.flags = (MEMORY if self.was_memory else 0) | (SALVAGE if self.was_salvage else 0)

    def cover(self, seq: int) -> bool:
        """Make sure the durable mark is at or above ``seq``; True if it is (now) on some disk.

        Writes only when ``seq`` passes the mark: then the mark moves a whole block ahead.
        """
        if seq <= self.high and self.writable:
            return True
        return self.write(max(seq, self.high) + self.block - 1 if seq > self.high else self.high)

    def mark(self, is_open: bool) -> bool:
        """Record whether the outbox is open (an unclean stop leaves it marked open)."""
        self.flags = (OPEN if is_open else 0) | (self.flags & (MEMORY | SALVAGE))
        return self.write(self.high)

    def mark_salvage(self, owed: bool) -> None:
        """A quarantined outbox awaits its salvage (``owed``), or none does any more. Written in
        place like the mark, so it is on the disk even when the disk is full and a fresh outbox
        (where the salvage's report would be kept) cannot be made: a kill then forgets nothing."""
        if bool(self.flags & SALVAGE) != owed:
            self.flags ^= SALVAGE
            self.write(self.high)

    def mark_memory(self) -> None:
        """Seqs are being issued that the outbox cannot store: the next start skips the block."""
        if not self.flags & MEMORY:
            self.flags |= MEMORY
            self.write(self.high)

    def clear_memory(self) -> None:
        """The outbox now holds a seq at or above every one issued (and any gap is on record)."""
        if self.flags & MEMORY:
            self.flags &= ~MEMORY
            self.write(self.high)

    def write(self, high: int) -> bool:
        """Store ``high`` in every copy that can be written; True if at least one succeeded."""
        high = max(high, self.high)
        self.generation += 1
        record = _pack(self.generation, high, self.flags)
        offset = (self.generation % 2) * _SLOT.size
        wrote = 0
        for path in self.paths:
            try:
                _write_slot(path, offset, record)
                wrote += 1
            except OSError as exc:
                _LOG.debug("seq lease %s not written: %s", path, exc)
        self.high = max(self.high, high)
        was_writable, self.writable = self.writable, wrote > 0
        if not wrote and (was_writable or self.generation <= 1 or not self._warned):
            self._warned = True
            _LOG.critical("seq lease: no copy of %s could be written; seq %d is protected only in "
                          "memory until storage returns", NAME, high)
        return self.writable


def _open_slot_file(path: Path) -> tuple[int, bool]:
    """The lease file opened for writing, never through a link; (fd, created)."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600), True
    except FileExistsError:
        pass
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        os.unlink(path)  # a planted link: removed (its target untouched), a real file made instead
        _LOG.error("seq lease %s was a symbolic link: removed, never written through", path)
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600), True
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path} is not a regular file")
    return fd, False


def _write_slot(path: Path, offset: int, record: bytes) -> None:
    if not path.parent.exists():
        make_folders(path.parent, 0o750)  # every missing level 0750, whatever the umask
    fd, created = _open_slot_file(path)
    try:
        if created or os.fstat(fd).st_size != SIZE:
            os.fchmod(fd, 0o600)
            os.ftruncate(fd, 0)  # a stray or cut file becomes two slots again
            os.pwrite(fd, b"\0" * SIZE, 0)  # both slots' blocks allocated once, up front
        os.pwrite(fd, record, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)
