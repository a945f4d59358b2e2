"""A damaged outbox is recognised, quarantined and salvaged; seq never goes backwards.

Real SQLite files damaged the way a failing SD card damages them: a garbage page in the middle,
a truncated file, a garbled header, a WAL deleted or garbled after ``kill -9``. Each case then
opens the outbox as the daemon does (``recover=True``) and checks what the precinct would see:
the next seq above every seq ever issued, undelivered events salvaged with their seq and
event_id, and a damage report naming the seq range that may be missing.
"""

from __future__ import annotations

import os
import random
import signal
import stat
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from safehouse.services.outbox import Outbox
from safehouse.services.outbox_salvage import missing_range
from safehouse.services.quarantine import FOLDER, KEEP, mark_salvaged, quarantine
from safehouse.services.seq_lease import SeqLease
from safehouse.services.stats import DailyStats
from safehouse.services.stats_open import open_stats, stats_problem
from safehouse.services.storage_errors import StorageDamaged
from tests.rig.disk import garbage_header, garbage_page, remount, tmpfs, truncate_half

TOPIC = "safehouse/v1/p/K/events"


def fields(n: int | str, type_: str = "panic") -> dict[str, object]:
    return {"event_id": f"e{n}", "device_id": "K", "precinct": "p", "type": type_, "code": 120,
            "ts": "2026-11-28T00:00:00.000Z", "clock_synced": True, "mono": 1.0, "boot_id": "b",
            "test": False, "data": {"pad": "x" * 300}}


def fill(state: Path, n: int, delivered: int = 0) -> None:
    with Outbox(state) as box:
        for i in range(1, n + 1):
            box.append_event(fields(i), TOPIC)
        box.mark_delivered([r.id for r in box.pending(delivered)])


KILLED_WRITER = """
import os, sys
from pathlib import Path
from safehouse.services.outbox import Outbox
box = Outbox(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    box.append_event({"event_id": f"k{i}", "device_id": "K", "precinct": "p", "type": "panic", "code": 120,
                      "ts": "x", "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False,
                      "data": {"pad": "y" * 300}}, "t")
os.kill(os.getpid(), 9)
"""


def killed_after(state: Path, n: int) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(state), str(n)], check=False, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (state / "outbox.db-wal").exists()


def checkpointed(state: Path) -> None:
    """The damage is applied to a fully checkpointed file (daemon stopped cleanly)."""
    assert not (state / "outbox.db-wal").exists()


@pytest.mark.parametrize("damage", [garbage_page, truncate_half, garbage_header])
def test_a_damaged_file_is_quarantined_salvaged_and_seq_continues_above_it(
        tmp_path: Path, damage: Callable[[Path], None]) -> None:
    fill(tmp_path, 300, delivered=100)
    checkpointed(tmp_path)
    damage(tmp_path / "outbox.db")
    with pytest.raises(StorageDamaged):  # a tool that does not recover says so, changes nothing
        Outbox(tmp_path)
    with Outbox(tmp_path, recover=True) as box:
        assert box.fault is None
        new = box.append_event(fields("new"), TOPIC)  # before the salvage: the alarm path first
        assert new.seq > 300
        [report] = box.salvage()
        assert report.quarantined is not None and report.quarantined.exists()
        assert stat.S_IMODE(report.quarantined.stat().st_mode) == 0o600
        pending = {r.event_id: r.seq for r in box.pending(1000)}
        salvaged = {eid: seq for eid, seq in pending.items() if eid != "enew"}
        assert list(pending)[-1] == "enew"  # salvaged events drain first, in their old order
        assert list(salvaged.values()) == sorted(salvaged.values())
        assert all(salvaged[f"e{seq}"] == seq for seq in salvaged.values())  # seq and id kept
        assert all(seq > 100 for seq in salvaged.values())  # delivered ones stay delivered
        if damage is not truncate_half:
            assert len(salvaged) >= 150, f"only {len(salvaged)} of 200 undelivered salvaged"
        if len(salvaged) < 200:
            assert report.missing is not None and report.missing[1] >= 300
        assert report.as_data()["salvaged_events"] == len(report.seqs)
        [done] = box.take_damage()
        assert done is report and box.take_damage() == []
        box.append_event({**fields("report", "storage_damaged"), "data": report.as_data()}, TOPIC)
    with Outbox(tmp_path, recover=True) as box:  # the fresh file is healthy and its report sent
        assert box.damage == [] and box.append_event(fields("later"), TOPIC).seq == new.seq + 2


@pytest.mark.parametrize("size", [0, 1, 100, 4095])
def test_an_outbox_cut_to_a_few_bytes_never_restarts_seq(tmp_path: Path, size: int) -> None:
    """SQLite opens a file shorter than its header as an empty database: seq would restart at 1."""
    fill(tmp_path, 50)
    os.truncate(tmp_path / "outbox.db", size)
    with Outbox(tmp_path, recover=True) as box:
        assert box.append_event(fields("after"), TOPIC).seq > 50
        if size:  # 0 bytes is also what a file created while the disk was full looks like
            [report] = box.salvage()
            assert report.quarantined is not None and report.missing == (1, report.high)


