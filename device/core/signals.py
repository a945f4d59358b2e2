"""The names of what the kiosk shows and sounds: light-box patterns and buzzer sounds.

Each name is defined here once. The core decides with them (``light_for``/``sound_for`` in
``alarm.py``), the precinct's ``cmd/light`` checks against them, and the drivers key their
tables by them (``drivers/patterns.PATTERNS``, ``drivers/buzzer.SOUNDS``; a test proves every
member has an entry), so a name the core asks for always exists in the driver. The values are
the strings on the wire (status, telemetry, ``cmd/light``), which a ``StrEnum`` keeps as they were.
"""

from __future__ import annotations

from enum import StrEnum


class _Name(StrEnum):
    """A name that reads as the plain string everywhere, ``repr`` included: every message that
    quotes one (``plays 'alarm' but the kiosk asked for 'beacon'``) reads as it did before."""

    def __repr__(self) -> str:
        return repr(self.value)


class LightPattern(_Name):
    """A light-box pattern; listed in the order the ``cmd/light`` error message names them."""

    BEACON = "beacon"  # the 24-hour sign, nothing going on
    OFF = "off"
    TEST = "test"  # a technician's test alarm: must never look like a real one
    NEIGHBOR = "neighbor"  # a neighbouring kiosk's alarm (the alliance)
    ACKNOWLEDGED = "acknowledged"  # a volunteer has taken the call
    HELP_COMING = "help_coming"  # the precinct answered
    ALARM = "alarm"


class Sound(_Name):
    """A buzzer sound: one-shots (key feedback, the self-test tone) and repeating ones."""

    CLICK = "click"  # a key press
    OK = "ok"  # an entry accepted
    ERROR = "error"  # an entry refused
    CHIME = "chime"  # repeats: summons the volunteer until the alarm is acknowledged
    ROLLCALL = "rollcall"  # repeats: a roll-call waits for the volunteer on duty
    SELFTEST = "selftest"  # one steady tone for the microphone to find


REPEATING = frozenset({Sound.CHIME, Sound.ROLLCALL})  # the others play once
