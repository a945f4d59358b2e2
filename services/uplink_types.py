"""What the uplink is configured with and queues, and its backoff: the plain parts of the uplink."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from safehouse.services.mqtt_link import Tls

BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
ALARM_BACKOFF_MAX = 2.0  # while an alarm waits in the outbox, never back off longer than this
STABLE_SESSION = 60.0  # a session this long resets the backoff
OUTGOING_TTL = 60.0  # a command result or alliance alert older than this is stale: not sent
EVIDENCE_LANE = 1  # outbox Lane.EVIDENCE: large files, sent one at a time


class Source(Protocol):
    """What the uplink needs of the outbox."""

    def pending(self, limit: int, *, exclude: set[int]) -> list[Any]: ...
    def mark_delivered(self, ids: list[int]) -> None: ...
    def give_up(self, lost: list[tuple[int, str]]) -> None: ...
    def pending_alarms(self) -> int: ...


@dataclass(frozen=True)
class LinkSettings:
    url: str
    client_id: str
    keepalive: int = 10
    protocol: str = "5"
    tls: Tls | None = None
    username: str = ""
    password: str = ""
    window: int = 100
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class Outgoing:
    """A message that is not worth persisting (a command result, an alliance alert)."""

    topic: str
    payload: bytes
    correlation: bytes | None = None
    created: float = field(default_factory=time.monotonic)


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Jittered exponential backoff, so 2,100 kiosks don't reconnect in lockstep."""
    ceiling = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** min(attempt, 16))
    return rng.uniform(ceiling / 2, ceiling)
