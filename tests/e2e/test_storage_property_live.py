"""Random damage to the storage files between runs of the real daemon: every press still counts.

Issue 18's property, for ``seq.lease``, ``outbox.db`` and its ``-wal`` (tests/rig/state_damage.py:
garbled, truncated, extended, linked, forged, huge numbers), with the lease's runtime copy lost
now and then as a power cut loses /run. After each damage the daemon starts, a press is durable
and reaches the precinct; at the end no seq named two events on the wire and every seq the
precinct never got lies in a ``storage_damaged`` missing_seq. Real parts: the daemon as a
subprocess, a real mosquitto, a subscriber that stays across every restart. Seeded.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config
from tests.rig.state_damage import MUTATIONS, unreported

TOPIC = "safehouse/v1/test/SH-TEST-0001/events"
TRIALS = 8


def drained(proc: DaemonProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.status()["pending_events"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.status()["pending_events"] == 0


@pytest.mark.parametrize("seed", [1, 2])
def test_after_random_damage_a_press_is_durable_delivered_and_seq_stays_honest(
        short_dir: Path, broker: Broker, seed: int) -> None:
    rng = random.Random(seed)
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n[outbox]\nalarm_reserve_mb = 0\n')
    proc = DaemonProcess(config, short_dir / "ctl.sock")
    state, victim = short_dir / "state", short_dir / "victim"
    victim.write_bytes(b"never written through")
    sub = broker.subscriber([TOPIC])
    done: list[list[str]] = []
    try:
        for trial in range(TRIALS + 1):
            proc.start()
            answer = json.loads(proc.ok("press", "--json"))
            assert answer["record"] == "durable", (seed, trial, done, answer)
            alarm = answer["alarm"]["event_id"]
            sub.wait_for(lambda m, alarm=alarm: m.json().get("event_id") == alarm, timeout=15)
            proc.ok("resolve", "false_alarm")
            if trial == TRIALS:
                break
            proc.kill() if rng.random() < 0.6 else proc.stop()
            done.append(rng.sample(sorted(MUTATIONS), rng.randint(1, 2)))
            for name in done[-1]:
                MUTATIONS[name](state, rng, victim)
            if rng.random() < 0.5:
                (short_dir / "seq.lease").unlink(missing_ok=True)  # /run is gone after a power cut
        time.sleep(1.0)  # the last reports leave at the next flush
        drained(proc)
        events: list[dict[str, Any]] = [m.json() for m in sub.wait_for(lambda m: True, timeout=1)]
        by_seq: dict[int, str] = {}
        for event in events:
            assert by_seq.setdefault(int(event["seq"]), event["event_id"]) == event["event_id"], (seed, done)
        ranges = [tuple(e["data"]["missing_seq"]) for e in events
                  if e["type"] == "storage_damaged" and e["data"].get("missing_seq")]
        assert unreported(set(by_seq), ranges) == [], (seed, done, sorted(by_seq)[:50])
        assert victim.read_bytes() == b"never written through"
    finally:
        proc.kill()
        sub.close()
