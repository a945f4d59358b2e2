"""One MQTT connection, wrapped so the rest of the firmware speaks exceptions, not rc codes.

paho-mqtt mixes return codes, exceptions and callbacks on its own thread. This adapter gives
the uplink a single-use link: ``open()`` either returns connected or raises ``LinkError``
with a reason a technician can act on; callbacks are forwarded as plain data and do nothing
else (they run on paho's network thread). Reconnecting is the uplink's job — paho's own
reconnect is switched off so backoff (with jitter) lives in one place.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from safehouse.device.core.errors import SafehouseError

_LOG = logging.getLogger(__name__)


class LinkError(SafehouseError, ConnectionError):
    """The broker could not be reached or refused us; the message says why and what to check."""


@dataclass(frozen=True)
class Tls:
    ca: str
    cert: str
    key: str


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    retain: bool
    response_topic: str | None = None
    correlation: bytes | None = None


class MqttLink:
    """A single connection attempt and its lifetime; make a new one to reconnect."""

    def __init__(self, url: str, client_id: str, *, keepalive: int = 10, protocol: str = "5",
                 tls: Tls | None = None, username: str = "", password: str = "",
                 will: Will | None = None, max_inflight: int = 100,
                 on_message: Callable[[Incoming], None], on_ack: Callable[[int, str | None], None],
                 on_lost: Callable[[str], None]) -> None:
        parts = urlsplit(url)
        self.url = url
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._keepalive = keepalive
        self._v5 = protocol == "5"
        self._tls = tls
        self._on_message, self._on_ack, self._on_lost = on_message, on_ack, on_lost
        self._connack = threading.Event()
        self._refusal: str | None = None
        self._open = False
        version = MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version,
                                   reconnect_on_failure=False,
                                   clean_session=None if self._v5 else True)
        self._client.max_inflight_messages_set(max_inflight)
        if tls is not None:
            self._client.tls_set(ca_certs=tls.ca, certfile=tls.cert, keyfile=tls.key,
                                 tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if username:
            self._client.username_pw_set(username, password or None)
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_publish = self._handle_publish
        self._client.on_message = self._handle_message

    # --- paho's thread: forward, never work -------------------------------------------------

    def _handle_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._refusal = f"broker refused the connection: {reason}"
        self._connack.set()

    def _handle_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not self._connack.is_set():
            self._refusal = ("the broker closed the connection before accepting it "
                             f"({reason}): client certificate or credentials rejected?")
            self._connack.set()
            return
        if self._open:
            self._open = False
            self._on_lost(f"connection lost: {reason}")

    def _handle_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        # MQTT 5 brokers refuse a publish (e.g. ACL: 135 Not authorized) in the PUBACK itself
        self._on_ack(mid, str(reason) if getattr(reason, "is_failure", False) else None)

    def _handle_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        response = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        self._on_message(Incoming(msg.topic, bytes(msg.payload), bool(msg.retain), response, correlation))

    # --- the uplink's thread -------------------------------------------------------------------

    def open(self, timeout: float = 10.0, cancel: threading.Event | None = None) -> None:
        """Connect and wait for the broker's CONNACK; raise LinkError with the reason.

        ``cancel`` (the daemon stopping) ends the wait early, so a broker that accepts TCP
        but never answers cannot hold up a shutdown.
        """
        try:
            self._client.connect(self._host, self._port, keepalive=self._keepalive)
        except ssl.SSLCertVerificationError as exc:
            raise LinkError(f"TLS: the broker's certificate does not verify against broker.ca "
                            f"({self._tls.ca if self._tls else '?'}): {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            raise LinkError(f"TLS handshake with {self.url} failed: {exc.reason or exc}") from exc
        except (OSError, ValueError) as exc:
            raise LinkError(f"cannot reach the broker at {self.url}: {exc}") from exc
        sock = self._client.socket()
        if isinstance(sock, socket.socket):  # paho leaves Nagle on: no 40 ms stall behind an ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client.loop_start()
        deadline = time.monotonic() + timeout
        while not self._connack.wait(0.1) and time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                break
        if not self._connack.is_set():
            self.close()
            raise LinkError(f"the broker at {self.url} accepted TCP but did not answer CONNECT "
                            f"within {timeout:g} s")
        if self._refusal is not None:
            self.close()
            raise LinkError(self._refusal)
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                response_topic: str | None = None, correlation: bytes | None = None) -> int:
        """Queue one message; returns its mid, acknowledged later through ``on_ack(mid, refusal)``."""
        props = None
        if self._v5 and correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = correlation
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise LinkError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return int(info.mid)

    def subscribe(self, filters: list[str]) -> None:
        """QoS 1; on MQTT 5 with retain-as-published, so a retained command delivered live still
        carries its retain flag and is refused (MQTT 3.1.1 brokers clear the flag on live delivery)."""
        if not filters:
            return
        options: list[tuple[str, Any]] = [
            (f, SubscribeOptions(qos=1, retainAsPublished=True) if self._v5 else 1) for f in filters]
        rc, _mid = self._client.subscribe(options)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise LinkError(f"subscribe to {filters} failed: {paho.error_string(rc)}")

    def unsubscribe(self, filters: list[str]) -> None:
        """Drop filters subscribed for a while (the selftest's probe, services/link_probe.py)."""
        rc, _mid = self._client.unsubscribe(filters)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise LinkError(f"unsubscribe from {filters} failed: {paho.error_string(rc)}")

    def close(self, last_words: tuple[str, bytes] | None = None, timeout: float = 2.0) -> None:
        """Disconnect (publishing ``last_words`` first, retained, when still connected)."""
        was_open, self._open = self._open, False
        if was_open and last_words is not None:
            try:
                info = self._client.publish(last_words[0], last_words[1], qos=1, retain=True)
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError, OSError):
                _LOG.warning("could not publish the offline status before disconnecting")
        self._client.disconnect()
        self._client.loop_stop()
