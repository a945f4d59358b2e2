"""A card that was read-only after a crash and is writable again: the outbox comes back in place.

Found by the chaos run (`make chaos SEED=90417 DURATION=60`, every run): the daemon was
killed, restarted on a read-only card, and kept running from memory for 22 s after the card
was writable again, until the next kill -9 took the events it held (an ack, a resolve, the
evidence). The read-only view of the crashed outbox (its -wal and -shm left behind) made
SQLite's shared memory index read-only for the whole process, so every attempt to reopen the
file for writing failed with "attempt to write a readonly database". A clean stop before the
card went read-only leaves no -wal: that case always worked.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from safehouse.services.outbox import Outbox
from tests.rig.disk import remount, tmpfs

TOPIC = "safehouse/v1/p/K/events"

CRASH = """
import os, sys
from pathlib import Path
from safehouse.services.outbox import Outbox
box = Outbox(Path(sys.argv[1]), lease_dirs=[Path(sys.argv[2])])
box.append_event({"event_id": "before", "device_id": "K", "precinct": "p", "type": "walk_in",
                  "code": None, "ts": "x", "clock_synced": False, "mono": 0.0, "boot_id": "b",
                  "test": False, "data": {}}, "t")
os.kill(os.getpid(), 9)
"""


def _fields(event_id: str) -> dict[str, object]:
    return {"event_id": event_id, "device_id": "K", "precinct": "p", "type": "walk_in", "code": None,
            "ts": "2026-11-28T00:00:00.000Z", "clock_synced": True, "mono": 1.0, "boot_id": "b",
            "test": False, "data": {}}


def test_after_a_crash_and_a_read_only_card_the_outbox_recovers_once_the_card_is_writable(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    with tmpfs(tmp_path / "state", 4) as state:
        proc = subprocess.run([sys.executable, "-c", CRASH, str(state), str(run)], check=False, timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert (state / "outbox.db-wal").exists() and (state / "outbox.db-shm").exists()
        remount(state, read_only=True)
        try:
            box = Outbox(state, recover=True, lease_dirs=[run])
            assert box.fault_kind == "unavailable"
            assert [r.event_id for r in box.pending(5)] == ["before"]  # the read-only view still sends
        finally:
            remount(state, read_only=False)
        with box:
            assert box.recover(), box.fault
            stored = box.append_event(_fields("after"), TOPIC)
            assert [r.event_id for r in box.pending(5)] == ["before", "after"]
            assert stored.seq > 1
