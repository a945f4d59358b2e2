"""The alarm lifecycle's transitions, shared by local inputs and precinct commands.

Pure helpers over a ``Step`` (one decide() call's state and effects under construction):
whoever asks — the button, the keypad, the CLI or the precinct — an alarm is raised,
acknowledged and resolved by exactly the same code.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from safehouse.device.core import codes
from safehouse.device.core.effects import Announce, Capture, Effect, Emit, Reject
from safehouse.device.core.state import Alarm, CoreState, Phase

OUTCOMES = ("assistance", "false_alarm", "police", "cancelled")


class Step:
    """Accumulates one decide() call's new state and effects, so handlers stay flat."""

    def __init__(self, state: CoreState) -> None:
        self.state = state
        self.effects: list[Effect] = []

    def emit(self, type_: str, code: int | None, *, test: bool = False, **data: Any) -> str:
        event_id = str(uuid.uuid5(self.state.run_id, str(self.state.emitted)))
        self.state = replace(self.state, emitted=self.state.emitted + 1)
        self.effects.append(Emit(event_id, type_, code, test, data))
        return event_id

    def reject(self, what: str, reason: str) -> None:
        self.effects.append(Reject(what, reason))

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)


def press(step: Step, now: float, *, trigger: str) -> None:
    """A confirmed press: a new alarm, or one more press counted on the current one."""
    alarm = step.state.alarm
    if alarm is None:
        raise_alarm(step, now, test=False, source="button", trigger=trigger)
    elif alarm.test:
        # A real person must never be mistaken for a technician's test.
        resolve(step, "superseded", "button", now)
        raise_alarm(step, now, test=False, source="button", trigger=trigger)
    else:
        step.update(alarm=replace(alarm, presses=alarm.presses + 1))


def raise_alarm(step: Step, now: float, *, test: bool, source: str, trigger: str = "") -> str:
    data: dict[str, Any] = {"source": source}
    if trigger:
        data["trigger"] = trigger
    code = codes.MANUAL_TEST if test else codes.PANIC
    event_id = step.emit("panic", code, test=test, **data)
    alarm = Alarm(event_id=event_id, test=test, started=now, ack_deadline=now + step.state.policy.ack_timeout)
    unstaffed = step.state.policy.escalate_unstaffed and not step.state.on_duty
    if unstaffed:  # nobody to come out of the booth: waiting ack_timeout would only waste the minute
        alarm = replace(alarm, phase=Phase.ESCALATED, ack_deadline=None)
    step.update(alarm=alarm, alarms_raised=step.state.alarms_raised + 1)
    if unstaffed:
        step.emit("escalated", None, test=test, alarm_id=event_id, after_s=0.0,
                  reason="nobody is on duty")
    if not test:
        step.effects.append(Announce(event_id))  # tell the alliance's neighbours
    step.effects.append(Capture(event_id, test, now))
    return event_id


def volunteer_ack(step: Step, volunteer: str, source: str, now: float) -> bool:
    alarm = step.state.alarm
    if alarm is None:
        step.reject("ack", "no active alarm to acknowledge")
        return False
    if alarm.phase is Phase.ACKNOWLEDGED:
        step.reject("ack", f"alarm already acknowledged by {alarm.acknowledged_by}")
        return False
    step.update(alarm=replace(alarm, phase=Phase.ACKNOWLEDGED, acknowledged_by=volunteer, ack_deadline=None))
    step.emit(
        "ack", None, test=alarm.test, alarm_id=alarm.event_id, volunteer=volunteer,
        source=source, time_to_ack_s=round(now - alarm.started, 3),
        escalated=alarm.phase is Phase.ESCALATED,
    )
    return True


def precinct_ack(step: Step, event_id: str) -> bool:
    alarm = step.state.alarm
    if alarm is None or alarm.event_id != event_id:
        step.reject("precinct_ack", f"no active alarm with event_id {event_id}")
        return False
    if not alarm.help_coming:
        step.update(alarm=replace(alarm, help_coming=True))
        step.emit("help_coming", None, test=alarm.test, alarm_id=alarm.event_id)
    return True


def resolve(step: Step, outcome: str, by: str, now: float) -> bool:
    alarm = step.state.alarm
    if alarm is None:
        step.reject("resolve", "no active alarm to resolve")
        return False
    if outcome not in OUTCOMES and outcome != "superseded":
        step.reject("resolve", f"unknown outcome {outcome!r} (one of {', '.join(OUTCOMES)})")
        return False
    step.emit(
        "resolved", None, test=alarm.test, alarm_id=alarm.event_id, outcome=outcome, by=by,
        duration_s=round(now - alarm.started, 3), presses=alarm.presses,
        acknowledged_by=alarm.acknowledged_by, help_coming=alarm.help_coming,
    )
    step.update(alarm=None)
    return True
