"""Alarms the outbox could not write, published from memory until the broker acknowledges them.

The kiosk's promise is that an accepted alarm reaches the precinct; a failing SD card must
not break it. The shell hands an alarm it could not write to ``add()`` at once, the uplink
publishes it (QoS 1, the event's own seq and event_id) before anything in the outbox and
reports the PUBACK with ``acked()``. When storage returns, the shell writes the event with
the same event_id (as delivered if acknowledged) and calls ``stored()``: the precinct keeps
one copy even if both paths sent it. Shutdown asks ``wait_settled()`` so it never stops
"cleanly" while an alarm is neither written nor delivered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryMessage:
    event_id: str
    topic: str
    payload: bytes


class MemoryAlarms:
    """Thread-safe: the core loop adds and settles, the uplink thread publishes and acks."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: dict[str, MemoryMessage] = {}  # to publish until acked or stored
        self._acked: set[str] = set()
        self._published: set[str] = set()
        self.sent = 0

    def add(self, event_id: str, topic: str, payload: bytes) -> None:
        with self._cond:
            if event_id not in self._acked:
                self._waiting[event_id] = MemoryMessage(event_id, topic, payload)

    def unsent(self, exclude: set[str]) -> list[MemoryMessage]:
        """What the uplink should publish now: waiting, not acknowledged, not in flight."""
        with self._cond:
            return [m for eid, m in self._waiting.items() if eid not in exclude and eid not in self._acked]

    def published(self, event_id: str) -> None:
        with self._cond:
            self._published.add(event_id)
            self.sent += 1

    def acked(self, event_id: str) -> None:
        with self._cond:
            if event_id in self._waiting:
                self._acked.add(event_id)
                self._cond.notify_all()

    def stored(self, event_id: str) -> None:
        """The event is on disk now: the outbox takes over (or knows it was delivered)."""
        with self._cond:
            self._waiting.pop(event_id, None)
            self._acked.discard(event_id)
            self._published.discard(event_id)
            self._cond.notify_all()

    def delivered(self, event_id: str) -> bool:
        with self._cond:
            return event_id in self._acked

    def was_published(self, event_id: str) -> bool:
        with self._cond:
            return event_id in self._published or event_id in self._acked

    def waiting(self) -> int:
        """Alarms neither written nor acknowledged: the uplink keeps its retries short."""
        with self._cond:
            return len([e for e in self._waiting if e not in self._acked])

    def unsettled(self) -> list[str]:
        with self._cond:
            return [e for e in self._waiting if e not in self._acked]

    def wait_acked(self, event_id: str, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: event_id in self._acked or event_id not in self._waiting,
                                       timeout)

    def wait_settled(self, timeout: float) -> bool:
        """Block until every alarm is written or acknowledged; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: all(e in self._acked for e in self._waiting), timeout)
