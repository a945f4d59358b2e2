"""The kiosk's contact inputs: DebouncedInput with the wiring defaults of each.

Each subclass carries the default that makes a cut wire read as the alarming state. The
panic button also answers to gpiozero's Button names (``when_pressed`` and so on), written
as gpiozero writes them: class attributes that *are* the base's properties, not wrappers.
The daemon wires every input through ``when_activated`` / ``when_deactivated``.
"""

from __future__ import annotations

from safehouse.drivers.debounce import DebouncedInput


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
