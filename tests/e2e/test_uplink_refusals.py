"""The uplink against a mosquitto whose ACL refuses some topics: what is set aside and what is kept.

A real Uplink drains a real Outbox (and a real memory queue) to a real mosquitto that takes
anonymous clients but grants them only ``safehouse/v1/t/SH-1/#``. Over MQTT 5 it answers a
publish outside that with PUBACK 135 (Not authorized) and keeps the connection.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safehouse.device.core.events import Event
from safehouse.services.alarm_spool import AlarmSpool
from safehouse.services.memory_alarms import MemoryAlarms
from safehouse.services.outbox import Outbox
from safehouse.services.topics import Topics
from safehouse.services.uplink import LinkSettings, Uplink
from tests.rig.broker import Broker, mosquitto_path
from tests.rig.wait import wait_for

MINE, OLD = Topics("t", "SH-1"), Topics("t", "SH-OLD")


@pytest.fixture
def acl_broker(mqtt_dir: Path) -> Iterator[Broker]:
    acl = mqtt_dir / "anonymous.acl"
    acl.write_text(f"topic readwrite {MINE.root}#\ntopic read safehouse/#\n")
    with Broker(mqtt_dir / "b", acl_file=acl, mosquitto=mosquitto_path()) as running:
        yield running


def panic(device: str = "SH-1") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "device_id": device, "precinct": "t", "type": "panic",
            "code": 120, "ts": "2026-06-01T12:00:00.000Z", "clock_synced": True, "mono": 1.0,
            "boot_id": "test", "test": False, "data": {}}


def uplink(broker: Broker, outbox: Outbox, topics: Topics = MINE) -> Uplink:
    link = Uplink(LinkSettings(url=broker.url, client_id=topics.device_id), topics, outbox,
                  birth=lambda: b'{"state":"online"}', offline=lambda _r: b'{"state":"offline"}',
                  on_command=lambda _m: None, on_alliance=lambda _m: None)
    link.memory = MemoryAlarms()
    return link


def test_a_refused_row_is_given_up_with_its_reason_and_the_alarm_behind_it_is_delivered(
        acl_broker: Broker, tmp_path: Path) -> None:
    sub = acl_broker.subscriber(["safehouse/#"])
    outbox = Outbox(tmp_path / "state")
    left = outbox.append_event(panic("SH-OLD"), OLD.events)  # queued under an earlier provisioning
    mine = outbox.append_event(panic(), MINE.events)
    link = uplink(acl_broker, outbox)
    try:
        link.start()
        [got] = sub.wait_for(MINE.events, timeout=10)
        assert json.loads(got.payload)["event_id"] == mine.event_id
        assert wait_for(lambda: outbox.stats().depth["events"] == 0, 10.0)
        view = link.view()
        assert view["state"] == "online" and view["refused"] == 1 and view["reason"] == "", view
        assert OLD.events in view["last_refused"] and "Not authorized" in view["last_refused"]
        later = outbox.append_event(panic(), MINE.events)
        link.wake(urgent=True)
        sub.wait_for(lambda m: json.loads(m.payload).get("event_id") == later.event_id, timeout=10)
        assert link.view()["refused"] == 1  # given up once, never sent again
        assert sub.messages(OLD.events) == [] and left.seq < mine.seq
    finally:
        link.close()
        outbox.close()
    with sqlite3.connect(tmp_path / "state" / "outbox.db") as db:
        [(delivered, error)] = db.execute("SELECT delivered, error FROM messages WHERE event_id = ?",
                                          (left.event_id,)).fetchall()
    assert delivered is not None and "Not authorized" in error and OLD.events in error


def test_a_refused_alarm_held_in_memory_is_set_aside_and_never_waited_for(
        acl_broker: Broker, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "state")
    link = uplink(acl_broker, outbox)
    assert link.memory is not None
    spool = AlarmSpool(tmp_path)
    link.memory.keep_in(spool)
    refused, mine = Event(seq=1, **panic()), Event(seq=2, **panic())
    link.memory.add(refused.event_id, OLD.events, refused.to_json().encode())  # a topic the ACL refuses
    link.memory.add(mine.event_id, MINE.events, mine.to_json().encode())
    sub = acl_broker.subscriber([MINE.events])
    try:
        link.start()
        sub.wait_for(MINE.events, timeout=10)
        assert wait_for(lambda: link.view()["refused"] == 1, 10.0)
        assert link.memory.waiting() == 0 and link.memory.wait_settled(0.1)  # nothing left to wait for
        assert link.memory.unsettled() == [refused.event_id]  # still neither on disk nor delivered
        assert not spool.path_of(refused.event_id).exists()
        assert [p.name.split(".json.")[0] for p in (tmp_path / "quarantine").iterdir()] == [
            f"unsent-alarm-{refused.event_id}"]
        assert link.view()["state"] == "online"
    finally:
        link.close()
        outbox.close()


def test_a_kiosk_the_broker_refuses_outright_keeps_its_rows_and_says_why(
        acl_broker: Broker, tmp_path: Path) -> None:
    """Its own status refused too: the certificate or the ACL is wrong, not one old topic. Giving
    the rows up would lose every alarm for nothing: they wait, and the link says why."""
    outbox = Outbox(tmp_path / "state")
    outbox.append_event(panic("SH-OLD"), OLD.events)
    link = uplink(acl_broker, outbox, OLD)
    try:
        link.start()
        deadline = time.monotonic() + 10
        view = link.view()
        while "refused" not in view["reason"] and time.monotonic() < deadline:
            time.sleep(0.05)
            view = link.view()
        assert "own status" in view["reason"] and "certificate" in view["reason"], view
        assert view["refused"] == 0 and outbox.stats().depth["events"] == 1
    finally:
        link.close()
        outbox.close()


def test_a_refused_status_alone_is_reported_and_events_still_flow(mqtt_dir: Path, tmp_path: Path) -> None:
    acl = mqtt_dir / "events-only.acl"
    acl.write_text(f"topic write {MINE.events}\ntopic read safehouse/#\n")
    with Broker(mqtt_dir / "c", acl_file=acl, mosquitto=mosquitto_path()) as broker:
        sub = broker.subscriber([MINE.events])
        outbox = Outbox(tmp_path / "state")
        mine = outbox.append_event(panic(), MINE.events)
        link = uplink(broker, outbox)
        try:
            link.start()
            [got] = sub.wait_for(MINE.events, timeout=10)
            assert json.loads(got.payload)["event_id"] == mine.event_id
            assert wait_for(lambda: "status" in link.view()["reason"], 10.0)
            assert link.view()["state"] == "online" and "broker ACL" in link.view()["reason"]
        finally:
            link.close()
            outbox.close()
            sub.close()
