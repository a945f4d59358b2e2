"""The rig's independent MQTT client: the precinct's side (or a second kiosk) as a test sees it.

A paho-mqtt 2.x client that records every message in arrival order, waits for what a test
expects, and reports what did arrive when it times out. Talks to 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.rig.mqtt_message import ConnectFailed, Message, PublishRefused
from tests.rig.net import HOST

__all__ = ["Subscriber"]


MessagePredicate = Callable[[Message], bool]
# paho's matcher costs ~2 us; tests re-check the same few topics thousands of times
_matches: Callable[[str, str], bool] = functools.lru_cache(maxsize=8192)(mqtt.topic_matches_sub)


class Subscriber:
    """An independent paho-mqtt 2.x client standing for the precinct side (or a second kiosk).

    Connects on construction to 127.0.0.1:``port`` (TLS when ``ca`` is given, with the client
    certificate ``cert``/``key``), subscribes to ``topics`` at QoS 1 and returns only after the
    SUBACK, so nothing published afterwards can be missed. It resubscribes after every
    reconnect (paho reconnects on its own; the rig's broker keeps no sessions). Every message
    is recorded, in arrival order, under a lock; paho's thread does nothing else.
    Raises ``ConnectFailed`` if the first connection does not reach CONNACK within ``timeout``.
    """

    def __init__(self, port: int, topics: Sequence[str] = (), *, ca: Path | None = None,
                 cert: Path | None = None, key: Path | None = None, client_id: str | None = None,
                 protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5, username: str | None = None,
                 password: str | None = None, keepalive: int = 60, timeout: float = 5.0,
                 session_expiry: int | None = None) -> None:
        """``session_expiry`` (MQTT 5): keep a persistent session that long, as a precinct
        console does, so QoS 1 messages published while it is away are handed over later."""
        self.port, self.topics, self.timeout = port, list(topics), timeout
        self._session_expiry = session_expiry
        self.client_id = client_id or f"rig-{uuid.uuid4().hex[:8]}"
        self._v5 = protocol == MQTTProtocolVersion.MQTTv5
        self._cond = threading.Condition()
        self._messages: list[Message] = []
        self._acks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._resubscribe_mid: int | None = None
        self._ready = 0
        self._failure: ConnectFailed | None = None
        self.disconnects: list[ReasonCode] = []
        self.granted: list[ReasonCode] = []
        self._closed = False
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol)
        if ca is not None:
            context = ssl.create_default_context(cafile=str(ca))
            if cert is not None:
                context.load_cert_chain(str(cert), str(key) if key is not None else None)
            client.tls_set_context(context)
        if username is not None:
            client.username_pw_set(username, password)
        # paho accepts float delays at run time (its hint says int): reconnect fast after a restart.
        client.reconnect_delay_set(min_delay=cast(int, 0.05), max_delay=cast(int, 0.5))
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self.client = client
        self._connect(keepalive)

    # --- connection -----------------------------------------------------------------------

    def _connect(self, keepalive: int) -> None:
        try:
            if self._session_expiry is None:
                rc = self.client.connect(HOST, self.port, keepalive)
            else:  # paho keeps clean_start and the properties for its own reconnects
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self._session_expiry
                rc = self.client.connect(HOST, self.port, keepalive, clean_start=False, properties=props)
        except (OSError, ssl.SSLError) as exc:  # refused TCP, TLS handshake refused by either side
            raise ConnectFailed(f"connect() to {HOST}:{self.port} raised {exc!r}") from exc
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:  # e.g. 7: the broker's TLS alert came while sending CONNECT
            with self._cond:
                self._failure = self._failure or ConnectFailed(f"connect() returned {mqtt.error_string(rc)}")
        self.client.loop_start()
        with self._cond:
            ok = self._cond.wait_for(lambda: self._ready > 0 or self._failure is not None, self.timeout)
            failure = self._failure
        if ok and failure is None:
            return
        self._stop_loop()
        raise failure or ConnectFailed(f"no CONNACK/SUBACK from {HOST}:{self.port} within {self.timeout} s")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        sock = client.socket()
        # paho leaves Nagle on; a measuring client must not add 40 ms stalls (SSLSocket is a socket)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reason_code.is_failure:
            with self._cond:
                if self._ready == 0:
                    self._failure = ConnectFailed(f"CONNACK refused: {reason_code}", reason_code)
                self._cond.notify_all()
            return
        if not self.topics:
            with self._cond:
                self._ready += 1
                self._cond.notify_all()
            return
        _rc, mid = client.subscribe(self._subscriptions(self.topics))
        with self._cond:  # the SUBACK is read by this same thread, after we return
            self._resubscribe_mid = mid

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode],
                      properties: Properties | None) -> None:
        with self._cond:
            self._subacks[mid] = list(reason_codes)
            if mid == self._resubscribe_mid:
                self.granted = list(reason_codes)
                self._ready += 1
            self._cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        with self._cond:
            self.disconnects.append(reason_code)
            if self._ready == 0 and self._failure is None:
                self._failure = ConnectFailed(f"connection lost before CONNACK: {reason_code}", reason_code)
            self._cond.notify_all()

    def _subscriptions(self, topics: Sequence[str]) -> list[tuple[str, Any]]:
        if self._v5:
            return [(topic, SubscribeOptions(qos=1)) for topic in topics]
        return [(topic, 1) for topic in topics]

    @property
    def ready_count(self) -> int:
        """How many times the client has connected and (re)subscribed: 2 after one reconnect."""
        with self._cond:
            return self._ready

    def wait_ready(self, count: int, timeout: float | None = None) -> None:
        """Block until the client has connected and subscribed ``count`` times in all."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready >= count, timeout or self.timeout):
                raise TimeoutError(f"{self.client_id}: connected+subscribed {self._ready} times, "
                                   f"waited for {count}; disconnects: {self.disconnects}")

    def subscribe(self, topics: Sequence[str]) -> list[ReasonCode]:
        """Add subscriptions (kept across reconnects); return the SUBACK reason codes."""
        self.topics += [t for t in topics if t not in self.topics]
        rc, mid = self.client.subscribe(self._subscriptions(topics))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectionError(f"{self.client_id}: subscribe {list(topics)} failed: "
                                  f"{mqtt.error_string(rc)}")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._subacks, self.timeout):
                raise TimeoutError(f"{self.client_id}: no SUBACK for {list(topics)} within {self.timeout} s")
            return self._subacks[mid]

    # --- messages -------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), time.monotonic(),
                          getattr(msg, "properties", None))
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def messages(self, topic_filter: str | None = None) -> list[Message]:
        """Messages received so far, in arrival order, optionally only those matching an MQTT filter."""
        with self._cond:
            found = list(self._messages)
        return [m for m in found if topic_filter is None or _matches(topic_filter, m.topic)]

    def json(self, topic_filter: str | None = None) -> list[Any]:
        """Payloads of ``messages(topic_filter)`` parsed as JSON."""
        return [m.json() for m in self.messages(topic_filter)]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(self, predicate: MessagePredicate | str | None = None, timeout: float | None = None, *,
                 count: int = 1) -> list[Message]:
        """Block until ``count`` received messages match; return all that match.

        ``predicate`` is a function of a ``Message``, an MQTT topic filter, or None (any message).
        Raises ``TimeoutError`` listing what did arrive, so a failing test shows the traffic.
        """
        match: MessagePredicate
        if predicate is None:
            match = lambda m: True  # noqa: E731
        elif isinstance(predicate, str):
            topic_filter = predicate
            match = lambda m: _matches(topic_filter, m.topic)  # noqa: E731
        else:
            match = predicate
        limit = self.timeout if timeout is None else timeout
        found: list[Message] = []
        scanned = 0

        def enough() -> bool:  # scans only what arrived since the last wake-up: O(n) per call
            nonlocal scanned
            found.extend(m for m in self._messages[scanned:] if match(m))
            scanned = len(self._messages)
            return len(found) >= count

        with self._cond:
            if self._cond.wait_for(enough, limit):
                return found
            seen = [(m.topic, m.payload[:80]) for m in self._messages]
        raise TimeoutError(f"{self.client_id}: {count} matching message(s) not received within {limit} s; "
                           f"received {len(seen)}: {seen}")

    # --- publishing -----------------------------------------------------------------------

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        with self._cond:
            self._acks[mid] = reason_code
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes | str | None = b"", qos: int = 1, retain: bool = False,
                properties: Properties | None = None, *, response_topic: str | None = None,
                correlation_data: bytes | None = None, wait: bool = True,
                check: bool = True) -> ReasonCode | None:
        """Publish and (by default) wait for the PUBACK; return its reason code (None if not waiting).

        With MQTT 5 a broker's ACL refusal comes back as a failure code (135 Not authorized)
        rather than silence: raised as ``PublishRefused`` unless ``check=False``. Note that
        16 "No matching subscribers" is a success code. ``response_topic``/``correlation_data``
        set the MQTT 5 properties a command sender uses to get its reply routed back.
        """
        if response_topic is not None or correlation_data is not None:
            properties = properties or Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic is not None:
                properties.ResponseTopic = response_topic
            if correlation_data is not None:
                properties.CorrelationData = correlation_data
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"{self.client_id}: publish to {topic!r} failed: "
                                  f"{mqtt.error_string(info.rc)}")
        if not wait:
            return None
        with self._cond:
            if not self._cond.wait_for(lambda: info.mid in self._acks, self.timeout):
                raise TimeoutError(f"{self.client_id}: no PUBACK for {topic!r} within {self.timeout} s")
            reason = self._acks.pop(info.mid)
        if check and reason.is_failure:
            raise PublishRefused(topic, reason)
        return reason

    # --- lifecycle ------------------------------------------------------------------------

    def _stop_loop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def close(self) -> None:
        """Disconnect cleanly and join paho's thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_loop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

