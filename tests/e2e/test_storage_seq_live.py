"""What the precinct sees of seq after the faults of issue 18: never one seq for two events,
and every seq it will never receive named in a ``storage_damaged`` report.

Real parts: the daemon as a subprocess, its real files damaged between runs (a WAL deleted after
``kill -9``, a garbled or forged ``seq.lease``, its runtime copy gone as after a power cut, a
state partition that fills: a size-limited tmpfs, root), a real mosquitto and a subscriber that
stays on the events topic across every restart, as the precinct does.
"""

from __future__ import annotations

import json
import random
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.disk import fill, tmpfs
from tests.rig.kiosk_config import write_config
from tests.rig.subscriber import Subscriber

TOPIC = "safehouse/v1/test/SH-TEST-0001/events"


def kiosk(short_dir: Path, broker: Broker) -> DaemonProcess:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n[outbox]\nalarm_reserve_mb = 0\n')
    return DaemonProcess(config, short_dir / "ctl.sock")


def press(proc: DaemonProcess) -> dict[str, Any]:
    answer = dict(json.loads(proc.ok("press", "--json")))
    proc.ok("resolve", "false_alarm")
    return answer


def drained(proc: DaemonProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.status()["pending_events"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.status()["pending_events"] == 0


def seen(sub: Subscriber) -> list[dict[str, Any]]:
    return [m.json() for m in sub.wait_for(lambda m: True, timeout=1)]


def one_id_per_seq(events: list[dict[str, Any]]) -> dict[int, str]:
    by_seq: dict[int, str] = {}
    for event in events:
        assert by_seq.setdefault(int(event["seq"]), event["event_id"]) == event["event_id"], event
    return by_seq


def gaps(seqs: set[int]) -> Iterator[tuple[int, int]]:
    """The runs of seqs from 1 to the highest that never arrived, as (first, last)."""
    expected = 1
    for seq in sorted(seqs):
        if seq > expected:
            yield expected, seq - 1
        expected = seq + 1


def unreported(events: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Gaps the precinct was never told about (no storage_damaged missing_seq covers them)."""
    ranges = sorted(tuple(e["data"]["missing_seq"]) for e in events
                    if e["type"] == "storage_damaged" and e["data"].get("missing_seq"))
    left = []
    for first, last in gaps({int(e["seq"]) for e in events}):
        at = first
        for lo, hi in ranges:
            if lo <= at <= hi:
                at = hi + 1
        if at <= last:
            left.append((at, last))
    return left


def test_a_double_fault_never_reuses_a_seq_and_the_precinct_is_told(short_dir: Path, broker: Broker) -> None:
    """Issue 18 #3: kill -9, the WAL deleted, seq.lease garbled, its runtime copy gone: nothing
    was detected, no storage_damaged was sent and seq 10 was issued again."""
    sub = broker.subscriber([TOPIC])
    proc = kiosk(short_dir, broker).start()
    try:
        for _ in range(3):
            press(proc)  # each resolve is in the WAL only: the kiosk checkpoints after alarms
        drained(proc)
        before = seen(sub)
        proc.kill()
        state = short_dir / "state"
        (state / "outbox.db-wal").unlink()
        (state / "seq.lease").write_bytes(random.Random(4).randbytes(64))
        (short_dir / "seq.lease").unlink()  # the runtime copy: /run does not survive a power cut
        proc.start()
        after = press(proc)
        assert after["record"] == "durable", after
        sub.wait_for(lambda m: m.json().get("type") == "storage_damaged", timeout=15)
        drained(proc)
        events = before + seen(sub)
        one_id_per_seq(events)
        [panic] = [e for e in events if e["event_id"] == after["alarm"]["event_id"]]
        assert int(panic["seq"]) > max(int(e["seq"]) for e in before)
        assert unreported(events) == []
    finally:
        proc.kill()
        sub.close()


def forge_lease(path: Path, high: int) -> None:
    head = struct.pack("<QQI", 9, high, 2)  # valid CRC, "issued from memory": the lease would rule
    slot = struct.pack("<QQII8x", 9, high, 2, zlib.crc32(head))
    path.write_bytes(slot + slot)


@pytest.mark.parametrize("high", [2**64 - 5, 2**63 - 10])
@pytest.mark.parametrize("runtime_copy", ["kept", "gone"])
def test_a_forged_lease_never_stops_the_kiosk_and_is_reported(
        short_dir: Path, broker: Broker, high: int, runtime_copy: str) -> None:
    """Issue 18 #6: 2^64-5 made the daemon exit at start (a systemd restart loop); with 2^63-10
    every alarm was memory-only after four."""
    sub = broker.subscriber([TOPIC])
    proc = kiosk(short_dir, broker).start()
    try:
        press(proc)
        assert proc.stop() == 0
        forge_lease(short_dir / "state" / "seq.lease", high)
        if runtime_copy == "gone":
            (short_dir / "seq.lease").unlink()
        proc.start()
        answers = [press(proc) for _ in range(6)]
        assert [a["record"] for a in answers] == ["durable"] * 6, answers
        reports = sub.wait_for(lambda m: m.json().get("type") == "storage_damaged", timeout=15)
        [report] = {r.json()["event_id"]: r.json() for r in reports}.values()  # receivers de-duplicate
        assert report["data"]["file"] == "seq.lease" and "implausible" in report["data"]["reason"]
        drained(proc)
        events = seen(sub)
        one_id_per_seq(events)
        assert max(int(e["seq"]) for e in events) < 2**53 and unreported(events) == []
    finally:
        proc.kill()
        sub.close()


def test_every_gap_left_by_kill_9_on_a_full_disk_is_reported(short_dir: Path, broker: Broker) -> None:
    """Issue 18 #7: resolves held in memory died with kill -9 and seq gaps appeared (2, 102,
    104, ...) with no storage_damaged report."""
    sub = broker.subscriber([TOPIC])
    with tmpfs(short_dir / "state", 2) as state:
        proc = kiosk(short_dir, broker).start()
        try:
            press(proc)
            fill(state / "runaway.log")
            for _cut in range(3):
                answer = press(proc)  # the panic goes out from memory; its resolve is held there
                assert answer["record"] != "durable" or _cut == 0, answer
                proc.kill()
                proc.start()
            (state / "runaway.log").unlink()
            assert press(proc)["record"] == "durable"
            drained(proc, timeout=30)
            time.sleep(1.0)  # a report written at the last flush is on its way
            drained(proc)
            events = seen(sub)
            one_id_per_seq(events)
            assert unreported(events) == [], sorted(int(e["seq"]) for e in events)
        finally:
            proc.kill()
            sub.close()
