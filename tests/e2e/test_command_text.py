"""The issue's reproduction of 18.2 through a real broker: a command id holding a lone surrogate.

During a real alarm the console publishes ``cmd/ack`` with ``{"id": "\\ud800", ...}`` (valid
JSON: a web page that cuts an emoji id at 64 UTF-16 units sends exactly that), then
``cmd/resolve`` with ``"\\udc00x"``. Both used to act (the light showed help coming, then idle)
while neither gave a result nor wrote an event: the precinct still saw the alarm active. And a
``test`` with such an id raised a test alarm with no panic event.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.rig.broker import Broker
from tests.rig.console import heard, online_ts, send_command
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config

ROOT = "safehouse/v1/test/SH-TEST-0001/"


def test_commands_with_a_lone_surrogate_id_are_refused_with_a_result_and_never_act(
        short_dir: Path, broker: Broker) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n')
    sub = broker.subscriber([ROOT + "cmd/+/result", ROOT + "events", ROOT + "status"], timeout=10)
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        ts = online_ts(sub, ROOT)
        heard(sub, ROOT, ts)
        alarm = json.loads(proc.ok("press", "--json"))["alarm"]["event_id"]
        for name, body in (("ack", f'{{"id": "\\ud800", "ts": "{ts}", "event_id": "{alarm}"}}'),
                           ("resolve", f'{{"id": "\\udc00x", "ts": "{ts}", "outcome": "cancelled"}}')):
            result = send_command(sub, ROOT, name, body.encode())  # checked against result.schema.json
            assert result["ok"] is False and result["id"] is None, result
            assert result["error"].startswith("not_unicode:") and "lone surrogate" in result["error"]
            status = proc.status()
            assert status["alarm"]["state"] == "active" and status["light"] == "alarm", status
        events = [m.json()["type"] for m in sub.messages(ROOT + "events")]
        assert "help_coming" not in events and "resolved" not in events
        # the kiosk still takes a good command, and says so on the wire and on disk
        assert send_command(sub, ROOT, "ack", {"id": "good-1", "ts": ts, "event_id": alarm})["ok"] is True
        sub.wait_for(lambda m: m.topic == ROOT + "events" and m.json()["type"] == "help_coming", timeout=10)
        proc.ok("resolve", "false_alarm")
        panics = len([e for e in proc.events() if e["type"] == "panic"])
        result = send_command(sub, ROOT, "test", b'{"id": "\\ud800", "ts": "%s"}' % ts.encode())
        assert result["ok"] is False and result["error"].startswith("not_unicode:")
        assert proc.status()["alarm"]["state"] == "idle"
        assert len([e for e in proc.events() if e["type"] == "panic"]) == panics  # no test alarm
        assert proc.status()["pending_events"] == 0
        assert proc.stop() == 0
    finally:
        proc.kill()
        sub.close()
