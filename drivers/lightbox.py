"""The red-blue light box: one player thread looping the current pattern over two PWM LEDs.

A citizen who presses the button must see the box react at once, so ``play()`` writes the
first step itself (under the lock the player also holds) instead of waiting for the player
to wake up. The player sleeps on an Event between steps and forever on steady patterns, so
an idle kiosk costs no CPU.

The module is the whole part: its [light] settings, the driver and ``build()``. gpiozero is
imported only when a LightBox opens its pins, so loading the config (every CLI command does)
imports no driver library; the pin factory decides whether the pins are real or simulated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import time as clock_time
from typing import Any

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import HardwareError
from safehouse.device.core.settings import HHMM, as_time, in_range, matches, setting
from safehouse.device.core.signals import LightPattern
from safehouse.device.core.threads import Worker
from safehouse.drivers.patterns import PATTERNS, BrightnessSchedule, Pattern, Step

_LOG = logging.getLogger(__name__)

# A dimmable steady pattern (the beacon) re-reads the schedule this often; dusk need not be
# caught to the second, and a once-a-minute wake-up is free.
_RECHECK_SECONDS = 60.0


@dataclass(frozen=True)
class LightSettings:
    """[light]: the light box's wiring polarity and the beacon's brightness schedule."""

    active_high: bool = setting(True, "false for relay boards that switch on a low level")
    day_brightness: float = setting(1.0, "beacon brightness by day (0-1)", in_range(0.0, 1.0))
    night_brightness: float = setting(0.4, "beacon brightness by night (0-1)", in_range(0.0, 1.0))
    night_from: clock_time = setting("19:00", "local time the night brightness starts (HH:MM)",
                                     matches(HHMM, "HH:MM"), convert=as_time)
    night_until: clock_time = setting("07:00", "local time the night brightness ends (HH:MM)",
                                      matches(HHMM, "HH:MM"), convert=as_time)


class LightBox(Closing):
    """Red and blue channels of the kiosk's light box, playing one named pattern at a time."""

    def __init__(
        self,
        red: int,
        blue: int,
        *,
        active_high: bool = True,
        schedule: BrightnessSchedule | None = None,
        pin_factory: Any = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._pins = (red, blue)
        self._schedule = schedule or BrightnessSchedule()
        self._clock = clock or datetime.now
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._worker = Worker(self._run, name=f"lightbox-{red}-{blue}", wake=self._wake.set)
        self._pattern: Pattern = PATTERNS[LightPattern.OFF]
        self._generation = 0
        self._started = time.monotonic()
        self._levels = (0.0, 0.0)
        self._leds: list[Any] = []
        # gpiozero (and pins, which imports it) only here, where pins open: see the docstring.
        from gpiozero import PWMLED

        from safehouse.drivers.pins import opening

        try:
            for what, pin in (("light box red channel", red), ("light box blue channel", blue)):
                with opening(what, pin):
                    self._leds.append(
                        PWMLED(pin, active_high=active_high, pin_factory=pin_factory)
                    )
            self._worker.start()
        except BaseException:
            self._close_leds()
            raise

    def __repr__(self) -> str:
        return f"<LightBox red=GPIO{self._pins[0]} blue=GPIO{self._pins[1]} {self.pattern!r}>"

    @property
    def pattern(self) -> str:
        return self._pattern.name

    @property
    def value(self) -> tuple[float, float]:
        """The (red, blue) levels last written, brightness included."""
        return self._levels

    def play(self, name: str) -> None:
        """Switch to pattern ``name``; its first step is on the pins when this returns.

        Playing the pattern already shown is a no-op, so a re-pressed button does not
        restart the alarm's rhythm.
        """
        try:
            pattern = PATTERNS[LightPattern(name)]
        except ValueError:
            raise ValueError(
                f"unknown light pattern {name!r}; valid patterns: {', '.join(sorted(PATTERNS))}"
            ) from None
        with self._lock:
            if self._worker.stopping.is_set():
                raise HardwareError(f"{self!r} is closed; build a new LightBox to use the pins")
            if pattern is self._pattern:
                return
            self._pattern = pattern
            self._generation += 1
            self._started = time.monotonic()
            self._write(pattern, pattern.steps[0])
            self._wake.set()
        _LOG.debug("light box pattern %s", name)

    def close(self) -> None:
        """Stop the player, switch both channels off and release the pins; safe to repeat."""
        with self._lock:  # play() sees the stop under this lock
            if not self._worker.request_stop():
                return
        self._worker.stop()  # a stuck player is logged, not waited for
        with self._lock:
            self._close_leds()

    def _close_leds(self) -> None:
        for led in self._leds:
            try:
                led.off()
                led.close()
            except Exception:
                _LOG.exception("closing %r failed", led)
        self._leds.clear()
        self._levels = (0.0, 0.0)

    def _write(self, pattern: Pattern, step: Step) -> None:
        """Set both channels; caller holds the lock.

        The channel going down is written first, so alternating patterns never show both
        colours at full level, not even for the microseconds between two pin writes.
        """
        scale = self._schedule.level_at(self._clock().time()) if pattern.dimmable else 1.0
        levels = (step.red * scale, step.blue * scale)
        order = sorted(range(2), key=lambda i: levels[i] - self._levels[i])
        for i in order:
            self._leds[i].value = levels[i]
        self._levels = levels

    def _run(self) -> None:
        seen = -1
        index = 0
        deadline = 0.0
        while True:
            with self._lock:
                if self._worker.stopping.is_set():
                    return
                self._wake.clear()
                pattern = self._pattern
                if self._generation != seen:
                    # play() (or the constructor's "off") already wrote step 0.
                    seen, index, deadline = self._generation, 0, self._started
                else:
                    index = (index + 1) % len(pattern.steps)
                    try:
                        self._write(pattern, pattern.steps[index])
                    except Exception:
                        _LOG.exception("light box could not write %s step %d", pattern.name, index)
            timeout: float | None
            if pattern.steady:
                timeout = _RECHECK_SECONDS if pattern.dimmable else None
            else:
                now = time.monotonic()
                deadline += pattern.steps[index].seconds
                if deadline < now:  # we fell behind (stalled host): resynchronise, do not rush
                    deadline = now + pattern.steps[index].seconds
                timeout = deadline - now
            self._wake.wait(timeout)


def build(settings: LightSettings, *, red: int, blue: int, pin_factory: Any,
          clock: Callable[[], datetime]) -> LightBox:
    """Open the light box on ``red`` and ``blue``; sim or real is the pin factory's choice.

    ``clock`` is local wall time from the daemon's clock (a sim clock can jump), never a
    second reading of the system clock: the beacon dims by it.
    """
    schedule = BrightnessSchedule(day=settings.day_brightness, night=settings.night_brightness,
                                  night_from=settings.night_from, night_until=settings.night_until)
    return LightBox(red, blue, active_high=settings.active_high, schedule=schedule,
                    pin_factory=pin_factory, clock=clock)
