"""Seq never names two events, and every gap is reported, whatever befell the lease and the outbox.

Real files damaged as issue 18 found them: a garbled, forged, truncated or linked ``seq.lease``
(its runtime copy gone, as after a power cut), a WAL deleted after ``kill -9``, an outbox cut to
nothing. Each case opens the outbox as the daemon does (``recover=True``) and checks what the
precinct would see: the next seq above every seq that may have been issued, and a damage report
naming the range that may be missing.
"""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from safehouse.services.outbox import Outbox
from safehouse.services.outbox_salvage import Damage
from safehouse.services.seq_lease import SeqLease
from tests.rig.disk import garbage_header, tmpfs

TOPIC = "safehouse/v1/p/K/events"


def fields(n: int | str, type_: str = "panic") -> dict[str, object]:
    return {"event_id": f"e{n}", "device_id": "K", "precinct": "p", "type": type_, "code": 120,
            "ts": "2026-11-28T00:00:00.000Z", "clock_synced": True, "mono": 1.0, "boot_id": "b",
            "test": False, "data": {"pad": "x" * 200}}


WRITER = """
import os, sys
from pathlib import Path
from safehouse.services.outbox import Outbox
box = Outbox(Path(sys.argv[1]))
for i in range(1, int(sys.argv[2]) + 1):
    box.append_event({"event_id": f"k{i}", "device_id": "K", "precinct": "p", "type": "panic", "code": 120,
                      "ts": "x", "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False,
                      "data": {"pad": "y" * 200}}, "t")
    if i == int(sys.argv[3]):
        box.checkpoint()  # the first events reach the database file itself, the rest only the WAL
os.kill(os.getpid(), 9)
"""


