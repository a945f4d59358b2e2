"""Seqs issued from memory stay issued: a later start never hands them out again.

Found by the chaos run (`make chaos SEED=90417 DURATION=60`, about one run in four): the
kiosk ran on a read-only card and issued seq 301-316 from memory (alarm 313 reached the
precinct); the card came back, a restart opened the outbox cleanly (its own last seq still
205) and wrote nothing before a ``kill -9``; the next start issued seq 206, below the 313 the
precinct already had. The first start after the memory run knew better (it began above the
lease), but its lease write dropped the "issued from memory" mark and the outbox file never
learned the higher mark. Whether it happened depended on timing alone: whether alarm 313 was
acknowledged before the kill (its spool copy, taken back and stored, hid the bug).

Each step is a real process on real SQLite files, ended by SIGKILL as a crash ends the daemon.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from safehouse.services.outbox import Outbox

TOPIC = "safehouse/v1/p/K/events"

RUN = """
import json, os, sys
from pathlib import Path
from safehouse.services.outbox import Outbox
state, run, stored, issued = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
box = Outbox(state, recover=True, lease_dirs=[run])
fields = {"device_id": "K", "precinct": "p", "type": "panic", "code": 120, "ts": "x",
          "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False, "data": {}}
seqs = [box.append_event({**fields, "event_id": f"s{i}"}, "t").seq for i in range(stored)]
seqs += [box.issue({**fields, "event_id": f"m{i}"}).seq for i in range(issued)]  # from memory
print(json.dumps({"fault": box.fault_kind, "seqs": seqs}), flush=True)
os.kill(os.getpid(), 9)
"""


def _fields(event_id: str) -> dict[str, object]:
    return {"event_id": event_id, "device_id": "K", "precinct": "p", "type": "panic", "code": 120,
            "ts": "2026-11-28T00:00:00.000Z", "clock_synced": True, "mono": 1.0, "boot_id": "b",
            "test": False, "data": {}}


def crash_after(state: Path, run: Path, *, stored: int = 0, issued: int = 0) -> dict[str, object]:
    """One daemon's life: open the outbox as the daemon does, store and issue, then kill -9."""
    proc = subprocess.run([sys.executable, "-c", RUN, str(state), str(run), str(stored), str(issued)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return dict(json.loads(proc.stdout))


def test_seqs_issued_from_memory_are_never_issued_again_after_two_more_crashes(tmp_path: Path) -> None:
    state, run = tmp_path / "state", tmp_path / "run"
    state.mkdir()
    first = crash_after(state, run, stored=5)
    assert first == {"fault": None, "seqs": [1, 2, 3, 4, 5]}

    state.rename(tmp_path / "away")  # the card is out: the outbox cannot be opened at all
    state.write_text("not a folder")
    memory = crash_after(state, run, issued=3)
    assert memory["fault"] == "unavailable"
    issued = memory["seqs"]
    assert isinstance(issued, list) and min(issued) > 5
    state.unlink()
    (tmp_path / "away").rename(state)  # the card is back, its files intact

    assert crash_after(state, run) == {"fault": None, "seqs": []}  # a clean open, nothing written
    with Outbox(state, recover=True, lease_dirs=[run]) as box:
        assert box.append_event(_fields("after"), TOPIC).seq > max(issued)
