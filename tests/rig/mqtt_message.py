"""What the rig's MQTT client hands a test: a received ``Message``, and the two ways a
connection or a publish is refused (``ConnectFailed``, ``PublishRefused``)."""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any, cast

from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["ConnectFailed", "Message", "PublishRefused"]


@dataclass(frozen=True)
class Message:
    """One message as the subscriber received it; ``received`` is ``time.monotonic()`` on arrival."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received: float
    properties: Properties | None

    def json(self) -> Any:
        return jsonlib.loads(self.payload)

    @property
    def response_topic(self) -> str | None:
        return cast(str | None, getattr(self.properties, "ResponseTopic", None))

    @property
    def correlation_data(self) -> bytes | None:
        return cast(bytes | None, getattr(self.properties, "CorrelationData", None))


class ConnectFailed(ConnectionError):
    """The client got no CONNACK: refused TLS, refused CONNACK, lost connection or silence.

    ``reason`` says what the client saw; ``reason_code`` is the CONNACK or disconnect code if any.
    """

    def __init__(self, reason: str, reason_code: ReasonCode | None = None) -> None:
        super().__init__(reason)
        self.reason, self.reason_code = reason, reason_code


class PublishRefused(ConnectionError):
    """The broker answered a QoS 1 publish with a failure reason code (MQTT 5), e.g. 135 Not authorized."""

    def __init__(self, topic: str, reason_code: ReasonCode) -> None:
        super().__init__(f"publish to {topic!r} refused by the broker: {reason_code} ({reason_code.value})")
        self.topic, self.reason_code = topic, reason_code
