"""A bug inside the uplink thread costs one connection, never the link: nothing goes silent.

Before, any unexpected exception on the uplink thread ended it: `status` still said online, the
watchdog saw a live core loop, and every later alarm sat in the outbox. Here a real Uplink drains a
real Outbox to a real mosquitto, and the runtime's `on_sent` hook (the capture's "your alarm has
gone out" callback) raises once, as a bug in it would.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

from safehouse.services.outbox import Outbox
from safehouse.services.topics import Topics
from safehouse.services.uplink import LinkSettings, Uplink
from tests.rig.broker import Broker
from tests.rig.wait import wait_for

TOPIC = "safehouse/v1/t/SH-SURVIVE/events"


def panic(n: int) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "device_id": "SH-SURVIVE", "precinct": "t", "type": "panic",
            "code": 120, "ts": "2026-06-01T12:00:00.000Z", "clock_synced": True, "mono": float(n),
            "boot_id": "test", "test": True, "data": {}}


def test_an_exception_in_the_uplink_thread_reconnects_and_the_alarm_is_delivered(
        broker: Broker, tmp_path: Path) -> None:
    sub = broker.subscriber([TOPIC])
    outbox = Outbox(tmp_path / "state")
    states: list[str] = []
    blown = threading.Event()

    def on_sent(_event_id: str) -> None:
        if not blown.is_set():
            blown.set()
            raise RuntimeError("a bug in a callback")

    uplink = Uplink(LinkSettings(url=broker.url, client_id="SH-SURVIVE"), Topics("t", "SH-SURVIVE"), outbox,
                    birth=lambda: b'{"state":"online"}', offline=lambda _r: b'{"state":"offline"}',
                    on_command=lambda _m: None, on_alliance=lambda _m: None, on_state=states.append,
                    on_sent=on_sent)
    try:
        first = outbox.append_event(panic(1), TOPIC)
        uplink.start()
        assert wait_for(blown.is_set, 10.0)
        assert wait_for(lambda: states.count("online") >= 2, 10.0)  # dropped, backed off, back online
        assert "offline" in states[states.index("online"):]
        second = outbox.append_event(panic(2), TOPIC)
        uplink.wake(urgent=True)
        got = sub.wait_for(lambda m: json.loads(m.payload)["seq"] == second.seq, timeout=10)
        assert got
        ids = {json.loads(m.payload)["event_id"] for m in sub.messages(TOPIC)}
        assert {first.event_id, second.event_id} <= ids  # the first re-sent after the reconnect
        assert uplink.view()["state"] == "online"
        assert wait_for(lambda: outbox.stats().depth["events"] == 0, 10.0)
    finally:
        uplink.close()
        outbox.close()
