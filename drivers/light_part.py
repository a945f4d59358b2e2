"""The light box as a part: its [light] settings and the factory that opens it.

The driver (``lightbox.py``, which imports gpiozero) is imported only when the part is built,
so loading the config (every CLI command does) stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from safehouse.device.core.settings import HHMM, as_time, in_range, matches, setting

if TYPE_CHECKING:
    from safehouse.drivers.lightbox import LightBox


@dataclass(frozen=True)
class LightSettings:
    """[light]: the light box's wiring polarity and the beacon's brightness schedule."""

    active_high: bool = setting(True, "false for relay boards that switch on a low level")
    day_brightness: float = setting(1.0, "beacon brightness by day (0-1)", in_range(0.0, 1.0))
    night_brightness: float = setting(0.4, "beacon brightness by night (0-1)", in_range(0.0, 1.0))
    night_from: time = setting("19:00", "local time the night brightness starts (HH:MM)",
                               matches(HHMM, "HH:MM"), convert=as_time)
    night_until: time = setting("07:00", "local time the night brightness ends (HH:MM)",
                                matches(HHMM, "HH:MM"), convert=as_time)


def build(settings: LightSettings, *, red: int, blue: int, pin_factory: Any,
          clock: Callable[[], datetime]) -> LightBox:
    """Open the light box on ``red`` and ``blue``; sim or real is the pin factory's choice.

    ``clock`` is local wall time from the daemon's clock (a sim clock can jump), never a
    second reading of the system clock: the beacon dims by it.
    """
    from safehouse.drivers.lightbox import LightBox
    from safehouse.drivers.patterns import BrightnessSchedule

    schedule = BrightnessSchedule(day=settings.day_brightness, night=settings.night_brightness,
                                  night_from=settings.night_from, night_until=settings.night_until)
    return LightBox(red, blue, active_high=settings.active_high, schedule=schedule,
                    pin_factory=pin_factory, clock=clock)
