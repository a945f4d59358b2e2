"""The event writer while storage fails: seq at once, alarms handed to the uplink's memory queue,
other events kept in order in a bounded queue (drops counted), all written once storage is back.

A real outbox made unusable the way a missing partition makes it (its state_dir is a file), then
usable again; no broker here: what would be published is what the memory queue holds.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from safehouse.device.core.effects import Emit
from safehouse.device.core.events import Event
from safehouse.device.runtime.event_writer import MEMORY_CAP, EventWriter
from safehouse.device.runtime.storage_recovery import take_back_left_alarms
from safehouse.services.alarm_spool import AlarmSpool
from safehouse.services.memory_alarms import MemoryAlarms
from safehouse.services.outbox import Outbox

TOPIC = "safehouse/v1/p/K/events"


def make_fields(event_id: str, type_: str, code: int | None, test: bool,
                data: dict[str, object]) -> dict[str, object]:
    return {"device_id": "K", "precinct": "p", "boot_id": "b", "event_id": event_id, "type": type_,
            "code": code, "ts": "2026-11-28T00:00:00.000Z", "clock_synced": True, "mono": 1.0,
            "test": test, "data": data}


def test_while_storage_is_out_alarms_go_to_memory_others_wait_bounded_and_all_land_on_disk(
        tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("the partition is not mounted")
    box = Outbox(blocker, recover=True, lease_dirs=[tmp_path / "run"])
    assert box.fault_kind == "unavailable"
    seen: list[Event] = []
    writer = EventWriter(box, TOPIC, make_fields, listeners=[seen.append], rejections=Counter())
    writer.add(Emit("alarm-1", "panic", 120))
    for i in range(MEMORY_CAP + 5):
        writer.add(Emit(f"walk-{i}", "walk_in", None))
    writer.add(Emit("alarm-2", "panic", 120))
    assert not writer.flush()  # nothing durable yet
    assert [e.seq for e in seen] == list(range(1, MEMORY_CAP + 8))  # seq at once, in order
    assert writer.dropped == 5 and writer.rejections["memory_dropped"] == 5
    assert writer.pending == MEMORY_CAP + 2  # both alarms kept, the 5 oldest others dropped
    assert [m.event_id for m in writer.memory.unsent(set())] == ["alarm-1", "alarm-2"]
    assert writer.record_of("alarm-1")[0] == "memory_only"
    writer.memory.published("alarm-1")
    writer.memory.acked("alarm-1")  # the broker acknowledged it while the disk was out
    assert writer.record_of("alarm-1")[0] == "delivered"
    box.close()

    blocker.unlink()  # the partition is back
    box = Outbox(blocker, recover=True, lease_dirs=[tmp_path / "run"])
    writer._sink = box  # the daemon's outbox recovers in place; here a new one stands for it
    assert writer.flush() and writer.pending == 0
    stored = {e.event_id: e.seq for e in box.events()}
    assert stored["alarm-1"] == 1 and stored["alarm-2"] == MEMORY_CAP + 7
    assert "walk-0" not in stored and stored["walk-5"] == 7
    # the lease says seqs were issued that outbox.db never held: reported (storage_damaged), and
    # the drain waits for that (empty) salvage
    assert box.pending(2) == [] and box.salvage_due()
    [report] = box.salvage()
    assert report.quarantined is None and report.missing is not None
    assert [r.event_id for r in box.pending(2)] == ["walk-5", "walk-6"]  # alarm-1 stored as delivered
    assert writer.record_of("alarm-2")[0] == "durable"
    assert box.append_event(make_fields("after", "walk_in", None, False, {}), TOPIC).seq > MEMORY_CAP + 7
    box.close()


# --- issue 18.1: an event that can never be written never blocks the ones behind it ------------

def test_an_event_that_cannot_be_encoded_is_repaired_counted_and_never_blocks_later_alarms(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A lone surrogate (a stray byte from argv) in an ack's data used to keep that event at the
    head of the queue for ever: every later alarm stayed in memory, unsent."""
    box = Outbox(tmp_path / "state", recover=True, lease_dirs=[tmp_path / "run"])
    writer = EventWriter(box, TOPIC, make_fields, rejections=Counter())
    writer.add(Emit("ack-1", "ack", None, data={"by": "tech\udcff", "k\ud800": ["x\udc00"]}))
    writer.add(Emit("alarm-1", "panic", 120))
    with caplog.at_level(logging.CRITICAL):
        assert writer.flush() and writer.pending == 0
    assert writer.rejections["unwritable_event"] == 1 and writer.unsettled() == []
    stored = {e.event_id: e for e in box.events()}
    assert [e.seq for e in box.events()] == [1, 2]  # the seq stays gap-free
    assert stored["alarm-1"].type == "panic" and writer.record_of("alarm-1")[0] == "durable"
    repaired = stored["ack-1"].data
    assert repaired["by"] == "tech\ufffd" and repaired["k\ufffd"] == ["x\ufffd"]
    assert "not valid Unicode" in repaired["repaired"]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "ack-1" in line and "\\udcff" in line  # the original, quoted in ASCII
    box.close()


class Refusing:
    """A real outbox that refuses some events for a reason that is not storage (a bug, say)."""

    def __init__(self, box: Outbox, refused: set[str]) -> None:
        self.box, self.refused = box, refused

    def __getattr__(self, name: str) -> Any:
        return getattr(self.box, name)

    def store(self, event: Event, topic: str, *, delivered: bool = False) -> Event:
        if event.event_id in self.refused:
            raise ValueError(f"cannot store {event.event_id}")
        return self.box.store(event, topic, delivered=delivered)


