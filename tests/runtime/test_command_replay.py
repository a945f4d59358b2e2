"""A command id, once executed, never executes again, whatever the clocks do (issue 18.16).

The daemon runs in-process on a clock the test steps (synchronised or not, as NTP would say),
against a real mosquitto, and is restarted on the same state folder as systemd restarts it.
The clock's wall time is a fixed start plus the monotonic time since: no test reads the wall
clock. Each test is the issue's reproduction, and failed before the fix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from safehouse.device.core.clock import SystemClock
from safehouse.device.runtime import config as configuration
from safehouse.device.runtime.daemon import Daemon
from safehouse.services.control import request
from tests.rig.broker import Broker
from tests.rig.clock import T0
from tests.rig.console import heard, send_command
from tests.rig.kiosk_config import write_config
from tests.rig.subscriber import Subscriber

ROOT = "safehouse/v1/test/SH-TEST-0001/"
FAR_FUTURE = "9999-12-31T23:59:59Z"


class SteppedClock(SystemClock):
    """Real monotonic time; wall time T0 + elapsed + ``offset`` (a step is an NTP step)."""

    def __init__(self, *, synced: bool) -> None:
        super().__init__()
        self.offset, self.is_synced, self._start = 0.0, synced, time.monotonic()

    def wall(self) -> float:
        return T0 + (time.monotonic() - self._start) + self.offset

    def synced(self) -> bool:
        return self.is_synced

    def ts(self, ahead: float = 0.0) -> str:
        """A console's fresh ``ts`` by this clock (``ahead`` seconds later)."""
        return datetime.fromtimestamp(self.wall() + ahead, UTC).isoformat().replace("+00:00", "Z")


class Kiosk:
    """The daemon in-process; ``restart()`` closes it and builds a new one on the same folder."""

    def __init__(self, folder: Path, broker: Broker, clock: SteppedClock, factory: MockFactory) -> None:
        self.config = configuration.load(write_config(folder, f'[broker]\nurl = "{broker.url}"\n'))
        self.clock, self.factory = clock, factory
        self.daemon = self._start()

    def _start(self) -> Daemon:
        daemon = Daemon(self.config, clock=self.clock, pin_factory=self.factory)
        daemon.start()
        return daemon

    def restart(self, sub: Subscriber) -> None:
        self.daemon.close()
        sub.clear()
        self.daemon = self._start()
        online(sub, self.clock)

    def ask(self, cmd: str, **args: Any) -> Any:
        return request(self.config.control.socket, cmd, **args)


@pytest.fixture
def sub(broker: Broker) -> Iterator[Subscriber]:
    with broker.subscriber([ROOT + "cmd/+/result", ROOT + "status"], timeout=10) as client:
        yield client


def online(sub: Subscriber, clock: SteppedClock) -> None:
    sub.wait_for(lambda m: m.topic == ROOT + "status" and m.json()["state"] == "online", timeout=10)
    heard(sub, ROOT, clock.ts())


def test_a_command_does_not_replay_after_a_clock_jump_a_fresh_command_and_a_restart(
        short_dir: Path, broker: Broker, sub: Subscriber, factory: MockFactory) -> None:
    clock = SteppedClock(synced=True)
    kiosk = Kiosk(short_dir, broker, clock, factory)
    try:
        online(sub, clock)
        kiosk.ask("press")
        recorded = json.dumps({"id": "J1r", "ts": clock.ts(), "outcome": "cancelled"}).encode()
        assert send_command(sub, ROOT, "resolve", recorded)["ok"] is True
        clock.offset = 3600.0  # simulate clock jump --seconds 3600
        assert send_command(sub, ROOT, "ping", {"id": "fresh-1", "ts": clock.ts()})["ok"] is True
        kiosk.restart(sub)
        clock.offset = 0.0  # simulate clock none
        kiosk.ask("press")  # a new, real alarm
        result = send_command(sub, ROOT, "resolve", recorded)  # the same bytes, recorded off the wire
        assert result["ok"] is False and result["error"].startswith("replayed:"), result
        assert kiosk.ask("status")["alarm"]["state"] == "active"  # J1r did not end the new alarm
    finally:
        kiosk.daemon.close()


def flood(sub: Subscriber, count: int, ts: str, batch: int = 128) -> None:
    """``count`` pings with ``ts``, a batch in flight at a time (the broker queues at most 1,000)."""
    for start in range(0, count, batch):
        sub.clear()
        ids = range(start, min(count, start + batch))
        for i in ids:
            sub.publish(ROOT + "cmd/ping", json.dumps({"id": f"future-{i}", "ts": ts}).encode())
        sub.wait_for(ROOT + "cmd/ping/result", count=len(ids), timeout=30)


def test_far_future_ids_never_push_a_real_id_out_of_the_store(
        short_dir: Path, broker: Broker, sub: Subscriber, factory: MockFactory) -> None:
    """Clock unsynced (every Pi until NTP answers): ts is not checked against it, and 1,024 ids
    from year 9999 used to push out every real one, which then ran again."""
    clock = SteppedClock(synced=False)
    kiosk = Kiosk(short_dir, broker, clock, factory)
    try:
        online(sub, clock)
        real = json.dumps({"id": "real-1", "ts": clock.ts()}).encode()
        assert send_command(sub, ROOT, "test", real)["ok"] is True
        kiosk.ask("resolve", outcome="cancelled")
        flood(sub, 1024, FAR_FUTURE)
        for attempt in ("live", "after a restart"):
            result = send_command(sub, ROOT, "test", real)
            assert result["ok"] is False, (attempt, result)
            assert result["error"].startswith(("replayed:", "too_old:")), (attempt, result)
            assert kiosk.ask("status")["alarm"]["state"] == "idle", attempt
            if attempt == "live":
                kiosk.restart(sub)
        later = send_command(sub, ROOT, "ping", {"id": "real-2", "ts": clock.ts(60)})
        assert later["ok"] is True, later  # a real command newer than every evicted one still runs
    finally:
        kiosk.daemon.close()
