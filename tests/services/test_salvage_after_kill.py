"""A salvage a full disk held back is done at the next start, however many kills come between.

Found by the power-cut loop (`make powercut`, seed 1, trial 62): an alarm was on disk (written
and checkpointed), the daemon was killed, the WAL deleted and the disk filled. The next start
quarantined the outbox (its WAL lost after an unclean stop) but could not make a fresh one on
the full disk, so the salvage and its report waited in memory; a second ``kill -9`` forgot
both, and the alarm in the quarantined copy was never sent. What must be salvaged now outlives
a kill as the seq lease does (a flag written in place, which works on a full disk).

Each life is a real process on real SQLite files on a real full tmpfs, ended by SIGKILL.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehouse.services.outbox import Outbox
from safehouse.services.quarantine import mark_salvaged, quarantine, unsalvaged
from tests.rig.disk import fill, tmpfs

LIFE = """
import json, os, sys
from pathlib import Path
from safehouse.services.outbox import Outbox
from safehouse.services.quarantine import mark_salvaged, quarantine, unsalvaged
state, run, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
box = Outbox(state, recover=True, lease_dirs=[run])
fields = {"device_id": "K", "precinct": "p", "type": "panic", "code": 120, "ts": "x",
          "clock_synced": False, "mono": 0.0, "boot_id": "b", "test": False, "data": {}}
seqs = [box.append_event({**fields, "event_id": f"alarm-{i}"}, "t").seq for i in range(n)]
box.checkpoint()  # as the event writer does once an alarm is on its way
print(json.dumps({"fault": box.fault_kind, "seqs": seqs}), flush=True)
os.kill(os.getpid(), 9)
"""


def life(state: Path, run: Path, alarms: int = 0) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", LIFE, str(state), str(run), str(alarms)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return dict(json.loads(proc.stdout))


@pytest.fixture
def card(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "card", 4) as mount:
        yield mount


def test_an_alarm_in_a_copy_quarantined_on_a_full_disk_is_salvaged_after_another_kill(
        card: Path, tmp_path: Path) -> None:
    state, run, ballast = card / "state", tmp_path / "run", card / "ballast"
    state.mkdir()
    assert life(state, run, alarms=3) == {"fault": None, "seqs": [1, 2, 3]}
    (state / "outbox.db-wal").unlink()  # lost after the kill: the alarms are in the main file
    fill(ballast)
    assert life(state, run)["fault"] is not None  # quarantined, no room for a fresh outbox
    assert life(state, run)["fault"] is not None  # and killed once more before any room came back
    ballast.unlink()
    with Outbox(state, recover=True, lease_dirs=[run]) as box:
        assert box.fault is None and box.salvage_due()
        box.salvage()
        assert {e.event_id for e in box.events()} >= {"alarm-0", "alarm-1", "alarm-2"}
        [report] = [d for d in box.take_damage() if d.quarantined is not None]
        assert report.salvaged_events == 3
    with Outbox(state, recover=True, lease_dirs=[run]) as box:  # done once: not salvaged again
        assert not box.salvage_due()


def _copy_of(state: Path, name: str) -> Path:
    """A real outbox file with one event, moved aside as a damaged one is."""
    with Outbox(state / name) as box:
        box.append_event({"event_id": f"in-{name}", "device_id": "K", "precinct": "p", "type": "panic",
                          "code": 120, "ts": "x", "clock_synced": False, "mono": 0.0, "boot_id": "b",
                          "test": False, "data": {}}, "t")
    return state / name / "outbox.db"


def test_a_copy_whose_salvage_is_not_done_is_never_pruned(tmp_path: Path) -> None:
    """The quarantine keeps the newest three copies; an older one not yet salvaged is the only
    place its alarms are, so it stays however many copies come after it."""
    state = tmp_path / "state"
    state.mkdir()
    for i in range(5):
        copy = _copy_of(tmp_path, f"life-{i}")
        for suffix in ("", "-wal", "-shm"):
            src = copy.with_name(copy.name + suffix)
            if src.exists():
                src.rename(state / f"outbox.db{suffix}")
        assert quarantine(state / "outbox.db", wall=1_800_000_000.0 + 60 * i) is not None
    assert len(unsalvaged(state / "outbox.db")) == 5  # none salvaged: none pruned
    for copy in unsalvaged(state / "outbox.db"):
        assert mark_salvaged(copy)
    _copy_of(tmp_path, "life-5").rename(state / "outbox.db")
    quarantine(state / "outbox.db", wall=1_800_000_000.0 + 600)
    left = [p.name for p in (state / "quarantine").iterdir() if p.suffix == ".db"]
    assert len(left) == 3, left  # salvaged ones go as before: the newest three stay


def test_copies_left_unmarked_are_salvaged_when_the_lease_cannot_say(card: Path, tmp_path: Path) -> None:
    """A garbled lease cannot say whether a salvage was owed: the copies are salvaged again
    (what was sent already is de-duplicated by the precinct), never skipped."""
    state, run, ballast = card / "state", tmp_path / "run", card / "ballast"
    state.mkdir()
    life(state, run, alarms=2)
    (state / "outbox.db-wal").unlink()
    fill(ballast)
    life(state, run)  # quarantined, nothing salvaged
    ballast.unlink()
    (run / "seq.lease").unlink()
    (state / "seq.lease").write_bytes(b"\xff" * 64)
    with Outbox(state, recover=True, lease_dirs=[run]) as box:
        assert box.salvage_due()
        box.salvage()
        assert {"alarm-0", "alarm-1"} <= {e.event_id for e in box.events()}
