"""The durable outbox: gap-free seq through restarts and kill -9, drain order, quotas, the
read-only view the CLI uses, and the take-over of the interim events.jsonl."""

from __future__ import annotations

import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from safehouse.device.core.errors import EventLogError, SafehouseError
from safehouse.device.core.events import Event
from safehouse.services.outbox import (
    Lane,
    Outbox,
    OutboxFull,
    open_readonly_stats,
    read_events,
)
from safehouse.services.outbox_legacy import log_path
from tests.rig.clock import T0, FakeClock

TOPIC = "safehouse/v1/p/K/events"


def fields(n: int | str, type_: str = "door") -> dict[str, object]:
    return {"event_id": f"e{n}", "device_id": "K", "precinct": "p", "type": type_, "code": None,
            "ts": "2026-11-28T00:00:00.000Z", "clock_synced": True, "mono": 1.0, "boot_id": "b",
            "test": False, "data": {"n": n}}


def test_seq_is_gap_free_across_reopen_even_after_every_row_was_purged(tmp_path: Path) -> None:
    clock = FakeClock()
    with Outbox(tmp_path, clock=clock, delivered_retention_h=1) as box:
        assert [box.append_event(fields(i), TOPIC).seq for i in range(3)] == [1, 2, 3]
    with Outbox(tmp_path, clock=clock, delivered_retention_h=1) as box:
        assert box.last_seq == 3
        assert box.append_event(fields(3), TOPIC).seq == 4
        box.mark_delivered(r.id for r in box.pending(10))
        clock.t += 2 * 3600
        assert box.purge() == 4
        assert box.events() == []
    with Outbox(tmp_path, clock=clock) as box:
        assert box.append_event(fields(4), TOPIC).seq == 5
        assert box.stats().last_seq == 5


def test_retrying_an_event_id_does_not_give_it_a_second_seq(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        first = box.append_event(fields(1), TOPIC)
        again = box.append_event(fields(1), TOPIC)
        assert again == first
        assert box.append_event(fields(2), TOPIC).seq == 2
        assert [r.event_id for r in box.pending(10)] == ["e1", "e2"]


WRITER = """
import sys
from pathlib import Path
from safehouse.services.outbox import Outbox
box = Outbox(Path(sys.argv[1]))
run, n = sys.argv[2], 0
while True:
    event = box.append_event({"event_id": f"w{run}-{n}", "device_id": "K", "precinct": "p", "type": "panic",
                              "code": 120, "ts": "x", "clock_synced": False, "mono": 0.0, "boot_id": "b",
                              "test": False, "data": {}}, "t")
    print(event.seq, event.event_id, flush=True)  # reported only after append_event returned: durable
    n += 1
"""


def test_kill_9_never_loses_an_appended_event_nor_leaves_a_gap(tmp_path: Path) -> None:
    reported: dict[int, str] = {}
    for run in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(run)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(20 + 7 * run)]  # killed mid-stream
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        for line in lines + out.splitlines():
            if line.strip():
                seq, event_id = line.split()
                reported[int(seq)] = event_id
    # the CLI's read-only view works on the outbox a killed daemon left behind
    seen = {e.seq: e.event_id for e in read_events(tmp_path)}
    assert list(seen) == list(range(1, len(seen) + 1))
    assert reported.items() <= seen.items()
    with Outbox(tmp_path) as box:
        stored = box.events()
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
        assert reported.items() <= {e.seq: e.event_id for e in stored}.items()
        assert box.append_event(fields("after"), TOPIC).seq == len(stored) + 1


