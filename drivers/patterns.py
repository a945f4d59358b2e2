"""Light-box patterns as plain data, so the look of every state can be reviewed in one table.

The player in ``lightbox`` knows nothing about alarms: it loops over steps. Keeping the
patterns here means a change of rhythm is a data change a reviewer can check against the
requirements (e.g. "alarm flashes at least 4 times a second") without reading thread code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from types import MappingProxyType

from safehouse.device.core.signals import LightPattern


def _check_level(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0.0 and 1.0, got {value!r}")


@dataclass(frozen=True)
class Step:
    """One frame of a pattern: both channel levels (0-1) held for ``seconds``."""

    red: float
    blue: float
    seconds: float

    def __post_init__(self) -> None:
        _check_level("red", self.red)
        _check_level("blue", self.blue)
        if not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds!r}")


@dataclass(frozen=True)
class Pattern:
    """The loop of steps of one ``LightPattern``; one step means steady (the player then
    sleeps until a change).

    ``dimmable`` patterns follow the day/night schedule because the 24-hour sign must not
    dazzle neighbours at night; alarm-type patterns ignore it because they must be seen.
    """

    name: LightPattern
    steps: tuple[Step, ...]
    dimmable: bool

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"pattern {self.name!r} needs at least one step")

    @property
    def steady(self) -> bool:
        return len(self.steps) == 1


def _pattern(name: LightPattern, *steps: Step, dimmable: bool = False) -> Pattern:
    return Pattern(name, tuple(steps), dimmable)


# Keyed by the enum, one entry per member (tests/drivers/test_lightbox.py holds that).
PATTERNS: Mapping[LightPattern, Pattern] = MappingProxyType(
    {
        p.name: p
        for p in (
            _pattern(LightPattern.OFF, Step(0.0, 0.0, 1.0)),
            # The 24-hour sign: both colours steady, dimmed at night.
            _pattern(LightPattern.BEACON, Step(1.0, 1.0, 1.0), dimmable=True),
            # 5 red/blue cycles a second; red and blue are never on together.
            _pattern(LightPattern.ALARM, Step(1.0, 0.0, 0.1), Step(0.0, 1.0, 0.1)),
            # Calmer 1 Hz alternation: tells the citizen a volunteer has taken the call, and
            # stays distinguishable from the steady beacon in daylight.
            _pattern(LightPattern.ACKNOWLEDGED, Step(1.0, 0.0, 0.5), Step(0.0, 1.0, 0.5)),
            # Blue alone blinking at 1 Hz: the precinct answered, help is on its way.
            _pattern(LightPattern.HELP_COMING, Step(0.0, 1.0, 0.5), Step(0.0, 0.0, 0.5)),
            # Half brightness at 2 Hz: a technician's test must never look like a real alarm.
            _pattern(LightPattern.TEST, Step(0.5, 0.0, 0.25), Step(0.0, 0.5, 0.25)),
            # A neighbouring kiosk's alarm: blue double flash, then a pause; 1.5 s cycle.
            _pattern(
                LightPattern.NEIGHBOR,
                Step(0.0, 1.0, 0.1),
                Step(0.0, 0.0, 0.1),
                Step(0.0, 1.0, 0.1),
                Step(0.0, 0.0, 1.2),
            ),
        )
    }
)


@dataclass(frozen=True)
class BrightnessSchedule:
    """Beacon brightness by local wall time; night may wrap past midnight (19:00-07:00).

    ``night_from == night_until`` means there is no night period.
    """

    day: float = 1.0
    night: float = 0.4
    night_from: time = time(19, 0)
    night_until: time = time(7, 0)

    def __post_init__(self) -> None:
        _check_level("day", self.day)
        _check_level("night", self.night)

    def is_night(self, t: time) -> bool:
        start, end = self.night_from, self.night_until
        if start == end:
            return False
        if start < end:
            return start <= t < end
        return t >= start or t < end

    def level_at(self, t: time) -> float:
        return self.night if self.is_night(t) else self.day
