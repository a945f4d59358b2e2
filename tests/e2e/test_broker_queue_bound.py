"""The precinct broker bounds what one certificate can make it hold for an away console.

Found by testing: with only ``max_queued_messages 200000``, a certificate stolen from one kiosk
made mosquitto keep every 16 MiB message it sent to its own ``evidence/#`` for the precinct
console's persistent session (10 messages: +176 MB of broker memory), so a few hundred take
the broker, and every kiosk's link, down. ``max_queued_bytes`` bounds it. The shipped value
(512 MiB) is too large to fill here; the broker runs the shipped file with that one line
scaled down, to show this mosquitto enforces it for an offline persistent session.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.rig.broker import mosquitto_path, write_acl
from tests.rig.pki import Pki
from tests.rig.precinct import PRECINCT_CONF, PrecinctBroker
from tests.rig.subscriber import Subscriber

ROOT = "safehouse/v1/p1/SH-B/"
MIB = 1024 * 1024


def _shipped_bound() -> int:
    found = re.findall(r"^max_queued_bytes\s+(\d+)\s*$", PRECINCT_CONF.read_text(encoding="utf-8"), re.M)
    assert len(found) == 1, "config/mosquitto-precinct.conf must set max_queued_bytes once"
    return int(found[0])


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def test_the_shipped_config_bounds_each_client_queue_in_bytes() -> None:
    assert 64 * MIB <= _shipped_bound() <= 1024 * MIB


def test_a_stolen_kiosk_certificate_cannot_fill_the_broker_through_an_away_console(
        pki: Pki, mqtt_dir: Path) -> None:
    acl = write_acl(mqtt_dir, [("SH-A", "p1", "a1"), ("SH-B", "p1", "a1")], "precinct-console")
    console_pair, kiosk_pair = pki.client("precinct-console"), pki.client("SH-B")
    bound = 8 * MIB
    broker = PrecinctBroker(mqtt_dir / "precinct", pki=pki, acl_file=acl, mosquitto=mosquitto_path())
    broker.extra = [f"max_queued_bytes {bound}"]  # the shipped line, scaled down (the last one wins)
    with broker:
        pid = broker.pid
        assert pid is not None

        def console() -> Subscriber:  # a persistent session, as docs/mqtt.md asks of a console
            return Subscriber(broker.port, (ROOT + "#",), ca=pki.ca.cert, cert=console_pair.cert,
                              key=console_pair.key, client_id="precinct-console", session_expiry=3600)

        console().close()  # away now; the broker keeps its session and queues for it
        before = _rss_mb(pid)
        blob = os.urandom(4 * MIB)
        with Subscriber(broker.port, (), ca=pki.ca.cert, cert=kiosk_pair.cert, key=kiosk_pair.key,
                        timeout=30) as thief:
            for n in range(16):  # 64 MiB, eight times the bound
                thief.publish(ROOT + f"evidence/e{n}/audio.wav", blob)
        grown = _rss_mb(pid) - before
        assert grown < 40, f"the broker grew by {grown} MB holding messages for an away console"
        assert "Outgoing messages are being dropped for client precinct-console" in broker.log_text()
        with console() as back:  # the console comes back to what fitted, the broker still up
            back.wait_for(ROOT + "evidence/e0/audio.wav", timeout=20.0)
        assert broker.running