def test_drains_events_then_evidence_then_telemetry_fifo_within_each(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        box.append(Lane.TELEMETRY, "tel", b"t1")
        box.append(Lane.EVIDENCE, "ev/x/snap", b"e1", key="x/snap")
        box.append_event(fields(1), TOPIC)
        box.append(Lane.TELEMETRY, "tel", b"t2", retain=True)
        box.append_event(fields(2, "panic"), TOPIC)
        box.append(Lane.EVIDENCE, "ev/x/audio", b"e2", key="x/audio")
        rows = box.pending(10)
        assert [r.lane for r in rows] == [Lane.EVENTS] * 2 + [Lane.EVIDENCE] * 2 + [Lane.TELEMETRY] * 2
        assert [r.payload for r in rows[2:]] == [b"e1", b"e2", b"t1", b"t2"]
        assert [(r.seq, r.event_id) for r in rows[:2]] == [(1, "e1"), (2, "e2")]
        assert Event.from_json(rows[0].payload.decode()).seq == 1
        assert rows[0].topic == TOPIC and rows[5].retain and not rows[4].retain
        assert box.pending(2) == rows[:2]

        box.mark_delivered([rows[0].id, rows[1].id])
        box.mark_delivered([rows[0].id])  # a second PUBACK changes nothing
        assert box.pending(10) == rows[2:]
        assert box.stats().depth == {"events": 0, "evidence": 2, "telemetry": 2}


def test_an_alarm_queued_while_others_are_in_flight_is_sent_next(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        for i in range(3):
            box.append(Lane.TELEMETRY, "tel", b"t%d" % i)
        in_flight = {r.id for r in box.pending(2)}
        alarm = box.append_event(fields(1, "panic"), TOPIC)
        nxt = box.pending(2, exclude=in_flight)
        assert [r.event_id for r in nxt] == [alarm.event_id, None]
        assert nxt[1].payload == b"t2"
        assert box.pending(10, exclude=in_flight | {nxt[0].id, nxt[1].id}) == []


def test_delivered_rows_are_kept_for_the_retention_then_purged(tmp_path: Path) -> None:
    clock = FakeClock()
    with Outbox(tmp_path, clock=clock, delivered_retention_h=72) as box:
        sent = box.append_event(fields(1), TOPIC)
        waiting = box.append_event(fields(2), TOPIC)
        box.mark_delivered([box.pending(1)[0].id])
        assert box.stats().last_delivery == T0
        clock.t += 71 * 3600
        assert box.purge() == 0
        assert box.events() == [sent, waiting]
        clock.t += 2 * 3600
        assert box.purge() == 1
        assert box.events() == [waiting]
        assert [r.event_id for r in box.pending(10)] == ["e2"]  # as old, but pending: never purged
        assert box.stats().oldest_pending_age_s == 73 * 3600


def test_delivered_rows_are_purged_without_being_asked(tmp_path: Path) -> None:
    clock = FakeClock()
    with Outbox(tmp_path, clock=clock, delivered_retention_h=1) as box:
        box.append_event(fields(1), TOPIC)
        box.mark_delivered([box.pending(1)[0].id])
        clock.t += 2 * 3600
        box.append_event(fields(2), TOPIC)
        box.mark_delivered([box.pending(1)[0].id])
        assert [e.event_id for e in box.events()] == ["e2"]


def test_telemetry_keeps_only_the_newest_pending_messages(tmp_path: Path) -> None:
    with Outbox(tmp_path, telemetry_keep=3) as box:
        box.append_event(fields(1), TOPIC)
        for i in range(5):
            box.append(Lane.TELEMETRY, "tel", b"t%d" % i)
        assert [r.payload for r in box.pending(10) if r.lane is Lane.TELEMETRY] == [b"t2", b"t3", b"t4"]
        assert box.stats().dropped == {"events": 0, "telemetry": 2}
        assert box.stats().depth["events"] == 1
    assert (stats := open_readonly_stats(tmp_path)) is not None and stats.dropped["telemetry"] == 2


def test_events_cap_refuses_non_alarms_but_always_stores_alarms(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="safehouse.services.outbox")
    with Outbox(tmp_path, events_cap=10) as box:
        for i in range(8):
            box.append_event(fields(i), TOPIC)
        assert not box.near_full and not caplog.records
        box.append_event(fields(8), TOPIC)
        assert box.near_full and box.stats().near_full
        box.append_event(fields(9), TOPIC)
        assert len([r for r in caplog.records if "nearly full" in r.getMessage()]) == 1

        with pytest.raises(OutboxFull) as refused:
            box.append_event(fields(10), TOPIC)
        assert isinstance(refused.value, SafehouseError) and isinstance(refused.value, OSError)
        assert str(box.path) in str(refused.value) and "cap 10" in str(refused.value)
        assert box.append_event(fields(11, "panic"), TOPIC).seq == 11  # the refused one took no seq
        assert box.append_event(fields(12, "duress"), TOPIC).seq == 12
        assert box.stats().dropped["events"] == 1 and box.stats().depth["events"] == 12

        box.mark_delivered(r.id for r in box.pending(5))
        assert not box.near_full
        assert box.append_event(fields(13), TOPIC).seq == 13


def test_evidence_file_rows_are_read_when_sent_and_a_missing_file_never_blocks(tmp_path: Path) -> None:
    snap, gone = tmp_path / "snap.jpg", tmp_path / "gone.wav"
    snap.write_bytes(b"JPEG")
    with Outbox(tmp_path / "state") as box:
        box.append_file("ev/1/gone", gone, "1/gone")
        box.append_file("ev/1/snap", snap, "1/snap")
        assert box.append_file("ev/1/snap", snap, "1/snap") == box.append_file("ev/1/snap", snap, "1/snap")
        box.append(Lane.TELEMETRY, "tel", b"t")
        rows = box.pending(1)
        assert [(r.topic, r.payload, r.key) for r in rows] == [("ev/1/snap", b"JPEG", "1/snap")]
        assert [r.topic for r in box.pending(10)] == ["ev/1/snap", "tel"]
        assert box.stats().depth["evidence"] == 1


@contextmanager
def following(state_dir: Path) -> Iterator[queue.Queue[Event]]:
    """What `events --follow` sees: read_events(follow=True) on a thread, its events on a queue.

    On leaving, the follower is stopped and must have ended (a follow that ignores stop hangs the CLI).
    """
    stop, got = threading.Event(), queue.Queue[Event]()

    def follow() -> None:
        for event in read_events(state_dir, follow=True, stop=stop, poll=0.02):
            got.put(event)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        yield got
    finally:
        stop.set()
        reader.join(timeout=5)
    assert not reader.is_alive()


def test_the_read_only_view_follows_a_writing_daemon(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        for i in range(3):
            box.append_event(fields(i), TOPIC)
        assert [e.event_id for e in read_events(tmp_path)] == ["e0", "e1", "e2"]
        with following(tmp_path) as got:
            assert [got.get(timeout=5).seq for _ in range(3)] == [1, 2, 3]
            box.append_event(fields(3), TOPIC)
            assert got.get(timeout=5).event_id == "e3"
        stats = open_readonly_stats(tmp_path)
        assert stats is not None and stats.depth["events"] == 4 and stats.last_seq == 4


def test_the_read_only_view_of_a_stopped_daemon_creates_no_file(tmp_path: Path) -> None:
    assert open_readonly_stats(tmp_path) is None
    with Outbox(tmp_path) as box:
        box.append_event(fields(1), TOPIC)
    before = sorted(os.listdir(tmp_path))
    assert [e.seq for e in read_events(tmp_path)] == [1]
    stats = open_readonly_stats(tmp_path)
    assert stats is not None and stats.depth["events"] == 1 and stats.last_seq == 1
    assert sorted(os.listdir(tmp_path)) == before  # no -wal/-shm owned by the CLI's user


def test_following_a_stopped_daemon_shows_events_once_it_starts_again(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        box.append_event(fields(1), TOPIC)
    with following(tmp_path) as got:
        assert got.get(timeout=5).seq == 1
        with Outbox(tmp_path) as box:
            box.append_event(fields(2), TOPIC)
            assert got.get(timeout=5).seq == 2


def test_a_field_upgrade_takes_over_the_old_event_log(tmp_path: Path) -> None:
    old = [Event(seq=i + 1, **fields(i, "panic")) for i in range(3)]
    log_path(tmp_path).write_text("".join(e.to_json() + "\n" for e in old), encoding="utf-8")
    assert [e.seq for e in read_events(tmp_path)] == [1, 2, 3]  # CLI before the daemon's first start
    with Outbox(tmp_path) as box:
        assert box.events() == old
        rows = box.pending(10)
        assert [(r.seq, r.event_id, r.topic) for r in rows] == [(1, "e0", TOPIC), (2, "e1", TOPIC),
                                                               (3, "e2", TOPIC)]
        assert box.append_event(fields(3), TOPIC).seq == 4
    assert not (tmp_path / "events.jsonl").exists() and (tmp_path / "events.jsonl.imported").exists()
    with Outbox(tmp_path) as box:
        assert [e.seq for e in box.events()] == [1, 2, 3, 4]


def test_unusable_state_is_reported_with_the_file_to_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(EventLogError, match="not-a-dir"):
        Outbox(blocker)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "outbox.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(EventLogError, match=r"outbox\.db.*quarantined and salvaged"):
        Outbox(corrupt)
    box = Outbox(tmp_path / "ok")
    box.close()
    box.close()
    with pytest.raises(EventLogError, match="closed"):
        box.append_event(fields(1), TOPIC)
    with Outbox(tmp_path / "ok") as box, pytest.raises(ValueError, match="append_event"):
        box.append(Lane.EVENTS, "t", b"x")


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        box.append_event(fields(1), TOPIC)
        conn = sqlite3.connect(box.path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()