def killed_after(state: Path, n: int, checkpoint_at: int = 0) -> None:
    proc = subprocess.run([sys.executable, "-c", WRITER, str(state), str(n), str(checkpoint_at)],
                          check=False, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (state / "outbox.db-wal").exists()


def garble_lease(state: Path, seed: int = 1) -> None:
    (state / "seq.lease").write_bytes(random.Random(seed).randbytes(64))


def forged_lease(state: Path, high: int, generation: int = 7, flags: int = 0) -> None:
    """A lease whose slots check out (valid CRC) but hold a number no kiosk could have reached."""
    head = struct.pack("<QQI", generation, high, flags)
    slot = struct.pack("<QQII8x", generation, high, flags, zlib.crc32(head))
    (state / "seq.lease").write_bytes(slot + slot)


def reports(box: Outbox) -> list[Damage]:
    """Everything the kiosk would send as storage_damaged once its salvage is done."""
    box.salvage()
    return box.take_damage()


def covered(found: list[Damage], seqs: Iterable[int]) -> bool:
    ranges = [d.missing for d in found if d.missing is not None]
    return all(any(lo <= s <= hi for lo, hi in ranges) for s in seqs)


def test_a_double_fault_never_issues_a_seq_again_and_reports_what_may_be_missing(tmp_path: Path) -> None:
    """Issue 18 #3: kill -9, the WAL deleted, seq.lease garbled, its runtime copy gone: seq 10
    was issued again and nothing was reported."""
    killed_after(tmp_path, 40, checkpoint_at=9)
    (tmp_path / "outbox.db-wal").unlink()
    garble_lease(tmp_path)
    with Outbox(tmp_path, recover=True, lease_dirs=[tmp_path / "run"]) as box:
        assert box.append_event(fields("after"), TOPIC).seq > 40
        found = reports(box)
        assert {d.file for d in found} >= {"outbox.db", "seq.lease"}
        assert covered(found, range(10, 41))


@pytest.mark.parametrize("cut", ["header", "zero", "half"])
def test_a_garbled_lease_and_a_damaged_outbox_never_fault_the_outbox(tmp_path: Path, cut: str) -> None:
    """Issue 18 #4: salvaged rows took the seqs the fresh outbox then issued: every write failed
    with UNIQUE constraint failed: messages.seq, for ever; truncated, seq restarted at 1."""
    with Outbox(tmp_path) as box:
        for i in range(1, 301):
            box.append_event(fields(i), TOPIC)
    garble_lease(tmp_path)
    db = tmp_path / "outbox.db"
    if cut == "header":
        garbage_header(db)
    else:
        os.truncate(db, 0 if cut == "zero" else db.stat().st_size // 2)
    with Outbox(tmp_path, recover=True) as box:
        first = box.append_event(fields("new"), TOPIC)
        assert first.seq > 300
        found = reports(box)
        assert box.fault is None
        later = [box.append_event(fields(f"later{i}"), TOPIC).seq for i in range(3)]
        assert box.fault is None and later == sorted(later) and later[0] > first.seq
        kept = {e.seq for e in box.events()}
        assert covered(found, [s for s in range(1, 301) if s not in kept])  # what was lost is reported
        if cut == "header":  # the pages behind a garbled header are all read
            assert [e.event_id for e in box.events()][:300] == [f"e{i}" for i in range(1, 301)]
        else:
            assert len(kept) < 300 and any(d.missing is not None for d in found)


def test_salvaged_rows_above_the_counter_never_fault_later_writes(tmp_path: Path) -> None:
    """Read in the code (issue 18 #4): adopt() raised the stored last seq, not the counter."""
    with Outbox(tmp_path) as box:
        box.append_event(fields(1), TOPIC)
        row = (7, 0, TOPIC, b'{"seq": 50}', None, 0, None, 1.0, "old-50", 50, "panic", None, None)
        assert box.adopt([row]) == 1
        assert box.append_event(fields(2), TOPIC).seq == 51
        assert box.fault is None


def test_a_seq_already_taken_costs_that_one_write_never_the_outbox(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        taken = box.append_event(fields(1), TOPIC)
        clash = box.issue(fields(2))
        stored = box.store(type(clash)(**{**clash.__dict__, "seq": taken.seq}), TOPIC)
        assert box.fault is None and stored.seq != taken.seq and stored.seq > clash.seq - 1
        assert box.append_event(fields(3), TOPIC).seq > stored.seq
        assert sorted(e.event_id for e in box.events()) == ["e1", "e2", "e3"]


@pytest.mark.parametrize("high", [2**64 - 5, 2**63 - 10, 2**53 + 1])
def test_a_forged_lease_is_damage_rebuilt_from_the_outbox(tmp_path: Path, high: int) -> None:
    """Issue 18 #6: high = 2^64-5 made the daemon exit at start (a systemd restart loop); with
    2^63-10 every alarm was memory-only after four."""
    with Outbox(tmp_path) as box:
        for i in range(1, 21):
            box.append_event(fields(i), TOPIC)
    forged_lease(tmp_path, high, flags=2)  # "issued from memory" too: the lease would be trusted
    with Outbox(tmp_path, recover=True) as box:
        seqs = [box.append_event(fields(f"n{i}"), TOPIC).seq for i in range(10)]
        assert box.fault is None and seqs == sorted(set(seqs)) and seqs[0] > 20
        assert seqs[-1] < 2**53  # every seq stays exact in JSON (JavaScript numbers)
        assert box.events(since_seq=max(0, box.last_seq - 500))  # boot_state's look-back
        [lease] = [d for d in reports(box) if d.file == "seq.lease"]
        assert "implausible" in lease.reason
    assert SeqLease([tmp_path]).high < 2**53


def test_a_linked_lease_is_refused_never_written_through(tmp_path: Path) -> None:
    """Issue 18 #8: a seq.lease symlink made the kiosk overwrite the first 64 bytes of its target."""
    state = tmp_path / "state"
    with Outbox(state) as box:
        box.append_event(fields(1), TOPIC)
    victim = tmp_path / "victim.conf"
    victim.write_bytes(b"precious " * 20)
    (state / "seq.lease").unlink()
    (state / "seq.lease").symlink_to(victim)
    with Outbox(state, recover=True) as box:
        assert box.append_event(fields(2), TOPIC).seq > 1
        [lease] = [d for d in reports(box) if d.file == "seq.lease"]
        assert "link" in lease.reason
    assert victim.read_bytes() == b"precious " * 20
    assert not (state / "seq.lease").is_symlink() and SeqLease([state]).found


@pytest.mark.parametrize("name", ["seq.lease", "outbox.db-wal", "outbox.db-shm"])
def test_a_fifo_in_place_of_a_state_file_never_hangs_the_start(tmp_path: Path, name: str) -> None:
    """A read of a planted FIFO blocks for ever: the kiosk would never start (and never alarm)."""
    killed_after(tmp_path, 5)  # an unclean stop: the WAL's tail is read before anything opens
    (tmp_path / name).unlink(missing_ok=True)
    os.mkfifo(tmp_path / name)
    code = ("import sys; from pathlib import Path; from safehouse.services.outbox import Outbox\n"
            "box = Outbox(Path(sys.argv[1]), recover=True); print(box.append_event("
            "{'event_id': 'x', 'device_id': 'K', 'precinct': 'p', 'type': 'panic', 'code': 120, 'ts': 'x',"
            " 'clock_synced': False, 'mono': 0.0, 'boot_id': 'b', 'test': False, 'data': {}}, 't').seq)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 1


MEMORY_WRITER = """
import os, sys
from pathlib import Path
from safehouse.services.outbox import Outbox
from tests.rig.disk import fill
state = Path(sys.argv[1])
box = Outbox(state, recover=True)
def event(i):
    return {"event_id": f"m{i}", "device_id": "K", "precinct": "p", "type": "resolved", "code": None,
            "ts": "x", "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False,
            "data": {"pad": "z" * 3000}}
box.append_event(event(0), "t")
fill(state / "runaway.log")
for i in range(1, 400):  # the disk fills under the kiosk: these are issued, held in memory
    issued = box.issue(event(i))
    try:
        box.store(issued, "t")
    except Exception:
        pass
print(box.last_seq, flush=True)
os.kill(os.getpid(), 9)
"""


def test_every_gap_left_by_a_power_cut_on_a_full_disk_is_reported(short_dir: Path) -> None:
    """Issue 18 #7: resolves held in memory died with kill -9; seq gaps appeared, never reported."""
    with tmpfs(short_dir / "state", 2) as state:
        for _cut in range(3):  # the same power cut again and again: each gap is reported
            done = subprocess.run([sys.executable, "-c", MEMORY_WRITER, str(state)], capture_output=True,
                                  text=True, timeout=60, check=False)
            assert done.returncode == -signal.SIGKILL, done.stderr
            issued = int(done.stdout)
            (state / "runaway.log").unlink()
            with Outbox(state, recover=True) as box:
                stored = {e.seq for e in box.events()}
                lost = [s for s in range(1, issued + 1) if s not in stored]
                assert lost, "the disk never filled: nothing to test"
                nxt = box.append_event(fields(f"after{_cut}"), TOPIC)
                assert nxt.seq > issued
                assert covered(reports(box), range(min(lost), issued + 1))


def test_a_report_outlives_a_kill_until_its_event_is_stored(tmp_path: Path) -> None:
    """A report only in memory died with the process: recorded in the outbox, it is sent again."""
    killed_after(tmp_path, 20)
    garble_lease(tmp_path)
    for _restart in range(2):  # killed (never closed) before the report's event was stored
        box = Outbox(tmp_path, recover=True)
        [lease] = [d for d in reports(box) if d.file == "seq.lease"]
        box.append_event(fields(f"after{_restart}"), TOPIC)
    with Outbox(tmp_path, recover=True) as box:
        [again] = reports(box)
        assert again.as_data() == lease.as_data()
        box.append_event({**fields("report", "storage_damaged"), "data": again.as_data()}, TOPIC)
    with Outbox(tmp_path, recover=True) as box:
        assert reports(box) == []


def test_a_lease_far_below_the_outboxs_own_mark_is_stale_and_not_believed(tmp_path: Path) -> None:
    """A state copy left behind (its writes went to the runtime copy only, then a reboot) looks
    sound but is older than what the outbox file itself says was issued."""
    with Outbox(tmp_path) as box:
        for i in range(1, 2501):  # the mark is raised as the lease nears it
            box.append_event(fields(i), TOPIC)
    forged_lease(tmp_path, 120)
    (tmp_path / "outbox.db-wal").unlink(missing_ok=True)
    with Outbox(tmp_path, recover=True) as box:
        assert box.append_event(fields("next"), TOPIC).seq > 2500
        [lease] = [d for d in reports(box) if d.file == "seq.lease"]
        assert "older than" in lease.reason
