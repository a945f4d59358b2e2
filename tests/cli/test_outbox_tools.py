"""The technician's storage tools, run as a technician would: `safehouse outbox --check` and
`safehouse outbox --salvage` on a real damaged outbox, with the daemon stopped (and refused while
it runs)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from safehouse.services.outbox import Outbox
from tests.rig.daemon import DaemonProcess, cli
from tests.rig.kiosk_config import write_config

TOPIC = "safehouse/v1/test/SH-TEST-0001/events"


def stored_events(state: Path, n: int) -> None:
    with Outbox(state) as box:
        for i in range(1, n + 1):
            box.append_event({"event_id": f"t-{i}", "device_id": "SH-TEST-0001", "precinct": "test",
                              "type": "walk_in", "code": None, "ts": "2026-11-28T00:00:00.000Z",
                              "clock_synced": True, "mono": 1.0, "boot_id": "b", "test": False,
                              "data": {"note": "z" * 200}}, TOPIC)


def test_check_finds_a_garbage_page_and_salvage_brings_the_events_back(short_dir: Path) -> None:
    config = write_config(short_dir)
    state = short_dir / "state"
    stored_events(state, 300)
    healthy = cli(config, "outbox", "--check")
    assert healthy.returncode == 0 and healthy.stdout.startswith("storage OK"), healthy.stdout
    db = state / "outbox.db"
    with db.open("r+b") as f:
        f.seek(db.stat().st_size // 2 // 4096 * 4096)
        f.write(random.Random(5).randbytes(4096))
    damaged = cli(config, "outbox", "--check", "--json")
    assert damaged.returncode == 1
    report = json.loads(damaged.stdout)
    assert not report["ok"] and report["outbox"]["problem"]
    fixed = cli(config, "outbox", "--salvage", "--json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    [salvaged] = json.loads(fixed.stdout)["salvaged"]
    assert salvaged["salvaged_events"] >= 250 and Path(salvaged["quarantined"]).exists()
    again = cli(config, "outbox", "--check")
    assert again.returncode == 0, again.stdout
    assert "quarantined" in again.stdout
    with Outbox(state) as box:
        events = box.events()
        assert all(e.event_id == f"t-{e.seq}" for e in events) and len(events) >= 250
    assert "nothing to salvage" in cli(config, "outbox", "--salvage").stdout


def test_the_tools_refuse_while_the_daemon_runs_and_explain_themselves(short_dir: Path) -> None:
    config = write_config(short_dir)
    helptext = cli(config, "outbox", "--help").stdout
    assert "--check" in helptext and "--salvage" in helptext and "daemon" in helptext
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        res = cli(config, "outbox", "--check")
        assert res.returncode == 1 and "stop it first" in res.stdout
    finally:
        proc.stop()


def test_check_says_an_unreadable_seq_lease_is_damage_not_a_lease_not_yet_written(short_dir: Path) -> None:
    """Found by testing: a garbled seq.lease read 'no seq lease yet', storage OK, exit 0."""
    config = write_config(short_dir)
    state = short_dir / "state"
    stored_events(state, 5)
    (state / "seq.lease").write_bytes(random.Random(8).randbytes(64))
    damaged = cli(config, "outbox", "--check")
    assert damaged.returncode == 1 and damaged.stdout.startswith("storage DAMAGED"), damaged.stdout
    assert "seq.lease is unreadable" in damaged.stdout and "not yet" not in damaged.stdout
    assert cli(config, "outbox", "--salvage").returncode == 0  # opening the outbox writes a good mark
    assert cli(config, "outbox", "--check").returncode == 0


def test_check_says_a_state_dir_that_is_a_file_keeps_the_daemon_off_its_disk(short_dir: Path) -> None:
    """Found by testing: with state_dir a file, --check said 'storage OK' (outbox missing), exit 0."""
    config = write_config(short_dir)
    (short_dir / "state").write_text("not a directory")
    res = cli(config, "outbox", "--check", "--json")
    assert res.returncode == 1, res.stdout
    report = json.loads(res.stdout)
    assert not report["ok"] and "not a directory" in report["state_dir"]["problem"]
    assert "must be a writable directory" in cli(config, "outbox", "--check").stdout
