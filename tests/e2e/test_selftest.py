"""`safehouse selftest` on the simulated kiosk: passes when healthy, names a broken part."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.rig.broker import ACL_KIOSKS, CONSOLE_USER, Broker, mosquitto_path, write_acl
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config
from tests.rig.pki import Pki

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


def test_the_microphone_check_leaves_numpy_out_of_the_daemon(short_dir: Path) -> None:
    """The daily self-test analyses the sound in a child process: loading numpy into the daemon
    would keep ~15 MB resident until the next restart on every kiosk."""
    proc = DaemonProcess(write_config(short_dir, FAST, capture=True), short_dir / "ctl.sock").start()
    try:
        result = json.loads(proc.ok("selftest", "--json"))
        [mic] = [c for c in result["checks"] if c["name"] == "microphone"]
        assert mic["ok"] is True and "level" in mic["detail"] and "Hz" in mic["detail"], mic
        assert proc.proc is not None
        maps = Path(f"/proc/{proc.proc.pid}/maps").read_text()
        assert "numpy" not in maps and "_multiarray_umath" not in maps
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


@pytest.mark.parametrize(("protocol", "why"), [
    ("5", "the broker refused the probe on safehouse/v1/p1/SH-A/provision/check: Not authorized"),
    ("3.1.1", "did not come back within 5 s"),  # MQTT 3.1.1: a denied publish is dropped in silence
])
def test_a_probe_the_acl_denies_fails_the_broker_check_and_leaves_the_link_alone(
        short_dir: Path, mqtt_dir: Path, pki: Pki, protocol: str, why: str) -> None:
    """A broker ACL without the kiosk's provision/check: the check says why, and the daemon's one
    connection (the probe rides on it) stays up and keeps carrying events."""
    acl = write_acl(mqtt_dir, ACL_KIOSKS, CONSOLE_USER)
    acl.write_text("".join(line for line in acl.read_text().splitlines(keepends=True)
                           if "provision/check" not in line))
    pair = pki.client("SH-A")
    tls = f'ca = "{pki.ca.cert}"\ncert = "{pair.cert}"\nkey = "{pair.key}"\nprotocol = "{protocol}"\n'
    with Broker(mqtt_dir / "acl", pki=pki, acl_file=acl, mosquitto=mosquitto_path()) as broker:
        config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n{tls}', id="SH-A", precinct="p1")
        proc = DaemonProcess(config, short_dir / "ctl.sock").start()
        try:
            broker.wait_for_log("as SH-A")
            res = proc.cli("selftest", "--json")
            checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
            proc.ok("test-alarm")
            deadline = time.monotonic() + 10.0
            while proc.status()["outbox"]["depth"]["events"] and time.monotonic() < deadline:
                time.sleep(0.05)
            status = proc.status()
        finally:
            proc.kill()
        log = broker.log_text()
    assert res.returncode == 1 and not checks["broker"]["ok"], checks["broker"]
    assert why in checks["broker"]["detail"]
    assert "uplink online" in checks["broker"]["detail"]
    assert status["link"]["state"] == "online" and status["outbox"]["depth"]["events"] == 0
    assert log.count(" as SH-A ") == 1, log  # one connection all along: no takeover, no reconnect
