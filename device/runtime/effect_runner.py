"""The imperative shell: runs decide()'s effects against the light box, the outbox and the uplink.

Order matters and is kept: the light changes first (the citizen sees a reaction at once),
then the event is written durably, then the uplink is woken. Writing, and what happens when
storage fails (alarms sent from memory, the alarm reserve, storage fault events), is
device/runtime/event_writer.py's job. Only a non-alarm event refused at the outbox's hard cap, or
pushed out of the bounded memory queue while storage fails, is dropped, counted and logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from safehouse.device.core import messages
from safehouse.device.core.clock import Clock
from safehouse.device.core.effects import (
    Announce,
    Beep,
    Capture,
    Effect,
    Emit,
    KeepLockout,
    Reject,
    RememberCommand,
    Reply,
    RunSelftest,
    SetIndicator,
    SetLight,
    SetSound,
    VerifyPin,
)
from safehouse.device.core.errors import EventLogError, SafehouseError
from safehouse.device.core.ratelimit import RateLimitedLog, clip_text
from safehouse.device.runtime.event_writer import EventWriter

_LOG = logging.getLogger(__name__)


class Light(Protocol):
    def play(self, name: str) -> None: ...


class CommandMemory(Protocol):
    """Where executed precinct command ids are kept across restarts (services/command_ids.py)."""

    def remember(self, command_id: str, ts: float) -> None: ...


class Messenger(Protocol):
    """The uplink as the shell sees it (``NoUplink`` when the kiosk is offline by design)."""

    def wake(self, urgent: bool = False) -> None: ...
    def send(self, topic: str, payload: bytes, correlation: bytes | None = None) -> None: ...


class Capturer(Protocol):
    def request(self, alarm_id: str, test: bool, at: float) -> None: ...


class Buzzer(Protocol):
    def play(self, sound: str) -> None: ...
    def stop(self) -> None: ...


class Indicator(Protocol):
    def rollcall(self, on: bool) -> None: ...


class Checker(Protocol):
    def check(self, entry: int, pin: str, action: str) -> None: ...


class LockoutKeeper(Protocol):
    """Where the keypad lockout is kept across restarts (services/lockout_store.py)."""

    def keep(self, failures: int, lockouts: int, locked_until: float | None, locked_s: float) -> None: ...


class Topics(Protocol):
    @property
    def events(self) -> str: ...
    @property
    def alliance(self) -> str: ...
    @property
    def alliance_out(self) -> str: ...
    def result(self, command: str) -> str: ...


class NoBuzzer:
    """``buzzer.enabled = false``: the keypad and roll-call sounds are silent, nothing else changes."""

    def play(self, sound: str) -> None:
        """Silent."""

    def stop(self) -> None:
        """Silent."""


class EffectRunner:
    """Callable executor for ``CoreLoop``; returns False while emits wait for a retry.

    Complete when built: every port an effect needs is a constructor argument. A part the
    kiosk may lack has a stand-in (``NoBuzzer``; ``NoUplink`` in device/runtime/uplink_assembly.py
    when offline by design), never a None to check for.
    Events are written through ``writer`` (device/runtime/event_writer.py).
    """

    def __init__(self, *, writer: EventWriter, light: Light, clock: Clock, topics: Topics,
                 device_id: str, precinct: str, messenger: Messenger, capturer: Capturer, buzzer: Buzzer,
                 indicator: Indicator, pin_checker: Checker, lockouts: LockoutKeeper,
                 command_ids: CommandMemory, selftester: Callable[[str], None]) -> None:
        self.writer = writer
        self._light, self._clock, self._topics = light, clock, topics
        self._device_id, self._precinct = device_id, precinct
        self._messenger, self._capturer = messenger, capturer
        self._buzzer, self._indicator = buzzer, indicator
        self._pin_checker, self._lockouts, self._command_ids = pin_checker, lockouts, command_ids
        self._selftester = selftester  # asks for a self-test; it runs off the loop
        self.rejections: Counter[str] = writer.rejections
        self.last_rejection: dict[str, str] = {}
        self._rejected_log = RateLimitedLog(_LOG)  # rejected input can arrive by the thousand

    @property
    def last_seq(self) -> int:
        return self.writer.last_seq

    def flush_logs(self) -> None:
        """At shutdown: say how many rejection lines the rate limit left out."""
        self._rejected_log.flush()

    @property
    def pending(self) -> int:
        """Events decided but not yet durable (normally 0)."""
        return self.writer.pending

    def storage_fault(self) -> str | None:
        """The storage fault shown in status, STATUS= and telemetry; None when all is well."""
        return self.writer.storage_fault()

    def storage_view(self) -> dict[str, object]:
        return {"fault": self.storage_fault(), "in_memory": self.writer.pending,
                "sent_from_memory": self.writer.memory.sent,
                "alarms_only_in_memory": len(self.writer.memory.unsettled()),
                "dropped_from_memory": self.writer.dropped}

    def __call__(self, effects: Sequence[Effect]) -> bool:
        """Each effect on its own: one that raises (a driver, the uplink, a store) is logged,
        counted as ``effect_failed`` and skipped, and every effect after it still runs, the
        events above all: a failing result publish once left an ack's light on and its
        ``help_coming`` event unwritten."""
        captures: list[Capture] = []
        for effect in effects:
            if isinstance(effect, Capture):
                captures.append(effect)
                continue
            try:
                self._run(effect)
            except Exception:
                self.rejections["effect_failed"] += 1
                self.last_rejection["effect_failed"] = type(effect).__name__
                _LOG.critical("%s failed; the effects after it still run", type(effect).__name__,
                              exc_info=True)
        durable = self.writer.flush()
        for capture in captures:  # after the alarm is on disk and on its way: capture never delays it
            request = partial(self._capturer.request, capture.alarm_id, capture.test, capture.at)
            self._guard("capture", request)
        return durable

    def _run(self, effect: Effect) -> None:
        match effect:
            case SetLight(pattern=pattern):
                self._set_light(pattern)
            case Emit():
                self.writer.add(effect)
            case Reject(what=what, reason=reason):
                self.rejections[what] += 1
                self.last_rejection[what] = clip_text(reason, 400)
                self._rejected_log.warning(what, "rejected %s: %s", what, clip_text(reason, 400))
            case RememberCommand(id=command_id, ts=ts):
                self._remember(command_id, ts)
            case Reply():
                self._reply(effect)
            case Announce(event_id=event_id):
                self._announce(event_id)
            case Beep(sound=sound) | SetSound(sound=sound):
                self._sound(sound)
            case SetIndicator(rollcall=on):
                self._guard("status LED", partial(self._indicator.rollcall, on))
            case VerifyPin(entry=entry, pin=pin, action=action):
                self._verify(entry, pin, action)
            case KeepLockout():
                self._keep_lockout(effect)
            case RunSelftest(source=source):
                self._guard("selftest", partial(self._selftester, source))

    def _sound(self, sound: str | None) -> None:
        buzzer = self._buzzer
        if sound is None:
            self._guard("buzzer", buzzer.stop)
        else:
            self._guard("buzzer", partial(buzzer.play, sound))

    def _remember(self, command_id: str, ts: float) -> None:
        """Before the command acts. A failed write does not stop it (the precinct asked, and this
        run still refuses a replay); it is logged, counted and shows in ``status``."""
        try:
            self._command_ids.remember(command_id, ts)
        except (SafehouseError, OSError) as exc:
            self.rejections["command_ids"] += 1
            self.last_rejection["command_ids"] = str(exc)
            _LOG.error("command id %r not stored (a replay after a restart would act again): %s",
                       command_id, exc)

    def _verify(self, entry: int, pin: str, action: str) -> None:
        self._pin_checker.check(entry, pin, action)

    def _keep_lockout(self, keep: KeepLockout) -> None:
        """A failed write does not stop the keypad (this run still enforces the lockout)."""
        try:
            self._lockouts.keep(keep.failures, keep.lockouts, keep.locked_until, keep.locked_s)
        except (EventLogError, OSError) as exc:
            self.rejections["lockout_store"] += 1
            _LOG.error("keypad lockout not stored (a restart would forget it): %s", exc)

    @staticmethod
    def _guard(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception:
            _LOG.exception("%s failed", what)

    def _set_light(self, pattern: str) -> None:
        try:
            self._light.play(pattern)
        except Exception:
            _LOG.exception("light box failed to play %r", pattern)

    def _reply(self, reply: Reply) -> None:
        payload = messages.result(reply, device_id=self._device_id, wall=self._clock.wall())
        self._messenger.send(self._topics.result(reply.command), payload)
        if reply.response_topic:
            self._messenger.send(reply.response_topic, payload, reply.correlation)

    def _announce(self, event_id: str) -> None:
        if not self._topics.alliance:
            return
        self._messenger.send(self._topics.alliance_out, messages.alliance_alert(
            event_id, device_id=self._device_id, precinct=self._precinct,
            alliance=self._topics.alliance, wall=self._clock.wall()))
