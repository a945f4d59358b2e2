"""Random bytes into every file the outbox reads back; after each, the promises still hold.

Issue 18's property, for the storage files: a kiosk (a writer process, killed with -9 or
stopped) stores events; then its ``seq.lease``, ``outbox.db`` or ``outbox.db-wal`` is garbled,
truncated, extended, replaced by a link, or given numbers no kiosk reaches; then the outbox
opens as the daemon opens it. Every time: it opens and takes a new event durably, no seq ever
names two events, every seq missing from what is stored lies in a reported ``missing_seq``, and
no link is written through. Seeded: a failure names its seed and replays.
"""

from __future__ import annotations

import os
import random
import sqlite3
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from safehouse.services.outbox import Outbox
from tests.rig.clock import FakeClock

TOPIC = "safehouse/v1/p/K/events"
ROUNDS = 6

WRITER = """
import os, sys
from pathlib import Path
from safehouse.services.outbox import Outbox
from tests.rig.clock import FakeClock
box = Outbox(Path(sys.argv[1]), recover=True)
for i in range(int(sys.argv[3])):
    event = box.append_event({"event_id": f"{sys.argv[2]}-{i}", "device_id": "K", "precinct": "p",
                              "type": "panic" if i % 3 == 0 else "resolved", "code": None, "ts": "x",
                              "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False,
                              "data": {"pad": "p" * 150}}, "t")
    print(event.seq, event.event_id, flush=True)
if sys.argv[4] == "kill":
    os.kill(os.getpid(), 9)
box.close()
"""

Mutation = Callable[[Path, random.Random, Path], None]


def _real(path: Path) -> bool:
    """A file to damage in place (the mutations themselves never write through a planted link)."""
    return path.exists() and not path.is_symlink()


def _write(path: Path, data: bytes, *, append: bool = False) -> None:
    if path.is_symlink():
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
    "lease deleted": lambda s, r, v: (s / "seq.lease").unlink(missing_ok=True),
    "wal deleted": lambda s, r, v: (s / "outbox.db-wal").unlink(missing_ok=True),
    "wal garbled": lambda s, r, v: _bytes_at(s / "outbox.db-wal", r),
    "wal truncated": lambda s, r, v: _truncate(s / "outbox.db-wal", r),
    "wal linked": lambda s, r, v: _link(s / "outbox.db-wal", v),
    "db header": lambda s, r, v: _head(s / "outbox.db", r),
    "db garbled": lambda s, r, v: _bytes_at(s / "outbox.db", r, start=4096),
    "db truncated": lambda s, r, v: _truncate(s / "outbox.db", r),
    "db linked": lambda s, r, v: _link(s / "outbox.db", v),
    "db huge numbers": lambda s, r, v: _huge_stored_seq(s, r),
}


def event(event_id: str, type_: str, data: dict[str, object]) -> dict[str, object]:
    return {"event_id": event_id, "device_id": "K", "precinct": "p", "type": type_, "code": None, "ts": "x",
            "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False, "data": data}


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


@pytest.mark.parametrize("seed", range(12))
def test_random_damage_to_the_storage_files_keeps_every_promise(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    state, victim = tmp_path / "state", tmp_path / "victim"
    victim.write_bytes(b"never written through " * 10)
    owner: dict[int, str] = {}  # every seq ever acknowledged, and the event it names
    ranges: list[tuple[int, int]] = []  # every missing_seq reported
    clock = FakeClock()
    for round_ in range(ROUNDS):
        how = rng.choice(["kill", "close"])
        out = subprocess.run([sys.executable, "-c", WRITER, str(state), f"r{round_}", str(rng.randint(1, 40)),
                              how], capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode in (0, -9), out.stderr
        for seq, event_id in (line.split() for line in out.stdout.splitlines()):
            assert owner.setdefault(int(seq), event_id) == event_id, (seed, round_, seq)
        done = rng.sample(sorted(MUTATIONS), rng.randint(1, 2))
        for name in done:
            MUTATIONS[name](state, rng, victim)
        clock.advance(3600.0)  # the next start is later: a power cut, a reboot
        with Outbox(state, recover=True, clock=clock) as box:
            assert box.fault is None, (seed, round_, done, box.fault)
            box.salvage()
            box.pending(10**6)  # the uplink's read: a payload the card garbled is found and reported
            if box.fault is not None:  # damage only a read or write finds: the storage thread's round
                assert box.recover(), (seed, round_, done, box.fault)
                box.salvage()
            after = box.append_event(event(f"after-{round_}", "panic", {}), TOPIC)
            assert after.seq < 2**53, (seed, round_, done)
            while reports := box.take_damage():  # as the daemon's writer does at each flush
                for report in reports:
                    ranges += [report.missing] if report.missing is not None else []
                    box.append_event(event(f"report-{round_}-{len(ranges)}-{report.file}", "storage_damaged",
                                           report.as_data()), TOPIC)
            stored = {e.seq: e.event_id for e in box.events()}
        for seq, event_id in stored.items():
            assert owner.setdefault(seq, event_id) == event_id, (seed, round_, done, seq)
        assert victim.read_bytes() == b"never written through " * 10, (seed, round_, done)
        assert unreported(set(stored), ranges) == [], (seed, round_, done)
        lost = [s for s in owner if s not in stored and not any(lo <= s <= hi for lo, hi in ranges)]
        assert lost == [], (seed, round_, done, lost)
    assert victim.read_bytes() == b"never written through " * 10
