"""The salvage reads rows straight off SQLite's pages: page 1 gone is no longer everything gone.

Real outboxes written by the kiosk, then damaged the way issue 18 #5 found (the first 8 KB
random): the salvage recovers the rows whose pages are intact, never works on a copy of its own
output, and keeps the quarantine within a bound. Which rows sat on intact pages is found
independently of the walker: by where each event's JSON lies in the file.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from safehouse.services.outbox import Lane, Outbox

TOPIC = "safehouse/v1/p/K/events"


def fields(n: int) -> dict[str, object]:
    return {"event_id": f"w{n}", "device_id": "K", "precinct": "p", "type": "walk_in", "code": None,
            "ts": "2026-11-28T00:00:00.000Z", "clock_synced": True, "mono": 1.0, "boot_id": "b",
            "test": False, "data": {"note": "n" * (300 + n % 400)}}


def outbox_of(state: Path, n: int, *, page_size: int | None = None, delivered: int = 0) -> None:
    if page_size is not None:
        state.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(state / "outbox.db")
        conn.execute(f"PRAGMA page_size = {page_size}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
    with Outbox(state) as box:
        for i in range(1, n + 1):
            box.append_event(fields(i), TOPIC)
        box.append(Lane.TELEMETRY, "tel", b"t" * 50)
        box.mark_delivered([r.id for r in box.pending(delivered)])


def destroy_start(db: Path, size: int = 8192, seed: int = 3) -> None:
    with db.open("r+b") as f:
        f.write(random.Random(seed).randbytes(size))


def on_intact_pages(db: Path, n: int, destroyed: int) -> set[str]:
    """Event ids whose stored JSON lies wholly beyond the destroyed bytes (read before damage)."""
    data = db.read_bytes()
    return {f"w{i}" for i in range(1, n + 1) if data.find(f'"event_id":"w{i}"'.encode()) >= destroyed}


def salvaged_ids(state: Path) -> dict[str, int]:
    with Outbox(state, recover=True) as box:
        box.salvage()
        [report] = box.take_damage()
        assert report.salvaged > 0
        return {e.event_id: e.seq for e in box.events()}


def test_rows_on_intact_pages_are_recovered_when_page_1_is_gone(tmp_path: Path) -> None:
    outbox_of(tmp_path, 2000, delivered=500)
    db = tmp_path / "outbox.db"
    size = db.stat().st_size
    intact = on_intact_pages(db, 2000, 65536)
    assert 1800 <= len(intact) < 2000
    destroy_start(db, 65536)  # the header, the schema, meta and the first pages of messages
    got = salvaged_ids(tmp_path)
    assert intact <= set(got), f"{len(intact - set(got))} rows on intact pages not recovered"
    assert all(got[f"w{seq}"] == seq for seq in (int(e[1:]) for e in got if e.startswith("w")))
    quarantine = tmp_path / "quarantine"
    names = [p.name for p in quarantine.iterdir()]
    assert not [p for p in tmp_path.rglob("*") if "rebuilt" in p.name], names
    assert sum(p.stat().st_size for p in quarantine.iterdir()) <= 2.5 * size
    with Outbox(tmp_path) as box:  # delivered ones stay delivered: only the rest is sent again
        assert 1400 <= len([r for r in box.pending(5000) if r.lane == Lane.EVENTS]) <= 1500


@pytest.mark.parametrize("page_size", [1024, 8192])
def test_the_page_size_is_found_when_the_header_is_gone(tmp_path: Path, page_size: int) -> None:
    outbox_of(tmp_path, 600, page_size=page_size)
    db = tmp_path / "outbox.db"
    intact = on_intact_pages(db, 600, 100)
    garbled = bytearray(db.read_bytes())
    garbled[:100] = random.Random(5).randbytes(100)
    db.write_bytes(bytes(garbled))
    got = salvaged_ids(tmp_path)
    assert len(intact) >= 590 and intact <= set(got)


def test_payloads_on_overflow_pages_come_back_whole(tmp_path: Path) -> None:
    blobs = {f"ev/{i}": random.Random(i).randbytes(20_000 + i) for i in range(5)}
    with Outbox(tmp_path) as box:
        for key, blob in blobs.items():
            box.append(Lane.EVIDENCE, f"safehouse/v1/p/K/{key}", blob, key=key)
    from safehouse.services.outbox_walk import messages_rows
    rows = {row[6]: row[3] for row in messages_rows(tmp_path / "outbox.db")}
    assert rows == blobs


def test_only_the_messages_tables_rows_are_taken_and_the_meta_marks_are_read(tmp_path: Path) -> None:
    from safehouse.services.outbox_walk import messages_rows, walk_marks
    outbox_of(tmp_path, 50)
    rows = list(messages_rows(tmp_path / "outbox.db"))
    assert len(rows) == 51 and {r[1] for r in rows} == {0, 2}  # 50 events and one telemetry row
    assert sorted(r[9] for r in rows if r[9] is not None) == list(range(1, 51))
    assert walk_marks(tmp_path / "outbox.db")["last_seq"] == 50


WRITER = """
import os, sys
from pathlib import Path
from safehouse.services.outbox import Outbox
box = Outbox(Path(sys.argv[1]))
for i in range(1, 201):
    box.append_event({"event_id": f"w{i}", "device_id": "K", "precinct": "p", "type": "walk_in",
                      "code": None, "ts": "x", "clock_synced": False, "mono": 0.0, "boot_id": "b",
                      "test": False, "data": {"note": "v" * 300}}, "t")
