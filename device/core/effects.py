"""Effects: what ``decide()`` asks the imperative shell to do, as plain data.

Keeping them data is what lets the alarm core be tested exhaustively without a pin, a disk
or a clock: a test compares lists of these records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from safehouse.device.core.signals import LightPattern, Sound


@dataclass(frozen=True)
class SetLight:
    """Play this light box pattern (see drivers.patterns.PATTERNS)."""

    pattern: LightPattern


@dataclass(frozen=True)
class Emit:
    """Record an event durably and send it to the precinct.

    ``event_id`` is chosen by the core so that later inputs (cmd/ack, resolve) can name the
    alarm they refer to; the shell adds seq, wall time, monotonic time and boot id.
    """

    event_id: str
    type: str
    code: int | None
    test: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reject:
    """An input was refused; the shell counts and logs it (never silent, never a crash)."""

    what: str
    reason: str


@dataclass(frozen=True)
class Reply:
    """The one answer to a precinct command: a result or the reason it was refused."""

    command: str
    id: str | None
    ok: bool
    error: str | None
    result: Mapping[str, Any]
    response_topic: str | None = None
    correlation: bytes | None = None


@dataclass(frozen=True)
class Announce:
    """A real alarm started: tell the alliance's neighbouring kiosks (if there is an alliance)."""

    event_id: str


@dataclass(frozen=True)
class Capture:
    """An alarm started: take snapshots and an audio clip for it, off the core loop."""

    alarm_id: str
    test: bool
    at: float  # monotonic time of the press


@dataclass(frozen=True)
class Beep:
    """A one-shot buzzer sound: click (key), ok, error."""

    sound: Sound


@dataclass(frozen=True)
class SetSound:
    """The repeating buzzer sound (chime until acknowledged, rollcall), or None for silence."""

    sound: Sound | None


@dataclass(frozen=True)
class SetIndicator:
    """The technician's status LED shows a roll-call in progress (on) or the link again (off)."""

    rollcall: bool


@dataclass(frozen=True)
class VerifyPin:
    """Check a typed PIN off the core loop (scrypt is slow on purpose); the answer comes back
    as a ``PinChecked`` input carrying the same ``entry``."""

    entry: int
    pin: str = field(repr=False)
    action: str


@dataclass(frozen=True)
class RememberCommand:
    """A precinct command is about to act: record its id and the sender's ``ts`` durably first,
    so a replay after a restart is refused (device/core/executed_commands.py)."""

    id: str
    ts: float


@dataclass(frozen=True)
class KeepLockout:
    """The keypad's wrong-PIN count, lockout level or lockout end changed: store them durably,
    so a restart (or pulling the plug) neither clears a lockout nor resets its doubling.
    ``locked_until`` is monotonic time; ``locked_s`` the seconds of it still to run."""

    failures: int
    lockouts: int
    locked_until: float | None
    locked_s: float


@dataclass(frozen=True)
class RunSelftest:
    """The precinct asked for a self-test (cmd/selftest): run it off the loop."""

    source: str


Effect = (SetLight | Emit | Reject | Reply | Announce | Capture | Beep | SetSound | SetIndicator
          | VerifyPin | KeepLockout | RunSelftest | RememberCommand)
