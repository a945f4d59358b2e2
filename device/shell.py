"""The imperative shell: runs decide()'s effects against the real light box and event log.

Order matters and is kept: the light changes first (the citizen sees a reaction at once),
then the event is written durably. An event that cannot be written is kept in memory and
retried in order — a full disk delays an alarm's record, it never drops it.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Protocol

from safehouse.device.clock import Clock, iso_utc
from safehouse.device.effects import Effect, Emit, Reject, SetLight
from safehouse.device.errors import EventLogError
from safehouse.device.events import Event

_LOG = logging.getLogger(__name__)


class Light(Protocol):
    def play(self, name: str) -> None: ...


class EventSink(Protocol):
    @property
    def last_seq(self) -> int: ...
    def append(self, fields: dict[str, object]) -> Event: ...


class EffectRunner:
    """Callable executor for ``CoreLoop``; returns False while emits wait for a retry."""

    def __init__(self, *, light: Light, sink: EventSink, clock: Clock, device_id: str,
                 precinct: str, boot_id: str) -> None:
        self._light = light
        self._sink = sink
        self._clock = clock
        self._device = {"device_id": device_id, "precinct": precinct, "boot_id": boot_id}
        self._unwritten: deque[Emit] = deque()
        self.rejections: Counter[str] = Counter()
        self.last_rejection: dict[str, str] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.last_event: Event | None = None

    @property
    def last_seq(self) -> int:
        return self._sink.last_seq

    @property
    def pending(self) -> int:
        """Events decided but not yet durable (normally 0)."""
        return len(self._unwritten)

    def __call__(self, effects: Sequence[Effect]) -> bool:
        for effect in effects:
            match effect:
                case SetLight(pattern=pattern):
                    self._set_light(pattern)
                case Emit():
                    self._unwritten.append(effect)
                case Reject(what=what, reason=reason):
                    self.rejections[what] += 1
                    self.last_rejection[what] = reason
                    _LOG.warning("rejected %s: %s", what, reason)
        return self._flush()

    def _set_light(self, pattern: str) -> None:
        try:
            self._light.play(pattern)
        except Exception:
            _LOG.exception("light box failed to play %r", pattern)

    def _flush(self) -> bool:
        while self._unwritten:
            emit = self._unwritten[0]
            try:
                event = self._sink.append(self._fields(emit))
            except EventLogError as exc:
                _LOG.critical("event %s (%s) not yet durable, will retry: %s",
                              emit.event_id, emit.type, exc)
                return False
            self._unwritten.popleft()
            self.last_event = event
            _LOG.info("event %s", event.summary())
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:
                    _LOG.exception("event listener failed on #%d", event.seq)
        return True

    def _fields(self, emit: Emit) -> dict[str, object]:
        wall = self._clock.wall()
        return {
            **self._device,
            "event_id": emit.event_id,
            "type": emit.type,
            "code": emit.code,
            "ts": iso_utc(wall),
            "clock_synced": self._clock.synced(),
            "mono": round(self._clock.mono(), 6),
            "test": emit.test,
            "data": dict(emit.data),
        }
