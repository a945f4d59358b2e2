"""The precinct's view of the fleet: births, last wills, alarms, and the broker's own counters.

One console on the precinct's wildcards (the test rig's ``Subscriber``, which stamps every
arrival with ``time.monotonic()``), plus the broker's ``$SYS`` PUBLISH counters
(``sys_interval 1``) for messages per second. Every process on this machine shares the
monotonic clock, so a latency is the arrival time here minus the worker's queueing time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Self

from tests.rig.broker import Broker
from tests.rig.subscriber import Subscriber

# PUBLISH packets only; $SYS/broker/messages/* would also count PINGREQ, PUBACK and the rest
SYS_RECEIVED = "$SYS/broker/publish/messages/received"
SYS_SENT = "$SYS/broker/publish/messages/sent"


class Observer:
    def __init__(self, broker: Broker, precinct: str) -> None:
        self._broker = broker
        self._root = f"safehouse/v1/{precinct}/"
        self.online: dict[str, float] = {}   # device -> first "online" status
        self.lost: dict[str, float] = {}     # device -> first "offline"/"lost" (its last will)
        self.events: dict[str, float] = {}   # event_id -> first arrival
        self._sys: dict[str, tuple[float, int]] = {}
        self._seen = 0  # messages already sorted into the views above
        self._sub: Subscriber | None = None

    def start(self) -> Self:
        self._sub = self._broker.subscriber([self._root + "+/status", self._root + "+/events",
                                             SYS_RECEIVED, SYS_SENT], client_id="fleet-precinct",
                                            timeout=10.0)
        return self

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close()

    def _update(self) -> None:
        """Sort what arrived since the last call into online / lost / events / $SYS."""
        assert self._sub is not None
        messages = self._sub.messages()
        for m in messages[self._seen:]:
            if m.topic.startswith("$SYS/"):
                self._sys[m.topic] = (m.received, int(m.payload))
                continue
            device, _, kind = m.topic[len(self._root):].partition("/")
            body = json.loads(m.payload)
            if kind == "events":
                self.events.setdefault(body["event_id"], m.received)
            elif body.get("state") == "online":
                self.online.setdefault(device, m.received)
            elif body.get("state") == "offline" and body.get("reason") == "lost":
                self.lost.setdefault(device, m.received)
        self._seen = len(messages)

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Until ``done()``; says how far it got every 10 s, and in the error when it gives up."""
        start = said = time.monotonic()
        while True:
            self._update()
            if done():
                return
            now = time.monotonic()
            if now - said >= 10:
                said = now
                print(f"  ... waiting for {what}: {self.progress()} after {now - start:.0f} s",
                      file=sys.stderr)
            if now - start > timeout:
                raise TimeoutError(f"the precinct did not see {what} within {timeout:g} s "
                                   f"({self.progress()})")
            time.sleep(0.01)

    def progress(self) -> str:
        return f"{len(self.online)} births, {len(self.lost)} wills, {len(self.events)} alarms seen"

    def sys_snapshot(self) -> dict[str, tuple[float, int]]:
        """The broker's counters now (after their next 1 s update)."""
        time.sleep(1.1)
        self._update()
        return dict(self._sys)

    def rate_since(self, before: dict[str, tuple[float, int]]) -> dict[str, float]:
        """PUBLISH messages/s the broker received and sent since ``before``."""
        now = self.sys_snapshot()
        rates = {}
        for name, topic in (("received", SYS_RECEIVED), ("sent", SYS_SENT)):
            (t0, n0), (t1, n1) = before[topic], now[topic]
            rates[name] = (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")
        rates["total"] = rates["received"] + rates["sent"]
        return rates
