"""The event log: durable, gap-free seq across restarts, torn tails cut, kill -9 safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safehouse.services.eventlog import EventLog, log_path, read_events


def fields(n: int) -> dict[str, object]:
    return {"event_id": f"e{n}", "device_id": "K", "precinct": "p", "type": "panic", "code": 120,
            "ts": "2026-11-28T00:00:00.000Z", "clock_synced": True, "mono": float(n), "boot_id": "b",
            "test": False, "data": {"n": n}}


def test_seq_continues_gap_free_after_reopen(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        assert [log.append(fields(i)).seq for i in range(3)] == [1, 2, 3]
    with EventLog(tmp_path) as log:
        assert log.last_seq == 3
        assert log.append(fields(3)).seq == 4
    assert [e.seq for e in read_events(tmp_path)] == [1, 2, 3, 4]
    assert [e.data["n"] for e in read_events(tmp_path)] == [0, 1, 2, 3]


def test_a_torn_last_line_is_cut_and_its_seq_reused(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append(fields(0))
        log.append(fields(1))
    with log_path(tmp_path).open("ab") as f:
        f.write(b'{"seq": 3, "event_id": "torn", "dev')  # power cut mid-write: never acknowledged
    with EventLog(tmp_path) as log:
        assert log.append(fields(2)).seq == 3
    events = list(read_events(tmp_path))
    assert [e.seq for e in events] == [1, 2, 3] and events[-1].event_id == "e2"


WRITER = """
import sys
from pathlib import Path
from safehouse.services.eventlog import EventLog
log = EventLog(Path(sys.argv[1]))
n = 0
while True:
    log.append({"event_id": f"w{n}", "device_id": "K", "precinct": "p", "type": "panic", "code": 120,
                "ts": "x", "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False, "data": {}})
    print(n, flush=True)  # reported only after append() returned: durable
    n += 1
"""


def test_kill_9_never_loses_an_appended_event_nor_leaves_a_gap(tmp_path: Path) -> None:
    reported: list[int] = []
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                                text=True)
        time.sleep(0.15)
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        reported += [int(x) for x in out.split()]
    events = list(read_events(tmp_path))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(events) >= len(reported) > 0
