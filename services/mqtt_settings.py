"""[broker]: where the kiosk's MQTT link connects and how (declared once, see device.core.settings).

Apart from ``mqtt_link.py`` so that loading the config does not import paho.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from safehouse.device.core.settings import Rule, as_path_text, in_range, one_of, setting

BROKER_URL = re.compile(r"^(mqtts?)://([^:/\s]+)(?::(\d{1,5}))?$")
# The same, with the port's 1-65535 spelled out for JSON Schema (which cannot compare numbers
# inside a string): 1-5 digits, leading zeros allowed, as int() reads them.
_PORT_1_65535 = r"(?=\d{1,5}$)0*([1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])"
SCHEMA_URL = r"^$|^(mqtts?)://([^:/\s]+)(?::" + _PORT_1_65535 + r")?$"
_TLS_FILES = ("ca", "cert", "key")


def _broker_url(v: Any) -> str | None:
    if v == "":
        return None
    m = BROKER_URL.fullmatch(v)  # not .match: its $ also matches before a final newline
    if not m:
        return f"must be '' (offline only) or mqtt://host[:port] or mqtts://host[:port], got {v!r}"
    if m.group(3) and not 1 <= int(m.group(3)) <= 65535:
        return f"port must be 1-65535, got {m.group(3)}"
    return None


@dataclass(frozen=True)
class BrokerSettings:
    """[broker]: the precinct broker's URL, TLS files, credentials and flow control."""

    url: str = setting("", "'' = offline only; mqtt://host:port or mqtts://host:port",
                       Rule(_broker_url, {"pattern": SCHEMA_URL}))
    ca: str = setting("", "CA certificate (PEM) for mqtts", convert=as_path_text)
    cert: str = setting("", "client certificate (PEM) for mqtts", convert=as_path_text)
    key: str = setting("", "client private key (PEM) for mqtts", convert=as_path_text)
    keepalive: int = setting(10, "MQTT keepalive in seconds; the broker publishes the last will "
                             "after 1.5 x keepalive", in_range(5, 600))
    protocol: str = setting("5", "MQTT protocol version: '5' or '3.1.1'", one_of("5", "3.1.1"))
    username: str = setting("", "optional MQTT username (with mutual TLS the cert identifies the kiosk)")
    password: str = setting("", "optional MQTT password")
    window: int = setting(100, "QoS 1 messages in flight at once", in_range(1, 1000))

    def cross_problems(self, section: str) -> list[str]:
        """mqtts without its three files would fail at the first connect, not at start-up."""
        if not str(self.url).startswith("mqtts://"):
            return []
        return [f"{section}.{name}: required when {section}.url is mqtts://"
                for name in _TLS_FILES if not getattr(self, name)]

    @staticmethod
    def json_schema_between_keys() -> dict[str, Any]:
        """``cross_problems`` in JSON Schema words: with mqtts, the three files, not empty."""
        return {"if": {"properties": {"url": {"pattern": "^mqtts://"}}, "required": ["url"]},
                "then": {"properties": {name: {"minLength": 1} for name in _TLS_FILES},
                         "required": list(_TLS_FILES)}}
