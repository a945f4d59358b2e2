"""The alarm core: ``decide(state, input, now) -> (state, effects)``, pure and total.

No I/O, no clock reads, no threads: time arrives as ``now`` (monotonic seconds) and every
consequence leaves as an effect record. Deadlines (escalation, hold, stuck button, dark lamp,
keypad entry) are fired by whichever input arrives at or after them, and the shell wakes
the loop at ``next_deadline(state)`` with a ``Tick`` so none is ever late by more than the
loop's wake-up jitter.
"""

from __future__ import annotations

from dataclasses import replace

from safehouse.device.core import codes
from safehouse.device.core.effects import Effect, SetIndicator, SetLight, SetSound
from safehouse.device.core.evidence import on_evidence_evicted, on_evidence_ready
from safehouse.device.core.inputs import (
    AllianceAlert,
    ButtonChanged,
    DaySummarised,
    EvidenceEvicted,
    EvidenceReady,
    Input,
    KeypadFlood,
    KeypadLink,
    KeypadNoise,
    KeyPressed,
    LampChanged,
    PinChecked,
    PrecinctCommand,
    ResolveRequested,
    RollcallStarted,
    SelftestDone,
    TamperChanged,
    TestAlarmRequested,
    Tick,
    VolunteerAck,
)
from safehouse.device.core.keypad import on_key_pressed, on_keypad_link, on_pin_checked
from safehouse.device.core.keypad_grammar import entry_deadline, expire_entry
from safehouse.device.core.keypad_noise import expire_noise, noise_deadline, on_keypad_flood, on_keypad_noise
from safehouse.device.core.lifecycle import (
    OUTCOMES,
    Step,
    press,
    raise_alarm,
    resolve,
    volunteer_ack,
)
from safehouse.device.core.precinct import (
    expire_displays,
    on_alliance_alert,
    on_precinct_command,
)
from safehouse.device.core.rollcall import expire_rollcall, start_rollcall
from safehouse.device.core.signals import LightPattern, Sound
from safehouse.device.core.state import CoreState, Phase

__all__ = ["OUTCOMES", "decide", "light_for", "next_deadline", "sound_for"]


def light_for(state: CoreState) -> LightPattern:
    """The pattern the public light box should show; a pure function of the state."""
    alarm = state.alarm
    if alarm is None:
        if state.neighbor_until is not None:
            return LightPattern.NEIGHBOR
        return state.override[0] if state.override is not None else LightPattern.BEACON
    if alarm.help_coming:
        return LightPattern.HELP_COMING
    if alarm.test:
        return LightPattern.TEST
    if alarm.phase is Phase.ACKNOWLEDGED:
        return LightPattern.ACKNOWLEDGED
    return LightPattern.ALARM


def sound_for(state: CoreState) -> Sound | None:
    """The repeating buzzer sound the state calls for (like ``light_for``, derived, not stored)."""
    if state.rollcall is not None:
        return Sound.ROLLCALL
    alarm = state.alarm
    if alarm is not None and alarm.phase is not Phase.ACKNOWLEDGED:
        return Sound.CHIME  # summons the volunteer until someone acknowledges
    return None


def decide(state: CoreState, inp: Input, now: float) -> tuple[CoreState, list[Effect]]:
    """Apply one input at monotonic time ``now``; return the new state and what to do."""
    step = Step(state)
    _expire(step, now)
    _handle(step, inp, now)
    _expire(step, now)
    pattern = light_for(step.state)
    if pattern != state.light:
        step.update(light=pattern)
        step.effects.insert(0, SetLight(pattern))  # lights react before anything is written
    sound = sound_for(step.state)
    if sound != state.sound:
        step.update(sound=sound)
        step.effects.insert(1 if pattern != state.light else 0, SetSound(sound))
    if (step.state.rollcall is None) != (state.rollcall is None):
        step.effects.append(SetIndicator(rollcall=step.state.rollcall is not None))
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
    for keypad_due in (entry_deadline(state.keypad, p.entry_timeout), noise_deadline(state.keypad, p)):
        if keypad_due is not None:
            candidates.append(keypad_due)
    if state.override is not None:
        candidates.append(state.override[1])
    if state.neighbor_until is not None:
        candidates.append(state.neighbor_until)
    if state.rollcall is not None:
        candidates.append(state.rollcall.deadline)
    return min(candidates) if candidates else None


