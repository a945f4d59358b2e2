"""Volunteers on a real serial keypad (socat PTY pair) driving the real daemon."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess, cli
from tests.rig.kiosk_config import write_config
from tests.rig.serial_pty import SerialRig

ROOT = "safehouse/v1/test/SH-TEST-0001/"


def enrol(config: Path, vid: str, pin: str, duress: str | None = None) -> None:
    args = ["volunteer", "add", vid, "--name", f"Volunteer {vid}", "--pin-stdin"]
    args += ["--duress"] if duress else []
    stdin = pin + "\n" + (duress + "\n" if duress else "")
    res = cli(config, *args, stdin=stdin)
    assert res.returncode == 0, res.stderr
    assert pin not in res.stdout + res.stderr


def kiosk(folder: Path, serial_rig: SerialRig, extra: str = "") -> DaemonProcess:
    config = write_config(folder, f'[keypad]\nport = "{serial_rig.kiosk}"\nlockout_seconds = 5\n'
                                  f'rollcall_window = 2\n{extra}', staffed=False)
    enrol(config, "v042", "4711", duress="9110")
    enrol(config, "v007", "2580")
    return DaemonProcess(config, folder / "ctl.sock").start()


def type_keys(serial_rig: SerialRig, keys: str, *, linewise: bool = False) -> None:
    if linewise:
        serial_rig.send(keys.encode() + b"\r\n")
    else:
        for key in keys:
            serial_rig.send(key.encode())
    time.sleep(0.4)  # the PIN check takes a few ms; the answer is then in the event log


def events(proc: DaemonProcess, type_: str | None = None) -> list[dict[str, Any]]:
    return [e for e in proc.events() if type_ is None or e["type"] == type_]


def test_pin_hash_acknowledges_and_the_card_codes_resolve_and_count(short_dir: Path,
                                                                      serial_rig: SerialRig) -> None:
    proc = kiosk(short_dir, serial_rig)
    try:
        type_keys(serial_rig, "2580*1#", linewise=True)  # v007 checks in
        assert proc.status()["on_duty"] == ["v007"]
        proc.ok("press")
        time.sleep(1.0)
        type_keys(serial_rig, "4711#")
        [ack] = events(proc, "ack")
        assert ack["data"]["volunteer"] == "v042" and 0.9 <= ack["data"]["time_to_ack_s"] < 5
        assert proc.status()["light"] == "acknowledged"
        type_keys(serial_rig, "4711*3#")
        assert events(proc, "resolved")[0]["data"]["outcome"] == "assistance"
        type_keys(serial_rig, "2580*7#")
        type_keys(serial_rig, "2580*6#")
        proc.ok("press")
        type_keys(serial_rig, "2580*5#")
        assert events(proc, "resolved")[-1]["data"]["outcome"] == "police"
        before = json.loads(proc.ok("stats", "--json"))
        assert (before["alarms"], before["people_helped"], before["police"], before["clues"],
                before["walk_ins"]) == (2, 2, 1, 1, 1)
        proc.stop()
        proc.start()
        after = json.loads(proc.ok("stats", "--json"))
        duty = ("duty_seconds", "duty_hours")  # duty time keeps running while v007 is on duty
        assert {k: v for k, v in after.items() if k not in duty} == \
            {k: v for k, v in before.items() if k not in duty}
        assert after["duty_seconds"] >= before["duty_seconds"] > 0
        assert proc.status()["on_duty"] == ["v007"]  # the roster survives a restart
    finally:
        proc.kill()


def test_wrong_pins_lock_the_keypad_with_461_through_a_restart_and_a_right_pin_is_refused_meanwhile(
        short_dir: Path, serial_rig: SerialRig) -> None:
    proc = kiosk(short_dir, serial_rig)
    try:
        proc.ok("press")
        for _ in range(5):
            type_keys(serial_rig, "0000#", linewise=True)
        [lock] = events(proc, "keypad_lockout")
        assert lock["code"] == 461 and lock["data"]["locked_s"] == 5
        assert proc.status()["keypad"]["locked_for_s"] > 3
        proc.stop()  # a restart does not end the lockout ...
        proc.start()
        assert 0 < proc.status()["keypad"]["locked_for_s"] < 5
        type_keys(serial_rig, "4711*1#")  # ... and the right PIN is still refused
        assert proc.status()["on_duty"] == []
        time.sleep(proc.status()["keypad"]["locked_for_s"] + 0.2)
        type_keys(serial_rig, "4711*1#")  # it ends on time
        assert proc.status()["on_duty"] == ["v042"]
        assert proc.status()["keypad"]["lockouts"] == 0  # a right PIN resets the doubling
        log = proc.log.read_text()
        assert "4711" not in log and "0000" not in log  # PINs are never logged
    finally:
        proc.kill()


def test_unplugged_mid_entry_is_reported_once_and_the_keypad_works_again(short_dir: Path,
                                                                         serial_rig: SerialRig) -> None:
    proc = kiosk(short_dir, serial_rig)
    try:
        proc.ok("press")
        type_keys(serial_rig, "47")
        serial_rig.unplug()
        time.sleep(1.5)
        assert proc.status()["keypad"]["lost"] is True
        serial_rig.plug()
        time.sleep(2.0)
        assert [e["type"] for e in events(proc) if e["type"].startswith("keypad_")] == \
            ["keypad_lost", "keypad_restored"]
        assert events(proc, "keypad_lost")[0]["code"] == 330
        time.sleep(1.0)
        type_keys(serial_rig, "**4711#")  # `**` clears the half entry typed before the unplug
        assert len(events(proc, "ack")) == 1
    finally:
        proc.kill()


def test_rollcall_through_a_real_broker_answered_then_missed(short_dir: Path, serial_rig: SerialRig,
                                                             broker: Broker) -> None:
    sub = broker.subscriber([ROOT + "events", ROOT + "cmd/+/result"])
    proc = kiosk(short_dir, serial_rig, f'[broker]\nurl = "{broker.url}"\n')
    try:
        type_keys(serial_rig, "4711*1#")
        ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        sub.publish(ROOT + "cmd/rollcall", json.dumps({"id": "rc-1", "ts": ts}))
        [res] = sub.wait_for(ROOT + "cmd/rollcall/result")
        assert json.loads(res.payload)["ok"] and proc.status()["rollcall"] is not None
        type_keys(serial_rig, "4711*8#")
        [answered] = sub.wait_for(lambda m: b'"rollcall_answered"' in m.payload)
        assert json.loads(answered.payload)["data"]["volunteer"] == "v042"
        sub.publish(ROOT + "cmd/rollcall", json.dumps({"id": "rc-2", "ts": ts}))
        [missed] = sub.wait_for(lambda m: b'"rollcall_missed"' in m.payload, timeout=6)
        assert json.loads(missed.payload)["data"]["on_duty"] == ["v042"]
        assert json.loads(proc.ok("stats", "--json"))["rollcalls_missed"] == 1
    finally:
        proc.kill()
        sub.close()


def test_a_megabyte_of_digits_then_noise_is_one_fault_no_lockout_and_the_pin_works_after(
        short_dir: Path, serial_rig: SerialRig) -> None:
    proc = kiosk(short_dir, serial_rig, "noise_ignore_seconds = 1\n")
    try:
        proc.ok("press")
        log_before = proc.log.stat().st_size
        flood = threading.Thread(target=lambda: (serial_rig.send(b"1234567890" * 100_000),  # 1 MB, no #
                                                 serial_rig.send(random.Random(12).randbytes(100_000))))
        flood.start()
        answers, checked = 0, []
        while flood.is_alive():
            status = proc.status()  # the daemon answers meanwhile
            assert status["alarm"]["state"] != "idle"
            answers += 1
            if status["keypad"]["noise"] and not checked:
                res = proc.cli("selftest", "--json")
                checked = [c for c in json.loads(res.stdout)["checks"] if c["name"] == "keypad"]
        flood.join()
        assert answers >= 1
        assert checked and not checked[0]["ok"] and "floods" in checked[0]["detail"], checked
        time.sleep(1.5)  # the line has been quiet for the ignore window
        status = proc.status()
        assert status["keypad"]["wrong_pins"] == 0 and status["keypad"]["locked_for_s"] == 0
        assert status["keypad"]["noise"] is True and "KEYPAD LINE NOISE" in proc.ok("status")
        type_keys(serial_rig, "4711#")
        assert len(events(proc, "ack")) == 1
        [noise] = events(proc, "keypad_noise")
        assert noise["code"] == 344 and noise["data"]["discarded_bytes"] > 0
        assert events(proc, "keypad_lockout") == []
        written = proc.log.stat().st_size - log_before
        assert written < 20_000, f"{written} bytes of log for one flood"
    finally:
        proc.kill()


def keypad_lost(proc: DaemonProcess, lost: bool, timeout: float = 6.0) -> bool:
    """Poll ``safehouse status`` until the keypad is (or is no longer) reported lost."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.status()["keypad"]["lost"] is lost:
            return True
        time.sleep(0.1)
    return False


def test_a_keypad_plugged_in_after_the_daemon_started_is_lost_then_restored(short_dir: Path) -> None:
    (short_dir / "tty").mkdir()
    serial_rig = SerialRig(short_dir / "tty")  # not plugged in: no device node when the daemon starts
    proc = kiosk(short_dir, serial_rig)
    try:
        assert keypad_lost(proc, True)
        serial_rig.plug()  # socat creates the PTY now, as udev creates /dev/serial/by-id/... on plug-in
        assert keypad_lost(proc, False)
        serial_rig.unplug()  # kill socat by its PID
        assert keypad_lost(proc, True)
        serial_rig.replug()
        assert keypad_lost(proc, False)
        assert [e["type"] for e in events(proc) if e["type"].startswith("keypad_")] == \
            ["keypad_lost", "keypad_restored", "keypad_lost", "keypad_restored"]
        type_keys(serial_rig, "4711*1#")
        assert proc.status()["on_duty"] == ["v042"]
    finally:
        proc.kill()
        serial_rig.unplug()
