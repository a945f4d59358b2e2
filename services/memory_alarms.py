"""Alarms the outbox could not write, published from memory until the broker acknowledges them.

The kiosk's promise is that an accepted alarm reaches the precinct; a failing SD card must
not break it. The shell hands an alarm it could not write to ``add()`` at once, the uplink
publishes it (QoS 1, the event's own seq and event_id) before anything in the outbox and
reports the PUBACK with ``acked()``. When storage returns, the shell writes the event with
the same event_id (as delivered if acknowledged) and calls ``stored()``: the precinct keeps
one copy even if both paths sent it. Shutdown asks ``wait_settled()`` so it never stops
"cleanly" while an alarm is neither written nor delivered. Each waiting alarm is also kept in
the runtime folder (services/alarm_spool.py), so a crash does not lose it.

A publish the broker refuses (an ACL that does not cover the topic) is ``refused()``: set
aside, counted, never published again and never waited for; it is still written to disk when
storage returns.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from safehouse.services.alarm_spool import AlarmSpool

_LOG = logging.getLogger(__name__)


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
        self._refused: dict[str, str] = {}  # event_id -> why the broker refused it
        self._spool: AlarmSpool | None = None
        self._copies: set[str] = set()  # written to the WAL only: kept in the spool, not sent
        self.sent = 0

    def keep_in(self, spool: AlarmSpool) -> None:
        """Keep every alarm waiting here in ``spool`` too (the runtime folder)."""
        self._spool = spool

    def add(self, event_id: str, topic: str, payload: bytes) -> None:
        with self._cond:
            if event_id not in self._acked and event_id not in self._refused:
                self._waiting[event_id] = MemoryMessage(event_id, topic, payload)
                if self._spool is not None:
                    self._spool.keep(event_id, payload)

    def keep_copy(self, event_id: str, payload: bytes) -> None:
        """A copy of an alarm that IS written, but only to the outbox's WAL (its checkpoint
        failed): kept in the spool, never published from here, so the next start takes it back
        if the WAL is lost; ``drop_copies()`` once a checkpoint got it into the database file."""
        with self._cond:
            if self._spool is not None and event_id not in self._waiting:
                self._spool.keep(event_id, payload)
                self._copies.add(event_id)

    def drop_copies(self) -> None:
        with self._cond:
            for event_id in self._copies - set(self._waiting):
                self._drop(event_id)
            self._copies.clear()

    def _drop(self, event_id: str) -> None:
        if self._spool is not None:
            self._spool.drop(event_id)

    def unsent(self, exclude: set[str]) -> list[MemoryMessage]:
        """What the uplink should publish now: waiting, not acknowledged, not in flight."""
        with self._cond:
            return [m for eid, m in self._waiting.items() if eid not in exclude and eid not in self._acked]

    def refused(self, event_id: str, why: str) -> None:
        """The broker refused the publish: set it aside (its file too), never publish it again."""
        with self._cond:
            if self._waiting.pop(event_id, None) is None:
                return
            self._refused[event_id] = why
            if self._spool is not None:
                self._spool.set_aside(self._spool.path_of(event_id).name, "refused", why, report=False)
            self._cond.notify_all()

    def published(self, event_id: str) -> None:
        with self._cond:
            self._published.add(event_id)
            self.sent += 1

    def acked(self, event_id: str) -> None:
        with self._cond:
            if event_id in self._waiting:
                self._acked.add(event_id)
                self._drop(event_id)
                self._cond.notify_all()

    def stored(self, event_id: str) -> None:
        """The event is on disk now: the outbox takes over (or knows it was delivered)."""
        with self._cond:
            self._waiting.pop(event_id, None)
            self._drop(event_id)
            self._acked.discard(event_id)
            self._published.discard(event_id)
            self._refused.pop(event_id, None)
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
        """Alarms neither on disk nor acknowledged: those still waiting and those refused."""
        with self._cond:
            return [e for e in self._waiting if e not in self._acked] + list(self._refused)

    def wait_acked(self, event_id: str, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: event_id in self._acked or event_id not in self._waiting,
                                       timeout)

    def wait_settled(self, timeout: float) -> bool:
        """Block until every alarm is written or acknowledged; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: all(e in self._acked for e in self._waiting), timeout)
