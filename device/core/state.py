"""The core's whole state: one immutable value, replaced (never mutated) by ``decide()``.

Immutability is what makes the Hypothesis stateful test cheap to trust: a state can be kept,
compared and replayed, and no callback can change it behind the core loop's back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from safehouse.device.core.executed_commands import ExecutedCommands
from safehouse.device.core.signals import LightPattern, Sound


class Phase(StrEnum):
    """Where an alarm stands; RESOLVED is the transition back to no alarm at all."""

    ACTIVE = "active"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True)
class Policy:
    """The timing rules decide() applies; built from config so tests can shrink them."""

    ack_timeout: float = 60.0
    stuck_after: float = 30.0
    trigger: str = "press"  # "press" | "hold"
    hold_seconds: float = 2.0
    entry_timeout: float = 10.0
    lamp_grace: float = 5.0  # a lamp dark this long while it should be lit is a fault
    command_freshness: float = 300.0  # precinct commands older than this are refused
    neighbor_seconds: float = 120.0  # how long a neighbour's alarm shows on our light box
    device_id: str = ""  # to ignore our own alliance alerts echoed back
    escalate_unstaffed: bool = False  # an alarm while nobody is on duty escalates at once
    lockout_after: int = 5  # wrong PINs before the keypad locks
    lockout_seconds: float = 60.0  # first lockout; doubles while wrong PINs continue
    lockout_max_seconds: float = 3600.0  # ... up to this: the level is durable, so it must stop somewhere
    noise_restore_after: float = 60.0  # a keypad flood's fault ends after this long without one
    rollcall_window: float = 300.0  # seconds the volunteer on duty has to answer a roll-call


@dataclass(frozen=True)
class Alarm:
    event_id: str
    test: bool
    started: float
    phase: Phase = Phase.ACTIVE
    presses: int = 1
    ack_deadline: float | None = None
    help_coming: bool = False
    acknowledged_by: str | None = None


@dataclass(frozen=True)
class ButtonState:
    pressed: bool = False
    since: float | None = None
    hold_fired: bool = False
    stuck: bool = False


@dataclass(frozen=True)
class LampState:
    lit: bool | None = None  # None: no lamp sensor wired, or not reported yet
    dark_since: float | None = None
    fault: bool = False


@dataclass(frozen=True)
class KeypadState:
    entry: str = field(default="", repr=False)  # holds a PIN while it is typed: never shown
    last_key_at: float | None = None
    rejected: int = 0
    failures: int = 0  # wrong PINs since the last right one or lockout
    lockouts: int = 0  # consecutive lockouts: each doubles the next
    locked_until: float | None = None
    entries: int = 0  # numbers each entry sent for checking
    discarding: bool = False  # the entry held noise or grew too long: keys are dropped up to `#`
    noisy_since: float | None = None  # a keypad_noise fault is raised and not yet restored
    quiet_since: float | None = None  # ... and the line has been quiet since then
    noise_discarded: int = 0  # bytes the flood guard discarded during this fault


@dataclass(frozen=True)
class Rollcall:
    started: float
    deadline: float
    source: str


@dataclass(frozen=True)
class CoreState:
    policy: Policy
    run_id: uuid.UUID
    emitted: int = 0
    alarm: Alarm | None = None
    button: ButtonState = ButtonState()
    tamper_open: bool = False
    lamp: LampState = LampState()
    keypad: KeypadState = KeypadState()
    light: LightPattern = LightPattern.BEACON
    alarms_raised: int = 0
    executed_commands: ExecutedCommands = field(default_factory=ExecutedCommands)  # never run twice
    override: tuple[LightPattern, float] | None = None  # (pattern, until) set by cmd/light
    neighbor_until: float | None = None
    neighbor_alerts: int = 0
    faulty: frozenset[str] = frozenset()  # capture parts that failed last time (camera, microphone)
    on_duty: frozenset[str] = frozenset()  # volunteer ids checked in
    rollcall: Rollcall | None = None
    sound: Sound | None = None  # the repeating buzzer sound playing (chime, rollcall)
    keypad_lost: bool = False


def initial_state(policy: Policy, run_id: uuid.UUID | None = None,
                  on_duty: frozenset[str] = frozenset()) -> CoreState:
    """A fresh core; ``run_id`` seeds event ids so they stay unique across restarts, and the
    duty roster survives a restart (it is persisted with the daily counts)."""
    return CoreState(policy=policy, run_id=run_id or uuid.uuid4(), on_duty=on_duty)
