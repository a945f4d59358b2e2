"""A message the broker refuses is set aside, counted and reported; it never holds back the rest.

Real parts: the precinct's TLS mosquitto with the ACL `safehouse acl render` writes, real client
certificates, the real daemon and CLI, and the precinct console as an independent subscriber.
mosquitto 2 answers a publish its ACL refuses with an MQTT 5 PUBACK of reason 135 (Not
authorized) and keeps the connection open; the uplink used to drop the connection on it, so the
refused message, first in line again after every reconnect, held back every alarm behind it.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config
from tests.rig.pki import Pki

OLD, NEW = "safehouse/v1/p1/SH-A/", "safehouse/v1/p1/SH-B/"


def kiosk(folder: Path, device_id: str, broker: str = "", pki: Pki | None = None) -> DaemonProcess:
    extra = ""
    if broker and pki is not None:
        client = pki.client(device_id)
        extra = (f'[broker]\nurl = "{broker}"\nca = "{pki.ca.cert}"\ncert = "{client.cert}"\n'
                 f'key = "{client.key}"\n')
    config = write_config(folder, extra, id=device_id, precinct="p1")
    return DaemonProcess(config, folder / "ctl.sock")


def test_rows_left_by_an_earlier_provisioning_are_set_aside_and_a_new_alarm_goes_out_at_once(
        short_dir: Path, acl_broker: Broker, pki: Pki) -> None:
    """Queued as SH-A (offline), then re-provisioned as SH-B: the broker refuses SH-A's topics to
    SH-B's certificate. SH-B's own alarm must reach the precinct at once, the link stay online,
    and the two refused rows be given up with their reason, counted in `status`."""
    before = kiosk(short_dir, "SH-A").start()
    try:
        before.ok("press")
        before.ok("resolve", "false_alarm")
    finally:
        assert before.stop() == 0
    console = acl_broker.subscriber(["safehouse/#"], name="precinct-console")
    proc = kiosk(short_dir, "SH-B", acl_broker.url, pki).start()
    try:
        pressed = time.monotonic()
        proc.ok("press")
        [panic] = console.wait_for(lambda m: m.topic == NEW + "events" and m.json()["type"] == "panic",
                                   timeout=20)
        assert time.monotonic() - pressed < 5, "the alarm waited behind the refused rows"
        assert panic.json()["device_id"] == "SH-B" and panic.json()["seq"] == 3
        deadline = time.monotonic() + 10
        status = proc.status()
        while status["link"].get("refused", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = proc.status()
        link = status["link"]
        assert link["state"] == "online" and link["refused"] == 2, link
        assert "Not authorized" in link["last_refused"] and OLD + "events" in link["last_refused"], link
        assert status["outbox"]["depth"]["events"] == 0  # set aside: nothing waits behind them
        assert console.messages(OLD + "events") == []
        assert "refused" in proc.ok("status")  # the technician's view says it too
    finally:
        proc.kill()
        console.close()
