"""Table rows read straight off an SQLite file's pages, without SQLite: the salvage's last resort.

Why: a card that destroys page 1 (the header and the schema) leaves SQLite unable to open the
file at all, though every other page may be intact; Debian's sqlite3 3.40 shell has no working
``.recover`` and Python's module has no recovery API. SQLite's file format is documented
(https://www.sqlite.org/fileformat2.html), so this reads what it needs of it:

- a table b-tree leaf page starts with type 0x0D, a cell count and a cell pointer array (page 1's
  header sits after the 100-byte database header);
- a cell is a varint payload size, a varint rowid and the payload: a record header (its size, then
  one varint serial type per column) and the column values; a payload too large for the page
  keeps a documented prefix on it and continues in a chain of overflow pages;
- the page size is the header's when the header survived, else the WAL's, else the size under
  which most sampled pages parse as b-tree pages whose cells lie inside them.

Pages are read one at a time with ``pread`` (a 50 MB file never sits in memory) and a WAL beside
the file is read too: its frames hold newer copies of pages. Every cell is checked (sizes,
bounds, serial types, a record that ends exactly where its payload does); one that fails is
counted, never guessed at. Which table a record belongs to is services/outbox_walk.py's business.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"SQLite format 3\x00"
LEAF_TABLE = 0x0D
BTREE_TYPES = (0x02, 0x05, 0x0A, 0x0D)
PAGE_SIZES = tuple(512 << i for i in range(8))  # 512 .. 65536
SAMPLES = 64  # pages sampled per candidate size when the size must be guessed
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_HEADER, _FRAME_HEADER = 32, 24
Value = int | float | bytes | None


@dataclass(frozen=True)
class Record:
    """One table row as stored: ``text`` columns stay bytes (their encoding is the reader's call)."""

    rowid: int
    values: tuple[Value, ...]
    texts: frozenset[int]  # indexes of the values stored as TEXT (the rest of the bytes are BLOBs)


class Pages:
    """The pages of one file (and of its WAL, newest copy first), opened without following links."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(self.fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{path} is not a regular file")
            self.size = st.st_size
            head = os.pread(self.fd, 100, 0)
            self.has_header = head[:16] == MAGIC
            self.wal: dict[int, int] = {}  # page number -> offset of its newest frame's page
            self.wal_fd: int | None = None
            wal_size = self._open_wal(path.with_name(path.name + "-wal"))
            self.page_size = self._page_size(head, wal_size)
            self.usable = self.page_size - (head[20] if self.has_header else 0)
            if wal_size:
                self._index_wal(wal_size)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd in (self.fd, self.wal_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self.fd, self.wal_fd = -1, None

    def __enter__(self) -> Pages:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def count(self) -> int:
        return self.size // self.page_size

    def page(self, number: int) -> bytes:
        """Page ``number`` (1-based), its newest copy: the WAL's if it holds one."""
        where = self.wal.get(number)
        if where is not None and self.wal_fd is not None:
            return os.pread(self.wal_fd, self.page_size, where)
        return os.pread(self.fd, self.page_size, (number - 1) * self.page_size)

    def sources(self) -> Iterator[tuple[int, bytes]]:
        """(page number, data) of every page in the file, then every WAL frame's page, in order."""
        for number in range(1, self.count + 1):
            yield number, os.pread(self.fd, self.page_size, (number - 1) * self.page_size)
        if self.wal_fd is not None:
            for number, where in sorted(self.wal.items(), key=lambda item: item[1]):
                yield number, os.pread(self.wal_fd, self.page_size, where)

    def _open_wal(self, wal: Path) -> int:
        try:
            self.wal_fd = os.open(wal, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            st = os.fstat(self.wal_fd)
        except OSError:
            self.wal_fd = None
            return 0
        if not stat.S_ISREG(st.st_mode) or st.st_size < _WAL_HEADER + _FRAME_HEADER + 512:
            return 0
        return st.st_size

    def _page_size(self, head: bytes, wal_size: int) -> int:
        if self.has_header:
            raw = struct.unpack(">H", head[16:18])[0]
            size = 65536 if raw == 1 else raw
            if size in PAGE_SIZES:
                return size
        if wal_size and self.wal_fd is not None:
            magic, _v, size = struct.unpack(">III", os.pread(self.wal_fd, 12, 0))
            if magic in _WAL_MAGIC and size in PAGE_SIZES:
                return int(size)
        return guess_page_size(self.fd, self.size)

    def _index_wal(self, wal_size: int) -> None:
        assert self.wal_fd is not None
        head = os.pread(self.wal_fd, _WAL_HEADER, 0)
        magic, _v, size, _c, salt1, salt2 = struct.unpack(">6I", head[:24])
        if magic not in _WAL_MAGIC or size != self.page_size:
            return
        frame = _FRAME_HEADER + self.page_size
        for offset in range(_WAL_HEADER, wal_size - frame + 1, frame):
            number, _commit, s1, s2 = struct.unpack(">4I", os.pread(self.wal_fd, 16, offset))
            if (s1, s2) == (salt1, salt2) and number > 0:  # this generation's frames; later wins
                self.wal[number] = offset + _FRAME_HEADER


def guess_page_size(fd: int, size: int) -> int:
    """The smallest page size under which sampled pages look like b-tree pages (default 4096).

    A size too small cuts real pages, whose cell pointers then point outside the piece, so few
    check out; a size too large still lands on real page starts (every 2nd, 4th, ...), which
    check out as well: hence the smallest size that scores near the best, not the best.
    """
    scores: dict[int, float] = {}
    for candidate in PAGE_SIZES:
        pages = size // candidate
        if pages < 2:
            continue
        sampled = range(1, pages, max(1, (pages - 1) // SAMPLES))
        hits = sum(btree_page(os.pread(fd, candidate, n * candidate), 0, candidate) for n in sampled)
        scores[candidate] = hits / len(sampled)
    top = max(scores.values(), default=0.0)
    if top == 0.0:
        return 4096
    return min(s for s, score in scores.items() if score >= 0.9 * top)


def btree_page(data: bytes, hdr: int, usable: int) -> bool:
    """Does ``data`` look like a b-tree page (its type, counts and cell pointers inside it)?"""
    if len(data) < hdr + 12 or data[hdr] not in BTREE_TYPES:
        return False
    cells, content = struct.unpack(">HH", data[hdr + 3:hdr + 7])
    content = content or 65536
    array = hdr + (8 if data[hdr] in (0x0A, 0x0D) else 12)
    if cells == 0 or array + 2 * cells > content or content > usable:
        return False
    pointers = struct.unpack(f">{cells}H", data[array:array + 2 * cells])
    return all(content <= p < usable for p in pointers)


def varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, next offset) of the SQLite varint at ``at``; IndexError if it runs off the end."""
    value = 0
    for i in range(8):
        byte = data[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | data[at + 8], at + 9


def leaf_records(pages: Pages, number: int, data: bytes) -> tuple[list[Record], int]:
    """The records on one table leaf page, and how many of its cells could not be read."""
    hdr = 100 if number == 1 else 0
    if data[hdr:hdr + 1] != bytes([LEAF_TABLE]) or not btree_page(data, hdr, pages.usable):
        return [], 0
    cells = struct.unpack(">H", data[hdr + 3:hdr + 5])[0]
    found: list[Record] = []
    bad = 0
    for (pointer,) in struct.iter_unpack(">H", data[hdr + 8:hdr + 8 + 2 * cells]):
        try:
            found.append(_cell(pages, data, pointer))
        except (IndexError, ValueError, struct.error, OSError):
            bad += 1
    return found, bad


def _cell(pages: Pages, data: bytes, at: int) -> Record:
    size, at = varint(data, at)
    rowid, at = varint(data, at)
    if rowid >= 1 << 63:
        rowid -= 1 << 64
    usable = pages.usable
    most = usable - 35
    if size <= most:
        payload = data[at:at + size]
    else:
        least = (usable - 12) * 32 // 255 - 23
        local = least + (size - least) % (usable - 4)
        local = local if local <= most else least
        if at + local + 4 > usable:
            raise ValueError("cell runs off its page")
        first = struct.unpack(">I", data[at + local:at + local + 4])[0]
        payload = data[at:at + local] + _overflow(pages, first, size - local)
    if len(payload) != size:
        raise ValueError("cell runs off its page")
    return _record(rowid, payload)


def _overflow(pages: Pages, number: int, wanted: int) -> bytes:
    chunks: list[bytes] = []
    seen: set[int] = set()
    while wanted > 0:
        if not (1 < number <= pages.count or number in pages.wal) or number in seen:
            raise ValueError("overflow chain broken")
        seen.add(number)
        page = pages.page(number)
        chunk = page[4:pages.usable][:wanted]
        chunks.append(chunk)
        wanted -= len(chunk)
        number = struct.unpack(">I", page[:4])[0]
    return b"".join(chunks)


_FIXED = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 7: 8, 8: 0, 9: 0}


def _record(rowid: int, payload: bytes) -> Record:
    header_size, at = varint(payload, 0)
    if not at <= header_size <= len(payload):
        raise ValueError("record header out of bounds")
    types: list[int] = []
    while at < header_size:
        serial, at = varint(payload, at)
        types.append(serial)
    if at != header_size:
        raise ValueError("record header ends inside a serial type")
    values: list[Value] = []
    texts: set[int] = set()
    body = header_size
    for column, serial in enumerate(types):
        if serial in (10, 11):
            raise ValueError("reserved serial type")
        width = _FIXED[serial] if serial < 12 else (serial - 12) // 2
        raw = payload[body:body + width]
        if len(raw) != width:
            raise ValueError("record body too short")
        body += width
        if serial == 0:
            values.append(None)
        elif serial in (8, 9):
            values.append(serial - 8)
        elif serial == 7:
            values.append(struct.unpack(">d", raw)[0])
        elif serial < 7:
            values.append(int.from_bytes(raw, "big", signed=True))
        else:
            values.append(raw)
            if serial % 2:
                texts.add(column)
    if body != len(payload):
        raise ValueError("record does not end where its payload does")
    return Record(rowid, tuple(values), frozenset(texts))
