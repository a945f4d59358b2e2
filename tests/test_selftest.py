"""`safehouse selftest` on the simulated kiosk: passes when healthy, names a broken part."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import write_config
from tests.daemon_proc import DaemonProcess
from tests.mqtt_rig import Broker

FAST = "[camera]\nwidth = 640\nheight = 480\n[microphone]\npre_roll = 1.0\n"


def test_selftest_passes_on_a_healthy_sim_kiosk_and_names_a_broken_camera(short_dir: Path) -> None:
    proc = DaemonProcess(write_config(short_dir, FAST, capture=True), short_dir / "ctl.sock").start()
    try:
        result = json.loads(proc.ok("selftest", "--json"))
        assert result["ok"] is True
        names = [c["name"] for c in result["checks"]]
        assert names == ["light box", "panic button", "microphone", "camera", "keypad", "broker",
                         "disk", "clock", "outbox", "storage"]
        proc.ok("simulate", "camera", "raise")
        res = proc.cli("selftest")
        assert res.returncode == 1 and "FAIL  camera" in res.stdout
        assert "selftest FAILED: camera" in res.stdout
        codes = [(e["code"], e["data"]["failed"]) for e in proc.events() if e["type"] == "selftest"]
        assert codes == [(602, []), (608, ["camera"])]
    finally:
        proc.kill()


def test_selftest_runs_standalone_when_the_daemon_is_stopped(short_dir: Path) -> None:
    proc = DaemonProcess(write_config(short_dir, FAST, capture=True), short_dir / "ctl.sock")
    res = proc.cli("selftest", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["ok"] is True
    assert [e["code"] for e in proc.events() if e["type"] == "selftest"] == [602]
    assert not (short_dir / "ctl.sock").exists()  # the standalone kiosk closed again


def test_selftest_names_a_missing_microphone(short_dir: Path) -> None:
    extra = FAST.replace("[microphone]\n", '[microphone]\ndevice = "no-such-microphone"\n')
    proc = DaemonProcess(write_config(short_dir, extra, capture=True), short_dir / "ctl.sock").start()
    try:
        res = proc.cli("selftest")
        assert res.returncode == 1 and "FAIL  microphone" in res.stdout and "no-such-microphone" in res.stdout
        [event] = [e for e in proc.events() if e["type"] == "selftest"]
        assert event["code"] == 608 and event["data"]["failed"] == ["microphone"]
    finally:
        proc.kill()


def test_selftest_round_trips_through_the_broker(short_dir: Path, broker: Broker) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n')
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        time.sleep(1.0)
        checks = {c["name"]: c for c in json.loads(proc.ok("selftest", "--json"))["checks"]}
        assert checks["broker"]["ok"] and "round trip" in checks["broker"]["detail"]
        broker.stop()
        res = proc.cli("selftest", "--json")
        checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
        assert res.returncode == 1 and not checks["broker"]["ok"]
    finally:
        proc.kill()
