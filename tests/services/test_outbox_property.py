"""Random bytes into every file the outbox reads back; after each, the promises still hold.

Issue 18's property, for the storage files: a kiosk (a writer process, killed with -9 or
stopped) stores events; then its ``seq.lease``, ``outbox.db`` or ``outbox.db-wal`` is garbled,
truncated, extended, replaced by a link, or given numbers no kiosk reaches; then the outbox
opens as the daemon opens it. Every time: it opens and takes a new event durably, no seq ever
names two events, every seq missing from what is stored lies in a reported ``missing_seq``, and
no link is written through. Seeded: a failure names its seed and replays.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from safehouse.services.outbox import Outbox
from tests.rig.clock import FakeClock
from tests.rig.state_damage import MUTATIONS, unreported

TOPIC = "safehouse/v1/p/K/events"
ROUNDS = 6

WRITER = """
import os, sys
from pathlib import Path
from safehouse.services.outbox import Outbox
from tests.rig.clock import FakeClock
box = Outbox(Path(sys.argv[1]), recover=True)
for i in range(int(sys.argv[3])):
    event = box.append_event({"event_id": f"{sys.argv[2]}-{i}", "device_id": "K", "precinct": "p",
                              "type": "panic" if i % 3 == 0 else "resolved", "code": None, "ts": "x",
                              "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False,
                              "data": {"pad": "p" * 150}}, "t")
    print(event.seq, event.event_id, flush=True)
if sys.argv[4] == "kill":
    os.kill(os.getpid(), 9)
box.close()
"""


def event(event_id: str, type_: str, data: dict[str, object]) -> dict[str, object]:
    return {"event_id": event_id, "device_id": "K", "precinct": "p", "type": type_, "code": None, "ts": "x",
            "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False, "data": data}


@pytest.mark.parametrize("seed", range(12))
def test_random_damage_to_the_storage_files_keeps_every_promise(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    state, victim = tmp_path / "state", tmp_path / "victim"
    victim.write_bytes(b"never written through " * 10)
    owner: dict[int, str] = {}  # every seq ever acknowledged, and the event it names
    ranges: list[tuple[int, int]] = []  # every missing_seq reported
    clock = FakeClock()
    for round_ in range(ROUNDS):
        how = rng.choice(["kill", "close"])
        out = subprocess.run([sys.executable, "-c", WRITER, str(state), f"r{round_}", str(rng.randint(1, 40)),
                              how], capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode in (0, -9), out.stderr
        for seq, event_id in (line.split() for line in out.stdout.splitlines()):
            assert owner.setdefault(int(seq), event_id) == event_id, (seed, round_, seq)
        done = rng.sample(sorted(MUTATIONS), rng.randint(1, 2))
        for name in done:
            MUTATIONS[name](state, rng, victim)
        clock.advance(3600.0)  # the next start is later: a power cut, a reboot
        with Outbox(state, recover=True, clock=clock) as box:
            assert box.fault is None, (seed, round_, done, box.fault)
            box.salvage()
            box.pending(10**6)  # the uplink's read: a payload the card garbled is found and reported
            if box.fault is not None:  # damage only a read or write finds: the storage thread's round
                assert box.recover(), (seed, round_, done, box.fault)
                box.salvage()
            after = box.append_event(event(f"after-{round_}", "panic", {}), TOPIC)
            assert after.seq < 2**53, (seed, round_, done)
            while reports := box.take_damage():  # as the daemon's writer does at each flush
                for report in reports:
                    ranges += [report.missing] if report.missing is not None else []
                    box.append_event(event(f"report-{round_}-{len(ranges)}-{report.file}", "storage_damaged",
                                           report.as_data()), TOPIC)
            stored = {e.seq: e.event_id for e in box.events()}
        for seq, event_id in stored.items():
            assert owner.setdefault(seq, event_id) == event_id, (seed, round_, done, seq)
        assert victim.read_bytes() == b"never written through " * 10, (seed, round_, done)
        assert unreported(set(stored), ranges) == [], (seed, round_, done)
        lost = [s for s in owner if s not in stored and not any(lo <= s <= hi for lo, hi in ranges)]
        assert lost == [], (seed, round_, done, lost)
    assert victim.read_bytes() == b"never written through " * 10
