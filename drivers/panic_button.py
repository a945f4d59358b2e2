"""The kiosk's contact inputs: DebouncedInput with the wiring defaults of each.

Each subclass carries the default that makes a cut wire read as the alarming state. The
panic button also answers to gpiozero's Button names (``when_pressed`` and so on), written
as gpiozero writes them: class attributes that *are* the base's properties, not wrappers.
The daemon wires every input through ``when_activated`` / ``when_deactivated``.

The module is the whole part for all three: their shared [button] settings, the drivers and
their factories. gpiozero is imported only when an input opens its pin (``debounce``), so
loading the config imports no driver library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safehouse.device.core.settings import in_range, one_of, setting
from safehouse.drivers.debounce import DebouncedInput


@dataclass(frozen=True)
class ButtonSettings:
    """[button]: debounce, press or hold, and when a held button is a fault."""

    debounce_ms: int = setting(20, "level must hold this long to count (ms)", in_range(0, 500))
    trigger: str = setting("press", "'press' raises at once; 'hold' after hold_seconds",
                           one_of("press", "hold"))
    hold_seconds: float = setting(2.0, "hold time when trigger = 'hold'", in_range(0.1, 30.0))
    stuck_after: float = setting(30.0, "held longer than this = button_stuck fault (s)",
                                 in_range(1.0, 3600.0))


class PanicButton(DebouncedInput):
    """The citizen's button, between the pin and GND with the pull-up: pressed = low."""

    NAME = "panic button"

    is_pressed = DebouncedInput.is_active
    when_pressed = DebouncedInput.when_activated
    when_released = DebouncedInput.when_deactivated


class TamperSwitch(DebouncedInput):
    """The enclosure's lid switch; active = enclosure open.

    Default wiring: a switch to GND that the shut lid holds closed, with the pull-up, so an
    open lid *and* a cut wire both read high = open (tamper is reported, not hidden).
    """

    NAME = "tamper switch"
    ACTIVE_STATE = True


class LampSensor(DebouncedInput):
    """The lamp current sensor; active = current flows, i.e. the light box really lights.

    Default wiring: an open-collector sensor output that pulls the line low while current
    flows, with the pull-up, so a cut wire reads high = not lit (a lamp fault, not a lie).
    """

    NAME = "lamp sensor"


def build(settings: ButtonSettings, pin: int, *, pin_factory: Any) -> PanicButton:
    """Open the panic button (to GND, pull-up) on ``pin``."""
    return PanicButton(pin, debounce_ms=settings.debounce_ms, pin_factory=pin_factory)


def build_tamper(settings: ButtonSettings, pin: int, *, pin_factory: Any, simulated: bool) -> TamperSwitch:
    """Open the lid switch; simulated, the lid starts shut (switch closed to GND)."""
    if simulated:
        _closed_at_boot(pin_factory, pin)
    return TamperSwitch(pin, debounce_ms=settings.debounce_ms, pin_factory=pin_factory)


def build_lamp(settings: ButtonSettings, pin: int, *, pin_factory: Any, simulated: bool) -> LampSensor:
    """Open the lamp current sensor; simulated, the lamp starts lit (sensor pulling low)."""
    if simulated:
        _closed_at_boot(pin_factory, pin)
    return LampSensor(pin, debounce_ms=settings.debounce_ms, pin_factory=pin_factory)


def _closed_at_boot(pin_factory: Any, pin: int) -> None:
    from safehouse.drivers.pins import closed_at_boot  # pins imports gpiozero: only when built

    closed_at_boot(pin_factory, pin)
