"""The uplink: drains the outbox to the precinct's broker, in order, marking rows on PUBACK.

One thread owns the connection's life: connect (jittered exponential backoff, 1 s → 60 s,
at most 2 s while an alarm waits),
birth message, subscriptions, then a bounded window of QoS 1 publishes taken from the
outbox in drain order. A row is delivered only when its PUBACK arrives; on reconnect every
undelivered row is sent again (receivers de-duplicate by ``event_id``). The core loop never
waits on any of this: it appends to the outbox and calls ``wake()``.

Failing storage: alarms the outbox could not write wait in ``memory``
(services/memory_alarms.py) and are published first, before any outbox row; an outbox that
cannot be read is skipped (logged), never the end of this thread; when a damaged outbox was
replaced by a fresh one (its ``generation`` changed) the rows in flight are forgotten, since
their ids now name other rows, and the new file is drained from its start. The window's
bookkeeping (what is in flight, what a PUBACK settles) is ``services/uplink_window.py``.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from safehouse.device.core.ratelimit import RateLimitedLog, clip
from safehouse.device.core.threads import Worker
from safehouse.services.link_probe import LinkProbe
from safehouse.services.memory_alarms import MemoryAlarms
from safehouse.services.mqtt_link import Incoming, LinkError, MqttLink, Will
from safehouse.services.topics import Topics
from safehouse.services.uplink_types import (
    ALARM_BACKOFF_MAX,
    OUTGOING_TTL,
    STABLE_SESSION,
    LinkSettings,
    Outgoing,
    Source,
    backoff_delay,
)
from safehouse.services.uplink_window import DeliveryWindow

_LOG = logging.getLogger(__name__)
RETRY_WAIT = 1.0  # the serving loop's wake-up while something failed (idle and healthy: none)
__all__ = ["LinkSettings", "Source", "Uplink", "backoff_delay"]


class Uplink:
    """The one thread that keeps the kiosk connected to the precinct and drains its outbox."""

    def __init__(self, settings: LinkSettings, topics: Topics, source: Source, *,
                 birth: Callable[[], bytes], offline: Callable[[str], bytes],
                 on_command: Callable[[Incoming], None], on_alliance: Callable[[Incoming], None],
                 on_state: Callable[[str], None] = lambda _s: None,
                 on_sent: Callable[[str], None] = lambda _e: None) -> None:
        self.settings, self.topics, self._source = settings, topics, source
        self._birth, self._offline = birth, offline
        self._on_command, self._on_alliance, self._on_state = on_command, on_alliance, on_state
        self.on_sent = on_sent  # told each event_id published (the capture waits for its alarm)
        self._wake = threading.Event()
        self._retry_now = threading.Event()  # an alarm waits: cut a reconnect backoff short
        self._worker = Worker(self._run, name="uplink", wake=self._wake_up)
        self.stopping = self._worker.stopping
        self._outgoing: queue.SimpleQueue[Outgoing] = queue.SimpleQueue()
        self._lost: str | None = None
        self._link: MqttLink | None = None
        self.probe = LinkProbe(topics.probe)  # the selftest's broker round trip, on this link
        self._window = DeliveryWindow(source, settings.window)  # the publishes in flight, their PUBACKs
        self.memory: MemoryAlarms | None = None  # alarms the outbox could not write
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.state, self.since, self.reason = "connecting", time.monotonic(), ""
        self._bad_topic_log = RateLimitedLog(_LOG)

    # --- any thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()

    def wake(self, urgent: bool = False) -> None:
        """New rows in the outbox: called by the core loop after each durable append.

        ``urgent`` (an alarm): if the link is down and backing off, try again now and restart
        the backoff from its minimum. Alarms are rare and human-paced, so this cannot turn a
        fleet's jittered reconnects into a stampede; it saves an alarm up to a minute's wait.
        """
        if urgent:
            self._retry_now.set()
        self._wake.set()

    def send(self, topic: str, payload: bytes, correlation: bytes | None = None) -> None:
        """Publish once, not persisted (command results, alliance alerts); dropped if offline."""
        self._outgoing.put(Outgoing(topic, payload, correlation))
        self._wake.set()

    @property
    def delivered(self) -> int:
        """Outbox rows delivered (PUBACKed and recorded) since start; the bench polls it."""
        return self._window.delivered

    def view(self) -> dict[str, Any]:
        ended = self._worker.started and not self._worker.is_alive and not self.stopping.is_set()
        with self._lock:  # a thread that ended anyway is never shown as online
            return {"state": "dead" if ended else self.state, "broker": self.settings.url,
                    "since_s": round(time.monotonic() - self.since, 1), "reason": self.reason,
                    "in_flight": self._window.in_flight(), "delivered": self.delivered,
                    **self._window.refusals()}

    def round_trip(self, timeout: float) -> float:
        """The broker check over this very connection (any thread; services/link_probe.py): a
        second connection with the kiosk's certificate would take this one's session over."""
        return self.probe.round_trip(lambda: self._link if self.state == "online" else None, timeout)

    def close(self, timeout: float = 2.0) -> None:
        self._worker.stop(timeout)

    def _wake_up(self) -> None:
        """The worker's wake hook: end a wait for rows or a reconnect backoff."""
        self._wake.set()
        self._retry_now.set()

    # --- the uplink thread ----------------------------------------------------------------

    def _set_state(self, state: str, reason: str = "") -> None:
        with self._lock:
            changed = state != self.state
            if changed:
                self.state, self.since = state, time.monotonic()
            self.reason = reason
        if changed:
            try:
                self._on_state(state)
            except Exception:
                _LOG.exception("link state listener failed")

    def _run(self) -> None:
        attempt = 0
        while not self.stopping.is_set():
            try:
                attempt = self._session(attempt)
            except Exception as exc:  # a bug costs one connection, never the thread (nothing silent)
                _LOG.critical("uplink: unexpected %s: %s; dropping the connection and reconnecting",
                              type(exc).__name__, exc, exc_info=True)
                self._set_state("offline", f"internal error: {type(exc).__name__}: {clip(str(exc), 200)}")
                link, self._link = self._link, None
                if link is not None:
                    link.close()
                attempt = self._back_off(attempt)
        self._window.record_acked()
        link = self._link
        if link is not None:
            link.close(last_words=(self.topics.status, self._offline("shutdown")))

    def _session(self, attempt: int) -> int:
        """One connection, from connect to loss; returns the backoff attempt to go on with."""
        try:
            self._connect()
        except LinkError as exc:
            _LOG.error("uplink: %s", exc)
            self._set_state("offline", str(exc))
            return self._back_off(attempt)
        started = time.monotonic()
        self._serve()
        if time.monotonic() - started >= STABLE_SESSION:
            attempt = 0  # a link that held is not a flapping one: retry quickly
        return attempt if self.stopping.is_set() else self._back_off(attempt)

    def _back_off(self, attempt: int) -> int:
        delay = backoff_delay(attempt, self._rng)
        if delay > ALARM_BACKOFF_MAX and self._alarm_waiting():
            delay = self._rng.uniform(ALARM_BACKOFF_MAX / 2, ALARM_BACKOFF_MAX)
        _LOG.info("uplink: reconnecting in %.1f s", delay)
        if self._retry_now.wait(delay) and not self.stopping.is_set():
            _LOG.info("uplink: an alarm is waiting: reconnecting now")
            self._retry_now.clear()
            return 0
        return attempt + 1

    def _alarm_waiting(self) -> bool:
        """An alarm queued before a restart, or during a connect attempt, keeps retries short.

        Only kiosks with an undelivered alarm retry this often, and there are few at any time,
        so a fleet's reconnects after a broker outage stay spread by the jittered backoff.
        """
        if self.memory is not None and self.memory.waiting():
            return True
        try:
            return self._source.pending_alarms() > 0
        except Exception:  # the outbox unreadable: back off as usual, the error shows elsewhere
            _LOG.exception("uplink: could not count pending alarms")
            return False

    def _connect(self) -> None:
        s = self.settings
        self._retry_now.clear()  # this attempt is the one an alarm asked for
        self._window.restart()  # acknowledged on the previous connection: delivered
        self._lost = None
        link = MqttLink(s.url, s.client_id, keepalive=s.keepalive, protocol=s.protocol, tls=s.tls,
                        username=s.username, password=s.password, max_inflight=s.window,
                        will=Will(self.topics.status, self._offline("lost")),
                        on_message=self._received, on_ack=self._acked, on_lost=self._lost_link)
        self._set_state("connecting", "")
        link.open(s.connect_timeout, cancel=self.stopping)
        self._link = link
        # Subscribe before saying "online": the broker handles a client's packets in order, so a
        # console that sees "online" and sends a command at once finds the kiosk listening.
        link.subscribe(self.topics.subscriptions())
        self._window.expect_birth(link.publish(self.topics.status, self._birth(), retain=True))
        self._set_state("online")
        _LOG.info("uplink: online at %s", s.url)

    def _serve(self) -> None:
        link = self._link
        assert link is not None
        while not self.stopping.is_set():
            refused = self._window.settle(self.memory, self._lost)
            if refused is not None:
                self._lost = refused
            elif self._window.birth_refused is not None and not self.reason:  # said while it lasts
                self._set_state("online", f"the broker refused this kiosk's status "
                                          f"({self._window.birth_refused}): check the broker ACL")
            if self._lost is not None:
                _LOG.error("uplink: %s", self._lost)
                self._set_state("offline", self._lost)
                link.close()
                self._link = None
                return
            self._retry_now.clear()  # online: whatever asked for haste is being sent now
            try:
                self._window.fill(link, self.memory, self.on_sent)  # the precinct's events first
                self._send_outgoing(link)
            except LinkError as exc:
                self._lost = str(exc)
                continue
            self._wake.wait(self._idle_wait())
            self._wake.clear()

    def _idle_wait(self) -> float | None:
        """How long the thread may sleep with nothing to do: until woken (new rows, an ack, a
        lost link, a message to send all wake it), or ``RETRY_WAIT`` while a read or a delivery
        record failed or storage is faulted (its recovery swaps the outbox without a wake).
        paho's own thread keeps the connection alive meanwhile."""
        if self._window.needs_retry() or getattr(self._source, "fault", None) is not None:
            return RETRY_WAIT
        return None

    def _send_outgoing(self, link: MqttLink) -> None:
        while not self._outgoing.empty():
            msg = self._outgoing.get_nowait()
            if time.monotonic() - msg.created > OUTGOING_TTL:
                _LOG.warning("uplink: dropped a stale message for %s (queued while offline)", msg.topic)
                continue
            try:
                link.publish(msg.topic, msg.payload, correlation=msg.correlation)
            except ValueError as exc:  # a topic paho refuses (too long): that message, never the thread
                self._bad_topic_log.warning("topic", "uplink: dropped a message paho refused (%s) for %s",
                                            exc, clip(msg.topic, 120))

    # --- paho's thread: hand over, nothing else -----------------------------------------

    def _acked(self, mid: int, refusal: str | None) -> None:
        self.probe.acked(mid, refusal)
        self._window.acked(mid, refusal)
        self._wake.set()

    def _lost_link(self, reason: str) -> None:
        self._lost = reason
        self._wake.set()

    def _received(self, msg: Incoming) -> None:
        if self.probe.received(msg):
            return
        if self.topics.command_name(msg.topic) is not None:
            self._on_command(msg)
        elif self.topics.alliance and msg.topic.endswith(f"/alliance/{self.topics.alliance}/alert"):
            self._on_alliance(msg)
