"""The keypad entry buffer: collects keys until ``#``, clears on ``*`` alone, forgets on silence.

Pure helpers used by ``decide()``. Until volunteers are enrolled (volunteers.toml, issue 5)
no PIN can match, so every submitted entry is a counted rejection — never an action.
"""

from __future__ import annotations

from dataclasses import replace

from safehouse.device.state import KeypadState

KEYS = frozenset("0123456789*#")
MAX_ENTRY = 24


def on_key(keypad: KeypadState, key: str, now: float) -> tuple[KeypadState, str | None]:
    """Return the new buffer and, when the key ends or spoils an entry, why it was refused."""
    if key not in KEYS:
        return replace(keypad, rejected=keypad.rejected + 1), f"not a keypad key: {key!r}"
    if key == "*" and (keypad.entry == "" or keypad.entry.endswith("*")):
        return replace(keypad, entry="", last_key_at=None), None  # `*` alone (or `**`) clears
    if key == "#":
        if not keypad.entry:
            return replace(keypad, last_key_at=None), None
        cleared = replace(keypad, entry="", last_key_at=None, rejected=keypad.rejected + 1)
        return cleared, "PIN not recognised (no volunteer is enrolled)"
    if len(keypad.entry) >= MAX_ENTRY:
        cleared = replace(keypad, entry="", last_key_at=None, rejected=keypad.rejected + 1)
        return cleared, f"entry longer than {MAX_ENTRY} keys dropped"
    return replace(keypad, entry=keypad.entry + key, last_key_at=now), None


def entry_deadline(keypad: KeypadState, timeout: float) -> float | None:
    return keypad.last_key_at + timeout if keypad.entry and keypad.last_key_at is not None else None


def expire_entry(keypad: KeypadState, now: float, timeout: float) -> tuple[KeypadState, str | None]:
    deadline = entry_deadline(keypad, timeout)
    if deadline is None or now < deadline:
        return keypad, None
    return replace(keypad, entry="", last_key_at=None), f"partial entry dropped after {timeout:g} s"
