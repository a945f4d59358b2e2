"""The event record every consumer sees: the outbox, the CLI, and the precinct over MQTT.

Field names are the MQTT contract's (docs/mqtt.md); changing one is a contract change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "safehouse/v1/event"
# Someone may be in danger: kept even at the outbox's cap, and the uplink stops backing off for them.
ALARM_TYPES = ("panic", "duress")


@dataclass(frozen=True)
class Event:
    event_id: str
    seq: int
    device_id: str
    precinct: str
    type: str
    code: int | None
    ts: str
    clock_synced: bool
    mono: float
    boot_id: str
    test: bool
    data: Mapping[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def to_json(self) -> str:
        body = asdict(self)
        body["data"] = dict(self.data)
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Event:
        body = json.loads(line)
        if not isinstance(body, dict):
            raise ValueError("an event must be a JSON object")
        return cls(**body)

    def summary(self) -> str:
        """One readable line for logs and `safehouse events`."""
        code = f" code={self.code}" if self.code is not None else ""
        test = " TEST" if self.test else ""
        data = " ".join(f"{k}={v}" for k, v in self.data.items())
        return f"#{self.seq} {self.ts} {self.type}{code}{test} {data}".rstrip()
