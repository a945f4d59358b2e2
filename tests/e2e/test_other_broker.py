"""The kiosk's command path on a broker that is not mosquitto: amqtt, MQTT 3.1.1 only.

A precinct may run another broker. amqtt (pure Python, 3.1.1 only) is started here on a free
port, and a real daemon with ``broker.protocol = "3.1.1"`` is driven by an independent paho
3.1.1 console: a ping answered, its replay refused (live and after a restart, the id being on
disk), and a retained command left on the broker refused at connect. What 3.1.1 cannot do —
see a retained command's flag on live delivery — is in docs/mqtt.md and not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt.client import MQTTProtocolVersion

from tests.rig.availability import unavailable
from tests.rig.console import online_ts, send_command
from tests.rig.contract import validate
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config
from tests.rig.net import HOST, die_with_parent, free_port
from tests.rig.subscriber import Subscriber

ROOT = "safehouse/v1/test/SH-TEST-0001/"
AMQTT = Path(sys.executable).parent / "amqtt"  # installed with the dev extra (pyproject.toml)


@pytest.fixture
def amqtt(short_dir: Path) -> Iterator[int]:
    """An amqtt broker on a free 127.0.0.1 port, anonymous, no persistence; yields the port."""
    if not AMQTT.exists():
        unavailable("amqtt is not installed (pip install -e '.[dev]' installs it)")
    port = free_port()
    conf = short_dir / "amqtt.yaml"
    conf.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: {HOST}:{port}\nplugins:\n"
                    "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n",
                    encoding="utf-8")
    log = (short_dir / "amqtt.log").open("wb")
    proc = subprocess.Popen([str(AMQTT), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + 20
        while b"bind to" not in (short_dir / "amqtt.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"amqtt did not start:\n{(short_dir / 'amqtt.log').read_text()}")
            time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait(5)
        log.close()


def test_ping_replay_and_a_retained_command_on_an_mqtt_311_only_broker(short_dir: Path, amqtt: int) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "mqtt://{HOST}:{amqtt}"\nprotocol = "3.1.1"\n')
    sub = Subscriber(amqtt, [ROOT + "cmd/+/result", ROOT + "status"],
                     protocol=MQTTProtocolVersion.MQTTv311, timeout=10)
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        ts = online_ts(sub, ROOT, 15)
        pong = send_command(sub, ROOT, "ping", {"id": "amqtt-ping-1", "ts": ts}, timeout=10)
        assert pong["ok"] is True and pong["result"]["pong"] is True
        again = send_command(sub, ROOT, "ping", {"id": "amqtt-ping-1", "ts": ts}, timeout=10)
        assert again["ok"] is False and again["error"].startswith("replayed:")
        assert again["id"] == "amqtt-ping-1"

        assert proc.stop() == 0
        sub.publish(ROOT + "cmd/test", json.dumps({"id": "amqtt-stale", "ts": ts}), retain=True)
        sub.clear()
        proc.start()
        ts = online_ts(sub, ROOT, 15)
        [msg, *_] = sub.wait_for(lambda m: m.topic == ROOT + "cmd/test/result", timeout=10)
        retained = validate("result", msg.payload)
        assert retained["ok"] is False and retained["error"].startswith("retained:")
        assert retained["id"] == "amqtt-stale"
        # the id survived the restart
        after = send_command(sub, ROOT, "ping", {"id": "amqtt-ping-1", "ts": ts}, timeout=10)
        assert after["ok"] is False and after["error"].startswith("replayed:")
        assert proc.status()["alarm"]["state"] == "idle"
        assert [e for e in proc.events() if e["type"] == "panic"] == []
    finally:
        sub.publish(ROOT + "cmd/test", b"", retain=True)
        proc.kill()
        sub.close()
