"""Volunteers at the keypad, inside ``decide()``: entries, PIN results, lockout, duty.

A PIN is never checked here (scrypt would stall the loop): a finished entry becomes a
``VerifyPin`` effect and its answer comes back as ``PinChecked``. Everything that follows —
which action, the lockout after repeated wrong PINs, the silent duress alarm — is decided
here, purely, so it is tested with a fake clock like the rest of the core. Every change to
the lockout (count, level, end) leaves as a ``KeepLockout`` effect so a restart keeps it.
"""

from __future__ import annotations

from dataclasses import replace

from safehouse.device.core import codes, lifecycle
from safehouse.device.core.effects import Beep, KeepLockout, VerifyPin
from safehouse.device.core.inputs import KeypadLink, KeyPressed, PinChecked
from safehouse.device.core.keypad_grammar import on_key
from safehouse.device.core.lifecycle import Step
from safehouse.device.core.rollcall import answer_rollcall
from safehouse.device.core.signals import Sound
from safehouse.device.core.state import KeypadState

OUTCOME_OF = {"resolve_assistance": "assistance", "resolve_false_alarm": "false_alarm",
              "resolve_police": "police"}


def on_key_pressed(step: Step, inp: KeyPressed, now: float) -> None:
    keypad, entry, refusal = on_key(step.state.keypad, inp.key, now)
    step.update(keypad=keypad)
    if refusal:
        step.reject("keypad", refusal)
        step.effects.append(Beep(Sound.ERROR))
        return
    step.effects.append(Beep(Sound.CLICK))
    if entry is None:
        return
    locked_until = keypad.locked_until
    if locked_until is not None and now < locked_until:
        step.reject("keypad", f"keypad locked for {locked_until - now:.0f} s after wrong PINs")
        step.effects.append(Beep(Sound.ERROR))
        return
    step.update(keypad=replace(keypad, entries=keypad.entries + 1))
    step.effects.append(VerifyPin(keypad.entries + 1, entry.pin, entry.action))


def on_pin_checked(step: Step, inp: PinChecked, now: float) -> None:
    keypad = step.state.keypad
    if keypad.locked_until is not None and now < keypad.locked_until:
        step.reject("keypad", "keypad locked after wrong PINs")  # a right PIN too, while locked
        step.effects.append(Beep(Sound.ERROR))
        return
    if inp.volunteer is None:
        _wrong_pin(step, now)
        return
    if keypad.failures or keypad.lockouts or keypad.locked_until is not None:
        _lockout(step, replace(keypad, failures=0, lockouts=0, locked_until=None), now)
    if inp.duress:
        alarm = step.state.alarm
        step.emit("duress", codes.DURESS, volunteer=inp.volunteer, action=inp.action,
                  alarm_id=alarm.event_id if alarm else None)
    ok = _act(step, inp.action, inp.volunteer, now)
    step.effects.append(Beep(Sound.OK if ok else Sound.ERROR))


def _wrong_pin(step: Step, now: float) -> None:
    keypad, policy = step.state.keypad, step.state.policy
    failures = keypad.failures + 1
    step.effects.append(Beep(Sound.ERROR))
    if failures < policy.lockout_after:
        _lockout(step, replace(keypad, failures=failures), now)
        step.reject("keypad", "PIN not recognised")
        return
    duration = min(policy.lockout_seconds * 2 ** min(keypad.lockouts, 32), policy.lockout_max_seconds)
    _lockout(step, replace(keypad, failures=0, lockouts=keypad.lockouts + 1, locked_until=now + duration),
             now)
    step.reject("keypad", f"{failures} wrong PINs: keypad locked for {duration:g} s")
    step.emit("keypad_lockout", codes.WRONG_CODE, wrong_pins=failures, locked_s=duration,
              lockout=keypad.lockouts + 1)


def _lockout(step: Step, keypad: KeypadState, now: float) -> None:
    step.update(keypad=keypad)
    left = max(0.0, keypad.locked_until - now) if keypad.locked_until is not None else 0.0
    step.effects.append(KeepLockout(keypad.failures, keypad.lockouts, keypad.locked_until, left))


def _act(step: Step, action: str, volunteer: str, now: float) -> bool:
    state = step.state
    if action == "ack":
        return lifecycle.volunteer_ack(step, volunteer, "keypad", now)
    if action in OUTCOME_OF:
        return lifecycle.resolve(step, OUTCOME_OF[action], volunteer, now)
    if action == "duty_on":
        if volunteer in state.on_duty:
            step.reject("keypad", f"{volunteer} is already on duty")
            return False
        step.update(on_duty=state.on_duty | {volunteer})
        step.emit("duty_on", None, volunteer=volunteer, on_duty=sorted(state.on_duty | {volunteer}))
        return True
    if action == "duty_off":
        if volunteer not in state.on_duty:
            step.reject("keypad", f"{volunteer} is not on duty")
            return False
        step.update(on_duty=state.on_duty - {volunteer})
        step.emit("duty_off", None, volunteer=volunteer, on_duty=sorted(state.on_duty - {volunteer}))
        return True
    if action in ("clue", "walk_in"):
        step.emit(action, None, volunteer=volunteer)
        return True
    if action == "rollcall":
        return answer_rollcall(step, volunteer, now)
    if action == "test_alarm":
        if state.alarm is not None:
            step.reject("keypad", "an alarm is already active")
            return False
        lifecycle.raise_alarm(step, now, test=True, source="keypad")
        return True
    step.reject("keypad", f"unknown action {action!r}")
    return False


def on_keypad_link(step: Step, inp: KeypadLink) -> None:
    """Unplugged → one ``keypad_lost`` fault; back → one ``keypad_restored``."""
    lost = not inp.connected
    if lost == step.state.keypad_lost:
        return
    step.update(keypad_lost=lost)
    if lost:
        step.emit("keypad_lost", codes.PERIPHERAL_TROUBLE, reason=inp.reason)
    else:
        step.emit("keypad_restored", codes.PERIPHERAL_TROUBLE)
