"""One stray byte on the command line or the control socket never silences the kiosk (issue 18.1).

A Latin-1 terminal typing "José" hands the CLI the byte 0xE9, which Python's argv decoding turns
into the lone surrogate "\\udce9". It used to reach the core inside an ack or resolved event that
could never be encoded: the event sat at the head of the writer's queue for ever, every later
alarm answered ``memory_only`` and was never sent, and a stop still said "stopped cleanly".

Real parts: the daemon and the CLI as subprocesses (argv passed as raw bytes), a real mosquitto
and an independent subscriber that must see every alarm pressed after the stray byte.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config
from tests.rig.subscriber import Subscriber

TOPIC = "safehouse/v1/test/SH-TEST-0001/events"
EX_USAGE = 2


def raw_arg(data: bytes) -> str:
    """What Python's argv decoding makes of ``data``: the CLI sees exactly this string."""
    return os.fsdecode(data)


def press_is_delivered(proc: DaemonProcess, sub: Subscriber) -> None:
    answer = json.loads(proc.ok("press", "--json"))
    assert answer["new_alarm"] is True and answer["record"] == "durable", answer
    event_id = answer["alarm"]["event_id"]
    sub.wait_for(lambda m: m.json().get("event_id") == event_id, timeout=10)
    proc.ok("resolve", "false_alarm")


@pytest.fixture
def kiosk(short_dir: Path, broker: Broker) -> DaemonProcess:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n')
    return DaemonProcess(config, short_dir / "ctl.sock")


@pytest.mark.parametrize("argv", [
    ["ack", "--by", raw_arg(b"tech\xff")],
    ["ack", "--by", raw_arg(b"Jos\xe9")],
    ["resolve", "cancelled", "--by", raw_arg(b"tech\xff")],
    ["ack", "--by=" + raw_arg(b"tech\xff")],
    ["ack", "--by", "tech\x1b[2Jrm"],  # a terminal escape: valid Unicode, not printable
])
def test_a_stray_byte_in_a_cli_argument_is_refused_and_every_later_alarm_is_delivered(
        kiosk: DaemonProcess, broker: Broker, argv: list[str]) -> None:
    sub = broker.subscriber([TOPIC], timeout=10)
    proc = kiosk.start()
    try:
        answer = json.loads(proc.ok("press", "--json"))
        res = proc.cli(*argv)
        assert res.returncode == EX_USAGE, (res.returncode, res.stdout, res.stderr)
        assert "--by" in res.stderr and ("not_unicode" in res.stderr or "not_printable" in res.stderr)
        assert res.stdout == ""
        status = proc.status()
        assert status["alarm"]["state"] == "active", status  # nothing was sent to the daemon
        assert status["alarm"]["event_id"] == answer["alarm"]["event_id"]
        proc.ok("resolve", "false_alarm")
        for _ in range(3):
            press_is_delivered(proc, sub)
        assert proc.status()["pending_events"] == 0
        assert proc.stop() == 0
        assert "stopped cleanly" in proc.log.read_text()
    finally:
        proc.kill()
        sub.close()


def test_the_control_socket_refuses_a_lone_surrogate_or_a_repeated_key_from_any_client(
        kiosk: DaemonProcess, broker: Broker) -> None:
    """A client of its own can send ``"\\udcff"`` as JSON: the server refuses it as the CLI does."""
    sub = broker.subscriber([TOPIC], timeout=10)
    proc = kiosk.start()
    try:
        proc.ok("press")
        lines = [json.dumps(request).encode() for request in (
            {"cmd": "ack", "by": "tech\udcff"}, {"cmd": "resolve", "outcome": "cancelled", "by": "\ud800"},
            {"cmd": "ack", "by\udcff": "x"}, {"cmd": "ack", "by": "a\x00b"})]
        lines.append(b'{"cmd": "resolve", "outcome": "police", "outcome": "cancelled"}')
        for line in lines:
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(str(proc.socket))
                client.sendall(line + b"\n")
                answer = json.loads(client.makefile("rb").readline())
            assert answer["ok"] is False, (line, answer)
            reasons = ("not_unicode", "not_printable", "duplicate_key")
            assert any(reason in answer["error"] for reason in reasons), answer
        assert proc.status()["alarm"]["state"] == "active"  # neither ack nor resolve acted
        proc.ok("resolve", "false_alarm")
        press_is_delivered(proc, sub)
        assert proc.stop() == 0
    finally:
        proc.kill()
        sub.close()
