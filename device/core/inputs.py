"""Typed inputs to the core loop: the only thing a driver callback or a socket handler makes.

Each is a small frozen record of what happened, never what to do about it; deciding is
``decide()``'s job, so a callback can never race the state it would otherwise touch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ButtonChanged:
    """The panic button's debounced level changed."""

    pressed: bool


@dataclass(frozen=True)
class TamperChanged:
    """The enclosure tamper switch's debounced level changed (open = someone opened the box)."""

    open: bool


@dataclass(frozen=True)
class LampChanged:
    """The lamp current sensor's debounced level changed (lit = current flows)."""

    lit: bool


@dataclass(frozen=True)
class TestAlarmRequested:
    """A technician or the precinct asked for a test alarm (marked test everywhere)."""

    __test__ = False  # not a pytest test class, despite the name

    source: str


@dataclass(frozen=True)
class VolunteerAck:
    """The volunteer on duty acknowledged the active alarm."""

    volunteer: str
    source: str = "keypad"


@dataclass(frozen=True)
class ResolveRequested:
    """The alarm ended with an outcome (assistance, false_alarm, police, ...)."""

    outcome: str
    by: str


@dataclass(frozen=True)
class KeyPressed:
    """One keypad key (0-9 * #), from the serial keypad or `safehouse keys` in simulation."""

    key: str


@dataclass(frozen=True)
class PrecinctCommand:
    """A message on ``cmd/{name}``, as received: decide() validates it (never the MQTT thread).

    ``wall`` and ``clock_synced`` are stamped on arrival so the freshness check stays pure.
    """

    name: str
    payload: bytes
    retain: bool
    wall: float
    clock_synced: bool
    response_topic: str | None = None
    correlation: bytes | None = None


@dataclass(frozen=True)
class AllianceAlert:
    """A neighbouring kiosk's alarm announcement (一呼百應), raw as received."""

    payload: bytes
    retain: bool = False  # a retained alert is stale: it would light every kiosk at each reconnect


@dataclass(frozen=True)
class EvidenceReady:
    """The capture for an alarm finished: what was stored, and what failed and why."""

    alarm_id: str
    test: bool
    files: tuple[Mapping[str, Any], ...]
    failures: Mapping[str, str]


@dataclass(frozen=True)
class EvidenceEvicted:
    """Undelivered evidence had to be deleted past the hard disk limit (a loud fault)."""

    alarm_ids: tuple[str, ...]


@dataclass(frozen=True)
class PinChecked:
    """The answer to a ``VerifyPin``: whose PIN it was (None: nobody's), and whether it was
    their duress PIN. The PIN itself never comes back."""

    entry: int
    action: str
    volunteer: str | None
    duress: bool = False


@dataclass(frozen=True)
class KeypadLink:
    """The serial keypad was unplugged (connected False, with the reason) or is back."""

    connected: bool
    reason: str = ""


@dataclass(frozen=True)
class KeypadNoise:
    """``count`` bytes on the keypad line that are not keys (fewer than a flood): the entry
    they fell into is discarded, never checked as a PIN."""

    count: int


@dataclass(frozen=True)
class KeypadFlood:
    """The keypad line flooded (``started``, with why) and its input is ignored, or it has
    been quiet again (``detail`` says for how long it flooded); ``discarded`` bytes so far."""

    started: bool
    detail: str
    discarded: int


@dataclass(frozen=True)
class RollcallStarted:
    """The precinct's daily roll-call (cmd/rollcall or a configured local time)."""

    source: str


@dataclass(frozen=True)
class DaySummarised:
    """Local midnight passed: the finished day's counts, for a ``daily_summary`` event."""

    date: str
    counts: Mapping[str, Any]


@dataclass(frozen=True)
class SelftestDone:
    """A self-test finished: each check's name, ok and detail."""

    checks: tuple[Mapping[str, Any], ...]
    source: str


@dataclass(frozen=True)
class Tick:
    """Time passed: lets decide() fire deadlines (escalation, hold, stuck, entry timeout)."""


Input = (
    ButtonChanged
    | TamperChanged
    | LampChanged
    | TestAlarmRequested
    | VolunteerAck
    | ResolveRequested
    | KeyPressed
    | PrecinctCommand
    | AllianceAlert
    | EvidenceReady
    | EvidenceEvicted
    | PinChecked
    | KeypadLink
    | KeypadNoise
    | KeypadFlood
    | RollcallStarted
    | DaySummarised
    | SelftestDone
    | Tick
)