@pytest.mark.parametrize("how", ["deleted", "garbled"])
def test_a_wal_lost_after_kill_9_is_found_and_seq_does_not_go_back(tmp_path: Path, how: str) -> None:
    killed_after(tmp_path, 40)
    wal = tmp_path / "outbox.db-wal"
    if how == "deleted":
        wal.unlink()
    else:
        with wal.open("r+b") as f:
            f.seek(32 + 24 + 4096 * 5)
            f.write(random.Random(9).randbytes(4096))
    with Outbox(tmp_path, recover=True) as box:
        assert box.append_event(fields("after"), TOPIC).seq > 40  # never a seq already used
        [report] = box.salvage()
        assert report.missing is not None and report.missing[1] >= 40
        assert "wal" in report.reason.lower()


def test_kill_9_with_an_intact_wal_is_not_damage_and_seq_stays_gap_free(tmp_path: Path) -> None:
    killed_after(tmp_path, 40)
    with Outbox(tmp_path, recover=True) as box:
        assert box.damage == []
        assert box.append_event(fields("after"), TOPIC).seq == 41


def torn_append(wal: Path, data_bytes: int = 100) -> None:
    """What a WAL append cut by ENOSPC or kill -9 leaves: a frame header (commit flag, current
    salts) and part of its page, at the end of the file."""
    head = wal.read_bytes()[:32]
    salts = head[16:24]
    with wal.open("ab") as f:
        f.write(struct.pack(">II", 2, 99) + salts + b"\x11" * 8 + b"\x22" * data_bytes)


def test_a_wal_append_cut_short_is_not_damage_but_seq_skips_above_the_lease(tmp_path: Path) -> None:
    """Found by testing (kill -9 on a full tmpfs): stats.db and outbox.db were quarantined and a
    storage_damaged sent for a write that never finished. It cannot have been acknowledged,
    but a card cutting a WAL short looks the same: so no quarantine, and seq never reused."""
    killed_after(tmp_path, 40)
    torn_append(tmp_path / "outbox.db-wal")
    with Outbox(tmp_path, recover=True) as box:
        assert box.damage == []
        assert box.append_event(fields("after"), TOPIC).seq > 41  # 41 may be in the cut frame
    with DailyStats(tmp_path) as stats:
        stats.record("walk_in", {}, test=False)
    wal = tmp_path / "stats.db-wal"
    if wal.exists() and wal.stat().st_size >= 32:
        torn_append(wal)
        assert stats_problem(tmp_path / "stats.db") is None


