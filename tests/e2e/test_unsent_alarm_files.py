"""Unsent-alarm files in the runtime folder are read back as input: checked, never trusted.

An alarm the daemon could neither write nor deliver waits in ``unsent-alarm-{event_id}.json``
beside the control socket, so a crash does not lose it. What the next start finds there may be
planted, garbled or left by an earlier provisioning: it used to be trusted for its topic (sent
to another kiosk's events), its seq (``"x"`` broke `safehouse status`; one already stored
faulted the outbox and skipped resuming the open alarm) and its payload (published raw).

Real parts: the real daemon and CLI, a real mosquitto and an independent subscriber, a
size-limited tmpfs as state_dir made read-only as a failing card is (tests/rig/disk.py, root).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.disk import remount, tmpfs
from tests.rig.kiosk_config import write_config
from tests.rig.subscriber import Subscriber

ROOT = "safehouse/v1/test/SH-TEST-0001/"
OTHER = "safehouse/v1/test/SH-OTHER/events"


@pytest.fixture
def card(short_dir: Path) -> Iterator[Path]:
    with tmpfs(short_dir / "state", 4) as state:
        yield state


def kiosk(short_dir: Path, broker: Broker | None = None) -> DaemonProcess:
    extra = f'[broker]\nurl = "{broker.url}"\n' if broker is not None else ""
    return DaemonProcess(write_config(short_dir, extra + "[outbox]\nalarm_reserve_mb = 0\n"),
                         short_dir / "ctl.sock")


def left_alarm(short_dir: Path, card: Path, broker: Broker) -> tuple[DaemonProcess, str, Path]:
    """A real alarm only in the runtime folder: the card read-only, the broker away, kill -9."""
    broker.stop()
    proc = kiosk(short_dir, broker).start()
    assert proc.stop() == 0  # its files made: a busy mount cannot turn read-only
    remount(card, read_only=True)
    try:
        proc.start()
        answer = json.loads(proc.ok("press", "--json"))
        assert answer["record"] == "memory_only", answer
        proc.kill()
    finally:
        remount(card, read_only=False)
    [kept] = short_dir.glob("unsent-alarm-*.json")
    return proc, answer["alarm"]["event_id"], kept


def plant(folder: Path, event: dict[str, Any], **changes: Any) -> str:
    """A spool file holding ``event`` changed by ``changes`` (a new event_id unless given)."""
    body = {**event, "event_id": str(uuid.uuid4()), **changes}
    name = f"unsent-alarm-{body['event_id']}.json"
    (folder / name).write_text(json.dumps({"event_id": body["event_id"], "payload": json.dumps(body)}))
    return name


def events_seen(sub: Subscriber) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in sub.messages(ROOT + "events")]


def test_a_kept_alarm_goes_to_this_kiosks_events_whatever_topic_its_file_names(
        short_dir: Path, card: Path, broker: Broker) -> None:
    proc, event_id, kept = left_alarm(short_dir, card, broker)
    record = json.loads(kept.read_text())
    kept.write_text(json.dumps({**record, "topic": OTHER}))  # as an older firmware kept it, or planted
    broker.start()
    sub = broker.subscriber(["safehouse/#"])
    try:
        proc.start()
        [panic] = sub.wait_for(lambda m: m.topic == ROOT + "events" and m.json()["event_id"] == event_id,
                               timeout=15)
        assert panic.json()["type"] == "panic"
        proc.ok("resolve", "false_alarm")  # the kept alarm was resumed: a new press is a new alarm
        proc.ok("press")
        sub.wait_for(lambda m: m.topic == ROOT + "events" and m.json()["type"] == "panic", count=2,
                     timeout=15)
        assert sub.messages(OTHER) == []
    finally:
        proc.kill()
        sub.close()


def test_planted_and_garbled_files_are_set_aside_reported_and_never_stop_a_press(
        short_dir: Path, card: Path, broker: Broker) -> None:
    proc, event_id, kept = left_alarm(short_dir, card, broker)
    event = json.loads(json.loads(kept.read_text())["payload"])
    outside = short_dir / "outside.json"  # a valid alarm of this kiosk, reachable only by a link
    outside.write_text(json.dumps({"event_id": "x", "payload": json.dumps({**event, "seq": 3})}))
    link = short_dir / f"unsent-alarm-{uuid.uuid4()}.json"
    link.symlink_to(outside)
    bad = [plant(short_dir, event, seq="x"),  # broke `safehouse status`
           plant(short_dir, event, seq=2, device_id="SH-OTHER"),  # another kiosk's
           plant(short_dir, event, seq=4, data={"source": "\ud800"}),  # a lone surrogate
           plant(short_dir, event, seq=10**40),  # beyond any seq issued
           link.name]
    raw = f"unsent-alarm-{uuid.uuid4()}.json"
    (short_dir / raw).write_text(json.dumps({"event_id": raw[13:-5], "payload": "PANIC!!"}))  # not JSON
    garbage = f"unsent-alarm-{uuid.uuid4()}.json"
    (short_dir / garbage).write_bytes(b"\xff\x00{\"seq\": 1e999")
    bad += [raw, garbage]
    broker.start()
    sub = broker.subscriber(["safehouse/#"])
    try:
        proc.start()
        status = proc.status()  # answers: no seq "x" anywhere
        assert status["storage"]["fault"] is None and status["last_seq"] >= 100
        assert status["alarm"]["event_id"] == event_id  # the kept alarm, resumed
        proc.ok("resolve", "false_alarm")
        answer = json.loads(proc.ok("press", "--json"))
        assert answer["record"] == "durable", answer
        new = answer["alarm"]["event_id"]
        for wanted in (event_id, new):  # the real kept alarm and the new press both arrive
            sub.wait_for(lambda m, w=wanted: m.topic == ROOT + "events" and m.json()["event_id"] == w,
                         timeout=15)
        damaged = sub.wait_for(lambda m: m.topic == ROOT + "events" and m.json()["type"] == "storage_damaged",
                               count=len(bad) + 1, timeout=15)
        # and the seqs the read-only run issued from memory and never stored: a gap, reported too
        reported = {d.json()["data"]["file"] for d in damaged}
        assert reported == {*bad, "outbox.db"}, reported
        [gap] = [d.json()["data"] for d in damaged if d.json()["data"]["file"] == "outbox.db"]
        assert gap["missing_seq"] is not None and gap["quarantined"] is None, gap
        reasons = {d.json()["data"]["file"]: d.json()["data"]["reason"].split(":")[0] for d in damaged
                   if d.json()["data"]["file"] != "outbox.db"}
        assert reasons == {link.name: "link", bad[0]: "bad_seq", bad[1]: "other_kiosk", bad[2]: "not_unicode",
                           bad[3]: "bad_seq", raw: "not_json", garbage: "not_utf8"}
        assert all(e["device_id"] == "SH-TEST-0001" for e in events_seen(sub))  # nothing raw, nothing foreign
        assert [e["type"] for e in events_seen(sub)].count("panic") == 2
        assert sorted(p.name.split(".json.")[0] + ".json" for p in (short_dir / "quarantine").iterdir()) \
            == sorted(bad)  # moved aside, not deleted
        assert not list(short_dir.glob("unsent-alarm-*.json")) and outside.exists()
        assert sub.messages(OTHER) == [] and "SH-OTHER" not in "".join(m.topic for m in sub.messages())
    finally:
        proc.kill()
        sub.close()


def test_a_file_reusing_a_stored_seq_neither_faults_the_outbox_nor_stops_the_open_alarm(
        short_dir: Path) -> None:
    proc = kiosk(short_dir).start()
    try:
        alarm = json.loads(proc.ok("press", "--json"))["alarm"]["event_id"]
    finally:
        proc.kill()  # the alarm is open, on disk with seq 1
    [stored] = [e for e in proc.events() if e["event_id"] == alarm]
    twin = plant(short_dir, stored, seq=1)  # another event id claiming seq 1
    proc.start()
    try:
        status = proc.status()
        assert status["storage"]["fault"] is None, status["storage"]
        assert status["alarm"]["event_id"] == alarm, status["alarm"]  # resumed, not lost
        assert json.loads(proc.ok("press", "--json"))["record"] == "durable"
        assert [e["seq"] for e in proc.events()] == sorted({e["seq"] for e in proc.events()})
        assert (short_dir / "quarantine").is_dir() and not (short_dir / twin).exists()
        assert "seq_taken" in proc.log.read_text()
    finally:
        proc.kill()
