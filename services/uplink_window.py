"""The uplink's window of QoS 1 publishes: what is in flight, and what each PUBACK settles.

A row leaves the outbox's ``pending`` while it is in flight and becomes delivered only when its
PUBACK arrives and that is recorded in the outbox. Kept apart from the connection's life
(``services/uplink.py``: connect, backoff, birth, subscriptions) because this bookkeeping is
where the delivery guarantees live: the order of a drain, one evidence file at a time, alarms
held only in memory published before any row, acknowledged rows written in batches, and a
replaced outbox forgetting the ids that now name other rows. Only the uplink thread calls in,
except ``acked()`` (paho's thread) and ``delivered``/``refusals()`` (any thread).

A publish the broker refuses (MQTT 5 PUBACK with a failure reason: mosquitto answers 135 Not
authorized to a topic its ACL does not grant, and keeps the connection) is set aside: an
outbox row is given up with its reason, an alarm held in memory is taken off the queue; both
are counted and the last one named, and nothing behind them waits. Dropping the connection
instead (as the uplink once did) sent the same refused message first after every reconnect,
so a row left by an earlier provisioning held back every alarm behind it. One exception: when
the broker refused this connection's own birth message too, it refuses the kiosk itself (its
certificate or the ACL is wrong), and giving messages up would lose them all for nothing:
they are kept and the connection is dropped, with the reason, as before.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from safehouse.device.core.ratelimit import RateLimitedLog, clip
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
        self._topics: dict[int, str] = {}  # mid -> topic, to name what a refusal refused
        self._birth: int | None = None  # the birth message's mid until its PUBACK
        self._birth_refused: str | None = None  # this connection's birth was refused: why
        self._given_up: list[tuple[int, str]] = []  # refused rows (id, why) not yet recorded
        self.refused = 0  # publishes the broker refused since start
        self.last_refused = ""
        self._generation = 0  # of the outbox file the rows in flight came from
        self._read_failed = self._mark_failed = False
        self._lock = threading.Lock()
        self._delivered = 0
        self._refusal_log = RateLimitedLog(_LOG)

    @property
    def delivered(self) -> int:
        """Rows whose delivery is recorded in the outbox since the uplink started."""
        with self._lock:
            return self._delivered

    def in_flight(self) -> int:
        return len(self._in_flight)

    def needs_retry(self) -> bool:
        """A read or a delivery record failed, or acknowledged rows wait to be recorded."""
        return self._read_failed or self._mark_failed or bool(self._acked_rows) or bool(self._given_up)

    def refusals(self) -> dict[str, object]:
        """What the broker refused (counted since start, the last one named), for status/telemetry."""
        with self._lock:
            return {"refused": self.refused, "last_refused": self.last_refused or None}

    @property
    def birth_refused(self) -> str | None:
        """Why the broker refused this connection's birth message, if it did."""
        return self._birth_refused

    def expect_birth(self, mid: int) -> None:
        """The connection's birth message went out as ``mid``: its PUBACK tells whether the broker
        takes this kiosk's topics at all."""
        self._birth, self._birth_refused = mid, None

    def acked(self, mid: int, refusal: str | None) -> None:
        """paho's thread: a PUBACK (``refusal`` set if the broker refused the publish)."""
        self._acks.put((mid, refusal))

    def restart(self) -> None:
        """A new connection: what the last one acknowledged is delivered, the rest is sent again."""
        self.record_acked()
        self._in_flight.clear()
        self._in_flight_lanes.clear()
        self._memory_flight.clear()
        self._topics.clear()
        self._birth = self._birth_refused = None
        while not self._acks.empty():
            self._acks.get_nowait()

    def settle(self, memory: MemoryAlarms | None, lost: str | None) -> str | None:
        """Move PUBACKed rows out of the window; record them in the outbox in batches.

        A batch is written when half a window has been acknowledged or nothing is left in
        flight: one commit per ~50 rows instead of one per wake-up keeps a drain near the bare
        publish rate. Until written, acknowledged rows stay excluded from ``pending``. A refused
        publish is set aside (see the module doc). Returns why the connection must be dropped
        (the broker refuses this kiosk itself), else None; ``lost`` (the link already lost)
        writes the batch at once.
        """
        drop: str | None = None
        while not self._acks.empty():
            mid, refusal = self._acks.get_nowait()
            topic = self._topics.pop(mid, "")
            if mid == self._birth:
                self._birth = None
                if refusal is not None:
                    self._birth_refused = refusal
                    _LOG.error("uplink: the broker refused this kiosk's status message (%s): "
                               "check the kiosk's certificate and the broker ACL", refusal)
                continue
            memory_id = self._memory_flight.pop(mid, None)
            row_id = self._in_flight.pop(mid, None)
            self._in_flight_lanes.pop(mid, None)
            if refusal is not None and (memory_id is not None or row_id is not None):
                if self._birth is not None or self._birth_refused is not None:
                    drop = (f"the broker refused a publish ({refusal}) and this kiosk's own status: "
                            "check the kiosk's certificate and the broker ACL")
                    continue  # kept: it refuses everything this kiosk sends, giving up loses all
                why = self._refused(refusal, topic)
                if memory_id is not None and memory is not None:
                    memory.refused(memory_id, why)
                elif row_id is not None:
                    self._given_up.append((row_id, why))
                continue
            if memory_id is not None and memory is not None:
                memory.acked(memory_id)
            elif row_id is not None:
                self._acked_rows.append(row_id)
        if len(self._acked_rows) >= self.size // 2 or not self._in_flight \
                or lost is not None or drop is not None or self._given_up:
            self.record_acked()
        return drop

    def _refused(self, refusal: str, topic: str) -> str:
        why = f"the broker refused {clip(topic, 200)} ({refusal})"
        with self._lock:
            self.refused += 1
            self.last_refused = why
        self._refusal_log.log(logging.ERROR, "refused", "uplink: %s: set aside, the messages behind it go "
                              "on; check the broker ACL (%d refused so far)", why, self.refused)
        return why

    def record_acked(self) -> None:
        self._record_given_up()
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

    def _record_given_up(self) -> None:
        if not self._given_up:
            return
        try:
            self._source.give_up(self._given_up)
        except Exception as exc:  # storage failing: kept out of the drain, retried
            _LOG.warning("uplink: could not record %d refused message(s) in the outbox (retried): %s",
                         len(self._given_up), exc)
            return
        self._given_up = []

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
            self._topics[mid] = msg.topic
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
            self._given_up.clear()

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
        busy = set(self._in_flight.values()).union(self._acked_rows, (rid for rid, _why in self._given_up))
        for row in self._pending(room, busy):
            if row.lane == EVIDENCE_LANE:
                if heavy >= 1:
                    break  # one file at a time: an alarm queued next never waits behind a pile of them
                heavy += 1
            mid = link.publish(row.topic, row.payload, retain=row.retain)
            self._in_flight[mid] = row.id
            self._in_flight_lanes[mid] = row.lane
            self._topics[mid] = row.topic
            if row.event_id is not None:
                on_sent(row.event_id)
