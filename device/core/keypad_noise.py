"""Noise on the keypad line, inside ``decide()``: discarded entries and the keypad_noise fault.

The driver's flood guard (drivers/keypad_guard.py) keeps a flood off the core queue; what
reaches the core is a ``KeypadNoise`` (a few bytes that are not keys: the entry they fell
into is discarded, never a wrong PIN) or a ``KeypadFlood`` (the line flooded, or is quiet
again). A flood raises ONE ``keypad_noise`` fault; it is restored only after the line has
gone ``noise_restore_after`` seconds without another flood, so a line that keeps flooding
stays one fault rather than a stream of events. Neither is a lockout: a right PIN typed
once the line is quiet works.
"""

from __future__ import annotations

from dataclasses import replace

from safehouse.device.core import codes
from safehouse.device.core.effects import Beep
from safehouse.device.core.inputs import KeypadFlood, KeypadNoise
from safehouse.device.core.keypad_grammar import discard
from safehouse.device.core.lifecycle import Step
from safehouse.device.core.signals import Sound
from safehouse.device.core.state import KeypadState, Policy


def on_keypad_noise(step: Step, inp: KeypadNoise, now: float) -> None:
    keypad = step.state.keypad
    if keypad.discarding:  # the same entry already refused: count the bytes' entry once
        step.update(keypad=replace(keypad, last_key_at=now))
        return
    step.update(keypad=discard(keypad, now))
    step.reject("keypad", f"line noise ({inp.count} byte(s) that are not keys): entry discarded, "
                          "never checked as a PIN")
    step.effects.append(Beep(Sound.ERROR))


def on_keypad_flood(step: Step, inp: KeypadFlood, now: float) -> None:
    keypad = step.state.keypad
    discarded = keypad.noise_discarded + inp.discarded
    if not inp.started:
        if keypad.noisy_since is not None:
            step.update(keypad=replace(keypad, quiet_since=now, noise_discarded=discarded))
        return
    # whatever was typed before the flood is suspect: start afresh once the line is quiet
    cleared = replace(keypad, entry="", discarding=False, last_key_at=None, quiet_since=None,
                      noise_discarded=discarded)
    if keypad.noisy_since is not None:
        step.update(keypad=cleared)
        return
    step.update(keypad=replace(cleared, noisy_since=now))
    step.emit("keypad_noise", codes.KEYPAD_JAM, reason=inp.detail, discarded_bytes=inp.discarded)


def noise_deadline(keypad: KeypadState, policy: Policy) -> float | None:
    if keypad.noisy_since is None or keypad.quiet_since is None:
        return None
    return keypad.quiet_since + policy.noise_restore_after


def expire_noise(step: Step, now: float) -> None:
    keypad = step.state.keypad
    deadline = noise_deadline(keypad, step.state.policy)
    if deadline is None or now < deadline or keypad.noisy_since is None or keypad.quiet_since is None:
        return
    step.update(keypad=replace(keypad, noisy_since=None, quiet_since=None, noise_discarded=0))
    step.emit("keypad_noise_restored", codes.KEYPAD_JAM, discarded_bytes=keypad.noise_discarded,
              noisy_s=round(keypad.quiet_since - keypad.noisy_since, 1))