def _handle(step: Step, inp: Input, now: float) -> None:
    match inp:
        case ButtonChanged(pressed=True):
            _button_down(step, now)
        case ButtonChanged(pressed=False):
            _button_up(step)
        case TestAlarmRequested(source=source):
            if step.state.alarm is not None:
                step.reject("test_alarm", "an alarm is already active")
            else:
                raise_alarm(step, now, test=True, source=source)
        case VolunteerAck(volunteer=volunteer, source=source):
            volunteer_ack(step, volunteer, source, now)
        case ResolveRequested(outcome=outcome, by=by):
            resolve(step, outcome, by, now)
        case PrecinctCommand():
            on_precinct_command(step, inp, now)
        case AllianceAlert():
            on_alliance_alert(step, inp, now)
        case EvidenceReady():
            on_evidence_ready(step, inp)
        case EvidenceEvicted():
            on_evidence_evicted(step, inp)
        case TamperChanged(open=is_open):
            if is_open != step.state.tamper_open:
                step.update(tamper_open=is_open)
                step.emit("tamper" if is_open else "tamper_restored", codes.TAMPER)
        case LampChanged(lit=lit):
            _lamp(step, lit, now)
        case KeyPressed():
            on_key_pressed(step, inp, now)
        case PinChecked():
            on_pin_checked(step, inp, now)
        case RollcallStarted():
            start_rollcall(step, inp, now)
        case DaySummarised(date=date, counts=counts):
            step.emit("daily_summary", None, date=date, **dict(counts))
        case KeypadLink():
            on_keypad_link(step, inp)
        case KeypadNoise():
            on_keypad_noise(step, inp, now)
        case KeypadFlood():
            on_keypad_flood(step, inp, now)
        case SelftestDone():
            _selftest_done(step, inp)
        case Tick():
            pass


def _button_down(step: Step, now: float) -> None:
    if step.state.button.pressed:
        return  # a repeated level report is not a second press
    step.update(button=replace(step.state.button, pressed=True, since=now, hold_fired=False))
    if step.state.policy.trigger == "press":
        press(step, now, trigger="press")


def _button_up(step: Step) -> None:
    button = step.state.button
    if not button.pressed:
        return
    if button.stuck:
        step.emit("button_restored", codes.SENSOR_TROUBLE)
    step.update(button=replace(button, pressed=False, since=None, hold_fired=False, stuck=False))


def _lamp(step: Step, lit: bool, now: float) -> None:
    lamp = step.state.lamp
    if lit:
        if lamp.fault:
            step.emit("lamp_restored", codes.PERIPHERAL_TROUBLE)
        step.update(lamp=replace(lamp, lit=True, dark_since=None, fault=False))
    elif lamp.lit is not False:
        step.update(lamp=replace(lamp, lit=False, dark_since=now))


def _selftest_done(step: Step, inp: SelftestDone) -> None:
    """A self-test finished (asked by the precinct or a technician at the CLI)."""
    failed = [str(c["name"]) for c in inp.checks if not c["ok"]]
    step.emit("selftest", codes.TEST_WITH_TROUBLE if failed else codes.PERIODIC_TEST, source=inp.source,
              ok=not failed, failed=failed, checks=[dict(c) for c in inp.checks])


def _expire(step: Step, now: float) -> None:
    """Fire every deadline that is due; each fires once because it updates the state."""
    p, button = step.state.policy, step.state.button
    if button.pressed and button.since is not None:
        held = now - button.since
        if p.trigger == "hold" and not button.hold_fired and held >= p.hold_seconds:
            step.update(button=replace(step.state.button, hold_fired=True))
            press(step, now, trigger="hold")
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
    should_be_lit = step.state.light != LightPattern.OFF
    dark_since = lamp.dark_since
    if dark_since is not None and not lamp.fault and should_be_lit and now - dark_since >= p.lamp_grace:
        step.update(lamp=replace(lamp, fault=True))
        step.emit("lamp_fault", codes.PERIPHERAL_TROUBLE, dark_s=round(now - dark_since, 3))
    expire_displays(step, now)
    expire_rollcall(step, now)
    expire_noise(step, now)
    keypad, rejection = expire_entry(step.state.keypad, now, p.entry_timeout)
    if keypad is not step.state.keypad:
        step.update(keypad=keypad)
        if rejection:
            step.reject("keypad", rejection)
