"""The kiosk listens for commands before it says "online".

A console that sees the retained ``online`` status and sends a command at once must find the
kiosk subscribed. The broker handles one client's packets in the order they came, so the
SUBSCRIBE has to leave before the status PUBLISH; the other way round, a command sent in the
gap was dropped by the broker (nobody subscribed) and the console waited for a result that never
came. Read here in the real mosquitto's own log of what it received.
"""

from __future__ import annotations

import re
from pathlib import Path

from safehouse.services.outbox import Outbox
from safehouse.services.topics import Topics
from safehouse.services.uplink import LinkSettings, Uplink
from tests.rig.broker import Broker
from tests.rig.wait import wait_for


def test_the_command_subscription_reaches_the_broker_before_the_online_status(
        broker: Broker, tmp_path: Path) -> None:
    topics = Topics("t", "SH-LISTEN")
    outbox = Outbox(tmp_path / "state")
    states: list[str] = []
    uplink = Uplink(LinkSettings(url=broker.url, client_id="SH-LISTEN"), topics, outbox,
                    birth=lambda: b'{"state":"online"}', offline=lambda _r: b'{"state":"offline"}',
                    on_command=lambda _m: None, on_alliance=lambda _m: None, on_state=states.append)
    try:
        uplink.start()
        assert wait_for(lambda: "online" in states, 10.0)
        log = broker.wait_for_log("Received PUBLISH from SH-LISTEN")
        received = re.findall(r"Received (SUBSCRIBE|PUBLISH) from SH-LISTEN", log)
        assert received[:2] == ["SUBSCRIBE", "PUBLISH"], received
    finally:
        uplink.close()
        outbox.close()
