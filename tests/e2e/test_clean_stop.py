""""Stopped cleanly", exit 0, only when every accepted event is on disk or with the broker (issue 18.1).

The stop used to look only at alarms held in memory. With the disk full, an alarm goes out
from memory and the broker acknowledges it, but the ``resolved`` that ends it can only wait in
memory: a SIGTERM then said "stopped cleanly" and exited 0 while that event died with the process.

Real parts: a full, size-limited tmpfs as state_dir (root), the daemon and CLI as subprocesses,
a real mosquitto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.disk import fill, tmpfs
from tests.rig.kiosk_config import write_config
from tests.rig.wait import wait_for


@pytest.fixture
def full_disk(short_dir: Path) -> Iterator[Path]:
    with tmpfs(short_dir / "state", 2) as state:
        fill(state / "runaway.log")
        try:
            yield state
        finally:
            (state / "runaway.log").unlink(missing_ok=True)


def test_a_stop_with_an_event_only_in_memory_is_never_called_clean(short_dir: Path, full_disk: Path,
                                                                    broker: Broker) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n[outbox]\nalarm_reserve_mb = 0\n')
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        answer = json.loads(proc.ok("press", "--json"))
        assert answer["record"] in ("delivered", "sent_from_memory"), answer  # the disk is full
        proc.ok("resolve", "false_alarm")  # its event cannot be written, and only alarms leave memory
        assert wait_for(lambda: proc.status()["storage"]["alarms_only_in_memory"] == 0, timeout=10)
        assert proc.status()["pending_events"] >= 1
        rc = proc.stop(timeout=15)
        log = proc.log.read_text()
        assert "stopped cleanly" not in log
        assert "stopped WITHOUT 1 accepted event(s)" in log, log[-2000:]
        assert rc != 0
    finally:
        proc.kill()
