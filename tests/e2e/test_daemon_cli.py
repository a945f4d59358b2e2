"""The whole kiosk on simulated hardware, driven through the `safehouse` CLI from outside."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig.daemon import CLI, DaemonProcess
from tests.rig.kiosk_config import write_config


@pytest.fixture
def kiosk(short_dir: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(write_config(short_dir, alarm="ack_timeout = 2"), short_dir / "ctl.sock")
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def test_press_shows_the_alarm_within_100_ms_and_records_a_panic_event(kiosk: DaemonProcess) -> None:
    last = kiosk.status()["last_seq"]
    assert kiosk.status()["light"] == "beacon"
    out = kiosk.ok("press")
    assert out.startswith("accepted: new alarm")
    t_answered = time.monotonic()
    status = kiosk.status()
    # the CLI answered "accepted" only once the alarm was live; status must already show it
    assert status["alarm"]["state"] == "active"
    assert status["light"] == "alarm"
    assert status["alarm"]["age_s"] <= 0.1 + (time.monotonic() - t_answered)
    [panic] = [e for e in kiosk.events() if e["seq"] > last]
    assert (panic["type"], panic["code"], panic["seq"]) == ("panic", 120, last + 1)
    assert panic["event_id"] in out and panic["device_id"] == "SH-TEST-0001" and panic["test"] is False


def test_the_alarm_escalates_and_is_acknowledged_and_resolved(kiosk: DaemonProcess) -> None:
    kiosk.ok("press")
    kiosk.ok("press")
    assert kiosk.status()["alarm"]["presses"] == 2
    time.sleep(2.3)  # ack_timeout = 2 in this kiosk's config
    assert kiosk.status()["alarm"]["state"] == "escalated"
    kiosk.ok("ack", "--by", "v17")
    status = kiosk.status()
    assert status["alarm"]["state"] == "acknowledged" and status["light"] == "acknowledged"
    kiosk.ok("resolve", "police")
    assert kiosk.status()["light"] == "beacon"
    types = [e["type"] for e in kiosk.events()]
    assert types == ["panic", "escalated", "ack", "resolved"]
    assert kiosk.events()[-1]["data"]["outcome"] == "police"


def test_refusals_are_one_clear_line_and_exit_1(kiosk: DaemonProcess) -> None:
    res = kiosk.cli("ack")
    assert res.returncode == 1 and res.stderr.strip() == "safehouse: ack: no active alarm to acknowledge"
    kiosk.ok("test-alarm")
    res = kiosk.cli("test-alarm")
    assert res.returncode == 1 and "an alarm is already active" in res.stderr
    assert kiosk.events()[-1]["test"] is True and kiosk.events()[-1]["code"] == 601


def test_keypad_noise_and_unknown_pins_are_counted_never_acted_on(kiosk: DaemonProcess) -> None:
    kiosk.ok("press")
    res = kiosk.cli("keys", "12a34#")  # 'a' is line noise: the entry it fell into is discarded
    assert res.returncode == 1 and "line noise" in res.stderr
    res = kiosk.cli("keys", "9876#")
    assert res.returncode == 1 and "PIN not recognised" in res.stderr
    status = kiosk.status()
    assert status["keypad"]["wrong_pins"] == 1
    assert status["alarm"]["state"] in ("active", "escalated")  # not acknowledged (ack_timeout is 2 s)


def test_hold_until_release_then_release(kiosk: DaemonProcess) -> None:
    kiosk.ok("press", "--hold", "0")
    assert kiosk.status()["button"]["pressed"] is True
    kiosk.ok("release")
    assert kiosk.status()["button"]["pressed"] is False


def test_socket_garbage_gets_an_error_answer_and_the_daemon_stays_up(kiosk: DaemonProcess) -> None:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(kiosk.socket))
        s.sendall(b"\xff\xfe not json\n[1,2]\n{\"cmd\": \"explode\"}\n")
        reader = s.makefile("rb")
        answers = [json.loads(reader.readline()) for _ in range(3)]
    assert [a["ok"] for a in answers] == [False, False, False]
    assert "not a JSON object" in answers[0]["error"] and "unknown command: 'explode'" in answers[2]["error"]
    assert kiosk.status()["alarm"]["state"] == "idle"


def test_sigterm_stops_cleanly_within_2_s_and_removes_the_socket(kiosk: DaemonProcess) -> None:
    kiosk.ok("press")
    t0 = time.monotonic()
    assert kiosk.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 2.0
    assert not kiosk.socket.exists()
    assert "stopped cleanly" in kiosk.log.read_text()


def test_an_alarm_open_at_a_crash_is_resumed_after_restart_and_seq_continues(kiosk: DaemonProcess) -> None:
    kiosk.ok("press")
    alarm_id = kiosk.status()["alarm"]["event_id"]
    kiosk.stop(signal.SIGKILL)  # kill -9: the socket file stays behind and must not block a restart
    kiosk.start()
    status = kiosk.status()
    assert status["alarm"]["event_id"] == alarm_id and status["alarm"]["state"] in ("active", "escalated")
    assert status["light"] == "alarm"  # the citizen still sees the alarm
    kiosk.ok("ack", "--by", "v9")
    kiosk.ok("resolve", "assistance")
    kiosk.ok("test-alarm")
    events = kiosk.events()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events if e["type"] != "escalated"] == ["panic", "ack", "resolved", "panic"]
    assert next(e for e in events if e["type"] == "ack")["data"]["alarm_id"] == alarm_id
    assert next(e for e in events if e["type"] == "resolved")["data"]["alarm_id"] == alarm_id


def test_cli_without_a_daemon_names_the_socket_and_exits_1(short_dir: Path) -> None:
    config = write_config(short_dir)
    res = subprocess.run([*CLI, "--config", str(config), "status"], capture_output=True, text=True,
                         timeout=20, check=False)
    assert res.returncode == 1
    expected = f"safehouse: the safehouse daemon is not running (no answer on {short_dir}/ctl.sock)"
    assert res.stderr.strip() == expected


def test_help_answers_for_every_command() -> None:
    res = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=20, check=True)
    for command in ("run", "status", "press", "release", "keys", "test-alarm", "events", "config"):
        assert command in res.stdout
    assert "exit status" in res.stdout
