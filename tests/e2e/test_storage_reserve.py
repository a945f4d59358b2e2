"""A full state partition: the alarm reserve is given back so the panic is on disk and on its way.

Real parts: a size-limited tmpfs as state_dir, a filler that takes every free byte, the real
daemon, and a real mosquitto with an independent subscriber. Needs root (CI is).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehouse.services import reserve as reserve_module
from safehouse.services.reserve import SpaceReserve
from safehouse.services.stats import DailyStats
from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.disk import fill, tmpfs
from tests.rig.kiosk_config import write_config

MB = 1 << 20


@pytest.fixture
def small_disk(short_dir: Path) -> Iterator[Path]:
    with tmpfs(short_dir / "state", 16) as state:
        yield state


def test_a_press_on_a_full_disk_is_durable_at_once_and_reaches_the_precinct(
        short_dir: Path, small_disk: Path, broker: Broker) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n[outbox]\nalarm_reserve_mb = 2\n'
                                     "[camera]\noffsets = [0.0]\nwidth = 320\nheight = 240\n"
                                     "[microphone]\nenabled = false\n", capture=True)
    sub = broker.subscriber(["safehouse/v1/test/SH-TEST-0001/events"])
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        assert (small_disk / ".alarm-reserve").stat().st_size == 2 * MB
        fill(small_disk / "runaway.log")
        answer = proc.ok("press")
        assert "accepted: new alarm" in answer
        [panic] = sub.wait_for(lambda m: m.json().get("type") == "panic", timeout=10)
        [full] = sub.wait_for(lambda m: m.json().get("type") == "storage_full", timeout=10)
        assert full.json()["code"] == 330 and full.json()["data"]["reserve_released_bytes"] == 2 * MB
        assert panic.json()["seq"] < full.json()["seq"]  # the alarm first, then the trouble
        [evidence] = [m.json() for m in sub.wait_for(lambda m: m.json().get("type") == "evidence",
                                                     timeout=15)]
        assert "kept for alarm events" in evidence["data"]["failures"]["camera"]  # not the reserve
        assert proc.status()["pending_events"] == 0
        # A power cut with the disk still full and the reserve spent: the kiosk must come back and
        # take the next alarm (SQLite may still write it into its WAL's old blocks; if not, it
        # waits in memory) and deliver it once there is room.
        proc.kill()
        proc.start()
        proc.ok("resolve", "false_alarm")  # the alarm open at the power cut was resumed
        assert "accepted: new alarm" in proc.ok("press")
        (small_disk / "runaway.log").unlink()
        sub.wait_for(lambda m: m.json().get("type") == "panic", timeout=10, count=2)
        assert proc.status()["pending_events"] == 0
    finally:
        proc.stop()
        sub.close()


def test_the_reserve_is_put_back_once_there_is_room_and_evidence_never_eats_it(
        small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reserve_module, "REARM_EVERY", 0.0)
    reserve = SpaceReserve(small_disk, 4 * MB)
    assert reserve.arm() and reserve.armed
    assert reserve.floor_ok(1 * MB)  # armed: the ballast already holds the room
    filler = small_disk / "filler"
    fill(filler)
    assert not reserve.floor_ok(1)
    assert reserve.release() == 4 * MB and not reserve.armed
    assert not reserve.floor_ok(1 * MB)  # released: evidence must leave the reserve's worth free
    assert not reserve.rearm_due()  # the disk still lacks twice the reserve
    filler.unlink()
    time.sleep(0.01)
    assert reserve.rearm_due() and reserve.armed
    assert reserve.release() == 4 * MB


def test_a_zero_reserve_is_off() -> None:
    reserve = SpaceReserve(Path("/nonexistent"), 0)
    assert not reserve.arm() and reserve.release() == 0 and reserve.floor_ok(10**12)


def test_the_daily_counts_open_on_a_full_disk_after_a_power_cut(small_disk: Path) -> None:
    """kill -9 leaves the WAL behind; reopening must not append to it, or a full disk stops the
    kiosk from starting at all (found by the chaos run: 46 refused starts in a row)."""
    crash = ("import os, sys; from pathlib import Path; from safehouse.services.stats import DailyStats; "
             "s = DailyStats(Path(sys.argv[1])); s.record('walk_in', {}, test=False); os._exit(0)")
    subprocess.run([sys.executable, "-c", crash, str(small_disk)], check=True, timeout=30)
    assert (small_disk / "stats.db-wal").exists()
    fill(small_disk / "runaway.log")
    stats = DailyStats(small_disk)  # before the fix: "database or disk is full", exit 1, forever
    try:
        assert stats.on_duty() == []
    finally:
        stats.close()