def test_an_event_refused_for_a_reason_other_than_storage_is_set_aside_and_the_rest_written(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox(tmp_path / "state", recover=True, lease_dirs=[tmp_path / "run"])
    writer = EventWriter(Refusing(box, {"walk-1", "alarm-1"}), TOPIC, make_fields, rejections=Counter())
    for emit in (Emit("walk-1", "walk_in", None), Emit("alarm-1", "panic", 120),
                 Emit("alarm-2", "panic", 120)):
        writer.add(emit)
    with caplog.at_level(logging.CRITICAL):
        assert writer.flush() and writer.pending == 0
    assert writer.rejections["unwritable_event"] == 2
    assert [e.event_id for e in box.events()] == ["alarm-2"]
    # the refused alarm still leaves (from memory); until the broker has it, a stop is not clean
    assert [m.event_id for m in writer.memory.unsent(set())] == ["alarm-1"]
    assert writer.unsettled() == ["walk-1", "alarm-1"]
    writer.memory.published("alarm-1")
    writer.memory.acked("alarm-1")
    assert writer.unsettled() == ["walk-1"]  # written nowhere, sent nowhere: never "stopped cleanly"
    assert sum("SET ASIDE" in r.getMessage() for r in caplog.records) == 2
    box.close()


def test_a_gap_a_write_reveals_is_reported_in_the_same_flush(tmp_path: Path) -> None:
    """Found by the power-cut loop: the outbox learns of a gap when it stores the event that
    skips ahead, after the flush has asked for reports; the report then waited for whatever
    input came next, and on an idle kiosk a stop came first. Now it is written at once."""
    box = Outbox(tmp_path / "state", recover=True, lease_dirs=[tmp_path / "run"])
    writer = EventWriter(box, TOPIC, make_fields, damage_sources=[box.take_damage])
    try:
        for i in range(2):  # issued and never stored (held in memory, lost): seq 1 and 2
            box.issue(make_fields(f"lost-{i}", "walk_in", None, False, {}))
        writer.add(Emit("after", "walk_in", None))
        assert writer.flush()
        reports = [e for e in box.events() if e.type == "storage_damaged"]
        assert [r.data["missing_seq"] for r in reports] == [[1, 2]], [e.summary() for e in box.events()]
    finally:
        box.close()


def test_an_alarm_left_in_the_wal_only_is_copied_into_the_runtime_folder_until_checkpointed(
        tmp_path: Path) -> None:
    """Found by the power-cut loop (seed 1, trial 66): on a full disk the checkpoint after an
    alarm failed, the alarm stayed in the WAL only, and a lost WAL took it. When the checkpoint
    cannot copy an alarm into the database file (here a reader holds it back, as a full disk or
    a technician's `safehouse events` can), the alarm is copied into the runtime folder, where
    the next start takes it back; it stays queued in its place (not sent ahead from memory)."""
    state, run = tmp_path / "state", tmp_path / "run"
    box = Outbox(state, recover=True, lease_dirs=[run])
    memory = MemoryAlarms()
    memory.keep_in(AlarmSpool(run))
    writer = EventWriter(box, TOPIC, make_fields, memory=memory)
    reader = sqlite3.connect(state / "outbox.db", isolation_level=None)
    copy = run / "unsent-alarm-alarm-1.json"
    try:
        writer.add(Emit("quiet", "walk_in", None))
        assert writer.flush()
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM messages").fetchall()  # a read snapshot held open
        writer.add(Emit("alarm-1", "panic", 120))
        assert writer.flush()
        assert copy.exists() and memory.unsent(set()) == []  # kept, not sent ahead of the queue
        assert writer.unsettled() == []  # it is on disk (in the WAL): a stop is still clean
        assert [r.event_id for r in box.pending(5)] == ["quiet", "alarm-1"]
        reader.execute("ROLLBACK")
        writer.add(Emit("alarm-2", "panic", 120))
        assert writer.flush()  # this checkpoint gets both into the file: the copy goes
        assert not copy.exists() and not (run / "unsent-alarm-alarm-2.json").exists()
    finally:
        reader.close()
        box.close()


def test_the_copy_of_an_alarm_a_lost_wal_took_is_taken_back_at_the_next_start(tmp_path: Path) -> None:
    """The other half: the WAL goes (deleted after a crash) with the alarm in it; the next start
    finds the copy in the runtime folder and the alarm is in the outbox again, same seq and id."""
    state, run = tmp_path / "state", tmp_path / "run"
    box = Outbox(state, recover=True, lease_dirs=[run])
    memory = MemoryAlarms()
    memory.keep_in(AlarmSpool(run))
    writer = EventWriter(box, TOPIC, make_fields, memory=memory)
    reader = sqlite3.connect(state / "outbox.db", isolation_level=None)
    writer.add(Emit("quiet", "walk_in", None))
    assert writer.flush()
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM messages").fetchall()
    alarm = str(uuid.uuid4())  # a real event id, as the core makes (the start checks it)
    writer.add(Emit(alarm, "panic", 120))
    assert writer.flush()
    seq = box.last_seq
    before = (state / "outbox.db").read_bytes()  # the database file without the alarm
    reader.close()
    box.close()
    (state / "outbox.db").write_bytes(before)  # as a kill -9 left it, and then the WAL was lost
    (state / "outbox.db-wal").unlink(missing_ok=True)
    again = Outbox(state, recover=True, lease_dirs=[run])
    try:
        take_back_left_alarms(MemoryAlarms(), again, run, topic=TOPIC, device_id="K", precinct="p")
        assert {e.event_id: e.seq for e in again.events()}.get(alarm) == seq
    finally:
        again.close()