def test_losing_outbox_db_and_its_wal_keeps_seq_above_the_lease(tmp_path: Path) -> None:
    killed_after(tmp_path, 7)
    for name in ("outbox.db", "outbox.db-wal", "outbox.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with Outbox(tmp_path, recover=True) as box:
        assert box.append_event(fields("after"), TOPIC).seq > 7
        [report] = box.salvage()
        assert report.quarantined is None and report.missing == (1, report.high)


def test_the_lease_survives_a_torn_write_and_reserves_in_blocks(tmp_path: Path) -> None:
    lease = SeqLease([tmp_path], block=10)
    assert lease.cover(1) and lease.high == 10
    assert lease.cover(10) and lease.high == 10  # inside the block: no write
    assert lease.cover(11) and lease.high == 20
    path = tmp_path / "seq.lease"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = bytearray(path.read_bytes())
    newest = (lease.generation % 2) * 32
    data[newest:newest + 32] = b"\xff" * 32  # the slot being written is torn
    path.write_bytes(bytes(data))
    again = SeqLease([tmp_path], block=10)
    assert again.found and again.high == 10  # the other slot: the previous mark, still valid


def test_a_read_only_state_dir_keeps_the_lease_in_the_second_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with tmpfs(tmp_path / "state", 1) as state:
        SeqLease([state]).cover(1)  # a lease from before the card went read-only: high 100
        remount(state, read_only=True)
        lease = SeqLease([state, run])
        assert lease.high == 100
        assert lease.cover(101) and lease.high == 200  # written beside the runtime dir only
        assert SeqLease([state, run]).high == 200 and SeqLease([state]).high == 100


def test_quarantine_keeps_the_newest_copies_only(tmp_path: Path) -> None:
    for i in range(KEEP + 2):
        (tmp_path / "outbox.db").write_bytes(b"x")
        (tmp_path / "outbox.db-wal").write_bytes(b"w")
        moved = quarantine(tmp_path / "outbox.db", wall=1_800_000_000.0 + i)
        assert moved is not None and (moved.parent / (moved.name + "-wal")).exists()
        mark_salvaged(moved)  # only a salvaged copy may go (see test_salvage_after_kill.py)
    kept = sorted((tmp_path / FOLDER).glob("outbox-*.db"))
    assert len(kept) == KEEP and kept[-1].name.startswith("outbox-2027")


def test_an_unusable_quarantine_folder_does_not_keep_the_kiosk_off_its_disk(tmp_path: Path) -> None:
    """A file where the folder should be: the damaged copy is kept beside the outbox instead."""
    fill(tmp_path, 50)
    (tmp_path / FOLDER).write_text("not a folder")
    for i in range(KEEP + 2):  # damaged again at every start: the copies stay bounded there too
        garbage_header(tmp_path / "outbox.db", seed=i)
        with Outbox(tmp_path, recover=True, clock=lambda i=i: 1_800_000_000.0 + i) as box:
            assert box.fault is None, box.fault
            [report] = box.salvage()
            assert report.quarantined is not None and report.quarantined.parent == tmp_path
            assert stat.S_IMODE(report.quarantined.stat().st_mode) == 0o600
            assert box.append_event(fields(f"n{i}"), TOPIC).seq > 50
    assert len(list(tmp_path.glob("outbox-quarantined-*.db"))) == KEEP


@pytest.mark.parametrize("size", [1, 100, 511])
def test_a_stats_db_cut_to_a_few_bytes_is_damage_not_a_fresh_day(tmp_path: Path, size: int) -> None:
    """SQLite would open it as an empty database: the day's counts gone without a word."""
    with DailyStats(tmp_path) as stats:
        stats.record("walk_in", {}, test=False)
    os.truncate(tmp_path / "stats.db", size)
    fresh, damage, fault = open_stats(tmp_path)
    with fresh:
        assert fault is None and damage is not None and "truncated" in damage.reason
        assert damage.quarantined is not None and damage.quarantined.stat().st_size == size


def test_state_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with Outbox(tmp_path) as box, DailyStats(tmp_path) as stats:
            box.append_event(fields(1), TOPIC)
            stats.record("walk_in", {}, test=False)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir() if p.is_file()}
    finally:
        os.umask(old)
    assert modes["outbox.db"] == 0o640 and modes["outbox.db-wal"] == 0o640
    assert modes["stats.db"] == 0o640 and modes["stats.db-wal"] == 0o640
    assert modes["seq.lease"] == 0o600


def test_a_state_dir_the_kiosk_creates_under_umask_000_is_not_world_writable(tmp_path: Path) -> None:
    """A 0777 state_dir would let any local user swap outbox.db whatever the files' own modes."""
    state = tmp_path / "state"
    old = os.umask(0)
    try:
        with Outbox(state) as box, DailyStats(state) as stats:
            box.append_event(fields(1), TOPIC)
            stats.record("walk_in", {}, test=False)
        garbage_header(state / "outbox.db")
        with Outbox(state, recover=True) as box:
            [report] = box.salvage()
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == 0o750
    modes = {p.relative_to(state).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in state.rglob("*")}
    assert modes["outbox.db"] == modes["stats.db"] == 0o640 and modes["seq.lease"] == 0o600
    assert report.quarantined is not None and modes[f"quarantine/{report.quarantined.name}"] == 0o600
    assert modes["quarantine"] == 0o700


def test_a_runtime_corruption_is_damage_not_a_full_disk(tmp_path: Path) -> None:
    fill(tmp_path, 300)
    with Outbox(tmp_path, recover=True) as box:
        db = tmp_path / "outbox.db"
        with db.open("r+b") as f:  # the card fails under the running kiosk: pages go bad
            f.seek(8 * 4096)
            f.write(random.Random(3).randbytes(db.stat().st_size - 8 * 4096))
        assert box._conn is not None
        box._conn.execute("PRAGMA shrink_memory")  # no page left in SQLite's cache
        with pytest.raises(StorageDamaged):
            for i in range(5):
                box.append_event(fields(f"r{i}"), TOPIC)
        assert box.fault_kind == "damaged", box.fault
        assert box.pending(10) == []  # faulted: nothing read from the broken file
        assert box.recover() and box.fault is None
        [report] = box.salvage()
        assert "malformed" in report.reason and report.missing is not None and report.missing[1] >= 300
        assert box.append_event(fields("next"), TOPIC).seq > 305


def test_missing_range_starts_after_the_first_unbroken_run() -> None:
    assert missing_range({5, 6, 7, 9}, 12, floor=5) == (8, 12)
    assert missing_range({5, 6, 7, 9}, 12) == (1, 12)  # below the purge mark of the file, or 1
    assert missing_range(set(), 3) == (1, 3)
    assert missing_range({1, 2, 3}, 3) is None
    assert missing_range(set(), 0) is None
