"""Alarms the outbox could not write, published from memory until the broker acknowledges them.

The kiosk's promise is that an accepted alarm reaches the precinct; a failing SD card must
not break it. The shell hands an alarm it could not write to ``add()`` at once, the uplink
publishes it (QoS 1, the event's own seq and event_id) before anything in the outbox and
reports the PUBACK with ``acked()``. When storage returns, the shell writes the event with
the same event_id (as delivered if acknowledged) and calls ``stored()``: the precinct keeps
one copy even if both paths sent it. Shutdown asks ``wait_settled()`` so it never stops
"cleanly" while an alarm is neither written nor delivered.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

_LOG = logging.getLogger(__name__)
PREFIX = "unsent-alarm-"


@dataclass(frozen=True)
class MemoryMessage:
    event_id: str
    topic: str
    payload: bytes


class MemoryAlarms:
    """Thread-safe: the core loop adds and settles, the uplink thread publishes and acks."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: dict[str, MemoryMessage] = {}  # to publish until acked or stored
        self._acked: set[str] = set()
        self._published: set[str] = set()
        self._spool: Path | None = None
        self.sent = 0

    def spool(self, folder: Path) -> list[MemoryMessage]:
        """Keep waiting alarms in ``folder`` too; take back (and return) those a killed run left."""
        self._spool = folder
        found: list[MemoryMessage] = []
        for path in sorted(folder.glob(PREFIX + "*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                message = MemoryMessage(str(data["event_id"]), str(data["topic"]),
                                        str(data["payload"]).encode())
            except (OSError, ValueError, KeyError, TypeError) as exc:
                _LOG.error("unsent alarm %s left by the previous run is unreadable: %s", path, exc)
                continue
            with self._cond:
                self._waiting.setdefault(message.event_id, message)
            found.append(message)
        if found:
            _LOG.critical("%d alarm(s) the previous run could neither write nor deliver: sending them now",
                          len(found))
        return found

    def add(self, event_id: str, topic: str, payload: bytes) -> None:
        with self._cond:
            if event_id not in self._acked:
                self._waiting[event_id] = MemoryMessage(event_id, topic, payload)
                self._keep(self._waiting[event_id])

    def _keep(self, message: MemoryMessage) -> None:
        if self._spool is None:
            return
        path = self._spool / f"{PREFIX}{message.event_id}.json"
        tmp = path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, json.dumps({"event_id": message.event_id, "topic": message.topic,
                                         "payload": message.payload.decode()}).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            _LOG.error("alarm %s not kept in %s (a crash now would lose it): %s",
                       message.event_id, self._spool, exc)

    def _drop(self, event_id: str) -> None:
        if self._spool is not None:
            try:
                (self._spool / f"{PREFIX}{event_id}.json").unlink(missing_ok=True)
            except OSError as exc:
                _LOG.warning("could not remove the kept copy of alarm %s: %s", event_id, exc)

    def unsent(self, exclude: set[str]) -> list[MemoryMessage]:
        """What the uplink should publish now: waiting, not acknowledged, not in flight."""
        with self._cond:
            return [m for eid, m in self._waiting.items() if eid not in exclude and eid not in self._acked]

    def published(self, event_id: str) -> None:
        with self._cond:
            self._published.add(event_id)
            self.sent += 1

    def acked(self, event_id: str) -> None:
        with self._cond:
            if event_id in self._waiting:
                self._acked.add(event_id)
                self._drop(event_id)
                self._cond.notify_all()

    def stored(self, event_id: str) -> None:
        """The event is on disk now: the outbox takes over (or knows it was delivered)."""
        with self._cond:
            self._waiting.pop(event_id, None)
            self._drop(event_id)
            self._acked.discard(event_id)
            self._published.discard(event_id)
            self._cond.notify_all()

    def delivered(self, event_id: str) -> bool:
        with self._cond:
            return event_id in self._acked

    def was_published(self, event_id: str) -> bool:
        with self._cond:
            return event_id in self._published or event_id in self._acked

    def waiting(self) -> int:
        """Alarms neither written nor acknowledged: the uplink keeps its retries short."""
        with self._cond:
            return len([e for e in self._waiting if e not in self._acked])

    def unsettled(self) -> list[str]:
        with self._cond:
            return [e for e in self._waiting if e not in self._acked]

    def wait_acked(self, event_id: str, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: event_id in self._acked or event_id not in self._waiting,
                                       timeout)

    def wait_settled(self, timeout: float) -> bool:
        """Block until every alarm is written or acknowledged; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: all(e in self._acked for e in self._waiting), timeout)
