"""The uplink's window of QoS 1 publishes: what is in flight, and what each PUBACK settles.

A row leaves the outbox's ``pending`` while it is in flight and becomes delivered only when its
PUBACK arrives and that is recorded in the outbox. Kept apart from the connection's life
(``services/uplink.py``: connect, backoff, birth, subscriptions) because this bookkeeping is
where the delivery guarantees live: the order of a drain, one evidence file at a time, alarms
held only in memory published before any row, acknowledged rows written in batches, and a
replaced outbox forgetting the ids that now name other rows. Only the uplink thread calls in,
except ``acked()`` (paho's thread) and ``delivered`` (any thread).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from safehouse.services.memory_alarms import MemoryAlarms
from safehouse.services.mqtt_link import MqttLink
from safehouse.services.uplink_types import EVIDENCE_LANE, Source

__all__ = ["DeliveryWindow"]

_LOG = logging.getLogger(__name__)


class DeliveryWindow:
    """At most ``size`` outbox rows in flight on one connection, and the PUBACKs that settle them."""

    def __init__(self, source: Source, size: int) -> None:
        self._source = source
        self.size = size
        self._acks: queue.SimpleQueue[tuple[int, str | None]] = queue.SimpleQueue()
        self._in_flight: dict[int, int] = {}  # mid -> outbox row id
        self._in_flight_lanes: dict[int, int] = {}  # mid -> lane
        self._acked_rows: list[int] = []  # PUBACKed, not yet recorded in the outbox
        self._memory_flight: dict[int, str] = {}  # mid -> event_id published from memory
        self._generation = 0  # of the outbox file the rows in flight came from
        self._read_failed = self._mark_failed = False
        self._lock = threading.Lock()
        self._delivered = 0

    @property
    def delivered(self) -> int:
        """Rows whose delivery is recorded in the outbox since the uplink started."""
        with self._lock:
            return self._delivered

    def in_flight(self) -> int:
        return len(self._in_flight)

    def needs_retry(self) -> bool:
        """A read or a delivery record failed, or acknowledged rows wait to be recorded."""
        return self._read_failed or self._mark_failed or bool(self._acked_rows)

    def acked(self, mid: int, refusal: str | None) -> None:
        """paho's thread: a PUBACK (``refusal`` set if the broker refused the publish)."""
        self._acks.put((mid, refusal))

    def restart(self) -> None:
        """A new connection: what the last one acknowledged is delivered, the rest is sent again."""
        self.record_acked()
        self._in_flight.clear()
        self._in_flight_lanes.clear()
        self._memory_flight.clear()
        while not self._acks.empty():
            self._acks.get_nowait()

    def settle(self, memory: MemoryAlarms | None, lost: str | None) -> str | None:
        """Move PUBACKed rows out of the window; record them in the outbox in batches.

        A batch is written when half a window has been acknowledged or nothing is left in
        flight: one commit per ~50 rows instead of one per wake-up keeps a drain near the bare
        publish rate. Until written, acknowledged rows stay excluded from ``pending``. Returns
        why the connection must be dropped if the broker refused a publish (else None); ``lost``
        (the link already lost) writes the batch at once.
        """
        refused: str | None = None
        while not self._acks.empty():
            mid, refusal = self._acks.get_nowait()
            memory_id = self._memory_flight.pop(mid, None)
            if memory_id is not None and memory is not None:
                if refusal is None:
                    memory.acked(memory_id)
                else:
                    refused = f"the broker refused a publish ({refusal}): check the broker ACL"
                continue
            row_id = self._in_flight.pop(mid, None)
            self._in_flight_lanes.pop(mid, None)
            if row_id is None:
                continue
            if refusal is not None:
                # Not delivered: keep the row, reconnect with backoff, and say why in `status`.
                refused = f"the broker refused a publish ({refusal}): check the broker ACL"
                continue
            self._acked_rows.append(row_id)
        if len(self._acked_rows) >= self.size // 2 or not self._in_flight \
                or lost is not None or refused is not None:
            self.record_acked()
        return refused

    def record_acked(self) -> None:
        if not self._acked_rows:
            return
        done = self._acked_rows
        try:
            self._source.mark_delivered(done)
        except Exception as exc:  # storage failing: keep them acknowledged (not sent again), retry
            if not self._mark_failed:
                _LOG.warning("uplink: could not record %d delivery(ies) in the outbox (kept, retried): %s",
                             len(done), exc)
            self._mark_failed = True
            return
        self._mark_failed = False
        self._acked_rows = []
        with self._lock:
            self._delivered += len(done)

    def fill(self, link: MqttLink, memory: MemoryAlarms | None, on_sent: Callable[[str], None]) -> None:
        """Outbox rows first (older queued events keep their order, in the same burst), then the
        alarms that exist only in memory (outside the window: they never wait for it)."""
        self._check_generation()
        self._fill_from_outbox(link, on_sent)
        self._send_memory(link, memory, on_sent)

    def _send_memory(self, link: MqttLink, memory: MemoryAlarms | None,
                     on_sent: Callable[[str], None]) -> None:
        """Alarms the outbox could not write: published before any outbox row."""
        if memory is None:
            return
        for msg in memory.unsent(set(self._memory_flight.values())):
            mid = link.publish(msg.topic, msg.payload)
            self._memory_flight[mid] = msg.event_id
            memory.published(msg.event_id)
            _LOG.warning("uplink: alarm %s published from memory (not yet on disk)", msg.event_id)
            on_sent(msg.event_id)

    def _check_generation(self) -> None:
        generation = int(getattr(self._source, "generation", 0))
        if generation != self._generation:
            if self._in_flight or self._acked_rows:
                _LOG.warning("uplink: the outbox was replaced; %d row(s) in flight will be sent again "
                             "from the new file", len(self._in_flight))
            self._generation = generation
            self._in_flight.clear()
            self._in_flight_lanes.clear()
            self._acked_rows.clear()

    def _pending(self, room: int, busy: set[int]) -> list[Any]:
        try:
            rows = self._source.pending(room, exclude=busy)
        except Exception as exc:  # a failing outbox must not stop memory alarms nor this thread
            if not self._read_failed:
                _LOG.error("uplink: cannot read the outbox: %s", exc)
            self._read_failed = True
            return []
        self._read_failed = False
        return rows

    def _fill_from_outbox(self, link: MqttLink, on_sent: Callable[[str], None]) -> None:
        room = self.size - len(self._in_flight)
        if room <= 0 or (self._in_flight and room < self.size // 4):
            return  # refill in batches: each outbox read costs the same for 1 row or 25
        heavy = sum(1 for lane in self._in_flight_lanes.values() if lane == EVIDENCE_LANE)
        busy = set(self._in_flight.values()).union(self._acked_rows)
        for row in self._pending(room, busy):
            if row.lane == EVIDENCE_LANE:
                if heavy >= 1:
                    break  # one file at a time: an alarm queued next never waits behind a pile of them
                heavy += 1
            mid = link.publish(row.topic, row.payload, retain=row.retain)
            self._in_flight[mid] = row.id
            self._in_flight_lanes[mid] = row.lane
            if row.event_id is not None:
                on_sent(row.event_id)
