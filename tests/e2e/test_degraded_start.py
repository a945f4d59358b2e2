"""A kiosk whose state files are damaged starts, takes a press and tells the precinct.

Real parts: the real daemon (`safehouse run`) and CLI, real SQLite files damaged on disk, a real
mosquitto and an independent subscriber standing in for the precinct. What each test asserts is
what the precinct sees: the panic arrives, its seq is above every seq issued before, a
``storage_damaged`` event (Contact ID 303) says how many events were salvaged and which seq
range may be missing, and the salvaged undelivered events arrive with their own seq and id.
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from safehouse.services.outbox import Outbox
from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.disk import garbage_header, garbage_page, truncate_half
from tests.rig.kiosk_config import write_config
from tests.rig.mqtt_message import Message

DEVICE = "SH-TEST-0001"
TOPIC = f"safehouse/v1/test/{DEVICE}/events"
EARLIER = 400  # undelivered events stored before the damage


def earlier_events(state: Path, n: int = EARLIER) -> dict[str, int]:
    """What a kiosk offline for a while holds: n undelivered events (a real outbox file)."""
    with Outbox(state) as box:
        return {f"old-{i}": box.append_event({"event_id": f"old-{i}", "device_id": DEVICE, "precinct": "test",
                              "type": "walk_in", "code": None, "ts": "2026-11-28T00:00:00.000Z",
                              "clock_synced": True, "mono": 1.0, "boot_id": "b", "test": False,
                              "data": {"note": "x" * 200}}, TOPIC).seq for i in range(1, n + 1)}


DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbage_page": lambda state: garbage_page(state / "outbox.db"),
    "truncated": lambda state: truncate_half(state / "outbox.db"),
    "garbage_header": lambda state: garbage_header(state / "outbox.db"),
    "cut_to_1_byte": lambda state: os.truncate(state / "outbox.db", 1),  # SQLite: an empty database
    "stats_garbage": lambda state: garbage_header(state / "stats.db", seed=3),
}


def events(sub: object, predicate: Callable[[dict[str, object]], bool], timeout: float = 15.0,
           count: int = 1) -> list[dict[str, object]]:
    found: list[Message] = sub.wait_for(lambda m: predicate(m.json()), timeout=timeout,  # type: ignore[attr-defined]
                                        count=count)
    return [m.json() for m in found]


def start_press_stop(short_dir: Path, broker: Broker, *, kill: bool = False) -> DaemonProcess:
    """A first run that stores events (the precinct gets them) and then stops or is killed."""
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n')
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    proc.ok("press")
    proc.ok("resolve", "false_alarm")
    if kill:
        proc.kill()
    else:
        assert proc.stop() == 0
    return proc


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_state_file_is_quarantined_and_the_kiosk_still_raises_alarms(
        short_dir: Path, broker: Broker, damage: str) -> None:
    state = short_dir / "state"
    proc = start_press_stop(short_dir, broker)
    stored = earlier_events(state)  # the broker is not told about these: undelivered
    issued = max(stored.values())
    DAMAGE[damage](state)
    sub = broker.subscriber([TOPIC])
    try:
        proc.start()
        status = proc.status()
        answer = json.loads(proc.ok("press", "--json"))
        assert answer["accepted"] and answer["record"] in ("durable", "delivered"), answer
        [panic] = events(sub, lambda e: e.get("type") == "panic")
        assert int(panic["seq"]) > issued  # above every seq issued before the damage
        [report] = events(sub, lambda e: e.get("type") == "storage_damaged")
        assert report["code"] == 303
        data = report["data"]
        file = "stats.db" if damage == "stats_garbage" else "outbox.db"
        assert data["file"] == file and Path(data["quarantined"]).exists()
        assert oct(Path(data["quarantined"]).stat().st_mode & 0o777) == "0o600"
        if file == "outbox.db":
            assert data["salvaged_events"] > 0 or damage in ("truncated", "cut_to_1_byte")
            if data["missing_seq"] is not None:
                assert data["missing_seq"][1] >= EARLIER
            if damage == "cut_to_1_byte":  # nothing left to salvage: the report names every seq
                assert data["salvaged_events"] == 0 and data["missing_seq"] == [1, data["seq_high_water"]]
                assert data["seq_high_water"] >= EARLIER
            salvaged = [] if damage == "cut_to_1_byte" else events(
                sub, lambda e: str(e.get("event_id", "")).startswith("old-"),
                count=max(1, data["salvaged_events"] - 5))
            assert all(stored[str(e["event_id"])] == e["seq"] for e in salvaged)  # seq and id kept
        else:
            assert status["storage"]["fault"] is None  # quarantined, fresh counts: no lasting fault
        assert proc.stop() == 0
        assert "stopped cleanly" in proc.log.read_text()
    finally:
        proc.kill()
        sub.close()


def no_seq_conflicts(sub: object) -> None:
    by_seq: dict[int, str] = {}
    for m in sub.wait_for(lambda m: True, timeout=1):  # type: ignore[attr-defined]
        event = m.json()
        assert by_seq.setdefault(int(event["seq"]), event["event_id"]) == event["event_id"], event


@pytest.mark.parametrize("how", ["deleted", "garbled"])
def test_a_wal_lost_after_kill_9_never_makes_seq_go_back(short_dir: Path, broker: Broker, how: str) -> None:
    state = short_dir / "state"
    sub = broker.subscriber([TOPIC])
    proc = start_press_stop(short_dir, broker, kill=True)
    try:
        highest = max(int(e["seq"]) for e in events(sub, lambda e: e.get("type") == "resolved"))
        wal = state / "outbox.db-wal"
        assert wal.exists()
        if how == "deleted":
            wal.unlink()
        else:
            with wal.open("r+b") as f:
                f.write(random.Random(4).randbytes(64))  # the header and the first frame's
        proc.start()
        proc.ok("press")
        events(sub, lambda e: e.get("type") == "panic" and int(e["seq"]) > highest)
        [report] = events(sub, lambda e: e.get("type") == "storage_damaged")
        assert "wal" in str(report["data"]["reason"]).lower()
        assert report["data"]["missing_seq"] is None or report["data"]["missing_seq"][1] >= highest
        no_seq_conflicts(sub)
    finally:
        proc.stop(signal.SIGTERM)
        sub.close()
