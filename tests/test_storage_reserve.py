"""A full state partition: the alarm reserve is given back so the panic is on disk and on its way.

Real parts: a size-limited tmpfs as state_dir, a filler that takes every free byte, the real
daemon, and a real mosquitto with an independent subscriber. Needs root (CI is).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehouse.services import reserve as reserve_module
from safehouse.services.reserve import SpaceReserve
from tests.conftest import IN_CI, write_config
from tests.daemon_proc import DaemonProcess
from tests.disk_rig import TmpfsError, fill, mount_tmpfs, unmount
from tests.mqtt_rig import Broker

MB = 1 << 20


@pytest.fixture
def small_disk(short_dir: Path) -> Iterator[Path]:
    state = short_dir / "state"
    try:
        mount_tmpfs(state, 16)
    except TmpfsError as exc:
        pytest.fail(str(exc)) if IN_CI else pytest.skip(str(exc))
    try:
        yield state
    finally:
        unmount(state)


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