os.kill(os.getpid(), 9)
"""


def garble_frames_of_page_1(wal: Path) -> None:
    """Every WAL copy of page 1 garbled: SQLite stops at the first, the file's own is gone too."""
    data = bytearray(wal.read_bytes())
    page = int.from_bytes(data[8:12], "big")
    for offset in range(32, len(data) - 24 - page + 1, 24 + page):
        if int.from_bytes(data[offset:offset + 4], "big") == 1:
            data[offset + 24:offset + 24 + page] = random.Random(offset).randbytes(page)
    wal.write_bytes(bytes(data))


def test_rows_only_in_the_wal_are_recovered_from_its_frames(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path)], timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL
    destroy_start(tmp_path / "outbox.db", 4096)
    garble_frames_of_page_1(tmp_path / "outbox.db-wal")
    got = salvaged_ids(tmp_path)
    assert {f"w{i}" for i in range(1, 201)} <= set(got)


def folder_bytes(folder: Path) -> int:
    total = 0
    for p in folder.rglob("*"):
        try:
            total += p.lstat().st_size
        except OSError:
            continue  # removed while we looked
    return total


def test_a_file_that_is_all_garbage_costs_no_copy_of_itself(tmp_path: Path) -> None:
    """Issue 18 #5: 52 MB of outbox rebuilt 57 times (.rebuilt.rebuilt...), 1.5 GB in quarantine."""
    db = tmp_path / "outbox.db"
    with Outbox(tmp_path) as box:
        box.append_event(fields(1), TOPIC)
    size = 3 << 20
    db.write_bytes(random.Random(9).randbytes(size))
    peak, done = [0], threading.Event()

    def watch() -> None:  # the quarantine's size while the salvage runs, not only after it
        while not done.is_set():
            peak[0] = max(peak[0], folder_bytes(tmp_path / "quarantine"))
            done.wait(0.005)

    with Outbox(tmp_path, recover=True) as box:
        new = box.append_event(fields(2), TOPIC)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            box.salvage()
        finally:
            done.set()
            watcher.join()
        [report] = box.take_damage()
        assert report.salvaged == 0 and report.missing is not None and new.seq > 1
    assert not [p for p in tmp_path.rglob("*") if "rebuilt" in p.name]
    assert peak[0] <= 2.5 * size, f"the quarantine grew to {peak[0]} bytes for a {size}-byte file"
    assert os.path.getsize(db) < (1 << 20)
