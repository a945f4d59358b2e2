"""The broker check over the uplink's OWN connection: publish a probe, wait for it to come back.

Why not a second connection, as `safehouse provision --check` makes: the precinct broker maps
a kiosk's certificate to its device id as the client id (``use_identity_as_username`` with
``use_username_as_clientid``, docs/precinct-broker.md), so any second connection made with the
kiosk's certificate IS the kiosk, and the broker closes the daemon's session for it. Every
selftest (daily, by timer) would then show the precinct a false ``offline``/``lost`` status.

So the daemon's selftest subscribes its live link to ``provision/check`` (the one topic the ACL
lets a kiosk both write and read, ``services/acl.py``), publishes a random token there (QoS 1,
never retained), waits for the broker to deliver it back, and unsubscribes again: a real round
trip through the broker and its ACL, with no second session. The subscription and the probe go
out in that order on one connection, and a broker handles one client's packets in order, so
the probe cannot overtake its own subscription.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from safehouse.services.mqtt_link import Incoming, LinkError

_LOG = logging.getLogger(__name__)
POLL = 0.05


class ProbeLink(Protocol):
    """What the probe needs of a connection (services/mqtt_link.MqttLink)."""

    def subscribe(self, filters: list[str]) -> None: ...
    def unsubscribe(self, filters: list[str]) -> None: ...
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int: ...


class LinkProbe:
    """One probe at a time; ``received`` and ``acked`` run on paho's thread and only hand over."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._lock = threading.Lock()  # one round trip at a time
        self._token: bytes | None = None
        self._back = threading.Event()
        self._mid: int | None = None
        self._refusals: dict[int, str] = {}  # PUBACK refusals seen while a probe is out

    def received(self, msg: Incoming) -> bool:
        """True when ``msg`` is a probe (ours or a stale one): the uplink handles it no further."""
        if msg.topic != self.topic:
            return False
        if self._token is not None and msg.payload == self._token:
            self._back.set()
        return True

    def acked(self, mid: int, refusal: str | None) -> None:
        if refusal is not None and self._token is not None and len(self._refusals) < 64:
            self._refusals[mid] = refusal

    def round_trip(self, link_now: Callable[[], ProbeLink | None], timeout: float) -> float:
        """Seconds from publish to the probe's return; raises LinkError saying why not.

        ``link_now`` returns the live connection, or None while the uplink is not online: a
        kiosk that has just started (the standalone selftest) gets until ``timeout`` to connect.
        """
        with self._lock:
            deadline = time.monotonic() + timeout
            link = link_now()
            while link is None:
                if time.monotonic() >= deadline:
                    raise LinkError(f"the uplink was not online within {timeout:g} s")
                time.sleep(POLL)
                link = link_now()
            self._token, self._mid = uuid.uuid4().hex.encode(), None
            self._back.clear()
            self._refusals.clear()
            try:
                link.subscribe([self.topic])
                start = time.monotonic()
                self._mid = link.publish(self.topic, self._token, qos=1, retain=False)
                return self._wait(start, deadline, timeout)
            finally:
                self._token = None
                try:
                    link.unsubscribe([self.topic])
                except LinkError as exc:  # the link went down meanwhile: it took the subscription along
                    _LOG.debug("probe: unsubscribe failed: %s", exc)

    def _wait(self, start: float, deadline: float, timeout: float) -> float:
        while not self._back.wait(POLL):
            refusal = self._refusals.get(self._mid) if self._mid is not None else None
            if refusal is not None:
                raise LinkError(f"the broker refused the probe on {self.topic}: {refusal}")
            if time.monotonic() >= deadline:
                raise LinkError(f"the probe on {self.topic} did not come back within {timeout:g} s: "
                                "link lost, or the broker ACL denies the kiosk that topic?")
        return time.monotonic() - start
