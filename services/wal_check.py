"""Would SQLite silently drop committed transactions from this WAL? Checked before it opens it.

SQLite replays a WAL up to its first frame that fails its checksum and quietly ignores the
rest; a WAL whose header is garbled is ignored whole. After ``kill -9`` or a power cut that is
exactly how committed events vanish without a word, and seq would go backwards. So before the
outbox opens, this walks the WAL the way SQLite will and reports whether any frame of the
current generation (same salts as the header) lies beyond the part SQLite will accept.

Frames of an older generation (different salts) after the valid part are normal: a WAL is
rewritten from its start after a checkpoint without being truncated.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

_MAGIC_LE, _MAGIC_BE = 0x377F0682, 0x377F0683
_HEADER, _FRAME_HEADER = 32, 24


def _checksum(data: bytes, big_endian: bool, s0: int, s1: int) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def read_wal(path: Path) -> bytes:
    """The WAL's bytes, never through a link nor from a FIFO (which would block the start)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks, at = [], 0
        while chunk := os.pread(fd, 1 << 20, at):
            chunks.append(chunk)
            at += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def wal_problem(path: Path) -> str | None:
    """None if the WAL at ``path`` is absent, empty or whole; else what SQLite would drop."""
    try:
        data = read_wal(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot read {path.name}: {exc.strerror or exc}"
    if len(data) == 0:
        return None
    if len(data) < _HEADER:
        return f"{path.name} is {len(data)} bytes, shorter than a WAL header"
    magic, _version, page_size, _ckpt, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:_HEADER])
    if magic not in (_MAGIC_LE, _MAGIC_BE):
        return f"{path.name} has no WAL header (garbled)"
    big = magic == _MAGIC_BE
    s0, s1 = _checksum(data[:24], big, 0, 0)
    if (s0, s1) != (c1, c2) or page_size < 512 or page_size & (page_size - 1):
        return f"{path.name}'s header fails its checksum: SQLite would ignore every frame"
    frame = _FRAME_HEADER + page_size
    offset, valid_end = _HEADER, _HEADER
    while offset + frame <= len(data):
        head = data[offset:offset + _FRAME_HEADER]
        _page, commit, fs1, fs2, fc1, fc2 = struct.unpack(">6I", head)
        if (fs1, fs2) != (salt1, salt2):
            break
        s0, s1 = _checksum(head[:8], big, s0, s1)
        s0, s1 = _checksum(data[offset + _FRAME_HEADER:offset + frame], big, s0, s1)
        if (s0, s1) != (fc1, fc2):
            break
        offset += frame
        if commit:
            valid_end = offset
    # Anything of this generation after what SQLite accepts was written by a commit it will drop.
    # Only whole frames count: a frame cut short by the end of the file is an append that never
    # finished (ENOSPC, kill -9), so its commit never returned; see ``torn_tail``.
    scan = valid_end
    while scan + frame <= len(data):
        _page, commit, fs1, fs2, _c1, _c2 = struct.unpack(">6I", data[scan:scan + _FRAME_HEADER])
        if (fs1, fs2) == (salt1, salt2) and commit:
            return (f"{path.name} has committed frames beyond byte {valid_end} that fail their "
                    "checksum: SQLite would drop them")
        scan += frame
    return None


def torn_tail(path: Path) -> bool:
    """Does the WAL end inside a frame of its current generation (an append that never finished)?

    Not damage: with ``synchronous=FULL`` a commit returns only once its frames are whole on
    disk, so a cut-short last frame was never acknowledged. But a card can also cut a WAL
    short, and then a commit the kiosk had reported is gone without a trace: the outbox then
    continues seq above its lease (a gap, never a repeat) instead of after its last stored seq.
    """
    try:
        data = read_wal(path)
    except OSError:
        return False
    if len(data) < _HEADER:
        return len(data) > 0
    magic, _version, page_size, _ckpt, salt1, salt2, _c1, _c2 = struct.unpack(">8I", data[:_HEADER])
    if magic not in (_MAGIC_LE, _MAGIC_BE) or page_size < 512 or page_size & (page_size - 1):
        return False  # garbled header: wal_problem's business
    frame = _FRAME_HEADER + page_size
    cut = (len(data) - _HEADER) % frame
    if cut == 0:
        return False
    if cut < _FRAME_HEADER:
        return True  # cannot tell its generation: assume the worst (it only costs a seq gap)
    start = len(data) - cut
    _page, _commit, fs1, fs2, _fc1, _fc2 = struct.unpack(">6I", data[start:start + _FRAME_HEADER])
    return (fs1, fs2) == (salt1, salt2)
