"""The keypad grammar: keys → a complete entry (PIN and action), pure helpers for ``decide()``.

The card a volunteer follows (README): ``PIN#`` acknowledge; ``PIN*1#`` check in for duty;
``PIN*2#`` check out; ``PIN*3#`` resolve: assistance given; ``PIN*4#`` resolve: false alarm;
``PIN*5#`` resolve: handed to police; ``PIN*6#`` log a clue; ``PIN*7#`` log a walk-in;
``PIN*8#`` answer the roll-call; ``PIN*9#`` test alarm; ``*`` alone (or ``**``) clears; a
partial entry is forgotten after ``entry_timeout`` seconds of silence.

An entry longer than ``MAX_ENTRY`` keys, or one that line noise fell into, is *discarded*:
counted and refused once, then every key up to its ``#`` (or a ``*``, or the timeout) is
dropped. It is never checked as a PIN, so neither noise nor a flood can lock the keypad.

The PIN never leaves this module except inside a ``VerifyPin`` effect whose repr hides it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from safehouse.device.core.state import KeypadState

KEYS = frozenset("0123456789*#")
MAX_ENTRY = 24
ACTIONS = {"": "ack", "1": "duty_on", "2": "duty_off", "3": "resolve_assistance",
           "4": "resolve_false_alarm", "5": "resolve_police", "6": "clue", "7": "walk_in",
           "8": "rollcall", "9": "test_alarm"}
_ENTRY = re.compile(r"^(\d{4,8})(?:\*(\d))?$")


@dataclass(frozen=True)
class Entry:
    """A complete, well-formed entry waiting for its PIN to be checked."""

    pin: str = ""
    action: str = ""

    def __repr__(self) -> str:  # never show a PIN, not even in a traceback
        return f"Entry(pin=<{len(self.pin)} digits>, action={self.action!r})"


def on_key(keypad: KeypadState, key: str, now: float) -> tuple[KeypadState, Entry | None, str | None]:
    """Apply one key: (new buffer, a finished entry or None, why it was refused or None)."""
    if key not in KEYS:
        return replace(keypad, rejected=keypad.rejected + 1), None, "not a keypad key"
    if keypad.discarding:  # the rest of a discarded entry: dropped up to its end, silently
        if key in "#*":
            return replace(keypad, entry="", discarding=False, last_key_at=None), None, None
        return replace(keypad, last_key_at=now), None, None
    if key == "*" and (keypad.entry == "" or keypad.entry.endswith("*")):
        return replace(keypad, entry="", last_key_at=None), None, None  # `*` alone (or `**`) clears
    if key == "#":
        typed, cleared = keypad.entry, replace(keypad, entry="", last_key_at=None)
        if not typed:
            return cleared, None, None
        match = _ENTRY.match(typed)
        if match is None or (match.group(2) or "") not in ACTIONS:
            return replace(cleared, rejected=keypad.rejected + 1), None, "not a valid entry (see the card)"
        return cleared, Entry(match.group(1), ACTIONS[match.group(2) or ""]), None
    if len(keypad.entry) >= MAX_ENTRY:
        return (discard(keypad, now), None,
                f"entry longer than {MAX_ENTRY} keys: discarded up to its # (never checked as a PIN)")
    return replace(keypad, entry=keypad.entry + key, last_key_at=now), None, None


def discard(keypad: KeypadState, now: float) -> KeypadState:
    """Drop the entry being typed and the rest of it, counting one rejection."""
    return replace(keypad, entry="", discarding=True, last_key_at=now, rejected=keypad.rejected + 1)


def entry_deadline(keypad: KeypadState, timeout: float) -> float | None:
    typing = keypad.entry or keypad.discarding
    return keypad.last_key_at + timeout if typing and keypad.last_key_at is not None else None


def expire_entry(keypad: KeypadState, now: float, timeout: float) -> tuple[KeypadState, str | None]:
    deadline = entry_deadline(keypad, timeout)
    if deadline is None or now < deadline:
        return keypad, None
    reason = None if keypad.discarding else f"partial entry dropped after {timeout:g} s"
    return replace(keypad, entry="", discarding=False, last_key_at=None), reason
