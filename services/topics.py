"""The MQTT topic contract (v1), in one place: every topic the kiosk uses is built here.

Root: ``safehouse/v1/{precinct}/{device_id}/``. A precinct console subscribes to
``safehouse/v1/{precinct}/#``; a kiosk writes only under its own root (the broker ACL
enforces it) and reads its own ``cmd/+`` and its alliance's alerts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VERSION = "v1"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Topics:
    precinct: str
    device_id: str
    alliance: str = ""

    @property
    def root(self) -> str:
        return f"safehouse/{VERSION}/{self.precinct}/{self.device_id}/"

    @property
    def status(self) -> str:
        return self.root + "status"

    @property
    def events(self) -> str:
        return self.root + "events"

    @property
    def telemetry(self) -> str:
        return self.root + "telemetry"

    @property
    def commands(self) -> str:
        """Filter for commands: one level only, so our own ``cmd/x/result`` never comes back."""
        return self.root + "cmd/+"

    def result(self, command: str) -> str:
        return self.root + f"cmd/{command}/result"

    def evidence(self, event_id: str, name: str) -> str:
        return self.root + f"evidence/{event_id}/{name}"

    @property
    def probe(self) -> str:
        """Written and read back by `provision --check` and the selftest's broker check, only."""
        return self.root + "provision/check"

    @property
    def alliance_out(self) -> str:
        return self.root + f"alliance/{self.alliance}/alert"

    @property
    def alliance_in(self) -> str:
        return f"safehouse/{VERSION}/{self.precinct}/+/alliance/{self.alliance}/alert"

    def command_name(self, topic: str) -> str | None:
        """``cmd/{name}`` under our root → name (even an empty or bogus one, so it is answered
        as unknown rather than dropped in silence); a topic outside ``cmd/`` → None."""
        prefix = self.root + "cmd/"
        return topic[len(prefix):] if topic.startswith(prefix) else None

    def is_result(self, topic: str) -> bool:
        """Is ``topic`` one of our own ``cmd/{name}/result`` topics (``name`` an id: no wildcard,
        no level)? The only place an MQTT 5 response topic may send a command's reply: a
        console's response topic with a wildcard once killed the uplink thread (paho raises on
        publish), and one naming ``events`` or ``status`` put a result in the precinct's events."""
        name = self.command_name(topic)
        return name is not None and name.endswith("/result") and _NAME.fullmatch(name[:-7]) is not None

    def subscriptions(self) -> list[str]:
        subs = [self.commands]
        if self.alliance:
            subs.append(self.alliance_in)
        return subs
