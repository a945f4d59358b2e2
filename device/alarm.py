"""The alarm core: ``decide(state, input, now) -> (state, effects)``, pure and total.

No I/O, no clock reads, no threads: time arrives as ``now`` (monotonic seconds) and every
consequence leaves as an effect record. Deadlines (escalation, hold, stuck button, dark lamp,
keypad entry) are fired by whichever input arrives at or after them, and the shell wakes
the loop at ``next_deadline(state)`` with a ``Tick`` so none is ever late by more than the
loop's wake-up jitter.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from safehouse.device import codes
from safehouse.device.effects import Effect, Emit, Reject, SetLight
from safehouse.device.inputs import (
    ButtonChanged,
    Input,
    KeyPressed,
    LampChanged,
    PrecinctAck,
    ResolveRequested,
    TamperChanged,
    TestAlarmRequested,
    Tick,
    VolunteerAck,
)
from safehouse.device.keypad_entry import entry_deadline, expire_entry, on_key
from safehouse.device.state import Alarm, CoreState, Phase

OUTCOMES = ("assistance", "false_alarm", "police", "cancelled")


class _Step:
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


def light_for(state: CoreState) -> str:
    """The pattern the public light box should show; a pure function of the state."""
    alarm = state.alarm
    if alarm is None:
        return "beacon"
    if alarm.help_coming:
        return "help_coming"
    if alarm.test:
        return "test"
    if alarm.phase is Phase.ACKNOWLEDGED:
        return "acknowledged"
    return "alarm"


def decide(state: CoreState, inp: Input, now: float) -> tuple[CoreState, list[Effect]]:
    """Apply one input at monotonic time ``now``; return the new state and what to do."""
    step = _Step(state)
    _expire(step, now)
    _handle(step, inp, now)
    _expire(step, now)
    pattern = light_for(step.state)
    if pattern != state.light:
        step.update(light=pattern)
        step.effects.insert(0, SetLight(pattern))  # lights react before anything is written
    return step.state, step.effects


def next_deadline(state: CoreState) -> float | None:
    """The earliest monotonic time at which decide() has something to fire, if any."""
    p, candidates = state.policy, []
    alarm, button, lamp = state.alarm, state.button, state.lamp
    if alarm is not None and alarm.phase is Phase.ACTIVE and alarm.ack_deadline is not None:
        candidates.append(alarm.ack_deadline)
    if button.pressed and button.since is not None:
        if not button.stuck:
            candidates.append(button.since + p.stuck_after)
        if p.trigger == "hold" and not button.hold_fired:
            candidates.append(button.since + p.hold_seconds)
    if lamp.dark_since is not None and not lamp.fault:
        candidates.append(lamp.dark_since + p.lamp_grace)
    entry = entry_deadline(state.keypad, p.entry_timeout)
    if entry is not None:
        candidates.append(entry)
    return min(candidates) if candidates else None


def _handle(step: _Step, inp: Input, now: float) -> None:
    match inp:
        case ButtonChanged(pressed=True):
            _button_down(step, now)
        case ButtonChanged(pressed=False):
            _button_up(step)
        case TestAlarmRequested(source=source):
            if step.state.alarm is not None:
                step.reject("test_alarm", "an alarm is already active")
            else:
                _raise_alarm(step, now, test=True, source=source)
        case VolunteerAck():
            _volunteer_ack(step, inp, now)
        case PrecinctAck(event_id=event_id):
            alarm = step.state.alarm
            if alarm is None or alarm.event_id != event_id:
                step.reject("precinct_ack", f"no active alarm with event_id {event_id}")
            elif not alarm.help_coming:
                step.update(alarm=replace(alarm, help_coming=True))
                step.emit("help_coming", None, test=alarm.test, alarm_id=alarm.event_id)
        case ResolveRequested():
            _resolve(step, inp.outcome, inp.by, now)
        case TamperChanged(open=is_open):
            if is_open != step.state.tamper_open:
                step.update(tamper_open=is_open)
                step.emit("tamper" if is_open else "tamper_restored", codes.TAMPER)
        case LampChanged(lit=lit):
            _lamp(step, lit, now)
        case KeyPressed(key=key):
            keypad, rejection = on_key(step.state.keypad, key, now)
            step.update(keypad=keypad)
            if rejection:
                step.reject("keypad", rejection)
        case Tick():
            pass


def _button_down(step: _Step, now: float) -> None:
    if step.state.button.pressed:
        return  # a repeated level report is not a second press
    step.update(button=replace(step.state.button, pressed=True, since=now, hold_fired=False))
    if step.state.policy.trigger == "press":
        _press(step, now, trigger="press")


def _button_up(step: _Step) -> None:
    button = step.state.button
    if not button.pressed:
        return
    if button.stuck:
        step.emit("button_restored", codes.SENSOR_TROUBLE)
    step.update(button=replace(button, pressed=False, since=None, hold_fired=False, stuck=False))


def _press(step: _Step, now: float, *, trigger: str) -> None:
    """A confirmed press: a new alarm, or one more press counted on the current one."""
    alarm = step.state.alarm
    if alarm is None:
        _raise_alarm(step, now, test=False, source="button", trigger=trigger)
    elif alarm.test:
        # A real person must never be mistaken for a technician's test.
        _resolve(step, "superseded", "button", now)
        _raise_alarm(step, now, test=False, source="button", trigger=trigger)
    else:
        step.update(alarm=replace(alarm, presses=alarm.presses + 1))


def _raise_alarm(step: _Step, now: float, *, test: bool, source: str, trigger: str = "") -> None:
    data: dict[str, Any] = {"source": source}
    if trigger:
        data["trigger"] = trigger
    code = codes.MANUAL_TEST if test else codes.PANIC
    event_id = step.emit("panic", code, test=test, **data)
    deadline = now + step.state.policy.ack_timeout
    step.update(
        alarm=Alarm(event_id=event_id, test=test, started=now, ack_deadline=deadline),
        alarms_raised=step.state.alarms_raised + 1,
    )


def _volunteer_ack(step: _Step, inp: VolunteerAck, now: float) -> None:
    alarm = step.state.alarm
    if alarm is None:
        step.reject("ack", "no active alarm to acknowledge")
        return
    if alarm.phase is Phase.ACKNOWLEDGED:
        step.reject("ack", f"alarm already acknowledged by {alarm.acknowledged_by}")
        return
    step.update(alarm=replace(alarm, phase=Phase.ACKNOWLEDGED, acknowledged_by=inp.volunteer))
    step.emit(
        "ack", None, test=alarm.test, alarm_id=alarm.event_id, volunteer=inp.volunteer,
        source=inp.source, time_to_ack_s=round(now - alarm.started, 3),
        escalated=alarm.phase is Phase.ESCALATED,
    )


def _resolve(step: _Step, outcome: str, by: str, now: float) -> None:
    alarm = step.state.alarm
    if alarm is None:
        step.reject("resolve", "no active alarm to resolve")
        return
    if outcome not in OUTCOMES and outcome != "superseded":
        step.reject("resolve", f"unknown outcome {outcome!r} (one of {', '.join(OUTCOMES)})")
        return
    step.emit(
        "resolved", None, test=alarm.test, alarm_id=alarm.event_id, outcome=outcome, by=by,
        duration_s=round(now - alarm.started, 3), presses=alarm.presses,
        acknowledged_by=alarm.acknowledged_by, help_coming=alarm.help_coming,
    )
    step.update(alarm=None)


def _lamp(step: _Step, lit: bool, now: float) -> None:
    lamp = step.state.lamp
    if lit:
        if lamp.fault:
            step.emit("lamp_restored", codes.PERIPHERAL_TROUBLE)
        step.update(lamp=replace(lamp, lit=True, dark_since=None, fault=False))
    elif lamp.lit is not False:
        step.update(lamp=replace(lamp, lit=False, dark_since=now))


def _expire(step: _Step, now: float) -> None:
    """Fire every deadline that is due; each fires once because it updates the state."""
    p, state = step.state.policy, step.state
    alarm, button, lamp = state.alarm, state.button, state.lamp
    if button.pressed and button.since is not None:
        held = now - button.since
        if p.trigger == "hold" and not button.hold_fired and held >= p.hold_seconds:
            step.update(button=replace(step.state.button, hold_fired=True))
            _press(step, now, trigger="hold")
        if not button.stuck and held >= p.stuck_after:
            step.update(button=replace(step.state.button, stuck=True))
            step.emit("button_stuck", codes.SENSOR_TROUBLE, held_s=round(held, 3))
    alarm = step.state.alarm
    if (
        alarm is not None and alarm.phase is Phase.ACTIVE
        and alarm.ack_deadline is not None and now >= alarm.ack_deadline
    ):
        step.update(alarm=replace(alarm, phase=Phase.ESCALATED, ack_deadline=None))
        step.emit("escalated", None, test=alarm.test, alarm_id=alarm.event_id,
                  after_s=round(now - alarm.started, 3), reason="no volunteer acknowledged")
    lamp = step.state.lamp
    should_be_lit = step.state.light != "off"
    dark_since = lamp.dark_since
    if dark_since is not None and not lamp.fault and should_be_lit and now - dark_since >= p.lamp_grace:
        step.update(lamp=replace(lamp, fault=True))
        step.emit("lamp_fault", codes.PERIPHERAL_TROUBLE, dark_s=round(now - dark_since, 3))
    keypad, rejection = expire_entry(step.state.keypad, now, p.entry_timeout)
    if keypad is not step.state.keypad:
        step.update(keypad=keypad)
        if rejection:
            step.reject("keypad", rejection)
