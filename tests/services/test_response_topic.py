"""MQTT 5 response topics a console may set, and names so long their result topic cannot exist.

Found by testing: a `cmd/ping` whose response topic held a wildcard (`.../cmd/+/result`) made
paho raise in the uplink thread, which died: the kiosk still said "link online" while every
later alarm waited in its outbox. A response topic naming the kiosk's own `events` put a
result into the precinct's event stream. Now only the kiosk's own `cmd/{name}/result` topics
are honoured (docs/mqtt.md); the result always goes to `cmd/{command}/result` as well.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.rig.broker import Broker
from tests.rig.contract import validate
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config

ROOT = "safehouse/v1/test/SH-TEST-0001/"
TS = "2026-01-01T00:00:00Z"  # the test machine's clock is not synchronised: ts is not checked


def test_a_response_topic_outside_our_results_is_ignored_and_never_stops_the_uplink(
        short_dir: Path, broker: Broker) -> None:
    proc = DaemonProcess(write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n'),
                         short_dir / "ctl.sock").start()
    sub = broker.subscriber([ROOT + "#"], timeout=10)
    try:
        sub.wait_for(lambda m: m.topic == ROOT + "status" and m.json()["state"] == "online")
        bad = [ROOT + "events", ROOT + "status", "elsewhere/result", ROOT + "cmd/+/result", "#"]
        long_name = "n" * (65535 - len(ROOT + "cmd/"))  # its result topic would be over 65535 bytes
        sub.clear()
        for n, topic in enumerate(bad):
            sub.publish(ROOT + "cmd/ping", json.dumps({"id": f"rt-{n}", "ts": TS}), response_topic=topic,
                        correlation_data=b"c")
            [msg] = sub.wait_for(lambda m, n=n: m.topic == ROOT + "cmd/ping/result"
                                 and f'"rt-{n}"'.encode() in m.payload)
            assert validate("result", msg.payload)["ok"] is True
        sub.publish(ROOT + f"cmd/{long_name}", json.dumps({"id": "long", "ts": TS}))
        sub.publish(ROOT + "cmd/ping", json.dumps({"id": "own", "ts": TS}),
                    response_topic=ROOT + "cmd/x/result", correlation_data=b"corr-1")
        # our own result topic is honoured; it comes after every reply above (one sender, in order)
        [reply] = sub.wait_for(lambda m: m.topic == ROOT + "cmd/x/result")
        assert reply.correlation_data == b"corr-1" and reply.json()["id"] == "own"
        assert [m.topic for m in sub.messages() if m.topic in (ROOT + "events", ROOT + "status")] == []
        proc.ok("press")  # the uplink is alive: the alarm reaches the precinct
        [event] = sub.wait_for(lambda m: m.topic == ROOT + "events" and m.json()["type"] == "panic")
        validate("event", event.payload)
        log = proc.log.read_text()
        assert "Traceback" not in log
        assert "uplink: dropped a message paho refused (Publish topic is too long.)" in log  # the long name
    finally:
        proc.kill()
        sub.close()
